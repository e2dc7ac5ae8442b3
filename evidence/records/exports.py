"""The record of exports: every dossier written, when, by whom, how, its SHA-256, and the
signed checkpoint it was proved against.

The table is append-only and chained, like evidence; each export also writes an audit
event (``evidence audit``). Both are written by :func:`record_export`, in one transaction,
naming the same person (:func:`evidence.store.checkpoints.actor`). :func:`check_output`
holds the rules for ``-o``: checked before anything is rendered.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from evidence import __version__
from evidence.errors import InvalidInput, NotFound
from evidence.store import audit, ledger
from evidence.store.checkpoints import actor
from evidence.store.db import Store
from evidence.store.ledger import chain_head
from evidence.store.models import ExportRecord
from evidence.timeutil import iso_utc, utcnow

_BLOCK = 1 << 20
FORMATS = ("pdf", "zip")


@dataclass(frozen=True)
class ProvedAgainst:
    """The signed checkpoint a dossier was proved against (its cover and manifest.json)."""

    checkpoint_id: int
    tree_size: int
    root: str


def check_output(output: Path, *, fmt: str = "pdf", force: bool = False) -> None:
    """Refuse an output the export must not replace or could not write, before anything is
    rendered: an existing file (unless ``force``), a folder, or a folder that is missing or
    that this process cannot create files in (tried, not guessed from the mode bits: root,
    ACLs and read-only mounts are what they are)."""
    if fmt not in FORMATS:
        raise InvalidInput(f"unknown export format {fmt!r}: {' or '.join(FORMATS)}")
    if fmt == "zip" and output.suffix.lower() != ".zip":
        raise InvalidInput(f"with --format zip, -o must name a .zip file, not {output}")
    if output.is_dir():
        raise InvalidInput(f"cannot write to {output}/: it is a folder; -o names the file to write")
    if output.exists() or output.is_symlink():
        if not output.is_file():
            raise InvalidInput(f"cannot write to {output}: it is not a regular file")
        if not force:
            raise InvalidInput(
                f"{output} already exists: give --force to replace it, or another -o"
            )
    folder = output.parent
    where = f"{folder}/" if str(folder) != "/" else "/"
    if not folder.is_dir():
        reason = "no such folder" if not folder.exists() else "it is not a folder"
        raise InvalidInput(f"cannot write to {where}: {reason}")
    try:
        # An unnamed file where the system has them (O_TMPFILE): nothing is left behind.
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
        raise InvalidInput(f"cannot write to {where}: {reason}") from exc


def file_digest(path: Path) -> tuple[str, int]:
    """SHA-256 and size of a file, read in blocks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while block := fh.read(_BLOCK):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return iso_utc(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    return value


def record_export(
    session: Session,
    *,
    output: Path,
    proved: ProvedAgainst,
    arguments: Mapping[str, Any],
    customer_ref: str,
    case_ref: str | None = None,
    fmt: str = "pdf",
    by: str | None = None,
    details: Mapping[str, Any] | None = None,
    now: dt.datetime | None = None,
) -> ExportRecord:
    """Record an export that was just written to ``output``: its audit event, then its row in
    the record of exports, both chained and both naming ``actor(by)``. The caller holds the
    writer lock (and signs a checkpoint after, to cover both).

    ``arguments`` are the arguments as the user gave them (stored as sorted JSON);
    ``details`` go to the audit event with the checkpoint.
    """
    if not output.is_file():
        raise InvalidInput(f"{output} was not written: nothing to record")
    sha256, size = file_digest(output)
    who = actor(by)
    subject = f"customer {customer_ref}" + (f", case {case_ref}" if case_ref else "")
    _audit_export(
        session,
        subject=f"{subject} -> {output}",
        sha256=sha256,
        proved=proved,
        fmt=fmt,
        details=details,
        who=who,
    )
    encoded = _arguments_json(arguments)
    seen = chain_head(session)
    record = ExportRecord(
        exported_at=now or utcnow(),
        exported_by=who,
        customer_ref=customer_ref,
        case_ref=case_ref,
        format=fmt,
        output=str(output.resolve()),
        size=size,
        sha256=sha256,
        arguments=encoded,
        program_version=__version__,
        chain_seq=seen.seq,
        chain_head=seen.hash,
        checkpoint_id=proved.checkpoint_id,
        checkpoint_tree_size=proved.tree_size,
        checkpoint_root=proved.root,
    )
    return ledger.add(session, record)


def _audit_export(
    session: Session,
    *,
    subject: str,
    sha256: str,
    proved: ProvedAgainst,
    fmt: str,
    details: Mapping[str, Any] | None,
    who: str,
) -> None:
    """The export's audit event: what was written, and the checkpoint it was proved against."""
    audit.record(
        session,
        action="export",
        subject=subject,
        output_sha256=sha256,
        details={
            "checkpoint_id": proved.checkpoint_id,
            "tree_size": proved.tree_size,
            "root": proved.root,
            "format": fmt,
            **(details or {}),
        },
        actor=who,
    )


def _arguments_json(arguments: Mapping[str, Any]) -> str:
    """The arguments as the user gave them, as sorted JSON (times in UTC, paths as text)."""
    return json.dumps(
        {k: _json_value(v) for k, v in arguments.items()},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )


def list_exports(store: Store) -> list[ExportRecord]:
    """Every recorded export, oldest first."""
    with store.session() as session:
        return list(session.scalars(select(ExportRecord).order_by(ExportRecord.id)))


def get_export(store: Store, export_id: int) -> ExportRecord:
    """One recorded export, by its id."""
    with store.session() as session:
        record = session.get(ExportRecord, export_id)
    if record is None:
        raise NotFound(f"no export #{export_id} in the record of exports")
    return record
