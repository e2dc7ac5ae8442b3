"""Input that could not be imported: what it was, where it came from, and why."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from evidence.errors import NotFound
from evidence.store.blobs import read_blob
from evidence.store.models import Blob, QuarantineItem
from evidence.timeutil import iso_utc

_QUOTED = re.compile("b?'[^'\\n]*'|b?\"[^\"\\n]*\"")


def log_safe(reason: str, limit: int = 200) -> str:
    """A quarantine reason fit for stderr and logs: quoted input (a field's value, a
    header, a line) is elided and the text clipped. The store keeps the full reason
    (`evidence quarantine show`): it is evidence; a cron log is not."""
    text_ = _QUOTED.sub("'…'", reason).replace("\n", " ").replace("\r", " ")
    return text_ if len(text_) <= limit else text_[: limit - 1] + "…"


@dataclass
class Quarantined:
    item: QuarantineItem
    size: int

    def as_dict(self) -> dict[str, object]:
        item = self.item
        return {
            "id": item.id,
            "kind": item.kind,
            "source": item.source,
            "locator": item.locator,
            "reason": item.reason,
            "quarantined_at": iso_utc(item.quarantined_at),
            "size": self.size,
            "sha256": item.raw_sha256,
            "import_run": item.import_run_id,
        }


def list_quarantine(session: Session, kind: str | None = None) -> list[Quarantined]:
    """Every quarantined item (mail, call-log lines, recordings), oldest first."""
    query = (
        select(QuarantineItem, Blob.size)
        .join(Blob, Blob.sha256 == QuarantineItem.raw_sha256)
        .order_by(QuarantineItem.id)
    )
    if kind:
        query = query.where(QuarantineItem.kind == kind)
    return [Quarantined(item, int(size)) for item, size in session.execute(query)]


def get_quarantined(session: Session, item_id: int) -> tuple[Quarantined, bytes]:
    """One item and its bytes (hash-checked)."""
    row = session.execute(
        select(QuarantineItem, Blob.size)
        .join(Blob, Blob.sha256 == QuarantineItem.raw_sha256)
        .where(QuarantineItem.id == item_id)
    ).first()
    if row is None:
        raise NotFound(f"no quarantined item #{item_id}: see `evidence quarantine list`")
    item, size = row
    return Quarantined(item, int(size)), read_blob(session, item.raw_sha256)
