"""The record of exports: every dossier written, when, by whom, how, and its SHA-256.

The table is append-only, like evidence, but is not chained: see ``ExportRecord``.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import select

from evidence import __version__
from evidence.cases import load_case
from evidence.errors import InvalidInput
from evidence.store import ledger
from evidence.store.db import Store
from evidence.store.ledger import ChainHead, chain_head
from evidence.store.models import ExportRecord
from evidence.timeutil import iso_utc, utcnow

_BLOCK = 1 << 20


def os_user() -> str:
    """The operating-system user running the command (who exported, unless ``--by``)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (e.g. some containers)
        return f"uid {os.getuid()}"


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
    store: Store,
    *,
    output: Path,
    arguments: Mapping[str, Any],
    customer_ref: str | None,
    case_ref: str | None = None,
    fmt: str = "pdf",
    by: str | None = None,
    head: ChainHead | None = None,
    now: dt.datetime | None = None,
) -> ExportRecord:
    """Record an export that was just written to ``output``.

    ``arguments`` are the arguments as the user gave them (stored as sorted JSON);
    ``by`` defaults to the OS user; ``head`` is the chain head the export was made
    from (default: the head now).
    """
    if not output.is_file():
        raise InvalidInput(f"{output} was not written: nothing to record")
    sha256, size = file_digest(output)
    exported_by = (by or "").strip() or os_user()
    encoded = json.dumps(
        {k: _json_value(v) for k, v in arguments.items()},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    with store.writing() as session:
        if customer_ref is None and case_ref is not None:
            customer_ref = load_case(session, case_ref).customer.ref
        seen = head or chain_head(session)
        record = ExportRecord(
            exported_at=now or utcnow(),
            exported_by=exported_by,
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
        )
        session.add(record)
        session.flush()
        # Chained like all evidence, so `evidence verify` accounts for every row.
        ledger.append(session, record)
    return record


def list_exports(store: Store) -> list[ExportRecord]:
    """Every recorded export, oldest first."""
    with store.session() as session:
        return list(session.scalars(select(ExportRecord).order_by(ExportRecord.id)))


def export_json(record: ExportRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "exported_at": iso_utc(record.exported_at),
        "exported_by": record.exported_by,
        "customer": record.customer_ref,
        "case": record.case_ref,
        "format": record.format,
        "output": record.output,
        "size": record.size,
        "sha256": record.sha256,
        "arguments": json.loads(record.arguments),
        "program_version": record.program_version,
        "chain_seq": record.chain_seq,
        "chain_head": record.chain_head,
    }
