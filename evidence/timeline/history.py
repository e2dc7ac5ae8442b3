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
from evidence.records.incidents import IncidentChain, chains_overlapping, is_going_on
from evidence.store.models import (
    Customer,
    Direction,
    Email,
    EmailAddress,
    EmailAttachment,
    Erasure,
    IdentifierKind,
    Incident,
    IncidentAttachment,
    SmtpDelivery,
)
from evidence.timeline.calls import (
    AgentPause,
    Availability,
    Call,
    CallLeg,
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
    items = [
        item
        for item in _contact_items(session, identity, zone, rules, with_addresses=with_addresses)
        if (start is None or item.at >= start) and (end is None or item.at < end)
    ]
    # Incidents and pauses are shown for the requested period, or for the local
    # days the customer's contacts span.
    lo, hi = _days_shown(start, end, [i.at for i in items], zone)
    chains = chains_overlapping(session, lo, hi) if (lo and hi) else []
    items += [_incident_item(chain) for chain in chains]
    availability: list[Availability] = []
    if lo and hi:
        items += [_pause_item(pause) for pause in agent_pauses(session, lo, hi)]
        availability = agent_availability(session, lo, hi)
    _flag_contacts(items, [chain.current for chain in chains], availability, hours)
    items.sort(key=Item.sort_key)
    return Timeline(
        customer=customer,
        identity=identity,
        rules=rules,
        start=start,
        end=end,
        items=items,
        availability=availability,
        erasures=_customer_erasures(session, customer),
    )


def _contact_items(
    session: Session,
    identity: Identity,
    zone: ZoneInfo,
    rules: MailRules,
    *,
    with_addresses: bool = True,
) -> list[Item]:
    """The customer's emails, then calls, as timeline items (not yet flagged)."""
    items = [
        Item(
            ItemKind.EMAIL,
            found.placement.at,
            f"email:{found.email.id}",
            found.email,
            direction=found.direction,
            placement=found.placement,
        )
        for found in customer_emails(session, identity, rules, with_addresses=with_addresses)
    ]
    items += [
        Item(
            ItemKind.CALL, call.started_at, f"call:{call.uniqueid}", call, direction=call.direction
        )
        for call in customer_calls(session, identity, zone)
    ]
    return items


def _days_shown(
    start: dt.datetime | None,
    end: dt.datetime | None,
    contacts: list[dt.datetime],
    zone: ZoneInfo,
) -> tuple[dt.datetime | None, dt.datetime | None]:
    """The requested period, or else the whole local days from the first contact to the last."""
    lo = start or (day_start(min(contacts).astimezone(zone).date(), zone) if contacts else None)
    hi = end or (
        day_start(max(contacts).astimezone(zone).date() + dt.timedelta(days=1), zone)
        if contacts
        else None
    )
    return lo, hi


def _incident_item(chain: IncidentChain) -> Item:
    """An incident as it stands now, with its versions."""
    return Item(
        ItemKind.INCIDENT,
        chain.current.start,
        f"incident:{chain.number}",
        chain.current,
        versions=chain.versions,
    )


def _pause_item(pause: AgentPause) -> Item:
    return Item(ItemKind.AGENT_PAUSE, pause.start, f"agent_pause:{pause.event_id}", pause)


def _flag_contacts(
    items: list[Item],
    incidents: list[Incident],
    availability: list[Availability],
    hours: OpeningHours | None,
) -> None:
    """Set each contact's service flags: the incidents going on for its channel, the opening
    hours' verdict; and each call's agents' state when it started."""
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


def _customer_erasures(session: Session, customer: Customer) -> list[Erasure]:
    """The customer's erasures, oldest first, each with the blobs it removed."""
    return list(
        session.scalars(
            select(Erasure)
            .where(Erasure.customer_ref == customer.ref)
            .options(selectinload(Erasure.blobs))
            .order_by(Erasure.id)
        )
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
        base.update(_email_json(record, item))
    elif isinstance(record, Call):
        base.update(_call_json(record, item.availability))
    elif isinstance(record, Incident):
        base.update(_incident_json(record, item.versions or [record]))
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


def _attachment_json(attachment: EmailAttachment | IncidentAttachment) -> dict[str, Any]:
    return {
        "filename": attachment.filename,
        "content_type": attachment.content_type,
        "size": attachment.size,
        "sha256": attachment.sha256,
    }


def _email_json(email: Email, item: Item) -> dict[str, Any]:
    """An email's headers, where its time came from, and its SMTP envelopes if it was received."""
    placed = item.placement
    assert placed is not None and item.direction is not None
    data: dict[str, Any] = {
        "direction": item.direction.value,
        "message_id": email.message_id,
        "message_id_reused": email.message_id_reused,
        "from": email.from_addr,
        "from_display": email.from_display,
        "to": email.to_display,
        "cc": email.cc_display,
        "subject": email.subject,
        "date_header": _offset_iso(email.date_header, email.date_header_offset),
        "date_header_raw": email.date_header_raw,
        "received_at": iso_utc(placed.at),
        "received_source": placed.source.value,
        "received_by": placed.host,
        "sha256": email.raw_sha256,
        "attachments": [_attachment_json(a) for a in email.attachments],
    }
    if email.deliveries:  # taken by `evidence receive smtp`: its envelope(s)
        data["smtp_deliveries"] = [_delivery_json(d) for d in email.deliveries]
    return data


def _delivery_json(delivery: SmtpDelivery) -> dict[str, Any]:
    return {
        "received_at": iso_utc(delivery.received_at),
        "mail_from": delivery.mail_from,
        "rcpt_to": delivery.rcpt_to.splitlines(),
        "peer": delivery.peer,
        "helo": delivery.helo,
        "tls": delivery.tls,
        "listener": delivery.listener,
    }


def _call_json(call: Call, agents_at_start: Availability | None) -> dict[str, Any]:
    """A call's figures, each with its source, and the logs' lines and legs it was built from."""
    return {
        "direction": call.direction.value,
        "number": call.number,
        "number_raw": call.number_raw,
        "queue": call.queue,
        "queue_wait": call.queue_wait,
        "queue_wait_source": call.queue_wait_source,
        "talk_time": call.talk_time,
        "talk_time_source": call.talk_time_source,
        "outcome": call.outcome,
        "agent": call.agent,
        "uniqueid": call.uniqueid,
        "local_time": call.start_local,
        "time_flag": call.time_flag,
        "recording_sha256": call.recordings[0].sha256 if call.recordings else None,
        "source_lines": [_line_ref(line) for line in call.source_lines],
        "number_hidden": call.number_hidden,
        "system": call.system,
        "ring_time": call.ring_time,
        "ring_time_source": call.ring_time_source,
        "outcome_source": call.outcome_source,
        "outcome_recorded": call.outcome_recorded,
        "ended_at": iso_utc(call.ended_at),
        "recordings": [
            {"filename": r.filename, "sha256": r.sha256, "duration": r.duration}
            for r in call.recordings
        ],
        "legs": [_leg_json(leg) for leg in call.legs],
        "ring_attempts": [
            {"at": iso_utc(r.at), "agent": r.agent, "ring_time": r.ring_time, "result": r.result}
            for r in call.ring_attempts
        ],
        "transfers": [
            {"at": iso_utc(t.at), "kind": t.kind, "agent": t.agent, "target": t.target}
            for t in call.transfers
        ],
        "agents_at_start": _availability_summary(agents_at_start),
    }


def _leg_json(leg: CallLeg) -> dict[str, Any]:
    """One CDR leg of a call."""
    return {
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


def _incident_json(incident: Incident, versions: list[Incident]) -> dict[str, Any]:
    """An incident as it stands now, with every version and the files attached to each."""
    return {
        "start": iso_utc(incident.start),
        "end": iso_utc(incident.end),
        "title": incident.title,
        "channels": incident.channel_names,
        "note": incident.note,
        "logged_by": incident.logged_by,
        "logged_at": iso_utc(incident.logged_at),
        "recorded_at": iso_utc(incident.recorded_at),
        "corrects": incident.corrects_id,
        "number": incident.number,
        "record_id": incident.id,
        "planned": incident.plan_id is not None,
        "plan_id": incident.plan_id,
        "rrule": incident.plan.rrule if incident.plan is not None else None,
        "corrected": any(v.change == "corrected" for v in versions),
        "versions": [incident_version_json(v) for v in versions],
        "attachments": [
            {**_attachment_json(a), "record_id": v.id} for v in versions for a in v.attachments
        ],
    }


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
