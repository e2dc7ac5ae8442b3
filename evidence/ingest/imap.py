"""Mail from an IMAP server, read-only and incremental.

Each folder is opened with EXAMINE (read-only) and messages are fetched with
``BODY.PEEK[]``, so nothing on the server changes: no message is marked read.
The bytes of ``BODY[]`` are stored exactly. For every account and folder the
store remembers the folder's UIDVALIDITY and the highest UID imported, in the
same transaction as the messages: the next run fetches only newer mail. When
the server reports another UIDVALIDITY (the folder was rebuilt or renumbered),
the import starts over from UID 1; what is already stored is recognised by its
content and counted as duplicates, so starting over changes nothing.

The password comes from ``EVIDENCE_IMAP_PASSWORD`` or a netrc entry for the
host, never from the command line (it would show in ``ps`` and shell history).
Hosted mailboxes (Microsoft 365, Google Workspace) log in with an OAuth 2.0
access token instead, over SASL XOAUTH2 (``evidence.ingest.oauth``).
"""

from __future__ import annotations

import base64
import datetime as dt
import imaplib
import ipaddress
import netrc
import os
import re
import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from evidence.errors import EvidenceError, InvalidInput
from evidence.ingest import ImportReport
from evidence.ingest.mail import MailImporter, Progress, RawMessage, mail_limits
from evidence.ingest.mime import MailLimits
from evidence.ingest.oauth import (
    GOOGLE_IMAP_HOST,
    MICROSOFT_IMAP_HOST,
    BearerToken,
    OAuthOptions,
    fetch_token,
    oauth_client,
    xoauth2,
)
from evidence.store.db import Store
from evidence.store.models import ImapFolderState
from evidence.timeutil import utcnow

PASSWORD_VARIABLE = "EVIDENCE_IMAP_PASSWORD"
FETCH_BATCH = 100
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_UID = re.compile(rb"\bUID (\d+)")
_MESSAGES = re.compile(rb"\bMESSAGES (\d+)")


@dataclass(frozen=True)
class ImapAccount:
    host: str
    user: str
    security: str = "ssl"  # ssl, starttls, or plain (loopback only)
    port: int | None = None
    cafile: Path | None = None

    @property
    def effective_port(self) -> int:
        return self.port or (993 if self.security == "ssl" else 143)

    @property
    def key(self) -> str:
        return f"{self.user}@{self.host}:{self.effective_port}"


def imap_password(account: ImapAccount, environ: Mapping[str, str] | None = None) -> str:
    """``EVIDENCE_IMAP_PASSWORD``, else the netrc entry for the host (and user)."""
    env = os.environ if environ is None else environ
    password = env.get(PASSWORD_VARIABLE)
    if password:
        return password
    path = Path(env.get("NETRC") or Path.home() / ".netrc")
    if path.is_file():
        try:
            entry = netrc.netrc(str(path)).authenticators(account.host)
        except (netrc.NetrcParseError, OSError) as exc:
            raise InvalidInput(f"cannot read {path}: {exc}") from exc
        if entry is not None:
            login, _account, secret = entry
            if secret and (not login or login == account.user):
                return secret
    raise InvalidInput(
        f"no IMAP password for {account.user} on {account.host}: set {PASSWORD_VARIABLE}, "
        f"or add 'machine {account.host} login {account.user} password ...' to {path}"
    )


def imap_login(
    *,
    host: str | None,
    user: str,
    port: int | None = None,
    security: str | None = None,
    cafile: Path | None = None,
    oauth: OAuthOptions | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[ImapAccount, Credential]:
    """The account and what it logs in with: a password, or (``oauth``) a fresh token.

    With ``--provider microsoft`` or ``google`` the host defaults to the provider's
    (outlook.office365.com or imap.gmail.com, port 993).
    """
    if host is None and oauth is not None:
        host = {"microsoft": MICROSOFT_IMAP_HOST, "google": GOOGLE_IMAP_HOST}.get(
            oauth.provider or ""
        )
    if not host:
        raise InvalidInput("which IMAP server? give --host")
    account = ImapAccount(
        host=host,
        user=user,
        security=security or default_security(host, port),
        port=port,
        cafile=cafile,
    )
    if oauth is None:
        return account, imap_password(account, environ)
    client = oauth_client(oauth, purpose="imap", user=user)
    _refuse_unencrypted(account, "token")  # before any token is asked for
    return account, fetch_token(client, environ)


def default_security(host: str, port: int | None) -> str:
    """TLS on port 993 (the default for a server elsewhere); otherwise plain, which
    ``connect`` allows only to a server on this machine."""
    if port == 993 or (port is None and not is_loopback(host)):
        return "ssl"
    return "plain"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


Credential = str | BearerToken  # a password, or an OAuth 2.0 access token


def connect(account: ImapAccount, password: Credential, timeout: float = 60) -> imaplib.IMAP4:
    """A logged-in connection; TLS unless the server is on this machine."""
    _refuse_unencrypted(account, "token" if isinstance(password, BearerToken) else "password")
    context = ssl.create_default_context(cafile=str(account.cafile) if account.cafile else None)
    try:
        conn: imaplib.IMAP4
        if account.security == "ssl":
            conn = imaplib.IMAP4_SSL(
                account.host, account.effective_port, ssl_context=context, timeout=timeout
            )
        else:
            conn = imaplib.IMAP4(account.host, account.effective_port, timeout=timeout)
            if account.security == "starttls":
                conn.starttls(ssl_context=context)
    except (OSError, imaplib.IMAP4.error) as exc:
        raise EvidenceError(
            f"cannot connect to IMAP server {account.host}:{account.effective_port}: {exc}"
        ) from exc
    try:
        if isinstance(password, BearerToken):
            _authenticate(conn, account.user, password)
        else:
            conn.login(account.user, password)
    except imaplib.IMAP4.error as exc:
        _logout(conn)
        if isinstance(password, BearerToken):
            raise InvalidInput(
                f"the IMAP server refused the OAuth token for {account.user}: {_text(exc)}; "
                "check that the app may read this mailbox (IMAP.AccessAsApp, or domain-wide "
                "delegation) and that the token is for this server"
            ) from None
        raise InvalidInput(
            f"the IMAP server refused the login of {account.user}: {_text(exc)}"
        ) from None
    return conn


def _authenticate(conn: imaplib.IMAP4, user: str, token: BearerToken) -> None:
    """SASL XOAUTH2. A refusal comes as a challenge (a JSON error); the empty answer to it
    ends the exchange, and the server then says NO."""
    if "AUTH=XOAUTH2" not in conn.capabilities:
        raise imaplib.IMAP4.error("the server does not offer AUTH=XOAUTH2")
    sent: list[bool] = []

    def answer(_challenge: bytes) -> bytes:
        if sent:
            return b""
        sent.append(True)
        return xoauth2(user, token)

    conn.authenticate("XOAUTH2", answer)


def _refuse_unencrypted(account: ImapAccount, what: str) -> None:
    if account.security == "plain" and not is_loopback(account.host):
        raise InvalidInput(
            f"refusing to send the {what} to {account.host} unencrypted: "
            "use --ssl (port 993) or --starttls"
        )


def _logout(conn: imaplib.IMAP4) -> None:
    try:
        conn.logout()
    except (OSError, imaplib.IMAP4.error):
        pass


def _text(exc: BaseException) -> str:
    return str(exc).strip("b'\"")


def encode_folder(name: str) -> str:
    """A folder name in IMAP's modified UTF-7 (RFC 3501 5.1.3), quoted."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            raw = "".join(pending).encode("utf-16-be")
            out.append(
                "&" + base64.b64encode(raw).decode("ascii").rstrip("=").replace("/", ",") + "-"
            )
            pending.clear()

    for char in name:
        if " " <= char <= "~":
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    encoded = "".join(out)
    return '"' + encoded.replace("\\", "\\\\").replace('"', '\\"') + '"'


def import_imap(
    store: Store,
    account: ImapAccount,
    password: Credential,
    folders: list[str],
    *,
    since: dt.date | None = None,
    progress: Progress | None = None,
    limits: MailLimits | None = None,
) -> ImportReport:
    """Import new mail from ``folders`` (default INBOX); the server is never changed."""
    limits = limits or mail_limits(store.config)
    folders = folders or ["INBOX"]
    conn = connect(account, password)
    counts: dict[str, tuple[int, dt.datetime]] = {}
    try:
        importer = MailImporter(
            store,
            f"imap://{account.key}/" + ",".join(folders),
            limits,
            progress,
            on_chunk=lambda session, chunk: _remember(session, account, chunk),
        )
        report = importer.run(_messages(store, conn, account, folders, since, counts))
    finally:
        _logout(conn)
    _reconcile(store, account, counts)
    return report


def _reconcile(
    store: Store, account: ImapAccount, counts: Mapping[str, tuple[int, dt.datetime]]
) -> None:
    """Keep each folder's server count (taken as the run read it) beside what the store
    holds from it; only a run that finished gets here."""
    with store.writing() as session:
        for folder, (count, at) in counts.items():
            state = _state(session, account, folder)
            if state is not None:
                state.server_count, state.counted_at = count, at


def _remember(session: Session, account: ImapAccount, chunk: list[RawMessage]) -> None:
    """Move each folder's highest imported UID on, in the chunk's own transaction."""
    highest: dict[tuple[str, int], int] = {}
    held: dict[tuple[str, int], int] = {}
    for item in chunk:
        if item.checkpoint is not None:
            folder, validity, uid = item.checkpoint
            highest[(folder, validity)] = max(uid, highest.get((folder, validity), 0))
            if not item.quarantined:  # stored now, or found already stored
                held[(folder, validity)] = held.get((folder, validity), 0) + 1
    for (folder, validity), uid in highest.items():
        state = _state(session, account, folder)
        if state is not None and state.uidvalidity == validity and uid > state.last_uid:
            state.last_uid = uid
            state.held += held.get((folder, validity), 0)
            state.updated_at = utcnow()


def _state(session: Session, account: ImapAccount, folder: str) -> ImapFolderState | None:
    return session.scalars(
        select(ImapFolderState).where(
            ImapFolderState.account == account.key, ImapFolderState.folder == folder
        )
    ).one_or_none()


def _start_folder(store: Store, account: ImapAccount, folder: str, validity: int) -> int:
    """The first UID to fetch; a new or renumbered folder starts over at 1."""
    with store.writing() as session:
        state = _state(session, account, folder)
        if state is None:
            session.add(
                ImapFolderState(
                    account=account.key,
                    folder=folder,
                    uidvalidity=validity,
                    last_uid=0,
                    held=0,
                    updated_at=utcnow(),
                )
            )
            return 1
        if state.uidvalidity != validity or (state.server_count is None and state.last_uid):
            # Renumbered; or imported before the store counted what it holds from each
            # folder (migration 0016): read it once more, what is stored counts again.
            state.uidvalidity, state.last_uid, state.updated_at = validity, 0, utcnow()
            state.held = 0
            return 1
        return state.last_uid + 1


def _messages(
    store: Store,
    conn: imaplib.IMAP4,
    account: ImapAccount,
    folders: list[str],
    since: dt.date | None,
    counts: dict[str, tuple[int, dt.datetime]],
) -> Iterator[RawMessage]:
    for folder in folders:
        # The server's count, just before the folder is read: the reconciliation's figure.
        status, data = conn.status(encode_folder(folder), "(MESSAGES)")
        found = _MESSAGES.search(b" ".join(d for d in data if isinstance(d, bytes)))
        if status == "OK" and found is not None:
            counts[folder] = (int(found.group(1)), utcnow())
        status, data = conn.select(encode_folder(folder), readonly=True)  # EXAMINE
        if status != "OK":
            raise InvalidInput(f"no folder {folder!r} on {account.host}: {_text(Exception(data))}")
        validity = _uidvalidity(conn)
        first = _start_folder(store, account, folder, validity)
        criteria = [f"UID {first}:*"]
        if since is not None:
            criteria.append(f"SINCE {since.day}-{_MONTHS[since.month - 1]}-{since.year}")
        status, data = conn.uid("SEARCH", *criteria)
        if status != "OK":
            raise EvidenceError(f"IMAP search failed in {folder!r}: {data!r}")
        # "UID n:*" always matches the highest UID, even when it is below n.
        uids = sorted(u for u in (int(x) for x in (data[0] or b"").split()) if u >= first)
        source = f"imap://{account.key}/{folder}"
        for start in range(0, len(uids), FETCH_BATCH):
            batch = uids[start : start + FETCH_BATCH]
            status, response = conn.uid("FETCH", ",".join(map(str, batch)), "(UID BODY.PEEK[])")
            if status != "OK":
                raise EvidenceError(f"IMAP fetch failed in {folder!r}: {response!r}")
            for entry in response:
                if not isinstance(entry, tuple):
                    continue
                match = _UID.search(entry[0])
                if match is None:
                    continue
                uid = int(match.group(1))
                raw = bytes(entry[1])
                yield RawMessage(
                    source, f"UID {uid}", raw, None, len(raw), checkpoint=(folder, validity, uid)
                )


def _uidvalidity(conn: imaplib.IMAP4) -> int:
    _name, values = conn.response("UIDVALIDITY")
    for value in reversed(values or []):
        if value:
            return int(value)
    raise EvidenceError("the IMAP server did not say the folder's UIDVALIDITY")
