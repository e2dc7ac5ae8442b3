"""Exports: write a customer's dossier (PDF or BagIt ZIP, recorded), list past exports."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evidence.errors import InvalidArguments, InvalidInput
from evidence.records import exports
from evidence.records.exports import FORMATS
from evidence.service.result import Result, opened
from evidence.store.db import Store
from evidence.timeutil import UserTime, require_order

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from evidence.config import Config
    from evidence.render.dossier import ExportResult
    from evidence.store.models import ExportRecord

__all__ = ["FORMATS", "ExportRequest", "ExportRow", "Exported", "export", "list_exports"]


@dataclass(frozen=True)
class ExportRequest:
    """What to export, and where: a customer (or a case's customer), a period, a language."""

    output: Path
    customer_ref: str | None = None
    case_ref: str | None = None  # its authority on the cover, its PDFs appended, its period
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    # Pinned, for reproducible output: a time as the user typed it (placed in the store's
    # zone, and kept as typed in the record of exports), or an aware datetime.
    generated_at: UserTime | dt.datetime | None = None
    language: str | None = None
    jobs: int | None = None
    use_cache: bool = True
    fmt: str = "pdf"  # one of FORMATS
    force: bool = False  # replace an existing output
    by: str | None = None  # who exports (see evidence.store.checkpoints.actor)

    def __post_init__(self) -> None:
        """A request that makes no sense is refused as it is made (:class:`InvalidArguments`):
        one that names no customer nor case, or a period that ends before it starts."""
        if self.customer_ref is None and self.case_ref is None:
            raise InvalidArguments("give a customer REF or --case REFERENCE")
        try:
            require_order(self.date_from, self.date_to)
        except InvalidInput as exc:
            raise InvalidArguments(str(exc)) from exc


def export(
    source: Config | Store,
    request: ExportRequest,
    *,
    progress: Callable[[int], None] | None = None,
) -> Exported:
    """Write the dossier and record the export (audit log and record of exports, naming
    ``actor(request.by)``). Refused before anything is rendered: an output that exists
    (without ``force``) or cannot be written, an unknown format, an altered store, an
    erased customer (see ``export_dossier``)."""
    from evidence.render.dossier import export_dossier

    config = source.config if isinstance(source, Store) else source
    generated_at = _pinned(request.generated_at, config.zone)
    with opened(source) as store:
        written = export_dossier(
            store,
            customer_ref=request.customer_ref,
            output=request.output,
            date_from=request.date_from,
            date_to=request.date_to,
            case_ref=request.case_ref,
            generated_at=generated_at,
            language=request.language,
            jobs=request.jobs,
            use_cache=request.use_cache,
            progress=progress,
            fmt=request.fmt,
            force=request.force,
            by=request.by,
            as_given=_as_given(request),
        )
        assert written.export_id is not None  # every export is recorded
        record = exports.get_export(store, written.export_id)
    return Exported.of(request.output, written, ExportRow.of(record))


def _pinned(value: UserTime | dt.datetime | None, zone: ZoneInfo) -> dt.datetime | None:
    """The generation time: a time typed without an offset is in the store's zone."""
    return value.at(zone) if isinstance(value, UserTime) else value


def _as_given(request: ExportRequest) -> dict[str, str | None]:
    """The arguments the record of exports keeps as the user typed them."""
    if isinstance(request.generated_at, UserTime):
        return {"generated_at": request.generated_at.text}
    return {}


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


@dataclass(frozen=True)
class Exported(Result):
    """A dossier written and recorded: what ``evidence export`` prints (``--json``: this)."""

    output: str  # as the request named it
    pages: int
    items: int
    sha256: str  # of the file written: the PDF, or the ZIP
    signed: bool  # with a PAdES signature
    placeholders: tuple[str, ...]  # each exhibit a placeholder page stands in for, and why
    record: ExportRow  # its row in the record of exports: who, when, the checkpoint

    @classmethod
    def of(cls, output: Path, written: ExportResult, record: ExportRow) -> Exported:
        return cls(
            output=str(output),
            pages=written.pages,
            items=written.items,
            sha256=written.sha256,
            signed=written.signed,
            placeholders=tuple(p.describe() for p in written.placeholders),
            record=record,
        )

    def warnings(self) -> tuple[str, ...]:
        """A line for each exhibit a placeholder page stands in for (the export went on)."""
        return tuple(
            f"warning: exhibit {p}; a placeholder page stands in for it" for p in self.placeholders
        )

    def summary(self) -> str:
        """What was written, and the signed checkpoint the dossier is proved against."""
        return (
            f"wrote {self.output} ({self.pages} pages, {self.items} items, SHA-256 {self.sha256})"
            f"\nproved against checkpoint #{self.record.checkpoint_id} "
            f"(root {self.record.checkpoint_root})" + ("; PDF signed" if self.signed else "")
        )


def list_exports(source: Config | Store) -> tuple[ExportRow, ...]:
    """Every recorded export, oldest first."""
    with opened(source) as store:
        return tuple(ExportRow.of(r) for r in exports.list_exports(store))
