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
    except OperationalError as exc:
        engine.dispose()
        raise EvidenceError(f"cannot reach the database: {_short(exc)}") from exc
    if revision is None:
        engine.dispose()
        raise StoreNotInitialised(make_url(config.database_url).render_as_string())
    if revision != head_revision():
        engine.dispose()
        raise StoreOutdated()
    return Store(config, engine)


def _short(exc: Exception) -> str:
    return str(getattr(exc, "orig", exc)).strip().splitlines()[0]


_AFTER_FAILURE = (
    "everything stored before it is whole and nothing is half-written: "
    "run the command again when this is fixed"
)


def write_failure(exc: BaseException) -> StoreWriteFailed:
    """Word a database (or disk) failure in the middle of a run for the person who runs it."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        where = f" ({exc.filename})" if exc.filename else ""
        return StoreWriteFailed(f"the disk is full{where}: {_AFTER_FAILURE}")
    detail = _short(exc) if isinstance(exc, Exception) else str(exc)
    lowered = detail.lower()
    if "disk is full" in lowered or "no space left" in lowered or "disk full" in lowered:
        cause = f"the disk holding the store is full ({detail})"
    elif (isinstance(exc, DBAPIError) and exc.connection_invalidated) or any(
        words in lowered
        for words in (
            "terminating connection",
            "server closed the connection",
            "connection refused",
            "connection is closed",
            "consuming input failed",
            "the database system is shutting down",
            "the database system is starting up",
        )
    ):
        cause = f"the connection to the database was lost ({detail})"
    else:
        cause = f"the database failed ({detail})"
    return StoreWriteFailed(f"{cause}: {_AFTER_FAILURE}")
