"""``evidence backup DEST``: a consistent copy of a SQLite store, made while it is in use,
verified before it is kept.

The database is copied with SQLite's online backup API in one step: one read
transaction, so the copy is the store as of one commit even while an import
writes (WAL: readers do not block the writer, and it does not disturb them).
Beside it go the files directly in ``EVIDENCE_HOME`` that the store needs to go
on as it was: ``evidence.toml`` and the keys and certificates it names (above all
the checkpoint key: a store restored without it signs its next checkpoints with a
new key). Not copied: the database's own ``-wal``/``-shm`` files (the copy is
whole without them), lock files, and folders (the render cache is rebuilt).

The copy is built under a temporary name beside DEST, opened as a store of its
own and checked by the one verifier (``evidence.verify.store``), and only then
renamed to DEST. A PostgreSQL store is backed up with ``pg_dump`` (README,
"Backups and restore").
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evidence.config import Config, load_config
from evidence.errors import EvidenceError, InvalidInput, StoreDamaged, StoreNotInitialised
from evidence.files import private_dir
from evidence.store.db import open_store, sqlite_path
from evidence.store.ledger import chain_head
from evidence.verify.report import Report
from evidence.verify.store import verify_store

DATABASE_FILE = "evidence.db"
# Files in EVIDENCE_HOME that are not the store's to carry over.
_LEFT_OUT_SUFFIXES = (".lock", "-wal", "-shm", "-journal", ".part")


@dataclass
class BackupResult:
    """What ``backup_store`` made, and what the verifier found in the copy."""

    dest: Path
    files: list[str]  # names in DEST, the database first
    database_bytes: int
    head_seq: int
    head_hash: str
    report: Report
    replaced: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return self.report.intact

    def as_dict(self) -> dict[str, Any]:
        facts = self.report.facts
        return {
            "backup": str(self.dest),
            "files": self.files,
            "database_bytes": self.database_bytes,
            "replaced": self.replaced,
            "intact": self.intact,
            "tree_size": facts.get("tree_size"),
            "root": facts.get("root"),
            "head": {"seq": self.head_seq, "hash": self.head_hash},
            "last_checkpoint": facts.get("last_checkpoint"),
            "checks": self.report.checks,
            "failures": [f.as_dict() for f in self.report.failures],
            "notes": self.report.notes + self.notes,
        }


def backup_store(config: Config, dest: Path, *, force: bool = False) -> BackupResult:
    """Copy the store to the folder ``dest`` (a new one; ``force`` replaces an earlier
    backup), verify the copy, and say what it holds. The source is only read."""
    source = sqlite_path(config.database_url)
    if source is None:
        raise EvidenceError(
            "the store is on PostgreSQL: back it up with `pg_dump --format=custom` and copy "
            'EVIDENCE_HOME\'s evidence.toml and keys beside it (README, "Backups and restore")'
        )
    if not source.exists():
        raise StoreNotInitialised(str(source))
    dest = dest.expanduser().absolute()
    replaced = _check_dest(dest, config.home, source, force)
    open_store(config).close()  # refuses a missing, outdated or unreadable store first
    private_dir(dest.parent)
    work = dest.with_name(f".{dest.name}.partial-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(mode=0o700)
    try:
        _copy_database(source, work / DATABASE_FILE)
        files = [DATABASE_FILE] + _copy_home_files(config.home, source, work)
        copy = load_config({"EVIDENCE_HOME": str(work)})
        store = open_store(copy)
        try:
            report = verify_store(store)
            with store.session() as session:
                head = chain_head(session)
        except StoreDamaged as exc:  # the pages were copied as they are: the store's damage
            raise StoreDamaged(exc.what, str(source)) from exc
        finally:
            store.close()
        for leftover in (f"{DATABASE_FILE}-wal", f"{DATABASE_FILE}-shm"):
            with contextlib.suppress(FileNotFoundError):
                (work / leftover).unlink()
        report.target = str(dest / DATABASE_FILE)
        _move_into_place(work, dest)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return BackupResult(
        dest=dest,
        files=files,
        database_bytes=(dest / DATABASE_FILE).stat().st_size,
        head_seq=head.seq,
        head_hash=head.hash,
        report=report,
        replaced=replaced,
    )


def _check_dest(dest: Path, home: Path, source: Path, force: bool) -> bool:
    """Whether DEST is replaced; refuse what must not be touched."""
    home, source_dir = home.resolve(), source.parent.resolve()
    resolved = dest.resolve()
    for inside in (home, source_dir):
        if resolved == inside or inside in resolved.parents or resolved in inside.parents:
            raise InvalidInput(
                f"{dest} is the store's own folder, inside it or above it: back up to a "
                "folder elsewhere (another disk, at best)"
            )
    if not dest.exists() and not dest.is_symlink():
        return False
    if not force:
        raise InvalidInput(
            f"{dest} already exists: give a new folder, or add --force to replace that backup"
        )
    if not dest.is_dir() or not (dest / DATABASE_FILE).is_file():
        raise InvalidInput(
            f"{dest} is not a backup made by `evidence backup` (no {DATABASE_FILE} in it): "
            "--force replaces only an earlier backup; give a new folder"
        )
    return True


def _copy_database(source: Path, target: Path) -> None:
    """SQLite's online backup, all pages in one step (one read transaction: one commit's
    state), into a file that is the owner's alone from its first byte."""
    os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    src = sqlite3.connect(source, timeout=30)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)  # pages=-1: everything at once
        finally:
            dst.close()
    finally:
        src.close()
    fd = os.open(target, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy_home_files(home: Path, source: Path, work: Path) -> list[str]:
    """The regular files directly in EVIDENCE_HOME but the database's own and lock files."""
    copied = []
    for path in sorted(home.iterdir()):
        name = path.name
        if (
            not path.is_file()
            or path.resolve() == source.resolve()
            or name.startswith(f"{source.name}-")
            or name.endswith(_LEFT_OUT_SUFFIXES)
            or name.startswith(".")
        ):
            continue
        shutil.copy2(path, work / name)
        os.chmod(work / name, path.stat().st_mode & 0o777)
        copied.append(name)
    return copied


def _move_into_place(work: Path, dest: Path) -> None:
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.replaced-{os.getpid()}")
        os.replace(dest, old)
    os.replace(work, dest)
    _fsync_dir(dest.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
