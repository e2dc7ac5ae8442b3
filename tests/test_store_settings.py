"""The database settings evidence relies on, read back; and files that are the owner's alone."""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError

from evidence.config import load_config
from evidence.files import private_dir, write_atomic
from evidence.store.db import Store, open_store, write_failure
from evidence.store.models import QuarantineItem
from evidence.timeutil import utcnow
from tests import bulk


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def sqlite_store(sqlite_template: Path, tmp_path: Path) -> Iterator[Store]:
    """SQLite only: these settings do not exist on PostgreSQL."""
    home = private_dir(tmp_path / "home")
    shutil.copy2(sqlite_template, home / "evidence.db")
    opened = open_store(load_config({"EVIDENCE_HOME": str(home)}))
    yield opened
    opened.close()


def test_sqlite_pragmas_read_back(sqlite_store: Store) -> None:
    with sqlite_store.session() as session:
        pragma = {
            name: session.execute(text(f"PRAGMA {name}")).scalar()
            for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout", "page_size")
        }
    assert pragma == {
        "page_size": 16384,  # set when the file was made (a fifth faster mail import)
        "journal_mode": "wal",
        "synchronous": 2,  # FULL: a committed transaction survives a power cut
        "foreign_keys": 1,
        "busy_timeout": 30000,
    }


def test_sqlite_transactions_take_the_write_lock_at_begin(sqlite_store: Store) -> None:
    """BEGIN IMMEDIATE: a second writer waits from the start instead of failing half-way."""
    other = sqlite3.connect(sqlite_store.config.home / "evidence.db", timeout=0)
    other.isolation_level = None
    try:
        with sqlite_store.session() as session:
            session.execute(text("SELECT 1")).scalar()  # only a read, yet the lock is held
            with pytest.raises(sqlite3.OperationalError, match="database is locked"):
                other.execute("BEGIN IMMEDIATE")
        other.execute("BEGIN IMMEDIATE")  # free again once the session ended
        other.execute("ROLLBACK")
    finally:
        other.close()


def test_foreign_keys_are_enforced(store: Store) -> None:
    with store.session() as session, session.begin():
        session.add(
            QuarantineItem(
                kind="mail",
                source="x",
                reason="test",
                raw_sha256="0" * 64,  # no such blob
                quarantined_at=utcnow(),
            )
        )
        with pytest.raises(IntegrityError):
            session.flush()
        session.rollback()


def test_a_new_store_is_the_owners_alone(tmp_path: Path) -> None:
    """EVIDENCE_HOME, the database and its WAL files, the key, the settings: 0700 / 0600."""
    home = tmp_path / "a" / "evidence"  # neither folder exists yet
    env = {**os.environ, "EVIDENCE_HOME": str(home), "EVIDENCE_TIMEZONE": "Europe/Helsinki"}
    env.pop("EVIDENCE_DATABASE_URL", None)

    def run(*args: str) -> None:
        proc = subprocess.run(
            [sys.executable, "-m", "evidence", *args],
            env=env,
            capture_output=True,
            text=True,
            preexec_fn=lambda: os.umask(0o022),  # a usual login: 0644 unless we say otherwise
        )
        assert proc.returncode == 0, proc.stderr

    run("init", "--company", "Aurora Energia Oy", "--mail-domain", "aurora-energia.example")
    mbox = bulk.write_mbox(tmp_path / "in.mbox", bulk.mail_messages(3, seed=1))
    run("import", "mail", str(mbox))
    assert _mode(home) == 0o700
    assert _mode(home.parent) == 0o700  # created by us too
    # SQLite removes the WAL files when the last connection closes: look while one is open.
    reader = sqlite3.connect(home / "evidence.db")
    try:
        assert reader.execute("SELECT count(*) FROM emails").fetchone() == (3,)
        files = {p.name: _mode(p) for p in home.iterdir()}
    finally:
        reader.close()
    assert files == {
        "evidence.db": 0o600,
        "evidence.db-wal": 0o600,
        "evidence.db-shm": 0o600,
        "evidence.toml": 0o600,
        "checkpoint-key.pem": 0o600,
        "checkpoint-key.pub.pem": 0o644,  # the public half is meant to be handed out
        "desk-secret.key": 0o600,  # signs the desk's sessions
    }


def test_render_cache_is_private_and_written_whole(tmp_path: Path) -> None:
    from evidence.render.pool import ChunkRenderer, Job

    cache = tmp_path / "home" / "cache" / "render"
    renderer = ChunkRenderer(cache, jobs=1)
    with renderer:
        [path] = renderer.render([Job("<p>Hei</p>")])
        assert isinstance(path, Path) and path.parent == cache
        pdf = path.read_bytes()
        assert pdf.startswith(b"%PDF")
    assert _mode(tmp_path / "home") == 0o700
    assert _mode(tmp_path / "home" / "cache") == 0o700
    assert _mode(cache) == 0o700
    [cached] = list(cache.iterdir())  # no temporary file or scratch folder left beside it
    assert cached == path and _mode(cached) == 0o600
    with ChunkRenderer(cache, jobs=1) as again:
        assert again.render([Job("<p>Hei</p>")]) == [path] and again.cached == 1
    assert path.read_bytes() == pdf


def test_write_atomic_replaces_whole_or_not_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = write_atomic(private_dir(tmp_path / "x" / "y") / "f.bin", b"old")
    assert target.read_bytes() == b"old" and _mode(target) == 0o600
    write_atomic(target, b"new" * 1000)
    assert target.read_bytes() == b"new" * 1000

    def failing_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="No space left"):
        write_atomic(target, b"partial")
    assert target.read_bytes() == b"new" * 1000
    assert [p.name for p in target.parent.iterdir()] == ["f.bin"]  # the temporary is gone


@pytest.mark.parametrize(
    ("exc", "start"),
    [
        (
            OperationalError("INSERT", {}, sqlite3.OperationalError("database or disk is full")),
            "the disk holding the store is full (database or disk is full)",
        ),
        (
            OperationalError(
                "SELECT", {}, Exception("terminating connection due to administrator command")
            ),
            "the connection to the database was lost (terminating connection due to",
        ),
        (OSError(errno.ENOSPC, "No space left on device", "/x/y"), "the disk is full (/x/y)"),
        (OperationalError("SELECT", {}, Exception("deadlock")), "the database failed (deadlock)"),
    ],
)
def test_database_failures_are_worded(exc: BaseException, start: str) -> None:
    failure = write_failure(exc)
    assert failure.exit_code == 7
    assert str(failure).startswith(start)
    assert str(failure).endswith(
        ": everything stored before it is whole and nothing is half-written: "
        "run the command again when this is fixed"
    )


def test_render_scratch_is_removed_and_stale_scratch_cleaned(tmp_path: Path) -> None:
    """An export's scratch folder goes when it ends; one left by a killed export goes
    after a day (a running export's is left alone)."""
    import os
    import time

    from evidence.render.pool import ChunkRenderer, Job

    cache = tmp_path / "cache" / "render"
    cache.mkdir(parents=True)
    stale, fresh = cache / ".scratch-killed", cache / ".scratch-running"
    for folder in (stale, fresh):
        folder.mkdir()
        (folder / "000001.pdf").write_bytes(b"%PDF-")
    two_days_ago = time.time() - 2 * 86400
    os.utime(stale, (two_days_ago, two_days_ago))
    with ChunkRenderer(None, jobs=1, scratch_root=cache) as renderer:
        [path] = renderer.render([Job("<p>Hei</p>")])
        assert not stale.exists() and fresh.exists()
        assert isinstance(path, Path) and path.read_bytes().startswith(b"%PDF")
        assert path.parent.parent == cache and path.parent.name.startswith(".scratch-")
    assert not path.parent.exists()
    assert sorted(p.name for p in cache.iterdir()) == [".scratch-running"]
