"""Importers: one module per kind of source. Each stores raw bytes first, then what it indexes."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from evidence.records.quarantine import log_safe
from evidence.store import ledger
from evidence.store.blobs import put_blob, sha256_hex
from evidence.store.models import ImportRun, QuarantineItem
from evidence.timeutil import utcnow


@dataclass
class ImportReport:
    imported: int = 0
    duplicates: int = 0
    quarantined: int = 0
    messages: list[str] = field(default_factory=list)  # one line per quarantined item
    unmatched: list[str] = field(default_factory=list)  # recordings whose call is not stored
    notes: list[str] = field(default_factory=list)  # what the reader should know (configuration)

    def add(self, other: ImportReport) -> None:
        self.imported += other.imported
        self.duplicates += other.duplicates
        self.quarantined += other.quarantined
        self.messages.extend(other.messages)
        self.unmatched.extend(other.unmatched)
        self.notes.extend(n for n in other.notes if n not in self.notes)

    def summary(self) -> str:
        return (
            f"imported {self.imported:,}, duplicates {self.duplicates:,}, "
            f"quarantined {self.quarantined:,}"
        )

    def as_dict(self, *, unmatched: bool = False) -> dict[str, object]:
        """``unmatched``: with the recordings whose call is not stored (`import recordings`)."""
        return {
            "imported": self.imported,
            "duplicates": self.duplicates,
            "quarantined": self.quarantined,
            "quarantine_reasons": self.messages,
            "notes": self.notes,
            **({"unmatched_recordings": self.unmatched} if unmatched else {}),
        }


def start_run(session: Session, kind: str, source: str) -> ImportRun:
    run = ImportRun(kind=kind, source=source, started_at=utcnow())
    session.add(run)
    session.flush()
    return run


def quarantine(
    session: Session,
    report: ImportReport,
    *,
    kind: str,
    source: str,
    locator: str | None,
    reason: str,
    raw: bytes,
    run: ImportRun | None,
) -> QuarantineItem | None:
    """Keep input we could not import, with its bytes and the reason; the import goes on.

    The same bytes from the same place already in quarantine count as a duplicate
    (returns None): importing a file again, or a scheduled ``evidence sync``,
    does not quarantine it twice.
    """
    digest = sha256_hex(raw)
    already = session.scalar(
        select(QuarantineItem.id)
        .where(
            QuarantineItem.kind == kind,
            QuarantineItem.source == source,
            QuarantineItem.locator.is_(None)
            if locator is None
            else QuarantineItem.locator == locator,
            QuarantineItem.raw_sha256 == digest,
        )
        .limit(1)
    )
    if already is not None:
        report.duplicates += 1
        return None
    item = QuarantineItem(
        kind=kind,
        source=source,
        locator=locator,
        reason=reason,
        raw_sha256=put_blob(session, raw),
        quarantined_at=utcnow(),
        import_run_id=run.id if run else None,
    )
    ledger.add(session, item)
    report.quarantined += 1
    where = f"{source}:{locator}" if locator else source
    # What goes to stderr and cron logs carries no evidence content (see quarantine.log_safe).
    report.messages.append(f"{where}: {log_safe(reason)} (quarantine #{item.id})")
    return item
