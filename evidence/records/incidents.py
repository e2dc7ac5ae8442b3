"""Incidents: why service was interrupted. Logged, never edited.

An incident is a chain of versions (``Incident`` rows). Its number is the id of
its first version. Ending it or correcting it appends a version that points to
the one it replaces (``corrects_id``), says who made it (``corrected_by``), why
(``correction_reason``) and when it entered the store (``recorded_at``), so the
dossier can show the current version and its whole history.
"""

from __future__ import annotations

import datetime as dt
import mimetypes
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NotRequired, TypedDict, Unpack

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, selectinload

from evidence.errors import InvalidInput, NotFound
from evidence.store import ledger
from evidence.store.audit import log_event
from evidence.store.blobs import put_blob
from evidence.store.checkpoints import write_checkpoint
from evidence.store.db import Store
from evidence.store.models import Incident, IncidentAttachment
from evidence.timeutil import format_local, utcnow

CHANNELS = ("phone", "email", "all")
LOGGED, ENDED, CORRECTED = "logged", "ended", "corrected"
# An end typed with `incident end --at` may lie this far in the future (clock skew).
END_SLACK = dt.timedelta(minutes=1)


class _Told(TypedDict):
    title: str
    channels: Sequence[str]  # phone, email, all
    note: str | None
    logged_by: str
    attachments: NotRequired[Sequence[Path]]  # supporting files, stored byte-exact


class StartedIncident(_Told):
    """What ``start_incident`` is told: an incident that begins now."""


class NewIncident(_Told):
    """What ``add_incident`` is told: an incident that happened (``end`` None: goes on)."""

    start: dt.datetime
    end: dt.datetime | None
    logged_at: NotRequired[dt.datetime | None]  # when the person logged it (default: now)


class Ending(TypedDict, total=False):
    """How ``end_incident`` ends an incident: at (default: now), by whom, with what files."""

    at: dt.datetime | None
    by: str | None
    attachments: Sequence[Path]


class Correction(TypedDict):
    """What ``correct_incident`` is told: why, by whom, and each field that changes."""

    reason: str
    by: str
    start: NotRequired[dt.datetime | None]
    end: NotRequired[dt.datetime | None]
    title: NotRequired[str | None]
    channels: NotRequired[Sequence[str] | None]
    note: NotRequired[str | None]
    attachments: NotRequired[Sequence[Path]]


def refuse_a_future_end(end: dt.datetime) -> None:
    """An incident ends when it is over (ending it, or correcting its end): a break still to
    come is a plan."""
    if end > utcnow() + END_SLACK:
        raise InvalidInput(
            "an incident cannot end in the future: end it when it is over, "
            "or record a planned break with `evidence incident plan`"
        )


@dataclass
class IncidentChain:
    """Every version of one incident, oldest first."""

    versions: list[Incident]

    @property
    def number(self) -> int:
        return self.versions[0].id

    @property
    def current(self) -> Incident:
        return self.versions[-1]

    @property
    def attachments(self) -> list[IncidentAttachment]:
        return [a for v in self.versions for a in v.attachments]


@dataclass(frozen=True)
class FileToAttach:
    filename: str
    data: bytes


# How a user names an incident: the id `--json` prints (incident:7), or its number as the
# listings print it (7, #7).
_INCIDENT_ID = re.compile(r"(?:incident:|#)?([0-9]{1,18})")


def parse_incident_id(text: str) -> int:
    """The incident number in ``incident:7`` (the ``id`` of ``--json``), ``7`` or ``#7``."""
    match = _INCIDENT_ID.fullmatch(text.strip())
    if match is None:
        raise InvalidInput(
            f"{text!r} is not an incident: give its number or the id `evidence incident list "
            "--json` prints, e.g. 7 or incident:7"
        )
    return int(match.group(1))


def read_attachments(paths: Sequence[Path]) -> list[FileToAttach]:
    """Read the files first, so a missing one fails before anything is written."""
    files = []
    for path in paths:
        if not path.is_file():
            raise InvalidInput(f"{path} is not a file to attach")
        files.append(FileToAttach(path.name, path.read_bytes()))
    return files


def check_channels(channels: Sequence[str]) -> str:
    for channel in channels:
        if channel not in CHANNELS:
            raise InvalidInput(f"unknown channel {channel!r}: use {', '.join(CHANNELS)}")
    return ",".join(sorted(set(channels)))


def check_fields(title: str, start: dt.datetime, end: dt.datetime | None) -> None:
    if not title.strip():
        raise InvalidInput("an incident needs a --title")
    if end is not None and end <= start:
        raise InvalidInput("the incident's --end must be after its --start")


def store_version(
    session: Session, incident: Incident, files: Sequence[FileToAttach] = ()
) -> Incident:
    """Insert one version with its attachments and chain them together."""
    session.add(incident)
    session.flush()
    attachments = [
        IncidentAttachment(
            incident_id=incident.id,
            filename=f.filename,
            content_type=mimetypes.guess_type(f.filename)[0] or "application/octet-stream",
            size=len(f.data),
            sha256=put_blob(session, f.data),
            attached_at=incident.recorded_at,
        )
        for f in files
    ]
    session.add_all(attachments)
    session.flush()
    ledger.append(session, incident, attachments)
    return incident


def add_incident(store: Store, **new: Unpack[NewIncident]) -> Incident:
    """Record an incident. ``logged_at`` is when the person logged it (default: now);
    ``recorded_at`` is always the time it entered the store, so nothing is back-dated."""
    title, start, end, logged_by = new["title"], new["start"], new["end"], new["logged_by"]
    check_fields(title, start, end)
    if not logged_by.strip():
        raise InvalidInput("say who logged the incident with --logged-by")
    joined = check_channels(new["channels"])
    files = read_attachments(new.get("attachments", ()))
    now = utcnow()
    incident = Incident(
        title=title.strip(),
        start=start,
        end=end,
        channels=joined,
        note=new["note"],
        logged_by=logged_by.strip(),
        logged_at=new.get("logged_at") or now,
        recorded_at=now,
        version_kind=LOGGED,
    )
    with store.writing() as session:
        store_version(session, incident, files)
        write_checkpoint(session, store.config, "incident")
    return incident


def start_incident(store: Store, **told: Unpack[StartedIncident]) -> Incident:
    """Open an incident now (``incident start``); close it later with ``end_incident``."""
    now = utcnow()
    return add_incident(store, **told, start=now, end=None, logged_at=now)


def _next_version(current: Incident, kind: str, by: str | None, reason: str | None) -> Incident:
    return Incident(
        title=current.title,
        start=current.start,
        end=current.end,
        channels=current.channels,
        note=current.note,
        logged_by=current.logged_by,
        logged_at=current.logged_at,
        recorded_at=utcnow(),
        corrects_id=current.id,
        correction_reason=reason,
        original_id=current.number,
        version_kind=kind,
        corrected_by=by,
        plan_id=current.plan_id,
    )


def end_incident(store: Store, number: int, **ending: Unpack[Ending]) -> Incident:
    """Close an open incident at ``at`` (default: now), as a new version."""
    files = read_attachments(ending.get("attachments", ()))
    by = ending.get("by")
    end = ending.get("at") or utcnow()
    refuse_a_future_end(end)
    with store.writing() as session:
        current = get_incident(session, number)
        if current.end is not None:
            raise InvalidInput(
                f"incident #{current.number} already ended; change its end with "
                f"`evidence incident correct {current.number} --end TIME --reason ... --by ...`"
            )
        if end <= current.start:
            zone = store.config.zone
            raise InvalidInput(
                f"incident #{current.number} started at {format_local(current.start, zone)}: "
                f"it cannot end at {format_local(end, zone)}; give a later --at"
            )
        version = _next_version(current, ENDED, by.strip() if by else None, None)
        version.end = end
        store_version(session, version, files)
        write_checkpoint(session, store.config, "incident")
    return version


def correct_incident(store: Store, number: int, **correction: Unpack[Correction]) -> Incident:
    """Append a corrected version; the old one stays, and the dossier shows both."""
    reason, by = correction["reason"], correction["by"]
    start, end, title = correction.get("start"), correction.get("end"), correction.get("title")
    channels, note = correction.get("channels"), correction.get("note")
    attachments = correction.get("attachments", ())
    if not reason.strip():
        raise InvalidInput("say why with --reason")
    if not by.strip():
        raise InvalidInput("say who corrects it with --by")
    files = read_attachments(attachments)
    joined = check_channels(channels) if channels else None
    if all(v is None for v in (start, end, title, joined, note)) and not files:
        raise InvalidInput(
            "nothing to correct: give --start, --end, --title, --channel, --note or --attach"
        )
    with store.writing() as session:
        current = get_incident(session, number)
        version = _next_version(current, CORRECTED, by.strip(), reason.strip())
        if start is not None:
            version.start = start
        if end is not None:
            refuse_a_future_end(end)
            version.end = end
        if title is not None:
            version.title = title.strip()
        if joined is not None:
            version.channels = joined
        if note is not None:
            version.note = note
        check_fields(version.title, version.start, version.end)
        store_version(session, version, files)
        write_checkpoint(session, store.config, "incident")
    # A correction is itself in the audit log: who, when, what and why.
    log_event(
        store,
        action="correction",
        subject=f"incident #{number} (version {version.id} corrects {version.corrects_id})",
        details={"by": by.strip(), "reason": reason.strip(), "incident": number},
    )
    return version


def incident_chains(session: Session) -> list[IncidentChain]:
    """Every incident with all its versions, in order of number."""
    rows = list(
        session.scalars(
            select(Incident)
            .order_by(Incident.id)
            .options(selectinload(Incident.attachments), selectinload(Incident.plan))
        )
    )
    return _chains(rows)


def _chains(rows: list[Incident]) -> list[IncidentChain]:
    by_id = {r.id: r for r in rows}
    chains: dict[int, list[Incident]] = {}
    for row in rows:  # in id order: a correction always comes after what it corrects
        root = row
        while root.corrects_id is not None and root.corrects_id in by_id:
            root = by_id[root.corrects_id]
        chains.setdefault(root.id, []).append(row)
    return [IncidentChain(versions) for _, versions in sorted(chains.items())]


def current_incidents(session: Session) -> list[Incident]:
    """Each incident in its latest version (corrections replace what they correct)."""
    return [chain.current for chain in incident_chains(session)]


def chains_overlapping(
    session: Session, start: dt.datetime | None, end: dt.datetime | None
) -> list[IncidentChain]:
    """Incidents whose current version overlaps ``[start, end)``; open ones never end."""
    result = []
    for chain in incident_chains(session):
        incident = chain.current
        inc_end = incident.end or dt.datetime.max.replace(tzinfo=dt.UTC)
        if (end is None or incident.start < end) and (start is None or inc_end > start):
            result.append(chain)
    return sorted(result, key=lambda c: (c.current.start, c.number))


def is_going_on(incident: Incident, at: dt.datetime) -> bool:
    """Started at or before ``at`` and not ended by then (start inclusive, end exclusive)."""
    return incident.start <= at and (incident.end is None or at < incident.end)


def open_incidents(session: Session, now: dt.datetime | None = None) -> list[Incident]:
    """Incidents going on now (planned ones included)."""
    at = now or utcnow()
    return [i for i in current_incidents(session) if is_going_on(i, at)]


def get_chain(session: Session, number: int) -> IncidentChain:
    """An incident by its number (the id of any of its versions is accepted too)."""
    row = session.get(Incident, number)
    if row is None:
        raise NotFound(f"no incident #{number}: see `evidence incident list`")
    root = row.number
    if row.corrects_id is not None and row.original_id is None:  # chained before 0006
        return next(c for c in incident_chains(session) if row in c.versions)
    versions = list(
        session.scalars(
            select(Incident)
            .where(or_(Incident.id == root, Incident.original_id == root))
            .order_by(Incident.id)
            .options(selectinload(Incident.attachments), selectinload(Incident.plan))
        )
    )
    return IncidentChain(versions)


def get_incident(session: Session, number: int) -> Incident:
    """The current version of incident ``number``."""
    return get_chain(session, number).current
