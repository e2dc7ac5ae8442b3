"""Engines, sessions and schema set-up for SQLite (embedded) and PostgreSQL (team server)."""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from evidence.config import Config
from evidence.errors import (
    EvidenceError,
    StoreDamaged,
    StoreNotInitialised,
    StoreOutdated,
    StoreWriteFailed,
)
from evidence.files import private_dir
from evidence.resources import migrations_dir

# A new SQLite store's page size. Evidence is mostly blobs (messages, attachments,
# recordings) of a few KB and more: in 16 KiB pages they take fewer pages, WAL
# frames, checkpoint copies and system calls than in SQLite's default 4 KiB, and a
# first mail import runs about a fifth faster (README, "Mail import"). Stores made
# before keep the page size they were made with.
SQLITE_PAGE_SIZE = 16384

# One advisory lock serialises writers on PostgreSQL, so the hash chain never forks.
WRITER_LOCK_KEY = 0x65766964  # "evid"


def make_engine(url: str, *, reading: bool = False) -> Engine:
    """An engine with the settings evidence needs on each database. ``reading``: for
    readers only (the web desk's pages): on SQLite its transactions begin deferred, so they
    read a snapshot beside a writer (WAL) instead of waiting for the writer lock."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": 30})
        _configure_sqlite(engine, "BEGIN" if reading else "BEGIN IMMEDIATE")
        return engine
    return create_engine(url, pool_pre_ping=True)


def _configure_sqlite(engine: Engine, begin: str = "BEGIN IMMEDIATE") -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself (below) instead of pysqlite's deferred BEGIN.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Writers take the lock up front: no deadlock between two importers that
        # both read, then both try to write. (A reading engine's begin is deferred.)
        conn.exec_driver_sql(begin)


def is_sqlite(engine_or_session: Engine | Session) -> bool:
    bind = (
        engine_or_session.get_bind()
        if isinstance(engine_or_session, Session)
        else engine_or_session
    )
    return bind.dialect.name == "sqlite"


def take_writer_lock(session: Session) -> None:
    """Serialise writers for the rest of this transaction (SQLite already is)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": WRITER_LOCK_KEY})


def sqlite_path(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return Path(parsed.database or "")
    return None


def alembic_config(url: str) -> Any:
    from alembic.config import Config as AlembicConfig

    # No alembic.ini: the wheel carries the migrations, not the repository's ini file.
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def upgrade(config: Config) -> None:
    """Create or upgrade the schema to head (idempotent). Migrations are the only way."""
    from alembic import command

    private_dir(config.home)
    db_file = sqlite_path(config.database_url)
    if db_file is not None:
        private_dir(db_file.parent)
        if not db_file.exists():
            # Evidence is personal data: the file is the owner's alone from its first byte.
            fd = os.open(db_file, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
            _create_sqlite(db_file)
    engine = make_engine(config.database_url)
    try:
        with engine.begin() as conn:
            cfg = alembic_config(config.database_url)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    except OperationalError as exc:
        raise EvidenceError(f"cannot reach the database: {_short(exc)}") from exc
    finally:
        engine.dispose()


def _create_sqlite(db_file: Path) -> None:
    """Give a new, empty SQLite file its page size and journal mode, which its first
    write fixes for good (a WAL database cannot change its page size later)."""
    conn = sqlite3.connect(db_file)
    try:
        conn.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")
        conn.execute("PRAGMA journal_mode=WAL")
    finally:
        conn.close()


def current_revision(engine: Engine) -> str | None:
    if "alembic_version" not in inspect(engine).get_table_names():
        return None
    with engine.connect() as conn:
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


class Store:
    """An opened store: the engine plus a session factory."""

    def __init__(self, config: Config, engine: Engine) -> None:
        self.config = config
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        # Per-transaction caches (chain head, known blobs) die with the transaction.
        event.listen(self._sessions, "after_commit", _forget_caches)
        event.listen(self._sessions, "after_rollback", _forget_caches)

    def session(self) -> Session:
        return self._sessions()

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """A write transaction holding the writer lock; commits on success."""
        with self._sessions() as session, session.begin():
            take_writer_lock(session)
            yield session

    def close(self) -> None:
        self.engine.dispose()


def _forget_caches(session: Session) -> None:
    session.info.pop("ledger_head", None)
    session.info.pop("known_blobs", None)


def open_store(config: Config, *, reading: bool = False) -> Store:
    """Open an existing store; refuse (saying what to do) when missing or outdated.
    ``reading``: a store for reading only (see :func:`make_engine`); never write with it."""
    db_file = sqlite_path(config.database_url)
    if db_file is not None and not db_file.exists():
        raise StoreNotInitialised(str(db_file))
    engine = make_engine(config.database_url, reading=reading)
    try:
        revision = current_revision(engine)
    except DBAPIError as exc:
        engine.dispose()
        failure = database_failure(exc, store_place(config.database_url))
        if isinstance(failure, StoreDamaged):
            raise failure from exc
        if isinstance(exc, OperationalError):
            raise EvidenceError(f"cannot reach the database: {_short(exc)}") from exc
        raise
    if revision is None:
        engine.dispose()
        raise StoreNotInitialised(make_url(config.database_url).render_as_string())
    if revision != head_revision():
        engine.dispose()
        raise StoreOutdated()
    return Store(config, engine)


def _short(exc: Exception) -> str:
    return safe_detail(exc)


def safe_detail(exc: BaseException) -> str:
    """The database's own first line about ``exc``, with no stored content in it.

    SQLAlchemy's text of an error carries the statement and its parameters (a
    payload, a phone number); the driver's first line can quote a value too
    (SQLite's "Could not decode to UTF-8 column 'payload' with text '...'",
    PostgreSQL's 'invalid input syntax for type integer: "..."'). So: the
    driver's first line only, cut at its first quote.
    """
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    first = lines[0] if lines else ""
    if first.lower().startswith(_ABOUT_THE_CONNECTION):
        return first  # a host and port, never stored content
    for quote in ("'", '"'):
        first = first.split(quote, 1)[0]
    first = first.strip().rstrip(":").strip()
    return first or type(orig).__name__


# First lines that are about reaching the server, not about stored values.
_ABOUT_THE_CONNECTION = (
    "connection failed",
    "connection to server",
    "could not connect",
    "could not translate host",
)

_AFTER_FAILURE = (
    "everything stored before it is whole and nothing is half-written: "
    "run the command again when this is fixed"
)

# SQLite result codes (extended names, as sqlite3 reports them) by what they mean here.
_SQLITE_DAMAGE = ("SQLITE_CORRUPT", "SQLITE_NOTADB", "SQLITE_IOERR_READ", "SQLITE_IOERR_SHORT_READ")
_SQLITE_FAILING = (
    "SQLITE_FULL",
    "SQLITE_IOERR",
    "SQLITE_BUSY",
    "SQLITE_LOCKED",
    "SQLITE_CANTOPEN",
    "SQLITE_READONLY",
    "SQLITE_NOMEM",
    "SQLITE_INTERRUPT",
    "SQLITE_PROTOCOL",
    "SQLITE_NOLFS",
    "SQLITE_PERM",
)
# Damage as the drivers word it when they give no code.
_DAMAGE_WORDS = {
    "file is not a database": "the file is not a SQLite database: its header is damaged",
    "database disk image is malformed": "SQLite reports the database file malformed",
    "could not decode to utf-8": "a stored text is not valid UTF-8: its bytes were damaged",
    "invalid page in block": "PostgreSQL found an invalid page",
    "could not read block": "PostgreSQL could not read a page",
    "unexpected zero page": "PostgreSQL found a zeroed page",
    "missing chunk number": "PostgreSQL found a stored value incomplete",
    "invalid memory alloc request size": "PostgreSQL found a stored value's length damaged",
}
# PostgreSQL SQLSTATE classes of a failing server or its disk, not of the request.
_PG_FAILING_CLASSES = ("08", "40", "53", "55", "57", "58")
_CONNECTION_WORDS = (
    "terminating connection",
    "server closed the connection",
    "connection refused",
    "connection is closed",
    "consuming input failed",
    "the database system is shutting down",
    "the database system is starting up",
)


def database_failure(exc: BaseException, where: str = "") -> EvidenceError | None:
    """What a failure of the database means for the person who runs the command.

    ``StoreDamaged`` (exit 8): what is stored cannot be read back as written.
    ``StoreWriteFailed`` (exit 7): the database or its disk failed (full, gone,
    restarted, busy); run it again when that is fixed. ``None``: neither, so the
    program asked for something wrong (no such column, a constraint, a syntax
    error): a bug. Classified by meaning (result code, SQLSTATE), not by the
    exception's class: SQLite reports "no such column" as an OperationalError.
    No message carries stored content (``safe_detail``).
    """
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        place = f" ({exc.filename})" if exc.filename else ""
        return StoreWriteFailed(f"the disk is full{place}: {_AFTER_FAILURE}")
    if not isinstance(exc, DBAPIError) and not _is_driver_error(exc):
        return None  # e.g. a StatementError around a Python error: the program's own
    orig = getattr(exc, "orig", None) or exc
    detail = safe_detail(exc)
    lowered = str(orig).lower()
    code = str(getattr(orig, "sqlite_errorname", "") or "")
    sqlstate = str(getattr(orig, "sqlstate", "") or getattr(orig, "pgcode", "") or "")
    for words, meaning in _DAMAGE_WORDS.items():
        if words in lowered:
            return StoreDamaged(meaning, where or "the configured database")
    if code.startswith(_SQLITE_DAMAGE) or sqlstate in ("XX001", "XX002"):
        return StoreDamaged(f"{detail}; {code or sqlstate}", where or "the configured database")
    if "disk is full" in lowered or "no space left" in lowered or "disk full" in lowered:
        return StoreWriteFailed(f"the disk holding the store is full ({detail}): {_AFTER_FAILURE}")
    if (isinstance(exc, DBAPIError) and exc.connection_invalidated) or any(
        words in lowered for words in _CONNECTION_WORDS
    ):
        return StoreWriteFailed(
            f"the connection to the database was lost ({detail}): {_AFTER_FAILURE}"
        )
    if code.startswith(_SQLITE_FAILING) or sqlstate[:2] in _PG_FAILING_CLASSES:
        return StoreWriteFailed(f"the database failed ({detail}): {_AFTER_FAILURE}")
    if not code and not sqlstate and _is_operational(orig):
        # A driver-level failure with no code: the connection or the file, not the SQL.
        return StoreWriteFailed(f"the database failed ({detail}): {_AFTER_FAILURE}")
    return None


def _is_driver_error(exc: BaseException) -> bool:
    import psycopg  # a dependency; imported when a failure is classified, not at start-up

    return isinstance(exc, sqlite3.Error | psycopg.Error)


def _is_operational(orig: BaseException) -> bool:
    import psycopg

    return isinstance(orig, sqlite3.OperationalError | psycopg.OperationalError)


def write_failure(exc: BaseException) -> StoreWriteFailed:
    """A failure of the database or its disk, worded for the person who runs the command
    (for callers that already know it is one: an import's chunk that did not commit)."""
    failure = database_failure(exc)
    if isinstance(failure, StoreWriteFailed):
        return failure
    return StoreWriteFailed(f"the database failed ({safe_detail(exc)}): {_AFTER_FAILURE}")


def failure_cause(exc: BaseException) -> str:
    """What failed, in words: ``write_failure`` without its advice (a long-running receiver
    says what happens next itself)."""
    return str(write_failure(exc)).removesuffix(f": {_AFTER_FAILURE}")


def store_place(url: str) -> str:
    """The store's database as a person finds it: the SQLite file, or the URL without password."""
    path = sqlite_path(url)
    if path is not None:
        return str(path)
    return make_url(url).render_as_string(hide_password=True)
