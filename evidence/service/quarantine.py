"""The quarantine: list what could not be imported, show one item and its bytes, dismiss one."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from evidence.records import quarantine
from evidence.service.result import Result, opened

if TYPE_CHECKING:
    from evidence.config import Config


@dataclass(frozen=True)
class QuarantineRow(Result):
    """A quarantined input: where it came from, why, its bytes' size and hash, and, once
    dismissed, who set it aside, when and why."""

    id: int
    kind: str
    source: str
    locator: str | None
    reason: str
    quarantined_at: dt.datetime
    size: int
    sha256: str
    import_run: int | None
    dismissed: bool
    dismissed_at: dt.datetime | None
    dismissed_by: str | None
    dismiss_reason: str | None

    @classmethod
    def of(cls, found: quarantine.Quarantined) -> QuarantineRow:
        item, dismissal = found.item, found.dismissal
        return cls(
            id=item.id,
            kind=item.kind,
            source=item.source,
            locator=item.locator,
            reason=item.reason,
            quarantined_at=item.quarantined_at,
            size=found.size,
            sha256=item.raw_sha256,
            import_run=item.import_run_id,
            dismissed=dismissal is not None,
            dismissed_at=dismissal.dismissed_at if dismissal else None,
            dismissed_by=dismissal.dismissed_by if dismissal else None,
            dismiss_reason=dismissal.reason if dismissal else None,
        )


@dataclass(frozen=True)
class QuarantinedBytes(Result):
    """One item with its bytes, hash-checked; ``as_dict()`` is the item without them."""

    row: QuarantineRow
    data: bytes = field(repr=False)

    def as_dict(self) -> dict[str, Any]:
        return self.row.as_dict()


def list_quarantine(
    config: Config, *, kind: str | None = None, only_open: bool = False
) -> tuple[QuarantineRow, ...]:
    """Quarantined input of every kind (or ``kind``), oldest first; ``only_open``: without
    the dismissed items."""
    with opened(config) as store, store.session() as session:
        found = quarantine.list_quarantine(session, kind, dismissed=not only_open)
        return tuple(QuarantineRow.of(q) for q in found)


def show_quarantined(config: Config, item_id: int) -> QuarantinedBytes:
    """One quarantined item and its bytes."""
    with opened(config) as store, store.session() as session:
        found, data = quarantine.get_quarantined(session, item_id)
        return QuarantinedBytes(QuarantineRow.of(found), data)


def dismiss(config: Config, item_id: int, *, reason: str, by: str | None = None) -> QuarantineRow:
    """Set an item aside as no part of any source: a new chained record; the item stays."""
    with opened(config) as store:
        return QuarantineRow.of(quarantine.dismiss(store, item_id, reason=reason, by=by))
