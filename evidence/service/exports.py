"""Exports: write a customer's dossier (PDF or BagIt ZIP, recorded), list past exports."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evidence.records import exports
from evidence.service.result import Result, opened

if TYPE_CHECKING:
    from evidence.config import Config
    from evidence.render.dossier import ExportResult
    from evidence.store.models import ExportRecord


@dataclass(frozen=True)
class ExportRequest:
    """What to export, and where: a customer (or a case's customer), a period, a language."""

    output: Path
    customer_ref: str | None = None
    case_ref: str | None = None  # its authority on the cover, its PDFs appended, its period
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    generated_at: dt.datetime | None = None  # pinned, for reproducible output
    generated_at_text: str | None = None  # as the user gave it, for the record of exports
    language: str | None = None
    jobs: int | None = None
    use_cache: bool = True
    fmt: str = "pdf"  # or "zip"
    force: bool = False  # replace an existing output
    by: str | None = None


def export(
    config: Config, request: ExportRequest, *, progress: Callable[[int], None] | None = None
) -> ExportResult:
    """Write the dossier and record the export (audit log and record of exports)."""
    from evidence.render.dossier import export_dossier

    with opened(config) as store:
        return export_dossier(
            store,
            customer_ref=request.customer_ref,
            output=request.output,
            date_from=request.date_from,
            date_to=request.date_to,
            case_ref=request.case_ref,
            generated_at=request.generated_at,
            language=request.language,
            jobs=request.jobs,
            use_cache=request.use_cache,
            progress=progress,
            fmt=request.fmt,
            force=request.force,
            by=request.by,
            as_given={"generated_at": request.generated_at_text},
        )


@dataclass(frozen=True)
class ExportRow(Result):
    """One recorded export: when, by whom, with which arguments, what it wrote."""

    id: int
    exported_at: dt.datetime
    exported_by: str
    customer: str | None
    case: str | None
    format: str
    output: str
    size: int
    sha256: str
    arguments: dict[str, Any]
    program_version: str
    chain_seq: int | None
    chain_head: str | None
    checkpoint_id: int | None
    checkpoint_tree_size: int | None
    checkpoint_root: str | None

    @classmethod
    def of(cls, record: ExportRecord) -> ExportRow:
        return cls(
            id=record.id,
            exported_at=record.exported_at,
            exported_by=record.exported_by,
            customer=record.customer_ref,
            case=record.case_ref,
            format=record.format,
            output=record.output,
            size=record.size,
            sha256=record.sha256,
            arguments=json.loads(record.arguments),
            program_version=record.program_version,
            chain_seq=record.chain_seq,
            chain_head=record.chain_head,
            checkpoint_id=record.checkpoint_id,
            checkpoint_tree_size=record.checkpoint_tree_size,
            checkpoint_root=record.checkpoint_root,
        )


def list_exports(config: Config) -> tuple[ExportRow, ...]:
    """Every recorded export, oldest first."""
    with opened(config) as store:
        return tuple(ExportRow.of(r) for r in exports.list_exports(store))
