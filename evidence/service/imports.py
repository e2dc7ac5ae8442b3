"""Imports: mail files, an IMAP account, a Microsoft 365 mailbox through Graph, a phone
system's call log, call recordings, and mail as it arrives over SMTP. Each returns its
``ImportReport``; its ``as_dict()`` is what ``--json`` prints, and input it quarantined is
counted there (exit 3 in the CLI)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from evidence.errors import InvalidInput
from evidence.service.result import opened

if TYPE_CHECKING:
    from pathlib import Path

    from evidence.config import Config
    from evidence.ingest import ImportReport
    from evidence.ingest.imap import Credential, ImapAccount
    from evidence.ingest.mail import Progress
    from evidence.ingest.oauth import OAuthOptions
    from evidence.ingest.phonelog import CallImportReport
    from evidence.ingest.smtp import ReceiverSettings, SmtpReceiver


def import_mail(
    config: Config, paths: Sequence[Path], *, progress: Progress | None = None
) -> ImportReport:
    """Import .eml files, mbox files, Maildirs and directories of them."""
    from evidence.ingest.mail import import_mail as run

    with opened(config) as store:
        return run(store, list(paths), progress=progress)


@dataclass(frozen=True)
class ImapLogin:
    """How to reach and log in to an IMAP account: a password (EVIDENCE_IMAP_PASSWORD or
    netrc), or with ``oauth`` an app-only OAuth 2.0 token."""

    user: str
    host: str | None = None
    port: int | None = None
    security: str | None = None  # ssl, starttls, or None: plain (this machine only)
    cafile: Path | None = None
    oauth: OAuthOptions | None = None


def oauth_for(auth: str, options: OAuthOptions) -> OAuthOptions | None:
    """The OAuth options when ``auth`` is oauth2; given without it, they are a mistake."""
    if auth == "oauth2":
        return options
    if any(
        (
            options.provider,
            options.tenant,
            options.client_id,
            options.certificate,
            options.service_account,
            options.token_url,
        )
    ):
        raise InvalidInput("the OAuth options need --auth oauth2")
    return None


def imap_account(login: ImapLogin) -> tuple[ImapAccount, Credential]:
    """The account and what logs in to it (a token is fetched now, so a refusal shows)."""
    from evidence.ingest.imap import imap_login

    return imap_login(
        host=login.host,
        user=login.user,
        port=login.port,
        security=login.security,
        cafile=login.cafile,
        oauth=login.oauth,
    )


def import_imap(
    config: Config,
    account: ImapAccount,
    credential: Credential,
    folders: Sequence[str] = (),
    *,
    since: dt.date | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Import new mail from ``folders`` (default INBOX), read-only."""
    from evidence.ingest.imap import import_imap as run

    with opened(config) as store:
        return run(store, account, credential, list(folders), since=since, progress=progress)


def import_graph(
    config: Config,
    mailbox: str,
    options: OAuthOptions,
    folders: Sequence[str] = (),
    *,
    graph_url: str,
    since: dt.date | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Import what is new in ``folders`` (default the inbox) of a Microsoft 365 mailbox; the
    first token is fetched before the store is opened, so a refusal shows at once."""
    from evidence.ingest.graph import graph_tokens
    from evidence.ingest.graph import import_graph as run

    tokens = graph_tokens(options)
    with opened(config) as store:
        return run(
            store,
            mailbox,
            list(folders),
            tokens,
            graph_url=graph_url,
            since=since,
            progress=progress,
        )


def import_calls(
    config: Config,
    path: Path,
    fmt: str,
    *,
    utc: bool = False,
    mapping: Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> CallImportReport:
    """Import a phone system's call log; lines already imported are skipped."""
    from evidence.ingest.phonelog import import_calls as run

    with opened(config) as store:
        return run(store, path, fmt, utc=utc, mapping=mapping, progress=progress)


def import_recordings(config: Config, directory: Path, pattern: str | None = None) -> ImportReport:
    """Import call recordings, linked to calls by the call id in their names; those whose
    call is not stored are kept and listed (``unmatched``)."""
    from evidence.ingest.recordings import import_recordings as run

    with opened(config) as store:
        return run(store, directory, pattern)


def receive_smtp(
    config: Config,
    settings: ReceiverSettings,
    *,
    ready: Callable[[str, int], None] | None = None,
    receiver: Callable[[SmtpReceiver], None] | None = None,
) -> ImportReport:
    """Store every message an SMTP peer sends until the receiver is stopped; ``ready(host,
    port)`` once it listens; ``receiver`` is handed it first (to wire a signal to ``stop``)."""
    from evidence.ingest.smtp import receive_smtp as run

    with opened(config) as store:
        return run(store, settings, ready=ready, receiver=receiver)
