"""Imports: mail files, IMAP, Microsoft Graph, call logs and recordings."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from evidence.cli.base import (
    DATE,
    current_config,
    finish_import,
    json_option,
    live_counts,
    main,
    progress_bar,
)
from evidence.domain import CallLogFormat
from evidence.service import imports
from evidence.timeutil import DATE_FORMS

F = TypeVar("F", bound=Callable[..., Any])


@main.group("import")
def import_() -> None:
    """Import mail, phone-system logs and recordings.

    Exit code 3 means the import finished but some input was quarantined
    (see the lines printed on stderr). Exit code 7 means the database or its
    disk failed during the import (disk full, database restarted): what was
    stored before is whole, nothing is half-written; run it again once fixed.
    """


@import_.command("mail")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@json_option
def import_mail_cmd(paths: tuple[Path, ...], as_json: bool) -> None:
    """Import .eml files, mbox files, Maildirs and directories of them.

    The kind of each file is detected from its content; a directory with
    cur/ and new/ is read as a Maildir, any other directory recursively. A
    message already in the store (from any file, mbox, Maildir or IMAP) is
    counted as a duplicate and not stored again. Input that is not mail, or is
    past the limits in [mail.limits] of evidence.toml, is quarantined with the
    reason (see `evidence quarantine list`).

    Example:

    \b
        evidence import mail saved/*.eml export-2026-09-29.mbox ~/Maildir
    """
    total = sum(_size_below(p) for p in paths) if sys.stderr.isatty() else None
    with live_counts("importing mail", total) as progress:
        report = imports.import_mail(current_config(), paths, progress=progress)
    finish_import(report, as_json)


def _size_below(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def oauth_options(purpose: str) -> Callable[[F], F]:
    """The OAuth 2.0 options shared by `import imap` and `import graph` (Microsoft only)."""
    scope = MICROSOFT_SCOPES[purpose]
    certificate_help = (
        "PEM with the app's certificate and private key (a signed client assertion); "
        "without it the secret is read from EVIDENCE_OAUTH_CLIENT_SECRET."
    )
    options = [
        click.option("--tenant", help="Microsoft: the directory (tenant) ID or domain."),
        click.option("--client-id", help="The application (client) ID."),
        click.option(
            "--client-certificate",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help=certificate_help,
        ),
        click.option("--token-url", help="Token endpoint (another provider, a national cloud)."),
        click.option("--scope", help=f"Scope asked for (Microsoft: {scope})."),
    ]
    if purpose == "imap":
        options[:0] = [
            click.option(
                "--provider",
                type=click.Choice(["microsoft", "google"]),
                help="microsoft: Entra ID (--tenant, --client-id); google: --service-account.",
            )
        ]
        options[-2:-2] = [
            click.option(
                "--service-account",
                type=click.Path(exists=True, dir_okay=False, path_type=Path),
                help="Google: the service account's JSON key (domain-wide delegation).",
            )
        ]

    def decorate(func: F) -> F:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


MICROSOFT_SCOPES = {
    "imap": "https://outlook.office365.com/.default",
    "graph": "https://graph.microsoft.com/.default",
}


@import_.command("imap")
@click.option("--host", help="IMAP server (default with --provider: the provider's).")
@click.option("--port", type=int, help="Default 993 with --ssl, else 143.")
@click.option("--ssl", "security", flag_value="ssl", help="TLS from the start (default on 993).")
@click.option("--starttls", "security", flag_value="starttls", help="Plain, then STARTTLS.")
@click.option("--user", required=True, help="Login name (with OAuth: the mailbox).")
@click.option(
    "--folder", "folders", multiple=True, help="Folder to import; repeatable (default INBOX)."
)
@click.option(
    "--since",
    type=DATE,
    help=f"Only mail the server received on or after this day ({DATE_FORMS}).",
)
@click.option(
    "--cafile",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CA certificates to trust for the server (a company CA).",
)
@click.option(
    "--auth",
    type=click.Choice(["password", "oauth2"]),
    default="password",
    show_default=True,
    help="oauth2: log in with an app-only OAuth 2.0 token (SASL XOAUTH2).",
)
@oauth_options("imap")
@json_option
def import_imap_cmd(
    host: str | None,
    port: int | None,
    security: str | None,
    user: str,
    folders: tuple[str, ...],
    since: dt.date | None,
    cafile: Path | None,
    auth: str,
    provider: str | None,
    tenant: str | None,
    client_id: str | None,
    client_certificate: Path | None,
    service_account: Path | None,
    token_url: str | None,
    scope: str | None,
    as_json: bool,
) -> None:
    """Import mail from an IMAP server, read-only: nothing is marked read.

    The password is read from EVIDENCE_IMAP_PASSWORD or from a netrc entry
    for the host (~/.netrc, or the file NETRC names), never from the command
    line. Each run fetches only mail newer than the last run's, per folder;
    when the server renumbers a folder (a new UIDVALIDITY), the folder is read
    again and what is already stored counts as duplicates. Without --ssl or
    --starttls the connection is unencrypted, which is allowed only to a
    server on this machine.

    Microsoft 365 and Google Workspace take no password: use --auth oauth2
    with an app-only token (see README, "Hosted mailboxes"). Microsoft: --tenant,
    --client-id, and the secret in EVIDENCE_OAUTH_CLIENT_SECRET or
    --client-certificate. Google: --service-account KEY.json (domain-wide
    delegation). Any other provider: --token-url and --client-id. The token
    is fetched for each run and never printed or stored.

    After each run the server's count of messages in each folder is compared
    with what the store holds from it (see `evidence status`).

    Example:

    \b
        export EVIDENCE_IMAP_PASSWORD=...
        evidence import imap --host imap.aurora-energia.example --ssl \\
            --user asiakaspalvelu --folder INBOX --folder Sent --since 2026-09-01
        export EVIDENCE_OAUTH_CLIENT_SECRET=...
        evidence import imap --auth oauth2 --provider microsoft --tenant aurora-energia.example \\
            --client-id 5f1c... --user asiakaspalvelu@aurora-energia.example
    """
    from evidence.ingest.oauth import OAuthOptions

    oauth = imports.oauth_for(
        auth,
        OAuthOptions(
            provider, tenant, client_id, client_certificate, service_account, token_url, scope
        ),
    )
    login = imports.ImapLogin(user, host, port, security, cafile, oauth)
    account, credential = imports.imap_account(login)
    with live_counts(f"importing from {account.host}") as progress:
        report = imports.import_imap(
            current_config(), account, credential, folders, since=since, progress=progress
        )
    finish_import(report, as_json)


@import_.command("graph")
@click.option("--mailbox", required=True, help="The mailbox, e.g. support@company.example.")
@click.option(
    "--folder",
    "folders",
    multiple=True,
    help="Folder: a well-known name (inbox, sentitems), id or display name; repeatable "
    "(default inbox).",
)
@click.option(
    "--since",
    type=DATE,
    help=f"On the first run, only mail received on or after this day ({DATE_FORMS}).",
)
@click.option(
    "--graph-url",
    default="https://graph.microsoft.com/v1.0",
    show_default=True,
    help="Graph endpoint (a national cloud).",
)
@oauth_options("graph")
@json_option
def import_graph_cmd(
    mailbox: str,
    folders: tuple[str, ...],
    since: dt.date | None,
    graph_url: str,
    tenant: str | None,
    client_id: str | None,
    client_certificate: Path | None,
    token_url: str | None,
    scope: str | None,
    as_json: bool,
) -> None:
    """Import mail from Microsoft 365 through Microsoft Graph, read-only.

    The app needs the Mail.Read application permission, limited to the mailbox
    (see README, "Hosted mailboxes"). The client secret is read from
    EVIDENCE_OAUTH_CLIENT_SECRET, or a certificate is given with
    --client-certificate. Each run fetches only what is new since the last
    (a delta query per folder); a run that stopped resumes where it was.
    Graph rebuilds each message's MIME from its own storage: such emails are
    marked as having come through Graph, in the dossier next to their hash.
    Prefer IMAP (`import imap --auth oauth2`) where it is allowed: it gives
    the bytes as received. After each run the folder's count on the server is
    compared with what the store holds from it (see `evidence status`).

    Example:

    \b
        export EVIDENCE_OAUTH_CLIENT_SECRET=...
        evidence import graph --tenant aurora-energia.example --client-id 5f1c... \\
            --mailbox asiakaspalvelu@aurora-energia.example --folder inbox --folder sentitems
    """
    from evidence.ingest.oauth import OAuthOptions

    options = OAuthOptions(
        "microsoft", tenant, client_id, client_certificate, None, token_url, scope
    )
    with live_counts(f"importing from {mailbox}") as progress:
        report = imports.import_graph(
            current_config(),
            mailbox,
            options,
            folders,
            graph_url=graph_url,
            since=since,
            progress=progress,
        )
    finish_import(report, as_json)


@import_.command("calls")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    required=True,
    type=click.Choice([f.value for f in CallLogFormat]),
    help="asterisk-cdr: cdr_csv Master.csv; asterisk-queue-log: queue_log; "
    "freeswitch-cdr: mod_cdr_csv (default template); csv: any export, with --mapping.",
)
@click.option(
    "--mapping",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="TOML file saying which CSV column is what (--format csv; see README).",
)
@click.option("--utc", is_flag=True, help="Times in the file are UTC (Asterisk usegmtime=yes).")
@json_option
def import_calls_cmd(path: Path, fmt: str, mapping: Path | None, utc: bool, as_json: bool) -> None:
    """Import a phone system's call log.

    Local times are read in EVIDENCE_TIMEZONE. A time in the hour that
    repeats when summer time ends (or the hour skipped when it starts) is
    resolved from the Unix time in the call's uniqueid or queue_log, or from
    an unambiguous end time less the recorded duration; otherwise it is
    stored flagged, never guessed. Lines already imported are skipped, so a
    grown log can be imported again. A file that is not in the given format
    is refused with the format it looks like. A file with no call in it (0
    bytes, blank lines, a CSV's header row alone) imports nothing and says
    so ("empty": true with --json); that is not an error (exit 0).

    The queue wait is the phone system's own: queue_log's, else the call
    record's time to the answer, or the whole call when nobody answered
    (see README, "Phone systems").

    Example:

    \b
        evidence import calls /var/log/asterisk/cdr-csv/Master.csv --format asterisk-cdr
        evidence import calls /var/log/asterisk/queue_log --format asterisk-queue-log
        evidence import calls Master.csv --format freeswitch-cdr
        evidence import calls export.csv --format csv --mapping cloud-pbx.toml
    """
    size = path.stat().st_size
    with progress_bar(f"importing {path.name}", size, in_bytes=True) as progress:
        report = imports.import_calls(
            current_config(), path, fmt, utc=utc, mapping=mapping, progress=progress
        )
    if report.empty is not None:
        click.echo(f"evidence: {report.empty}", err=True)
    finish_import(report, as_json)


@import_.command("recordings")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--pattern",
    help="Regular expression whose first group is the uniqueid (default: <digits>.<digits>).",
)
@json_option
def import_recordings_cmd(directory: Path, pattern: str | None, as_json: bool) -> None:
    """Import call recordings (WAV, MP3, OGG, GSM), linked to calls by the call id in the name.

    Each file is stored byte-exact with its SHA-256 and duration. The call id
    is the Asterisk uniqueid (or a UUID) in the file name, or what --pattern
    finds there (its group named "id", or its first group). A recording whose
    call is not in the store is kept and listed, and linked when the call's
    log is imported.

    Example:

    \b
        evidence import recordings /var/spool/asterisk/monitor
        evidence import recordings recordings/ --pattern 'rec-(?P<id>[0-9a-f-]{36})'
    """
    report = imports.import_recordings(current_config(), directory, pattern)
    if not as_json:
        for line in report.unmatched:
            click.echo(f"  {line}", err=True)
        if report.unmatched:
            click.echo(f"{len(report.unmatched)} recording(s) match no call in the store", err=True)
    finish_import(report, as_json, unmatched=True)
