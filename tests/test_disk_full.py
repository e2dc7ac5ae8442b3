"""A full disk under EVIDENCE_HOME (SQLite): one clear error, exit 7, nothing corrupted.

EVIDENCE_HOME is a small tmpfs mounted for the test (we run as root in CI);
the import of a mailbox larger than the space left fails when the disk fills,
the store still verifies and holds only whole chunks, and once there is room
again the same import completes, every message exactly once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from evidence.store.models import Email, EmailAttachment, LedgerEntry
from tests import bulk
from tests.bulk import spawn
from tests.conftest import Env

SIZE_MB = 8


@pytest.fixture
def small_disk() -> Iterator[Path]:
    where = Path(tempfile.mkdtemp(prefix="evidence-full-"))
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE_MB}m,mode=0700", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        where.rmdir()
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()}): needs root")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)
        where.rmdir()


def _grow(where: Path, size_mb: int) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size_mb}m", str(where)], check=True)


def test_import_onto_a_full_disk(small_disk: Path, sqlite_template: Path, tmp_path: Path) -> None:
    home = small_disk / "home"
    home.mkdir(mode=0o700)
    shutil.copy2(sqlite_template, home / "evidence.db")
    env = Env("sqlite", home, f"sqlite:///{home / 'evidence.db'}")
    messages = bulk.mail_messages(6000, seed=41)  # ~14 MB of mail for 8 MB of disk
    mbox = bulk.write_mbox(tmp_path / "big.mbox", messages)
    assert mbox.stat().st_size > 2 * SIZE_MB * 1024 * 1024
    expected = bulk.Expected()
    bulk.expect_mail(messages, expected)

    proc = spawn(env, ["import", "mail", str(mbox)])
    code, err = bulk.finish(proc)
    assert code == 7, err
    assert err.startswith("evidence: the disk holding the store is full"), err
    assert err.endswith("run the command again when this is fixed\n") and err.count("\n") == 1

    engine = create_engine(env.database_url)
    try:
        stored = bulk.count(engine, Email)
        assert 0 < stored < len(messages)
        assert stored % 500 == 0  # whole chunks only
        assert bulk.count(engine, LedgerEntry) == stored
        assert bulk.count(engine, EmailAttachment) > 0
        bulk.check_blobs(engine)
    finally:
        engine.dispose()
    bulk.check_verifies(env.vars)
    assert not [p for p in home.iterdir() if p.name.endswith(".part")]

    _grow(small_disk, 64)
    code, err = bulk.finish(spawn(env, ["import", "mail", str(mbox)]))
    assert code == 0, err
    bulk.check_complete(env.database_url, env.vars, expected)
    assert os.statvfs(small_disk).f_blocks > 0
