"""Legal holds: place one on a customer or a case, release it, list them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from evidence.records import holds
from evidence.service.result import Result, opened

if TYPE_CHECKING:
    from evidence.config import Config


@dataclass(frozen=True)
class HoldPlaced(Result):
    id: int
    customer: str
    case: str | None  # a hold on a case holds its customer


@dataclass(frozen=True)
class HoldReleased(Result):
    id: int  # the release's own record
    releases: int  # the hold it ends


@dataclass(frozen=True)
class HoldRow(Result):
    """One line of `hold list`: the hold and, once released, its release."""

    id: int
    ref: str
    customer: str
    case: str | None
    reason: str
    held_by: str
    held_at: dt.datetime
    active: bool
    released_at: dt.datetime | None
    released_by: str | None
    release_reason: str | None


def add_hold(config: Config, ref: str, *, reason: str, by: str | None = None) -> HoldPlaced:
    """Hold a customer's data (REF a customer, else a case): erasure refuses while it lasts."""
    with opened(config) as store:
        placed = holds.add_hold(store, ref, reason=reason, by=by)
    return HoldPlaced(id=placed.id, customer=placed.customer_ref, case=placed.case_ref)


def release_hold(
    config: Config, ref: str, *, reason: str, by: str | None = None
) -> tuple[HoldReleased, ...]:
    """Release the active holds placed on ``ref``: a new record each; the holds stay."""
    with opened(config) as store:
        releases = holds.release_hold(store, ref, reason=reason, by=by)
    return tuple(HoldReleased(id=r.id, releases=r.releases_id or 0) for r in releases)


def list_holds(config: Config) -> tuple[HoldRow, ...]:
    """Every legal hold, active and released, oldest first."""
    with opened(config) as store:
        states = holds.list_holds(store)
    return tuple(
        HoldRow(
            id=s.hold.id,
            ref=s.ref,
            customer=s.hold.customer_ref,
            case=s.hold.case_ref,
            reason=s.hold.reason,
            held_by=s.hold.actor,
            held_at=s.hold.at,
            active=s.active,
            released_at=s.release.at if s.release else None,
            released_by=s.release.actor if s.release else None,
            release_reason=s.release.reason if s.release else None,
        )
        for s in states
    )
