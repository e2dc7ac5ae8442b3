"""Planned incidents: breaks known in advance, once or recurring (RFC 5545 RRULE).

A plan keeps its times as local wall-clock times in its zone. Its occurrences
are computed with ``dateutil.rrule`` on those wall times and only then turned
into instants, so a Friday 15:00 plan in Helsinki is 15:00 local before and
after a DST change (12:00 UTC in summer, 13:00 UTC in winter). Occurrences
are materialised as incidents (``plan_id`` set) up to a horizon, by
``evidence incident plan`` and by every ``evidence sync``; each is then an
ordinary incident that can be ended or corrected on its own.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NotRequired, TypedDict, Unpack
from zoneinfo import ZoneInfo

from dateutil.rrule import rrule, rrulestr
from sqlalchemy import select
from sqlalchemy.orm import Session

from evidence.errors import InvalidInput
from evidence.records.incidents import LOGGED, check_channels, check_fields, store_version
from evidence.store import ledger
from evidence.store.db import Store
from evidence.store.models import Incident, IncidentPlan
from evidence.timeutil import resolve_local, utcnow

# A rule that would put more occurrences than this in one materialisation is refused:
# it is almost certainly a mistake (FREQ=MINUTELY) and would flood the timeline.
MAX_OCCURRENCES = 1000
_LOCAL_FORMAT = "%Y-%m-%dT%H:%M:%S"


@dataclass(frozen=True)
class Occurrence:
    start: dt.datetime  # aware UTC
    end: dt.datetime


def _wall(value: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """The naive wall-clock time of an instant in ``zone`` (what recurrence works on)."""
    return value.astimezone(zone).replace(tzinfo=None)


def _parse_local(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, _LOCAL_FORMAT)  # noqa: DTZ007 - a wall time in the plan's zone


def parse_rule(text: str, first_start: dt.datetime) -> rrule:
    """An RRULE (with or without the ``RRULE:`` prefix) starting at a naive wall time."""
    body = text.strip()
    if body.upper().startswith("RRULE:"):
        body = body[6:]
    if "DTSTART" in body.upper() or "\n" in body:
        raise InvalidInput("--rrule takes one RRULE without DTSTART: the start is --start")
    try:
        rule = rrulestr(body, dtstart=first_start)
    except ValueError as exc:
        hint = ""
        if "UNTIL" in body.upper():
            hint = " (write UNTIL as a local time without Z, e.g. UNTIL=20271231T235959)"
        raise InvalidInput(f"--rrule {text!r} is not a valid RFC 5545 RRULE: {exc}{hint}") from exc
    if not isinstance(rule, rrule):
        raise InvalidInput(f"--rrule {text!r}: give a single RRULE")
    return rule


def occurrences(plan: IncidentPlan, start: dt.datetime, end: dt.datetime) -> Iterator[Occurrence]:
    """The plan's occurrences whose start lies in ``[start, end)``, in order."""
    zone = ZoneInfo(plan.timezone)
    first_start, first_end = _parse_local(plan.start_local), _parse_local(plan.end_local)
    length = first_end - first_start  # wall-clock length: 15:00-16:00 stays 15:00-16:00
    if plan.rrule:
        rule = parse_rule(plan.rrule, first_start)
        # Wall times around the window, with a day's margin for the zone's offset.
        walls = rule.between(
            _wall(start, zone) - dt.timedelta(days=1),
            _wall(end, zone) + dt.timedelta(days=1),
            inc=True,
        )
    else:
        walls = [first_start]
    for wall in walls:
        at = resolve_local(wall, zone).at
        if start <= at < end:
            yield Occurrence(at, resolve_local(wall + length, zone).at)


class PlannedIncident(TypedDict):
    """What ``plan_incident`` is told: the first occurrence and how it recurs (RFC 5545)."""

    title: str
    start: dt.datetime
    end: dt.datetime
    rrule_text: str | None
    channels: Sequence[str]
    note: str | None
    logged_by: str
    horizon_days: NotRequired[int]  # default: [sync] horizon_days of the store's settings


def plan_incident(store: Store, **planned: Unpack[PlannedIncident]) -> tuple[IncidentPlan, int]:
    """Record a plan and materialise its occurrences up to the horizon.

    Returns the plan and how many occurrences were materialised.
    """
    title, start, end, logged_by = (
        planned["title"],
        planned["start"],
        planned["end"],
        planned["logged_by"],
    )
    rrule_text, channels, note = planned["rrule_text"], planned["channels"], planned["note"]
    horizon_days = planned.get("horizon_days", store.config.sync.horizon_days)
    check_fields(title, start, end)
    if not logged_by.strip():
        raise InvalidInput("say who planned it with --logged-by")
    joined = check_channels(channels)
    zone = store.config.zone
    first_start, first_end = _wall(start, zone), _wall(end, zone)
    if rrule_text:
        parse_rule(rrule_text, first_start)  # refuse a bad rule before writing anything
    now = utcnow()
    plan = IncidentPlan(
        title=title.strip(),
        channels=joined,
        note=note,
        timezone=zone.key,
        start_local=first_start.strftime(_LOCAL_FORMAT),
        end_local=first_end.strftime(_LOCAL_FORMAT),
        rrule=rrule_text.strip() if rrule_text else None,
        logged_by=logged_by.strip(),
        logged_at=now,
        recorded_at=now,
    )
    with store.writing() as session:
        ledger.add(session, plan)
        created = _materialise(session, plan, now + dt.timedelta(days=horizon_days))
    return plan, created


def materialise_plans(store: Store, until: dt.datetime) -> int:
    """Store every plan's occurrences that start before ``until`` and are not stored yet."""
    with store.writing() as session:
        return sum(
            _materialise(session, plan, until)
            for plan in session.scalars(select(IncidentPlan).order_by(IncidentPlan.id))
        )


def _materialise(session: Session, plan: IncidentPlan, until: dt.datetime) -> int:
    # The first version of each occurrence carries its planned start; corrections
    # to an occurrence do not make it "missing" again.
    stored = set(
        session.scalars(
            select(Incident.start).where(
                Incident.plan_id == plan.id, Incident.corrects_id.is_(None)
            )
        )
    )
    zone = ZoneInfo(plan.timezone)
    first = resolve_local(_parse_local(plan.start_local), zone).at
    missing = [o for o in occurrences(plan, first, until) if o.start not in stored]
    if len(missing) > MAX_OCCURRENCES:
        raise InvalidInput(
            f"plan #{plan.id} would add {len(missing)} occurrences at once: "
            "use a coarser --rrule (e.g. FREQ=WEEKLY) or a shorter one (COUNT=, UNTIL=)"
        )
    now = utcnow()
    for occurrence in missing:
        store_version(
            session,
            Incident(
                title=plan.title,
                start=occurrence.start,
                end=occurrence.end,
                channels=plan.channels,
                note=plan.note,
                logged_by=plan.logged_by,
                logged_at=plan.logged_at,
                recorded_at=now,
                version_kind=LOGGED,
                plan_id=plan.id,
            ),
        )
    return len(missing)
