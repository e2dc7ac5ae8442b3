"""``--format zip``: the dossier and its originals as files, for regulators who want them.

The ZIP holds one BagIt bag (RFC 8493, made with the ``bagit`` package) in a folder
named after the dossier::

    dossier/bagit.txt, bag-info.txt, manifest-sha256.txt, tagmanifest-sha256.txt
    dossier/data/dossier.pdf
    dossier/data/manifest.csv          exhibit, file, size, sha256
    dossier/data/originals/<file>      every original embedded in the PDF, byte for byte

It is reproducible: entries sorted, fixed timestamps and permissions, and the bag's
date taken from ``created`` (the dossier's generation time), so the same PDF and
originals give the same ZIP bytes.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import os
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from evidence import __version__
from evidence.files import create_private, replace_synced
from evidence.timeutil import utcnow

BAGIT_VERSION = "1.0"  # RFC 8493; bagit.py still writes 0.97 and is told otherwise below


class EmbeddedLike(Protocol):
    """An original as the dossier embeds it (``evidence.render.dossier.Embedded`` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def data(self) -> bytes: ...

    @property
    def mime_type(self) -> str: ...

    @property
    def sha256(self) -> str: ...

    @property
    def exhibit(self) -> str: ...


def _check_name(name: str) -> str:
    if not name or name in (".", "..") or "/" in name or "\\" in name or name.startswith("."):
        raise ValueError(f"{name!r} cannot be a file name inside originals/")
    return name


def _originals(embedded: Sequence[EmbeddedLike]) -> list[EmbeddedLike]:
    """Each original once; the same name with other bytes is a bug, never silently dropped."""
    unique: dict[str, EmbeddedLike] = {}
    for item in embedded:
        _check_name(item.name)
        if hashlib.sha256(item.data).hexdigest() != item.sha256:
            raise ValueError(f"{item.name}: its bytes do not match its SHA-256")
        known = unique.get(item.name)
        if known is not None and known.sha256 != item.sha256:
            raise ValueError(f"two different originals are both named {item.name!r}")
        unique.setdefault(item.name, item)
    return [unique[name] for name in sorted(unique)]


def manifest_csv(originals: Sequence[EmbeddedLike]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(["exhibit", "file", "size", "sha256"])
    for item in originals:
        writer.writerow([item.exhibit, f"originals/{item.name}", len(item.data), item.sha256])
    return buffer.getvalue().encode("utf-8")


def _make_bag(root: Path, created: dt.datetime) -> None:
    import bagit

    bagit.make_bag(
        str(root),
        bag_info={
            "Bagging-Date": created.astimezone(dt.UTC).date().isoformat(),
            "Bag-Software-Agent": f"evidence {__version__} with bagit.py {bagit.VERSION}",
        },
        checksums=["sha256"],
        processes=1,
    )
    (root / "bagit.txt").write_text(
        f"BagIt-Version: {BAGIT_VERSION}\nTag-File-Character-Encoding: UTF-8\n", encoding="utf-8"
    )
    # bagit.py lists tag files in directory order; sorted, the bag is the same every time.
    lines = []
    for path in sorted(p for p in root.iterdir() if p.is_file()):
        if path.name.startswith("tagmanifest-"):
            continue
        lines.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}\n")
    (root / "tagmanifest-sha256.txt").write_text("".join(lines), encoding="utf-8")
    bagit.Bag(str(root)).validate()


def package_zip(
    pdf_path: Path,
    embedded: Sequence[EmbeddedLike],
    out_path: Path,
    *,
    created: dt.datetime | None = None,
    scratch: Path | None = None,
) -> Path:
    """Write the ZIP described in the module docstring to ``out_path``; return it.

    ``created`` (default: now) dates the bag and every ZIP entry: pin it, as
    ``export --generated-at`` does, for byte-identical output. The bag is built in a
    folder under ``scratch`` (default: the system's temporary folder), removed when
    this returns or fails, as is the ZIP's temporary name beside ``out_path``.
    """
    when = (created or utcnow()).astimezone(dt.UTC)
    originals = _originals(embedded)
    folder = pdf_path.stem or "dossier"
    with tempfile.TemporaryDirectory(prefix="evidence-zip-", dir=scratch) as tmp:
        root = Path(tmp) / folder
        (root / "originals").mkdir(parents=True)
        (root / pdf_path.name).write_bytes(pdf_path.read_bytes())
        (root / "manifest.csv").write_bytes(manifest_csv(originals))
        for item in originals:
            (root / "originals" / item.name).write_bytes(item.data)
        _make_bag(root, when)
        files = sorted((p.relative_to(root).as_posix(), p) for p in root.rglob("*") if p.is_file())
        stamp = (max(when.year, 1980), when.month, when.day, when.hour, when.minute, when.second)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        part = out_path.with_name(f".{out_path.name}.{os.getpid()}.part")
        try:
            with create_private(part) as file, zipfile.ZipFile(file, "w") as archive:
                for name, path in files:
                    info = zipfile.ZipInfo(f"{folder}/{name}", date_time=stamp)
                    info.compress_type = zipfile.ZIP_DEFLATED
                    info.external_attr = 0o100644 << 16
                    info.create_system = 3  # Unix, so the permissions above are read as such
                    archive.writestr(info, path.read_bytes(), compresslevel=6)
            replace_synced(part, out_path)  # on the disk before it takes the final name
        except BaseException:
            part.unlink(missing_ok=True)
            raise
    return out_path
