"""The ``evidence`` command: parses arguments and calls the library. Nothing else lives here.

Exit codes: 0 done; 1 error; 2 usage; 3 done, but some input was quarantined.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from evidence import __version__
from evidence.config import Config, load_config, write_initial_config
from evidence.errors import EvidenceError
from evidence.ingest import ImportReport
from evidence.store.db import Store, open_store, upgrade
from evidence.timeutil import format_local, parse_user_date, parse_user_time

EXIT_QUARANTINED = 3
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

F = TypeVar("F", bound=Callable[..., Any])


def _fail(message: str, code: int = 1) -> None:
    click.echo(f"evidence: {message}", err=True)
    sys.exit(code)


def handle_errors(func: F) -> F:
    """Our errors become one line on stderr and their exit code, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except EvidenceError as exc:
            _fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted; what was committed before stays", 130)
        except OSError as exc:
            _fail(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))

    return wrapper  # type: ignore[return-value]


def _config() -> Config:
    return load_config()


@contextmanager
def _store() -> Iterator[Store]:
    store = open_store(_config())
    try:
        yield store
    finally:
        store.close()


def _date(value: str | None) -> dt.date | None:
    return parse_user_date(value) if value else None


def _finish_import(report: ImportReport, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
    else:
        for line in report.messages:
            click.echo(f"  {line}", err=True)
        click.echo(report.summary())
    if report.quarantined:
        sys.exit(EXIT_QUARANTINED)


@contextmanager
def _progress(label: str, total: int | None = None) -> Iterator[Callable[[int], None] | None]:
    """A progress bar on a terminal; silent when stderr is a pipe or a file."""
    if not sys.stderr.isatty():
        yield None
        return
    with click.progressbar(
        length=total or 0, label=label, file=sys.stderr, show_pos=True, show_eta=bool(total)
    ) as bar:
        yield bar.update


class _LiveCounts:
    """A status line on a terminal: progress, counts and rate (redrawn at most 10 times a s)."""

    def __init__(self, label: str, total: int | None) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.started = time.monotonic()
        self.shown = 0.0

    def __call__(self, advance: int, report: ImportReport) -> None:
        self.done += advance
        now = time.monotonic()
        if now - self.shown < 0.1:
            return
        self.shown = now
        count = report.imported + report.duplicates + report.quarantined
        rate = count / max(now - self.started, 1e-6)
        share = f" {min(self.done / self.total, 1):4.0%}" if self.total else ""
        click.echo(
            f"\r{self.label}{share}  {report.summary()}  {rate:,.0f} msg/s\x1b[K",
            err=True,
            nl=False,
        )

    def close(self) -> None:
        if self.shown:
            click.echo("", err=True)


@contextmanager
def _live_counts(label: str, total: int | None = None) -> Iterator[_LiveCounts | None]:
    """Import progress with counts and rate on a terminal; silent when stderr is not one."""
    if not sys.stderr.isatty():
        yield None
        return
    live = _LiveCounts(label, total)
    try:
        yield live
    finally:
        live.close()


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, prog_name="evidence")
def main() -> None:
    """Keep an append-only store of customer emails, calls and incidents, and
    export a regulator-ready PDF dossier of one customer's history.

    The store lives in EVIDENCE_HOME (default ~/.local/share/evidence);
    EVIDENCE_DATABASE_URL points at PostgreSQL instead of the embedded SQLite;
    EVIDENCE_TIMEZONE (default Europe/Helsinki) is the zone of local times.

    Example:

        evidence init --company "Aurora Energia Oy" --mail-domain aurora-energia.example
        evidence customer add 100234 --name "Matti Virtanen" --email matti@example.net
        evidence import mail ~/Maildir/export.mbox
        evidence export 100234 -o dossier.pdf
    """


@main.command(context_settings=CONTEXT)
@click.option("--company", help="Company name for the dossier cover (first init only).")
@click.option(
    "--mail-domain",
    "mail_domains",
    multiple=True,
    help="The company's own mail domain; mail from it is outbound. Repeatable.",
)
@click.option("--timezone", help="IANA zone of local times (first init only).")
@handle_errors
def init(company: str | None, mail_domains: tuple[str, ...], timezone: str | None) -> None:
    """Create the store, or upgrade an older one to this version's schema.

    Safe to run again at any time. On the first run, --company, --mail-domain
    and --timezone are written to evidence.toml in EVIDENCE_HOME.

    Example:

        evidence init --company "Aurora Energia Oy" --mail-domain aurora-energia.example
    """
    config = _config()
    config.home.mkdir(parents=True, exist_ok=True, mode=0o700)
    written = write_initial_config(config.home, company, list(mail_domains), timezone)
    config = _config()
    upgrade(config)
    click.echo(f"store ready: {config.database_url}")
    if written:
        click.echo(f"settings written to {written}")


# --- customers ------------------------------------------------------------------


@main.group(context_settings=CONTEXT)
def customer() -> None:
    """Customers and the addresses and numbers that identify them."""


@customer.command("add", context_settings=CONTEXT)
@click.argument("ref")
@click.option("--name", help="The customer's name (required for a new customer).")
@click.option("--email", "emails", multiple=True, help="Email address; repeatable.")
@click.option("--phone", "phones", multiple=True, help="Phone number, any spelling; repeatable.")
@handle_errors
def customer_add(
    ref: str, name: str | None, emails: tuple[str, ...], phones: tuple[str, ...]
) -> None:
    """Add a customer, or more addresses and numbers to one.

    Email addresses match case-insensitively; phone numbers are stored in
    E.164, so 040 123 4567 and +358401234567 are the same number.

    Example:

        evidence customer add 100234 --name "Matti Virtanen" \\
            --email matti.virtanen@example.net --phone "040 123 4567"
    """
    from evidence.customers import add_customer

    with _store() as store:
        added = add_customer(store, ref, name, list(emails), list(phones))
        ids = ", ".join(i.value for i in added.identifiers) or "no identifiers yet"
        click.echo(f"customer {added.ref} ({added.name}): {ids}")


@customer.command("list", context_settings=CONTEXT)
@json_option
@handle_errors
def customer_list(as_json: bool) -> None:
    """List customers with their identifiers.

    Example:

        evidence customer list --json
    """
    from evidence.customers import list_customers

    with _store() as store:
        rows = [
            {"ref": c.ref, "name": c.name, "identifiers": [i.value for i in c.identifiers]}
            for c in list_customers(store)
        ]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for row in rows:
        click.echo(f"{row['ref']}\t{row['name']}\t{', '.join(row['identifiers'])}")


# --- imports --------------------------------------------------------------------


@main.group("import", context_settings=CONTEXT)
def import_() -> None:
    """Import mail, phone-system logs and recordings.

    Exit code 3 means the import finished but some input was quarantined
    (see the lines printed on stderr).
    """


@import_.command("mail", context_settings=CONTEXT)
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@json_option
@handle_errors
def import_mail_cmd(paths: tuple[Path, ...], as_json: bool) -> None:
    """Import .eml files, mbox files, Maildirs and directories of them.

    The kind of each file is detected from its content; a directory with
    cur/ and new/ is read as a Maildir, any other directory recursively. A
    message already in the store (from any file, mbox, Maildir or IMAP) is
    counted as a duplicate and not stored again. Input that is not mail, or is
    past the limits in [mail.limits] of evidence.toml, is quarantined with the
    reason (see `evidence quarantine list`).

    Example:

        evidence import mail saved/*.eml export-2026-09-29.mbox ~/Maildir
    """
    from evidence.ingest.mail import import_mail

    total = sum(_size_below(p) for p in paths) if sys.stderr.isatty() else None
    with _store() as store, _live_counts("importing mail", total) as progress:
        report = import_mail(store, list(paths), progress=progress)
    _finish_import(report, as_json)


def _size_below(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@import_.command("imap", context_settings=CONTEXT)
@click.option("--host", required=True, help="IMAP server.")
@click.option("--port", type=int, help="Default 993 with --ssl, else 143.")
@click.option("--ssl", "security", flag_value="ssl", help="TLS from the start (default on 993).")
@click.option("--starttls", "security", flag_value="starttls", help="Plain, then STARTTLS.")
@click.option("--user", required=True, help="Login name.")
@click.option(
    "--folder", "folders", multiple=True, help="Folder to import; repeatable (default INBOX)."
)
@click.option("--since", help="Only mail the server received on or after this day (YYYY-MM-DD).")
@click.option(
    "--cafile",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CA certificates to trust for the server (a company CA).",
)
@json_option
@handle_errors
def import_imap_cmd(
    host: str,
    port: int | None,
    security: str | None,
    user: str,
    folders: tuple[str, ...],
    since: str | None,
    cafile: Path | None,
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

    Example:

    \b
        export EVIDENCE_IMAP_PASSWORD=...
        evidence import imap --host imap.aurora-energia.example --ssl \\
            --user asiakaspalvelu --folder INBOX --folder Sent --since 2026-09-01
    """
    from evidence.ingest.imap import ImapAccount, default_security, imap_password, import_imap

    mode = security or default_security(host, port)
    account = ImapAccount(host=host, user=user, security=mode, port=port, cafile=cafile)
    password = imap_password(account)
    with _store() as store, _live_counts(f"importing from {host}") as progress:
        report = import_imap(
            store, account, password, list(folders), since=_date(since), progress=progress
        )
    _finish_import(report, as_json)


@import_.command("calls", context_settings=CONTEXT)
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    required=True,
    type=click.Choice(["asterisk-cdr", "asterisk-queue-log"]),
    help="asterisk-cdr: cdr_csv Master.csv; asterisk-queue-log: queue_log.",
)
@click.option("--utc", is_flag=True, help="CDR times are UTC (Asterisk usegmtime=yes).")
@json_option
@handle_errors
def import_calls_cmd(path: Path, fmt: str, utc: bool, as_json: bool) -> None:
    """Import a phone system's call log.

    CDR local times are read in EVIDENCE_TIMEZONE. A time in the hour that
    repeats when summer time ends is resolved from the Unix time in the
    call's uniqueid, or stored flagged as ambiguous; never guessed.
    Lines already imported are skipped, so a grown log can be imported again.

    Example:

        evidence import calls /var/log/asterisk/cdr-csv/Master.csv --format asterisk-cdr
        evidence import calls /var/log/asterisk/queue_log --format asterisk-queue-log
    """
    from evidence.ingest.asterisk import import_calls

    with _store() as store, _progress(f"importing {path.name}") as progress:
        report = import_calls(store, path, fmt, utc=utc, progress=progress)
    _finish_import(report, as_json)


@import_.command("recordings", context_settings=CONTEXT)
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--pattern",
    help="Regular expression whose first group is the uniqueid (default: <digits>.<digits>).",
)
@json_option
@handle_errors
def import_recordings_cmd(directory: Path, pattern: str | None, as_json: bool) -> None:
    """Import call recordings (WAV, MP3, OGG, GSM), linked to calls by uniqueid.

    Example:

        evidence import recordings /var/spool/asterisk/monitor
    """
    from evidence.ingest.recordings import import_recordings

    with _store() as store:
        report = import_recordings(store, directory, pattern)
    if not as_json:
        for line in report.messages:
            click.echo(f"  {line}", err=True)
        report.messages = [m for m in report.messages if "quarantine #" in m]
    _finish_import(report, as_json)


# --- quarantine -----------------------------------------------------------------


@main.group(context_settings=CONTEXT)
def quarantine() -> None:
    """Input that could not be imported (mail, call-log lines, recordings) and why."""


@quarantine.command("list", context_settings=CONTEXT)
@click.option("--kind", help="Only this kind, e.g. mail, asterisk-cdr, asterisk-queue-log.")
@json_option
@handle_errors
def quarantine_list(kind: str | None, as_json: bool) -> None:
    """List quarantined input of every kind, oldest first.

    Example:

        evidence quarantine list --kind mail --json
    """
    from evidence.quarantine import list_quarantine

    config = _config()
    with _store() as store, store.session() as session:
        items = list_quarantine(session, kind)
        rows = [q.as_dict() for q in items]
        when = [format_local(q.item.quarantined_at, config.zone) for q in items]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for row, at in zip(rows, when, strict=True):
        where = f"{row['source']}:{row['locator']}" if row["locator"] else row["source"]
        click.echo(f"#{row['id']}\t{row['kind']}\t{at}\t{where}\t{row['reason']}")


@quarantine.command("show", context_settings=CONTEXT)
@click.argument("item_id", metavar="ID", type=int)
@click.option("--raw", is_flag=True, help="Write the quarantined bytes to stdout, exactly.")
@json_option
@handle_errors
def quarantine_show(item_id: int, raw: bool, as_json: bool) -> None:
    """Show one quarantined item: where it came from, why, and its first lines.

    Example:

    \b
        evidence quarantine show 17
        evidence quarantine show 17 --raw > message-17.eml
    """
    from evidence.quarantine import get_quarantined

    config = _config()
    with _store() as store, store.session() as session:
        found, data = get_quarantined(session, item_id)
        row = found.as_dict()
        at = format_local(found.item.quarantined_at, config.zone)
    if raw:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    if as_json:
        click.echo(json.dumps(row, ensure_ascii=False, indent=2))
        return
    where = f"{row['source']} ({row['locator']})" if row["locator"] else row["source"]
    click.echo(f"quarantine #{row['id']} ({row['kind']}), {at}")
    click.echo(f"from:   {where}")
    click.echo(f"reason: {row['reason']}")
    click.echo(f"bytes:  {row['size']:,}, SHA-256 {row['sha256']}")
    click.echo("first lines:")
    for line in data[:2000].decode("utf-8", "replace").splitlines()[:12]:
        printable = "".join(c if c.isprintable() else "\ufffd" for c in line.expandtabs(4))
        click.echo(f"  {printable[:200]}")


# --- incidents ------------------------------------------------------------------


@main.group(context_settings=CONTEXT)
def incident() -> None:
    """Incidents that explain gaps in service (evacuations, outages, storms)."""


@incident.command("add", context_settings=CONTEXT)
@click.option("--start", required=True, help="Local time (EVIDENCE_TIMEZONE) or ISO with offset.")
@click.option("--end", help="Local time or ISO with offset; omit while it is still going on.")
@click.option("--title", required=True, help="What happened.")
@click.option(
    "--channel",
    "channels",
    multiple=True,
    type=click.Choice(["phone", "email", "all"]),
    help="Channel affected; repeatable (default: all).",
)
@click.option("--note", help="Longer explanation.")
@click.option("--logged-by", required=True, help="Who logged it.")
@click.option("--logged-at", help="When it was logged, if not now (the store also keeps now).")
@handle_errors
def incident_add(
    start: str,
    end: str | None,
    title: str,
    channels: tuple[str, ...],
    note: str | None,
    logged_by: str,
    logged_at: str | None,
) -> None:
    """Record an incident that happened (or is happening).

    The store keeps both the time you give with --logged-at and the time it
    was actually entered, so a past incident entered today says so.

    Example:

        evidence incident add --start "2026-09-28 10:02" --end "2026-09-28 14:11" \\
            --title "Toimitalo tyhjennetty uhkatilanteen vuoksi" \\
            --channel phone --channel email \\
            --logged-by "Kaisa Lehtonen (esihenkilö)" --logged-at "2026-09-28 14:25"
    """
    from evidence.incidents import add_incident

    config = _config()
    zone = config.zone
    with _store() as store:
        created = add_incident(
            store,
            title=title,
            start=parse_user_time(start, zone),
            end=parse_user_time(end, zone) if end else None,
            channels=list(channels),
            note=note,
            logged_by=logged_by,
            logged_at=parse_user_time(logged_at, zone) if logged_at else None,
        )
    click.echo(
        f"incident #{created.id}: {created.title}, {format_local(created.start, zone)}"
        f" - {format_local(created.end, zone)}"
    )


@incident.command("list", context_settings=CONTEXT)
@json_option
@handle_errors
def incident_list(as_json: bool) -> None:
    """List incidents (current versions).

    Example:

        evidence incident list --json
    """
    from evidence.incidents import current_incidents
    from evidence.timeline import Item, item_json

    config = _config()
    with _store() as store, store.session() as session:
        rows = current_incidents(session)
        payload = [item_json(Item("incident", i.start, f"incident:{i.id}", i)) for i in rows]
    if as_json:
        click.echo(json.dumps(payload, ensure_ascii=False, indent=2))
        return
    for i in rows:
        click.echo(
            f"#{i.id}\t{format_local(i.start, config.zone)} - {format_local(i.end, config.zone)}"
            f"\t{i.title}"
        )


# --- cases ----------------------------------------------------------------------


@main.group(context_settings=CONTEXT)
def case() -> None:
    """Cases: a regulator's request about a customer, and its legal PDFs."""


@case.command("open", context_settings=CONTEXT)
@click.argument("reference")
@click.option("--customer", "customer_ref", required=True, help="Customer reference.")
@click.option("--authority", required=True, help="Who asks, e.g. 'Etelä-Suomen AVI'.")
@click.option("--received", help="Date the request arrived (YYYY-MM-DD).")
@click.option("--deadline", help="Date the answer is due (YYYY-MM-DD).")
@handle_errors
def case_open(
    reference: str, customer_ref: str, authority: str, received: str | None, deadline: str | None
) -> None:
    """Open a case for a customer.

    Example:

        evidence case open ESAVI/31337/2026 --customer 100234 \\
            --authority "Etelä-Suomen aluehallintovirasto" --received 2026-10-20
    """
    from evidence.cases import open_case

    with _store() as store:
        opened = open_case(
            store,
            reference,
            customer_ref=customer_ref,
            authority=authority,
            received=_date(received),
            deadline=_date(deadline),
        )
    click.echo(f"case {opened.reference} opened")


@case.command("attach", context_settings=CONTEXT)
@click.argument("reference")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--title", required=True, help="What the document is.")
@click.option("--date", "document_date", help="The document's own date (YYYY-MM-DD).")
@handle_errors
def case_attach(reference: str, file: Path, title: str, document_date: str | None) -> None:
    """Attach a PDF (the regulator's letter, a reply) to a case, byte-exact.

    Example:

        evidence case attach ESAVI/31337/2026 selvityspyynto.pdf --title "Selvityspyyntö"
    """
    from evidence.cases import attach_document

    with _store() as store:
        document = attach_document(
            store, reference, file, title=title, document_date=_date(document_date)
        )
    click.echo(f"attached {document.filename} to {reference} (SHA-256 {document.sha256})")


@case.command("show", context_settings=CONTEXT)
@click.argument("reference")
@json_option
@handle_errors
def case_show(reference: str, as_json: bool) -> None:
    """Show a case and its documents.

    Example:

        evidence case show ESAVI/31337/2026
    """
    from evidence.cases import get_case

    with _store() as store:
        found = get_case(store, reference)
        documents = [
            {"title": d.title, "filename": d.filename, "size": d.size, "sha256": d.sha256}
            for d in found.documents
        ]
        data = {
            "reference": found.reference,
            "customer": found.customer.ref,
            "authority": found.authority,
            "received": found.received.isoformat() if found.received else None,
            "deadline": found.deadline.isoformat() if found.deadline else None,
            "documents": documents,
        }
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    click.echo(f"{found.reference}: customer {found.customer.ref}, {found.authority}")
    click.echo(f"received {data['received'] or '-'}, deadline {data['deadline'] or '-'}")
    for doc in documents:
        click.echo(f"  {doc['title']}: {doc['filename']} ({doc['size']} bytes) {doc['sha256']}")


# --- reading --------------------------------------------------------------------


@main.command(context_settings=CONTEXT)
@click.argument("ref")
@click.option("--from", "date_from", help="First local day (YYYY-MM-DD).")
@click.option("--to", "date_to", help="Last local day, inclusive (YYYY-MM-DD).")
@json_option
@handle_errors
def timeline(ref: str, date_from: str | None, date_to: str | None, as_json: bool) -> None:
    """A customer's emails, calls, incidents and agents' pauses in time order.

    Example:

        evidence timeline 100234 --from 2026-09-28 --to 2026-09-30 --json
    """
    from evidence.render.text import timeline_lines
    from evidence.timeline import build_timeline, timeline_json

    config = _config()
    with _store() as store, store.session() as session:
        built = build_timeline(session, ref, config.zone, _date(date_from), _date(date_to))
        if as_json:
            click.echo(json.dumps(timeline_json(built), ensure_ascii=False, indent=2))
            return
        for line in timeline_lines(built, config.zone):
            click.echo(line)


@main.command(context_settings=CONTEXT)
@click.argument("ref", required=False)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the PDF.",
)
@click.option("--from", "date_from", help="First local day (YYYY-MM-DD).")
@click.option("--to", "date_to", help="Last local day, inclusive (YYYY-MM-DD).")
@click.option(
    "--case", "case_ref", help="Case reference: its authority on the cover, its PDFs appended."
)
@click.option("--generated-at", help="Pin the generation time (ISO 8601), for reproducible output.")
@handle_errors
def export(
    ref: str | None,
    output: Path,
    date_from: str | None,
    date_to: str | None,
    case_ref: str | None,
    generated_at: str | None,
) -> None:
    """Write a customer's dossier as one PDF.

    The dossier has a cover, every email (verbatim), call and incident in
    time order, and the case's PDFs appended whole. The raw originals are
    embedded in the PDF (list them with `pdfdetach -list`).

    Example:

        evidence export 100234 --case ESAVI/31337/2026 -o dossier.pdf
    """
    from evidence.render.dossier import export_dossier

    config = _config()
    if ref is None and case_ref is None:
        raise click.UsageError("give a customer REF or --case REFERENCE")
    pinned = parse_user_time(generated_at, config.zone) if generated_at else None
    with _store() as store:
        result = export_dossier(
            store,
            customer_ref=ref,
            output=output,
            date_from=_date(date_from),
            date_to=_date(date_to),
            case_ref=case_ref,
            generated_at=pinned,
        )
    click.echo(
        f"wrote {output} ({result.pages} pages, {result.items} items, SHA-256 {result.sha256})"
    )


if __name__ == "__main__":  # pragma: no cover
    main()
