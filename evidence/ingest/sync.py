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

    [[sync.imap]]                     # handed to the IMAP importer
    name = "asiakaspalvelu"
    host = "imap.example.com"
    user = "asiakaspalvelu@example.com"

    [[sync.graph]]                    # handed to the Graph importer
    name = "m365"
    mailbox = "asiakaspalvelu@example.com"
    tenant = "example.com"
    client_id = "5f1c..."

Relative paths are read from EVIDENCE_HOME. The settings are read and checked
by ``evidence.config`` (``Config.sync``); an unknown key is refused there.
Every importer commits in chunks and recognises what it already stored, so a
run that is killed half-way leaves only whole records behind, and the next run
adds exactly what is missing.

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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from evidence.config import (
    CallsSource,
    Config,
    GraphSource,
    ImapSource,
    MailSource,
    RecordingsSource,
)
from evidence.errors import EvidenceError, InputQuarantined, SourcesFailed, SyncAlreadyRunning
from evidence.ingest import ImportReport
from evidence.records.plans import materialise_plans
from evidence.store.db import Store, is_sqlite, safe_detail
from evidence.store.models import SyncResult, SyncRun
from evidence.timeutil import iso_utc, utcnow

LOCK_FILE = "sync.lock"
SYNC_LOCK_KEY = 0x65767379  # "evsy"; beside db.WRITER_LOCK_KEY


@dataclass(frozen=True)
class SyncSource:
    kind: str  # mail, calls, recordings, imap, graph
    label: str  # what the log line and `evidence status` call it
    settings: MailSource | CallsSource | RecordingsSource | ImapSource | GraphSource


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
    # A source failed, else some input was quarantined; its class carries the exit code.
    failure: type[SourcesFailed | InputQuarantined] | None = None

    @property
    def exit_code(self) -> int:
        return self.failure.exit_code if self.failure else 0

    def raise_for_exit(self) -> None:
        """Once the run is reported: a failed source or quarantined input as its error."""
        if self.failure is not None:
            raise self.failure

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


def horizon_days(config: Config) -> int:
    return config.sync.horizon_days


def configured_sources(config: Config) -> list[SyncSource]:
    """The sources in ``[sync]`` (checked when the settings were read), in the order they run."""
    sync = config.sync
    sources = [SyncSource("mail", ", ".join(map(str, s.paths)), s) for s in sync.mail]
    sources += [SyncSource("calls", str(s.path), s) for s in sync.calls]
    sources += [SyncSource("recordings", str(s.path), s) for s in sync.recordings]
    sources += [SyncSource("imap", s.name or s.host or f"#{s.number}", s) for s in sync.imap]
    sources += [SyncSource("graph", s.name or s.mailbox or f"#{s.number}", s) for s in sync.graph]
    return sources


# --- running --------------------------------------------------------------------


def import_imap_account(store: Store, account: ImapSource) -> ImportReport:
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

    assert account.user is not None  # checked when the settings were read
    oauth = OAuthOptions.from_settings(account.oauth) if account.auth == "oauth2" else None
    imap, credential = imap_login(
        host=account.host,
        user=account.user,
        port=account.port,
        security=account.security,
        cafile=account.cafile,
        oauth=oauth,
    )
    return import_imap(
        store,
        imap,
        credential,
        list(account.folders),
        since=parse_user_date(account.since) if account.since else None,
    )


def import_graph_mailbox(store: Store, entry: GraphSource) -> ImportReport:
    """Run the Graph importer (as `evidence import graph`) for one ``[[sync.graph]]`` entry.

    Keys: ``mailbox`` (required), ``folders`` (default inbox), ``since``,
    ``graph_url``, and ``tenant``, ``client_id``, ``client_certificate``,
    ``token_url``, ``scope`` as the options of the same names. The client secret
    comes from EVIDENCE_OAUTH_CLIENT_SECRET, never from the file.
    """
    from evidence.ingest.graph import GRAPH_URL, graph_tokens, import_graph
    from evidence.ingest.oauth import OAuthOptions
    from evidence.timeutil import parse_user_date

    assert entry.mailbox is not None  # checked when the settings were read
    options = dataclasses.replace(OAuthOptions.from_settings(entry.oauth), provider="microsoft")
    return import_graph(
        store,
        entry.mailbox,
        list(entry.folders),
        graph_tokens(options),
        graph_url=entry.graph_url or GRAPH_URL,
        since=parse_user_date(entry.since) if entry.since else None,
    )


def run_source(store: Store, source: SyncSource) -> ImportReport:
    settings = source.settings
    if isinstance(settings, MailSource):
        from evidence.ingest.mail import import_mail

        paths = list(settings.paths)
        for path in paths:
            if not path.exists():
                raise EvidenceError(f"{path} does not exist")
        return import_mail(store, paths)
    if isinstance(settings, CallsSource):
        from evidence.ingest.asterisk import import_calls

        if not settings.path.is_file():
            raise EvidenceError(f"{settings.path} is not a file")
        return import_calls(store, settings.path, settings.format, utc=settings.utc)
    if isinstance(settings, RecordingsSource):
        from evidence.ingest.recordings import import_recordings

        return import_recordings(store, settings.path, settings.pattern)
    if isinstance(settings, GraphSource):
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
            outcome.failure = SourcesFailed
        elif any(r.report and r.report.quarantined for r in outcome.results):
            outcome.failure = InputQuarantined
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
