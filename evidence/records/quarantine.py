"""Input that could not be imported: what it was, where it came from, and why.

An item can be dismissed (``dismiss``): a new chained record saying who set it aside,
when and why, for input that is no part of any source (a call log imported as mail by
mistake). The item and its bytes stay; it is no longer listed in a dossier's completeness.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from evidence.errors import InvalidInput, NotFound
from evidence.store import ledger
from evidence.store.blobs import read_blob
from evidence.store.checkpoints import actor, write_checkpoint
from evidence.store.db import Store
from evidence.store.models import Blob, QuarantineDismissal, QuarantineItem
from evidence.timeutil import iso_utc, utcnow

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
    dismissal: QuarantineDismissal | None = None


def _items() -> Select[QuarantineItem, int, QuarantineDismissal]:
    return (
        select(QuarantineItem, Blob.size, QuarantineDismissal)
        .join(Blob, Blob.sha256 == QuarantineItem.raw_sha256)
        .outerjoin(QuarantineDismissal, QuarantineDismissal.quarantine_id == QuarantineItem.id)
        .order_by(QuarantineItem.id)
    )


def list_quarantine(
    session: Session, kind: str | None = None, *, dismissed: bool = True
) -> list[Quarantined]:
    """Every quarantined item (mail, call-log lines, recordings), oldest first; without
    the dismissed ones when ``dismissed`` is false."""
    query = _items()
    if kind:
        query = query.where(QuarantineItem.kind == kind)
    if not dismissed:
        query = query.where(QuarantineDismissal.id.is_(None))
    return [Quarantined(item, int(size), gone) for item, size, gone in session.execute(query)]


def get_quarantined(session: Session, item_id: int) -> tuple[Quarantined, bytes]:
    """One item and its bytes (hash-checked)."""
    row = session.execute(_items().where(QuarantineItem.id == item_id)).first()
    if row is None:
        raise NotFound(f"no quarantined item #{item_id}: see `evidence quarantine list`")
    item, size, dismissal = row
    return Quarantined(item, int(size), dismissal), read_blob(session, item.raw_sha256)


def dismiss(store: Store, item_id: int, *, reason: str, by: str | None = None) -> Quarantined:
    """Set a quarantined item aside as no part of any source. It stays, with its bytes; the
    dismissal is a new record, chained, naming who (default: the OS user), when and why."""
    why = reason.strip()
    if not why:
        raise InvalidInput("say why: --reason 'a call log imported as mail by mistake'")
    with store.writing() as session:
        found, _ = get_quarantined(session, item_id)
        if found.dismissal is not None:
            earlier = found.dismissal
            raise InvalidInput(
                f"quarantine #{item_id} was already dismissed at {iso_utc(earlier.dismissed_at)} "
                f"by {earlier.dismissed_by}: {earlier.reason}"
            )
        dismissal = QuarantineDismissal(
            quarantine_id=item_id,
            reason=why,
            dismissed_by=(by or actor())[:300],
            dismissed_at=utcnow(),
        )
        ledger.add(session, dismissal)
        write_checkpoint(session, store.config, "quarantine dismiss")
        found.dismissal = dismissal
    return found
