"""A customer's history: emails, calls, incidents and agents' pauses, merged in time order."""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from evidence.config import Config
from evidence.domain import ItemKind, ServiceState
from evidence.records.customers import Identity, identity_of, load_customer
from evidence.records.incidents import chains_overlapping, is_going_on
from evidence.store.models import (
    Customer,
    Direction,
    Email,
    EmailAddress,
    Erasure,
    IdentifierKind,
    Incident,
)
from evidence.timeline.calls import (
    AgentPause,
    Availability,
    Call,
    agent_availability,
    agent_pauses,
    availability_at,
    calls_for_numbers,
)
from evidence.timeline.hours import HoursVerdict, OpeningHours
from evidence.timeline.mailfacts import MailRules, Placement, direction, placement
from evidence.timeutil import day_start, iso_utc, require_in_range, require_order

KIND_ORDER = {
    ItemKind.INCIDENT: 0,
    ItemKind.AGENT_PAUSE: 1,
    ItemKind.AGENT_AVAILABILITY: 1,
    ItemKind.EMAIL: 2,
    ItemKind.CALL: 2,
}
CONTACT_CHANNELS = {ItemKind.EMAIL: "email", ItemKind.CALL: "phone"}


@dataclass
class Item:
    kind: ItemKind
    at: dt.datetime
    id: str
    record: Email | Call | Incident | AgentPause
    incidents: list[Incident] = field(default_factory=list)  # contact inside these
    versions: list[Incident] = field(default_factory=list)  # an incident's, oldest first
    hours: HoursVerdict | None = None  # a contact's opening-hours verdict, if hours are set
    availability: Availability | None = None  # calls: the agents' state when it started
    direction: Direction | None = None  # a contact's (emails': derived when read)
    placement: Placement | None = None  # emails: where ``at`` came from

    @property
    def service_state(self) -> ServiceState | None:
        if self.kind not in CONTACT_CHANNELS:
            return None
        if self.incidents:
            return ServiceState.INCIDENT
        if self.hours is not None and not self.hours.open:
            return ServiceState.OUTSIDE_HOURS
        return ServiceState.NORMAL

    def service_detail(self) -> str | None:
        """The state in words (English), naming the incidents and the opening hours."""
        if self.kind not in CONTACT_CHANNELS:
            return None
        parts = [f"inside incident #{inc.number}: {inc.title}" for inc in self.incidents]
        if self.hours is not None:
            parts.append(self.hours.describe())
        return "; ".join(parts) or "normal service (no opening hours configured)"

    def sort_key(self) -> tuple[dt.datetime, int, str]:
        return (self.at, KIND_ORDER[self.kind], self.id)


R = TypeVar("R", Email, Call, Incident, AgentPause)


def records(items: Iterable[Item], kind: type[R]) -> list[tuple[Item, R]]:
    """The items whose record is a ``kind``, each with its record so typed."""
    return [(item, item.record) for item in items if isinstance(item.record, kind)]


@dataclass
class Timeline:
    customer: Customer
    start: dt.datetime | None  # requested period, [start, end)
    end: dt.datetime | None
    items: list[Item]
    identity: Identity  # the customer's identifiers over time, which selected the items
    rules: MailRules  # how the emails' times and directions were derived
    # Agent availability over the same days: a timeline of its own (see calls.agent_availability).
    availability: list[Availability] = field(default_factory=list)
    # The customer's erasures (GDPR Art. 17): their content is gone, the tombstones stay.
    erasures: list[Erasure] = field(default_factory=list)

    def of_kind(self, kind: ItemKind) -> list[Item]:
        return [i for i in self.items if i.kind == kind]

    def service_counts(self) -> dict[str, int]:
        """How many contacts (emails and calls) were in each service state."""
        counts: dict[str, int] = dict.fromkeys(ServiceState, 0)
        for item in self.items:
            state = item.service_state
            if state is not None:
                counts[state] += 1
        return counts

    @property
    def span(self) -> tuple[dt.datetime | None, dt.datetime | None]:
        contacts = [i.at for i in self.items if i.kind in CONTACT_CHANNELS]
        return (
            self.start or (min(contacts) if contacts else None),
            self.end or (max(contacts) if contacts else None),
        )


def period_bounds(
    date_from: dt.date | None, date_to: dt.date | None, zone: ZoneInfo
) -> tuple[dt.datetime | None, dt.datetime | None]:
    """Local calendar days, inclusive, as a half-open UTC interval."""
    require_order(date_from, date_to)
    start = day_start(date_from, zone) if date_from else None
    end = day_start(date_to + dt.timedelta(days=1), zone) if date_to else None
    return start, end


@dataclass
class CustomerMail:
    """An email of the customer's history, placed and directed under the rules in force."""

    email: Email
    placement: Placement
    direction: Direction


def customer_emails(
    session: Session,
    identity: Identity,
    rules: MailRules,
    *,
    with_addresses: bool = True,
) -> list[CustomerMail]:
    """Every email with one of the customer's addresses in From, To, Cc or Bcc, at a time
    the address was theirs; each with its attachments and Received: lines, and its
    addresses unless ``with_addresses`` is false (then they are read when asked for: a
    dossier never asks, and 10,000 emails' are 15 MB). Configuration decides only the
    time and the direction (``evidence.timeline.mailfacts``), never whether an email is shown."""
    addresses = identity.values(IdentifierKind.EMAIL)
    matched: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for start in range(0, len(addresses), 500):
        for email_id, role, address in session.execute(
            select(EmailAddress.email_id, EmailAddress.role, EmailAddress.address).where(
                EmailAddress.address.in_(addresses[start : start + 500])
            )
        ):
            matched[email_id].append((role, address))
    found: list[CustomerMail] = []
    ids = sorted(matched)
    for start in range(0, len(ids), 500):
        for mail in session.scalars(
            select(Email)
            .where(Email.id.in_(ids[start : start + 500]))
            .options(
                selectinload(Email.attachments),
                selectinload(Email.hops),
                selectinload(Email.deliveries),
                *([selectinload(Email.addresses)] if with_addresses else []),
            )
        ):
            placed = placement(mail, rules)
            held = [
                role
                for role, address in matched[mail.id]
                if identity.held(IdentifierKind.EMAIL, address, placed.at)
            ]
            if held:
                way = direction(mail, rules, party_sent="from" in held)
                found.append(CustomerMail(mail, placed, way))
    return found


def customer_calls(
    session: Session, identity: Identity, zone: ZoneInfo | None = None
) -> list[Call]:
    """Every call with one of the customer's numbers, at a time the number was theirs."""
    return [
        call
        for call in calls_for_numbers(session, identity.values(IdentifierKind.PHONE), zone)
        if identity.held(IdentifierKind.PHONE, call.number, call.started_at)
    ]


def build_timeline(
    session: Session,
    customer_ref: str,
    zone: ZoneInfo,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    hours: OpeningHours | None = None,
    *,
    rules: MailRules,
    with_addresses: bool = True,
) -> Timeline:
    """The customer's items; ``hours`` (``evidence.timeline.hours.opening_hours``) flags contacts
    outside opening hours; ``rules`` (``MailRules.of(config)``) derive the emails' times and
    directions. ``with_addresses``: see :func:`customer_emails`."""
    require_in_range(date_from, date_to)
    customer = load_customer(session, customer_ref)
    identity = identity_of(customer)
    start, end = period_bounds(date_from, date_to, zone)

    def in_period(at: dt.datetime) -> bool:
        return (start is None or at >= start) and (end is None or at < end)

    items: list[Item] = []
    for found in customer_emails(session, identity, rules, with_addresses=with_addresses):
        if in_period(found.placement.at):
            mail = found.email
            items.append(
                Item(
                    ItemKind.EMAIL,
                    found.placement.at,
                    f"email:{mail.id}",
                    mail,
                    direction=found.direction,
                    placement=found.placement,
                )
            )
    for call in customer_calls(session, identity, zone):
        if in_period(call.started_at):
            items.append(
                Item(
                    ItemKind.CALL,
                    call.started_at,
                    f"call:{call.uniqueid}",
                    call,
                    direction=call.direction,
                )
            )

    # Incidents and pauses are shown for the requested period, or for the local
    # days the customer's contacts span.
    contacts = [i.at for i in items]
    lo = start or (day_start(min(contacts).astimezone(zone).date(), zone) if contacts else None)
    hi = end or (
        day_start(max(contacts).astimezone(zone).date() + dt.timedelta(days=1), zone)
        if contacts
        else None
    )
    chains = chains_overlapping(session, lo, hi) if (lo and hi) else []
    incidents = [chain.current for chain in chains]
    for chain in chains:
        items.append(
            Item(
                ItemKind.INCIDENT,
                chain.current.start,
                f"incident:{chain.number}",
                chain.current,
                versions=chain.versions,
            )
        )
    availability: list[Availability] = []
    if lo and hi:
        for pause in agent_pauses(session, lo, hi):
            items.append(
                Item(ItemKind.AGENT_PAUSE, pause.start, f"agent_pause:{pause.event_id}", pause)
            )
        availability = agent_availability(session, lo, hi)

    for item in items:
        if item.kind is ItemKind.CALL:
            item.availability = availability_at(availability, item.at)
        channel = CONTACT_CHANNELS.get(item.kind)
        if channel is None:
            continue
        item.hours = hours.check(channel, item.at) if hours is not None else None
        item.incidents = [
            inc for inc in incidents if inc.applies_to(channel) and is_going_on(inc, item.at)
        ]
    items.sort(key=Item.sort_key)
    erasures = list(
        session.scalars(
            select(Erasure)
            .where(Erasure.customer_ref == customer.ref)
            .options(selectinload(Erasure.blobs))
            .order_by(Erasure.id)
        )
    )
    return Timeline(
        customer=customer,
        identity=identity,
        rules=rules,
        start=start,
        end=end,
        items=items,
        availability=availability,
        erasures=erasures,
    )


def _offset_iso(value: dt.datetime | None, offset_minutes: int | None) -> str | None:
    if value is None:
        return None
    zone = dt.timezone(dt.timedelta(minutes=offset_minutes or 0))
    return value.astimezone(zone).isoformat()


def _line_ref(line: Any) -> dict[str, Any] | None:
    if line is None:
        return None
    return {"source": line.source, "line": line.line_number, "format": line.format}


def _availability_summary(state: Availability | None) -> dict[str, Any] | None:
    if state is None:
        return None
    return {
        "logged_in": len(state.logged_in),
        "available": len(state.available),
        "paused": [{"agent": a, "reason": r} for a, r in sorted(state.paused.items())],
    }


def availability_json(state: Availability) -> dict[str, Any]:
    """One ``agent_availability`` item of ``timeline --json`` and ``evidence agents --json``."""
    return {
        "kind": "agent_availability",
        "at": iso_utc(state.at),
        "id": state.id,
        "event": state.event,
        "agent": state.agent,
        "queue": state.queue,
        "reason": state.reason,
        "logged_in": len(state.logged_in),
        "available": len(state.available),
        "agents_logged_in": state.logged_in,
        "agents_available": state.available,
        "paused": [{"agent": a, "reason": r} for a, r in sorted(state.paused.items())],
        "queues": {
            q: {"logged_in": c.logged_in, "available": c.available}
            for q, c in sorted(state.queues.items())
        },
        "source_line": _line_ref(state.line),
    }


def item_json(item: Item) -> dict[str, Any]:
    base: dict[str, Any] = {"kind": item.kind, "at": iso_utc(item.at), "id": item.id}
    record = item.record
    if isinstance(record, Email):
        placed = item.placement
        assert placed is not None and item.direction is not None
        base.update(
            direction=item.direction.value,
            message_id=record.message_id,
            message_id_reused=record.message_id_reused,
            **{"from": record.from_addr},
            from_display=record.from_display,
            to=record.to_display,
            cc=record.cc_display,
            subject=record.subject,
            date_header=_offset_iso(record.date_header, record.date_header_offset),
            date_header_raw=record.date_header_raw,
            received_at=iso_utc(placed.at),
            received_source=placed.source.value,
            received_by=placed.host,
            sha256=record.raw_sha256,
            attachments=[
                {
                    "filename": a.filename,
                    "content_type": a.content_type,
                    "size": a.size,
                    "sha256": a.sha256,
                }
                for a in record.attachments
            ],
        )
        if record.deliveries:  # taken by `evidence receive smtp`: its envelope(s)
            base["smtp_deliveries"] = [
                {
                    "received_at": iso_utc(d.received_at),
                    "mail_from": d.mail_from,
                    "rcpt_to": d.rcpt_to.splitlines(),
                    "peer": d.peer,
                    "helo": d.helo,
                    "tls": d.tls,
                    "listener": d.listener,
                }
                for d in record.deliveries
            ]
    elif isinstance(record, Call):
        base.update(
            direction=record.direction.value,
            number=record.number,
            number_raw=record.number_raw,
            queue=record.queue,
            queue_wait=record.queue_wait,
            queue_wait_source=record.queue_wait_source,
            talk_time=record.talk_time,
            talk_time_source=record.talk_time_source,
            outcome=record.outcome,
            agent=record.agent,
            uniqueid=record.uniqueid,
            local_time=record.start_local,
            time_flag=record.time_flag,
            recording_sha256=record.recordings[0].sha256 if record.recordings else None,
            source_lines=[
                {"source": line.source, "line": line.line_number, "format": line.format}
                for line in record.source_lines
            ],
            number_hidden=record.number_hidden,
            system=record.system,
            ring_time=record.ring_time,
            ring_time_source=record.ring_time_source,
            outcome_source=record.outcome_source,
            outcome_recorded=record.outcome_recorded,
            ended_at=iso_utc(record.ended_at),
            recordings=[
                {"filename": r.filename, "sha256": r.sha256, "duration": r.duration}
                for r in record.recordings
            ],
            legs=[
                {
                    "id": leg.id,
                    "from": leg.caller,
                    "to": leg.callee,
                    "app": leg.app,
                    "disposition": leg.disposition,
                    "started_at": iso_utc(leg.started_at),
                    "answered_at": iso_utc(leg.answered_at),
                    "ended_at": iso_utc(leg.ended_at),
                    "duration": leg.duration,
                    "billsec": leg.billsec,
                    "line": _line_ref(leg.line),
                }
                for leg in record.legs
            ],
            ring_attempts=[
                {
                    "at": iso_utc(r.at),
                    "agent": r.agent,
                    "ring_time": r.ring_time,
                    "result": r.result,
                }
                for r in record.ring_attempts
            ],
            transfers=[
                {"at": iso_utc(t.at), "kind": t.kind, "agent": t.agent, "target": t.target}
                for t in record.transfers
            ],
            agents_at_start=_availability_summary(item.availability),
        )
    elif isinstance(record, Incident):
        versions = item.versions or [record]
        base.update(
            start=iso_utc(record.start),
            end=iso_utc(record.end),
            title=record.title,
            channels=record.channel_names,
            note=record.note,
            logged_by=record.logged_by,
            logged_at=iso_utc(record.logged_at),
            recorded_at=iso_utc(record.recorded_at),
            corrects=record.corrects_id,
            number=record.number,
            record_id=record.id,
            planned=record.plan_id is not None,
            plan_id=record.plan_id,
            rrule=record.plan.rrule if record.plan is not None else None,
            corrected=any(v.change == "corrected" for v in versions),
            versions=[incident_version_json(v) for v in versions],
            attachments=[
                {
                    "filename": a.filename,
                    "content_type": a.content_type,
                    "size": a.size,
                    "sha256": a.sha256,
                    "record_id": v.id,
                }
                for v in versions
                for a in v.attachments
            ],
        )
    elif isinstance(record, AgentPause):
        base.update(
            agent=record.agent,
            start=iso_utc(record.start),
            end=iso_utc(record.end),
            reason=record.reason,
            queue=record.queue,
        )
    if item.kind in CONTACT_CHANNELS:
        base["incidents"] = [f"incident:{inc.number}" for inc in item.incidents]
        base["service_state"] = item.service_state
        base["service_detail"] = item.service_detail()
    return base


def incident_version_json(version: Incident) -> dict[str, Any]:
    """One version of an incident: what it said and how it came to be."""
    return {
        "record_id": version.id,
        "kind": version.change,
        "start": iso_utc(version.start),
        "end": iso_utc(version.end),
        "title": version.title,
        "channels": version.channel_names,
        "note": version.note,
        "recorded_at": iso_utc(version.recorded_at),
        "by": version.changed_by,
        "reason": version.correction_reason,
        "corrects": version.corrects_id,
    }


def timeline_json(timeline: Timeline) -> list[dict[str, Any]]:
    """Items and agent-availability changes, merged in time order."""
    merged: list[tuple[tuple[dt.datetime, int, str], dict[str, Any]]] = [
        (item.sort_key(), item_json(item)) for item in timeline.items
    ]
    merged += [
        ((a.at, KIND_ORDER[ItemKind.AGENT_AVAILABILITY], a.id), availability_json(a))
        for a in timeline.availability
    ]
    merged += [
        ((e.erased_at, 3, f"erasure:{e.id}"), erasure_item_json(e)) for e in timeline.erasures
    ]
    merged.sort(key=lambda pair: pair[0])
    return [data for _, data in merged]


def erasure_item_json(erasure: Erasure) -> dict[str, Any]:
    """An erasure in the timeline: the customer's content before it is gone, and why."""
    return {
        "kind": "erasure",
        "at": iso_utc(erasure.erased_at),
        "id": f"erasure:{erasure.id}",
        "erased_by": erasure.erased_by,
        "reason": erasure.reason,
        "records": json.loads(erasure.records),
        "blobs": [b.sha256 for b in erasure.blobs],
    }


def customer_timeline(
    session: Session,
    config: Config,
    customer_ref: str,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
) -> Timeline:
    """The customer's timeline as ``evidence timeline`` and the desk show it: in the
    store's zone, opening hours and mail rules from its settings."""
    from evidence.timeline.hours import opening_hours

    return build_timeline(
        session,
        customer_ref,
        config.zone,
        date_from,
        date_to,
        hours=opening_hours(config),
        rules=MailRules.of(config),
    )
