"""Incidents: log one, start and end one, correct one, plan recurring ones, list, show.

The CLI passes its ``Config``; the desk passes the ``Store`` it keeps open (see
:func:`evidence.service.result.opened`) and ``audit_by``, its signed-in user: the operation
is then also kept in the audit log under that name (action ``incident``), as the desk's case
operations are; the CLI's commands record what they recorded before.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Unpack

from evidence.records import incidents, plans
from evidence.service.result import Result, opened
from evidence.store.audit import log_event

if TYPE_CHECKING:
    from evidence.config import Config
    from evidence.store.db import Store
    from evidence.store.models import Incident


@dataclass(frozen=True)
class IncidentVersion(Result):
    """One version of an incident as stored: what it says, who logged it and when it was
    recorded (later than ``logged_at`` when entered afterwards)."""

    number: int
    id: int
    change: str  # logged, ended, corrected
    title: str
    start: dt.datetime
    end: dt.datetime | None
    logged_by: str
    logged_at: dt.datetime
    recorded_at: dt.datetime
    changed_by: str | None
    corrects: int | None
    correction_reason: str | None

    @classmethod
    def of(cls, incident: Incident) -> IncidentVersion:
        return cls(
            number=incident.number,
            id=incident.id,
            change=incident.change,
            title=incident.title,
            start=incident.start,
            end=incident.end,
            logged_by=incident.logged_by,
            logged_at=incident.logged_at,
            recorded_at=incident.recorded_at,
            changed_by=incident.changed_by,
            corrects=incident.corrects_id,
            correction_reason=incident.correction_reason,
        )


def _audit(store: Store, by: str | None, what: str, number: int | None = None) -> None:
    """The desk's trace of an incident form: ``incident add #3``, ``incident plan``."""
    if by is not None:
        subject = f"incident {what}" + (f" #{number}" if number else "")
        log_event(store, action="incident", subject=subject, actor=by, checkpoint=False)


def _versioned(
    source: Config | Store,
    write: Callable[[Store], Incident],
    audit: tuple[str | None, str],
) -> IncidentVersion:
    with opened(source) as store:
        version = IncidentVersion.of(write(store))
        by, what = audit
        _audit(store, by, what, version.number)
        return version


def add_incident(
    source: Config | Store,
    *,
    audit_by: str | None = None,
    **new: Unpack[incidents.NewIncident],
) -> IncidentVersion:
    """Log an incident that happened (or goes on: ``end`` None), with supporting files."""
    return _versioned(
        source, lambda store: incidents.add_incident(store, **new), (audit_by, "add")
    )


def start_incident(
    source: Config | Store,
    *,
    audit_by: str | None = None,
    **told: Unpack[incidents.StartedIncident],
) -> IncidentVersion:
    """Open an incident now."""
    return _versioned(
        source, lambda store: incidents.start_incident(store, **told), (audit_by, "start")
    )


def end_incident(
    source: Config | Store,
    number: int,
    *,
    audit_by: str | None = None,
    **ending: Unpack[incidents.Ending],
) -> IncidentVersion:
    """End an incident that goes on (now, or ``at``): a new version."""
    return _versioned(
        source,
        lambda store: incidents.end_incident(store, number, **ending),
        (audit_by, "end"),
    )


def correct_incident(
    source: Config | Store,
    number: int,
    *,
    audit_by: str | None = None,
    **correction: Unpack[incidents.Correction],
) -> IncidentVersion:
    """Correct an incident: a new version naming the reason; the old one stays."""
    return _versioned(
        source,
        lambda store: incidents.correct_incident(store, number, **correction),
        (audit_by, "correct"),
    )


def parse_number(text: str) -> int:
    """An incident's number as people write it (``3``, ``#3``, ``incident:3``)."""
    return incidents.parse_incident_id(text)


@dataclass(frozen=True)
class PlanMade(Result):
    id: int
    title: str
    occurrences: int  # stored now, up to ``horizon_days`` ahead
    horizon_days: int


def plan_incident(
    source: Config | Store,
    *,
    audit_by: str | None = None,
    **planned: Unpack[plans.PlannedIncident],
) -> PlanMade:
    """Plan an incident, once or recurring (RFC 5545), and store its coming occurrences
    (up to ``[sync] horizon_days`` ahead)."""
    with opened(source) as store:
        plan, created = plans.plan_incident(store, **planned)
        _audit(store, audit_by, "plan")
        days = store.config.sync.horizon_days
    return PlanMade(id=plan.id, title=plan.title, occurrences=created, horizon_days=days)


@dataclass(frozen=True)
class Attached(Result):
    filename: str
    size: int
    sha256: str


@dataclass(frozen=True)
class IncidentView(Result):
    """An incident's current version, every version and its files; ``as_dict()`` is the
    incident as the timeline's JSON gives it."""

    current: IncidentVersion
    channels: tuple[str, ...]
    note: str | None
    planned: str | None  # "plan #3 (FREQ=WEEKLY;BYDAY=FR)", or None when logged by hand
    versions: tuple[IncidentVersion, ...]
    attachments: tuple[Attached, ...]
    item: dict[str, Any] = field(repr=False)

    @property
    def corrected(self) -> bool:
        return any(v.change == "corrected" for v in self.versions)

    def as_dict(self) -> dict[str, Any]:
        return self.item


def _view(chain: incidents.IncidentChain) -> IncidentView:
    from evidence.domain import ItemKind
    from evidence.timeline.history import Item, item_json

    i = chain.current
    item = item_json(
        Item(ItemKind.INCIDENT, i.start, f"incident:{chain.number}", i, versions=chain.versions)
    )
    return IncidentView(
        current=IncidentVersion.of(i),
        channels=tuple(item["channels"]),
        note=i.note,
        planned=f"plan #{i.plan.id} ({i.plan.rrule or 'once'})" if i.plan is not None else None,
        versions=tuple(IncidentVersion.of(v) for v in chain.versions),
        attachments=tuple(Attached(a.filename, a.size, a.sha256) for a in chain.attachments),
        item=item,
    )


def list_incidents(source: Config | Store, *, only_open: bool = False) -> tuple[IncidentView, ...]:
    """Every incident (current versions), planned occurrences included; ``only_open``: those
    going on now."""
    from evidence.timeutil import utcnow

    now = utcnow()
    with opened(source) as store, store.session() as session:
        chains = incidents.incident_chains(session)
        if only_open:
            chains = [c for c in chains if incidents.is_going_on(c.current, now)]
        return tuple(_view(c) for c in chains)


def show_incident(source: Config | Store, number: int) -> IncidentView:
    """An incident with every version and its attached files."""
    with opened(source) as store, store.session() as session:
        return _view(incidents.get_chain(session, number))
