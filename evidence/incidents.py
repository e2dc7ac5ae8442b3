"""Incidents: why service was interrupted. Logged, never edited; a correction is a new row."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from evidence.errors import InvalidInput, NotFound
from evidence.store import ledger
from evidence.store.checkpoints import write_checkpoint
from evidence.store.db import Store
from evidence.store.models import Incident
from evidence.timeutil import utcnow

CHANNELS = ("phone", "email", "all")


def add_incident(
    store: Store,
    *,
    title: str,
    start: dt.datetime,
    end: dt.datetime | None,
    channels: list[str],
    note: str | None,
    logged_by: str,
    logged_at: dt.datetime | None = None,
) -> Incident:
    """Record an incident. ``logged_at`` is when the person logged it (default: now);
    ``recorded_at`` is always the time it entered the store, so nothing is back-dated."""
    if not title.strip():
        raise InvalidInput("an incident needs a --title")
    if not logged_by.strip():
        raise InvalidInput("say who logged the incident with --logged-by")
    if end is not None and end <= start:
        raise InvalidInput("the incident's --end must be after its --start")
    for channel in channels:
        if channel not in CHANNELS:
            raise InvalidInput(f"unknown channel {channel!r}: use {', '.join(CHANNELS)}")
    now = utcnow()
    incident = Incident(
        title=title.strip(),
        start=start,
        end=end,
        channels=",".join(sorted(set(channels))),
        note=note,
        logged_by=logged_by.strip(),
        logged_at=logged_at or now,
        recorded_at=now,
    )
    with store.writing() as session:
        session.add(incident)
        session.flush()
        ledger.append(session, incident)
        write_checkpoint(session, store.config, "incident")
    return incident


def current_incidents(session: Session) -> list[Incident]:
    """Each incident in its latest version (corrections replace what they correct)."""
    rows = list(session.scalars(select(Incident).order_by(Incident.id)))
    corrected = {r.corrects_id for r in rows if r.corrects_id is not None}
    return [r for r in rows if r.id not in corrected]


def incidents_overlapping(
    session: Session, start: dt.datetime | None, end: dt.datetime | None
) -> list[Incident]:
    result = []
    for incident in current_incidents(session):
        inc_end = incident.end or dt.datetime.max.replace(tzinfo=dt.UTC)
        if (end is None or incident.start < end) and (start is None or inc_end > start):
            result.append(incident)
    return sorted(result, key=lambda i: (i.start, i.id))


def get_incident(session: Session, incident_id: int) -> Incident:
    incident = session.get(Incident, incident_id)
    if incident is None:
        raise NotFound(f"no incident #{incident_id}: see `evidence incident list`")
    return incident
