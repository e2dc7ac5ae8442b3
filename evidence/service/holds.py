"""Legal holds: place one on a customer or a case, release it, list them.

The CLI passes its ``Config``; the desk passes the ``Store`` it keeps open (see
:func:`evidence.service.result.opened`). ``by`` names who acts: the desk's signed-in user,
the CLI's ``--by`` (default: EVIDENCE_USER, else login@host).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from evidence.records import holds
from evidence.service.result import Result, opened

if TYPE_CHECKING:
    from evidence.config import Config
    from evidence.store.db import Store


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


def add_hold(source: Config | Store, ref: str, *, reason: str, by: str | None = None) -> HoldPlaced:
    """Hold a customer's data (REF a customer, else a case): erasure refuses while it lasts."""
    with opened(source) as store:
        placed = holds.add_hold(store, ref, reason=reason, by=by)
    return HoldPlaced(id=placed.id, customer=placed.customer_ref, case=placed.case_ref)


def release_hold(
    source: Config | Store, ref: str, *, reason: str, by: str | None = None
) -> tuple[HoldReleased, ...]:
    """Release the active holds placed on ``ref``: a new record each; the holds stay."""
    with opened(source) as store:
        releases = holds.release_hold(store, ref, reason=reason, by=by)
    return tuple(HoldReleased(id=r.id, releases=r.releases_id or 0) for r in releases)


def _row(state: holds.HoldState) -> HoldRow:
    hold, release = state.hold, state.release
    return HoldRow(
        id=hold.id,
        ref=state.ref,
        customer=hold.customer_ref,
        case=hold.case_ref,
        reason=hold.reason,
        held_by=hold.actor,
        held_at=hold.at,
        active=state.active,
        released_at=release.at if release else None,
        released_by=release.actor if release else None,
        release_reason=release.reason if release else None,
    )


def list_holds(source: Config | Store) -> tuple[HoldRow, ...]:
    """Every legal hold, active and released, oldest first."""
    with opened(source) as store:
        return tuple(_row(s) for s in holds.list_holds(store))


def active_holds(source: Config | Store, customer_ref: str) -> tuple[HoldRow, ...]:
    """The holds in force on a customer, placed on it or on one of its cases."""
    return tuple(h for h in list_holds(source) if h.active and h.customer == customer_ref)
