"""``evidence sync``: bring the store up to date from every configured source.

Meant to run unattended from cron or a systemd timer. Configured in
``evidence.toml``::

    [sync]
    horizon_days = 60                 # planned incidents materialised this far ahead

    [[sync.mail]]
    paths = ["/srv/mail/export", "/srv/mail/archive.mbox"]

    [[sync.calls]]
    path = "/var/log/asterisk/cdr-csv/Master.csv"
    format = "asterisk-cdr"           # or asterisk-queue-log
    utc = false

    [[sync.recordings]]
    path = "/var/spool/asterisk/monitor"
    # pattern = '(\\d+\\.\\d+)'

    [[sync.imap]]                     # handed as is to the IMAP importer
    name = "asiakaspalvelu"
    host = "imap.example.com"
    user = "asiakaspalvelu@example.com"

    [[sync.graph]]                    # handed as is to the Graph importer
    name = "m365"
    mailbox = "asiakaspalvelu@example.com"
    tenant = "example.com"
    client_id = "5f1c..."

Relative paths are read from EVIDENCE_HOME. Every importer commits in chunks
and recognises what it already stored, so a run that is killed half-way leaves
only whole records behind, and the next run adds exactly what is missing.

One run at a time: an flock on ``EVIDENCE_HOME/sync.lock`` and, on
PostgreSQL, a session advisory lock (for runs from other machines or homes
against the same database). A second run exits at once with code 4.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import fcntl
import functools
import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from evidence.config import Config
from evidence.errors import EvidenceError, SyncAlreadyRunning
from evidence.ingest import ImportReport
from evidence.plans import DEFAULT_HORIZON_DAYS, materialise_plans
from evidence.store.db import Store, is_sqlite, safe_detail
from evidence.store.models import SyncResult, SyncRun
from evidence.timeutil import iso_utc, utcnow

LOCK_FILE = "sync.lock"
SYNC_LOCK_KEY = 0x65767379  # "evsy"; beside db.WRITER_LOCK_KEY
SOURCE_KINDS = ("mail", "calls", "recordings", "imap", "graph")
EXIT_OK, EXIT_ERROR, EXIT_QUARANTINED = 0, 1, 3


@dataclass(frozen=True)
class SyncSource:
    kind: str  # mail, calls, recordings, imap, graph
    label: str  # what the log line and `evidence status` call it
    settings: Mapping[str, Any]


@dataclass
class SourceResult:
    kind: str
    label: str
    report: ImportReport | None = None
    error: str | None = None
    seconds: float = 0.0

    def line(self) -> str:
        if self.error is not None:
            return f"{self.kind} {self.label}: FAILED: {self.error}"
        assert self.report is not None
        return f"{self.kind} {self.label}: {self.report.summary()} ({self.seconds:.1f} s)"


@dataclass
class SyncOutcome:
    run_id: int
    results: list[SourceResult] = field(default_factory=list)
    planned: int = 0  # occurrences materialised
    plans_until: dt.datetime | None = None
    exit_code: int = EXIT_OK

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "exit_code": self.exit_code,
            "sources": [
                {
                    "kind": r.kind,
                    "source": r.label,
                    "error": r.error,
                    "seconds": round(r.seconds, 3),
                    **(r.report.as_dict() if r.report else {}),
                }
                for r in self.results
            ],
            "planned_occurrences": self.planned,
            "planned_until": iso_utc(self.plans_until),
        }


# --- configuration --------------------------------------------------------------


def _section(config: Config) -> Mapping[str, Any]:
    section = config.extra.get("sync", {})
    if not isinstance(section, Mapping):
        raise EvidenceError("evidence.toml: [sync] must be a table")
    return section


def horizon_days(config: Config) -> int:
    value = _section(config).get("horizon_days", DEFAULT_HORIZON_DAYS)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 3660:
        raise EvidenceError("evidence.toml: sync.horizon_days must be a whole number of days")
    return value


def _path(config: Config, value: object, where: str) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise EvidenceError(f"evidence.toml: {where} must be a path")
    path = Path(value).expanduser()
    return path if path.is_absolute() else config.home / path


def configured_sources(config: Config) -> list[SyncSource]:
    """The sources in ``[sync]``, checked, in the order they run."""
    section = _section(config)
    unknown = set(section) - {*SOURCE_KINDS, "horizon_days"}
    if unknown:
        raise EvidenceError(
            f"evidence.toml: unknown [sync] setting {sorted(unknown)[0]!r}: "
            f"use {', '.join(SOURCE_KINDS)} or horizon_days"
        )
    sources = []
    for kind in SOURCE_KINDS:
        entries = section.get(kind, [])
        if not isinstance(entries, list) or not all(isinstance(e, Mapping) for e in entries):
            raise EvidenceError(f"evidence.toml: write each source as [[sync.{kind}]]")
        for number, entry in enumerate(entries, start=1):
            where = f"sync.{kind} #{number}"
            if kind == "mail":
                raw = entry.get("paths", [entry["path"]] if "path" in entry else [])
                if not isinstance(raw, list) or not raw:
                    raise EvidenceError(f"evidence.toml: {where} needs path or paths")
                paths = [_path(config, p, f"{where} paths") for p in raw]
                sources.append(SyncSource(kind, ", ".join(map(str, paths)), {"paths": paths}))
            elif kind == "calls":
                from evidence.ingest.phonelog import FORMATS

                path = _path(config, entry.get("path"), f"{where} path")
                fmt = entry.get("format")
                if fmt not in FORMATS:
                    raise EvidenceError(
                        f"evidence.toml: {where} format must be one of {', '.join(FORMATS)}"
                    )
                settings = {"path": path, "format": fmt, "utc": bool(entry.get("utc", False))}
                sources.append(SyncSource(kind, str(path), settings))
            elif kind == "recordings":
                path = _path(config, entry.get("path"), f"{where} path")
                pattern = entry.get("pattern")
                sources.append(SyncSource(kind, str(path), {"path": path, "pattern": pattern}))
            else:
                label = str(
                    entry.get("name") or entry.get("host") or entry.get("mailbox") or f"#{number}"
                )
                sources.append(SyncSource(kind, label, dict(entry)))
    return sources


# --- running --------------------------------------------------------------------


def import_imap_account(store: Store, account: Mapping[str, Any]) -> ImportReport:
    """Run the IMAP importer (as `evidence import imap`) for one ``[[sync.imap]]`` entry.

    Keys: ``host``, ``user`` (required; ``host`` may be left out with a
    ``provider``), ``port``, ``security`` (ssl, starttls or plain; plain only to
    this machine), ``folders`` (default INBOX), ``since`` (YYYY-MM-DD or D.M.YYYY),
    ``cafile``. The password comes from EVIDENCE_IMAP_PASSWORD or ~/.netrc, never
    from the file. With ``auth = "oauth2"``: ``provider``, ``tenant``,
    ``client_id``, ``client_certificate``, ``service_account``, ``token_url``,
    ``scope``, as the options of the same names; a client secret comes from
    EVIDENCE_OAUTH_CLIENT_SECRET, never from the file.
    """
    from evidence.ingest.imap import imap_login, import_imap
    from evidence.ingest.oauth import OAuthOptions
    from evidence.timeutil import parse_user_date

    host, user = account.get("host"), account.get("user")
    auth = account.get("auth", "password")
    if auth not in ("password", "oauth2"):
        raise EvidenceError('evidence.toml: [[sync.imap]] auth must be "password" or "oauth2"')
    oauth = OAuthOptions.from_settings(account, "[[sync.imap]]") if auth == "oauth2" else None
    if (host is not None and not isinstance(host, str)) or not isinstance(user, str):
        raise EvidenceError("evidence.toml: [[sync.imap]] needs host and user")
    if host is None and (oauth is None or oauth.provider is None):
        raise EvidenceError("evidence.toml: [[sync.imap]] needs host and user")
    port = account.get("port")
    cafile = account.get("cafile")
    imap, credential = imap_login(
        host=host,
        user=user,
        port=int(port) if port is not None else None,
        security=str(account["security"]) if account.get("security") else None,
        cafile=Path(str(cafile)).expanduser() if cafile else None,
        oauth=oauth,
    )
    folders = account.get("folders") or ["INBOX"]
    if isinstance(folders, str):
        folders = [folders]
    since = account.get("since")
    return import_imap(
        store,
        imap,
        credential,
        [str(f) for f in folders],
        since=parse_user_date(str(since)) if since else None,
    )


def import_graph_mailbox(store: Store, entry: Mapping[str, Any]) -> ImportReport:
    """Run the Graph importer (as `evidence import graph`) for one ``[[sync.graph]]`` entry.

    Keys: ``mailbox`` (required), ``folders`` (default inbox), ``since``,
    ``graph_url``, and ``tenant``, ``client_id``, ``client_certificate``,
    ``token_url``, ``scope`` as the options of the same names. The client secret
    comes from EVIDENCE_OAUTH_CLIENT_SECRET, never from the file.
    """
    from evidence.ingest.graph import GRAPH_URL, graph_tokens, import_graph
    from evidence.ingest.oauth import OAuthOptions
    from evidence.timeutil import parse_user_date

    mailbox = entry.get("mailbox")
    if not isinstance(mailbox, str) or not mailbox:
        raise EvidenceError("evidence.toml: [[sync.graph]] needs mailbox")
    options = OAuthOptions.from_settings(entry, "[[sync.graph]]")
    options = dataclasses.replace(options, provider="microsoft")
    folders = entry.get("folders") or ["inbox"]
    if isinstance(folders, str):
        folders = [folders]
    since = entry.get("since")
    return import_graph(
        store,
        mailbox,
        [str(f) for f in folders],
        graph_tokens(options),
        graph_url=str(entry.get("graph_url") or GRAPH_URL),
        since=parse_user_date(str(since)) if since else None,
    )


def run_source(store: Store, source: SyncSource) -> ImportReport:
    settings = source.settings
    if source.kind == "mail":
        from evidence.ingest.mail import import_mail

        paths: list[Path] = settings["paths"]
        for path in paths:
            if not path.exists():
                raise EvidenceError(f"{path} does not exist")
        return import_mail(store, paths)
    if source.kind == "calls":
        from evidence.ingest.asterisk import import_calls

        path = settings["path"]
        if not path.is_file():
            raise EvidenceError(f"{path} is not a file")
        return import_calls(store, path, settings["format"], utc=settings["utc"])
    if source.kind == "recordings":
        from evidence.ingest.recordings import import_recordings

        return import_recordings(store, settings["path"], settings["pattern"])
    if source.kind == "graph":
        return import_graph_mailbox(store, settings)
    return import_imap_account(store, settings)


def run_sync(
    store: Store,
    *,
    log: Callable[[str], None] = lambda line: None,
    now: dt.datetime | None = None,
) -> SyncOutcome:
    """Run every configured source, then materialise planned incidents; one log line each.

    Raises ``SyncAlreadyRunning`` (exit code 4) when another run holds the lock.
    A failing source is logged and recorded, and the others still run.
    """
    config = store.config
    sources = configured_sources(config)
    horizon = horizon_days(config)
    with sync_lock(store):
        with store.writing() as session:
            run = SyncRun(started_at=utcnow(), host=socket.gethostname()[:255], pid=os.getpid())
            session.add(run)
            session.flush()
        outcome = SyncOutcome(run.id)
        if not sources:
            log("no sources configured: add [[sync.mail]], [[sync.calls]] ... to evidence.toml")
        for source in sources:
            work = functools.partial(run_source, store, source)
            result = _run_one(store, run.id, source.kind, source.label, work)
            outcome.results.append(result)
            log(result.line())
        until = (now or utcnow()) + dt.timedelta(days=horizon)
        outcome.plans_until = until

        def plans() -> ImportReport:
            outcome.planned = materialise_plans(store, until)
            return ImportReport(imported=outcome.planned)

        result = _run_one(store, run.id, "plans", f"up to {iso_utc(until)}", plans)
        outcome.results.append(result)
        log(
            f"plans: FAILED: {result.error}"
            if result.error
            else f"plans: {outcome.planned} occurrences materialised up to {iso_utc(until)}"
        )
        if any(r.error for r in outcome.results):
            outcome.exit_code = EXIT_ERROR
        elif any(r.report and r.report.quarantined for r in outcome.results):
            outcome.exit_code = EXIT_QUARANTINED
        with store.writing() as session:
            finished = session.get(SyncRun, run.id)
            assert finished is not None
            finished.finished_at = utcnow()
            finished.exit_code = outcome.exit_code
    return outcome


def _run_one(
    store: Store, run_id: int, kind: str, label: str, work: Callable[[], ImportReport]
) -> SourceResult:
    with store.writing() as session:
        row = SyncResult(sync_run_id=run_id, kind=kind, source=label, started_at=utcnow())
        session.add(row)
        session.flush()
        row_id = row.id
    result = SourceResult(kind, label)
    began = time.monotonic()
    try:
        result.report = work()
    except (EvidenceError, OSError, SQLAlchemyError) as exc:
        result.error = _one_line(exc)
    result.seconds = time.monotonic() - began
    with store.writing() as session:
        done = session.get(SyncResult, row_id)
        assert done is not None
        done.finished_at = utcnow()
        done.error = result.error
        if result.report is not None:
            done.imported = result.report.imported
            done.duplicates = result.report.duplicates
            done.quarantined = result.report.quarantined
    return result


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    if isinstance(exc, SQLAlchemyError):
        return safe_detail(exc)  # never the statement's parameters or a stored value
    text_ = str(exc).strip()
    return text_.splitlines()[0] if text_ else type(exc).__name__


# --- the lock -------------------------------------------------------------------


@contextmanager
def sync_lock(store: Store) -> Iterator[None]:
    """Hold the sync lock for the block, or raise ``SyncAlreadyRunning`` at once.

    The kernel drops the flock, and PostgreSQL the advisory lock, when the
    process dies, so a run killed with SIGKILL never leaves a stale lock.
    """
    home = store.config.home
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = home / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 300, 0).decode("utf-8", "replace").strip()
            raise SyncAlreadyRunning(
                f"another `evidence sync` is running ({holder or 'it holds ' + str(path)}); "
                "this run did nothing and the next scheduled run picks up where it ends"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(
            fd,
            f"pid {os.getpid()} on {socket.gethostname()} since {iso_utc(utcnow())}\n".encode(),
            0,
        )
        with _database_lock(store):
            yield
    finally:
        os.close(fd)  # releases the flock


@contextmanager
def _database_lock(store: Store) -> Iterator[None]:
    if is_sqlite(store.engine):
        yield  # the flock in EVIDENCE_HOME, beside the database file, is the lock
        return
    conn = store.engine.connect()
    held = False
    try:
        held = bool(
            conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": SYNC_LOCK_KEY}).scalar()
        )
        conn.commit()
        if not held:
            raise SyncAlreadyRunning(
                "another `evidence sync` is running against this database (from another "
                "machine or EVIDENCE_HOME); this run did nothing"
            )
        yield
    finally:
        if held:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": SYNC_LOCK_KEY})
            conn.commit()
        conn.close()


def run_state(run: SyncRun) -> str:
    """finished, running (its process is alive on this host), or interrupted."""
    if run.finished_at is not None:
        return "finished"
    if run.host == socket.gethostname()[:255]:
        try:
            os.kill(run.pid, 0)
        except ProcessLookupError:
            return "interrupted"
        except PermissionError:
            return "running"
        return "running"
    return "running or interrupted (on another host)"
