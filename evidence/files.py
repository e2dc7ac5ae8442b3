"""Files that evidence writes itself: owner-only, and never seen half-written.

Evidence is personal data, so what the program creates under ``EVIDENCE_HOME``
is the owner's alone from its first byte (directories 0700, files 0600). A file
is written to a temporary name in its directory, flushed to the disk (fsync),
then renamed over the final name, and the directory entry is flushed too: after
a crash or a full disk the final name holds the old content or the new, never a
part of it.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import BinaryIO


def private_dir(path: Path) -> Path:
    """Create ``path`` and every missing parent as 0700 (``mkdir(parents=True)`` would not)."""
    missing = []
    here = path
    while not here.exists():
        missing.append(here)
        here = here.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it first
            folder.mkdir(mode=0o700)
    return path


def write_synced(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` (created with ``mode``) and flush it to the disk."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def create_private(path: Path) -> BinaryIO:
    """``path`` created (or truncated) for writing, owner-only whatever the umask: for
    files that hold evidence, such as a dossier being written."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb")


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> Path:
    """Replace ``path`` with ``data`` in one step: temporary name, fsync, rename, fsync dir."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        write_synced(tmp, data, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)
    return path


def replace_synced(source: Path, path: Path) -> Path:
    """Flush ``source`` (written by someone else, e.g. a PDF library) to the disk and rename
    it over ``path``, as :func:`write_atomic` does with bytes."""
    fd = os.open(source, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(source, path)
    _fsync_dir(path.parent)
    return path


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # a directory that cannot be opened (e.g. on some platforms): nothing to flush
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a directory; the rename is still atomic
    finally:
        os.close(fd)
