"""Calls, derived from what the phone system itself recorded.

An Asterisk call is the CDR rows and queue_log events that belong together: CDR
legs that share a linkedid (transfers, forks), queue_log events of the caller's
uniqueid, and the agent's leg named in the queue's CONNECT event. A FreeSWITCH
or mapped-CSV call is its rows that share a call id (the A leg's ``bleg_uuid``
names its B leg). A call known to only one file still counts.

Every figure says where it came from: the queue wait (the caller's wait for a
person) is queue_log's own hold/wait time when there is one, else the call
record's own times: the time to the answer (CDR ``duration - billsec``,
FreeSWITCH ``answer_stamp - start_stamp``, a CSV's answer less its start) or,
when nobody answered, the whole call (``duration``); the talk time is
queue_log's calltime or the CDR's billsec; nothing is modelled or estimated.
Only a call that queued, or an inbound call that rang someone, has a wait.
Nothing is stored here: calls are derived when read, so whichever file arrives
first, nothing is ever rewritten.

Agent availability (who was logged in to the queues and who was paused, with
the pause reasons) is a timeline of its own, derived from queue_log's agent
events: ``agent_availability``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from evidence.domain import CallOutcome
from evidence.phones import is_hidden
from evidence.store.models import (
    CallRecord,
    CdrRecord,
    Direction,
    QueueEvent,
    Recording,
    SourceLine,
)
from evidence.timeutil import (
    FLAG_AMBIGUOUS,
    FLAG_NONEXISTENT,
    FLAG_RESOLVED_BY_QUEUE_LOG,
    resolve_local,
)

if TYPE_CHECKING:
    from evidence.ingest.csvmap import Mapping

IVR_APPS = frozenset(
    {"playback", "background", "read", "voicemail", "hangup", "wait", "answer", "progress"}
)
PAUSE_EVENTS = ("PAUSE", "UNPAUSE", "PAUSEALL", "UNPAUSEALL")
MEMBER_EVENTS = (
    "ADDMEMBER",
    "REMOVEMEMBER",
    "AGENTLOGIN",
    "AGENTLOGOFF",
    "AGENTCALLBACKLOGIN",
    "AGENTCALLBACKLOGOFF",
)
AGENT_EVENTS = PAUSE_EVENTS + MEMBER_EVENTS
TRANSFER_EVENTS = ("TRANSFER", "BLINDTRANSFER", "ATTENDEDTRANSFER")
NO_QUEUE = ("", "NONE")
INTERNAL_CONTEXTS = ("from-internal", "internal", "default")
_CHANNEL_SUFFIX = re.compile(r"-[0-9a-f]{6,}(;\d+)?$")

ANSWERED = (CallOutcome.ANSWERED, CallOutcome.TRANSFERRED)
# A caller who waited for a person and gave up, or whom the queue let go: their
# wait is the whole call. Busy, failed, IVR and voicemail calls waited for nobody.
GAVE_UP = (
    CallOutcome.UNANSWERED,
    CallOutcome.ABANDONED,
    CallOutcome.TIMEOUT,
    CallOutcome.EXIT_EMPTY,
    CallOutcome.EXIT_KEY,
)
# The caller left the queue unanswered: the outcome, and where the event gives the waittime.
LEFT_QUEUE = {
    "ABANDON": (CallOutcome.ABANDONED, 2),
    "EXITWITHTIMEOUT": (CallOutcome.TIMEOUT, 2),
    "EXITEMPTY": (CallOutcome.EXIT_EMPTY, 2),
    "EXITWITHKEY": (CallOutcome.EXIT_KEY, 3),
}


@dataclass
class CallLeg:
    """One call-detail row of a call (Asterisk CDR, FreeSWITCH or CSV row)."""

    id: str  # uniqueid, uuid or the export's call id
    caller: str  # channel or number the leg came from
    callee: str  # channel or number it went to
    app: str | None
    disposition: str
    started_at: dt.datetime
    answered_at: dt.datetime | None
    ended_at: dt.datetime | None
    duration: int | None
    billsec: int | None
    line: SourceLine | None = None


@dataclass
class RingAttempt:
    """An agent's phone rang for the caller and nobody answered (queue_log)."""

    at: dt.datetime
    agent: str
    ring_time: float | None  # seconds, from the event's milliseconds
    result: str  # "no-answer" (RINGNOANSWER) or "canceled" (RINGCANCELED)


@dataclass
class Transfer:
    at: dt.datetime
    kind: str  # the queue_log event
    agent: str
    target: str


@dataclass
class Call:
    uniqueid: str
    started_at: dt.datetime
    time_flag: str | None
    direction: Direction
    number: str | None  # E.164 of the other party
    number_raw: str
    number_hidden: bool = False
    system: str = "asterisk"
    queue: str | None = None
    queue_wait: int | None = None
    queue_wait_source: str | None = None
    ring_time: int | None = None
    ring_time_source: str | None = None
    talk_time: int | None = None
    talk_time_source: str | None = None
    outcome: str = CallOutcome.UNANSWERED
    outcome_source: str | None = None
    outcome_recorded: str | None = None
    agent: str | None = None
    ended_at: dt.datetime | None = None
    start_local: str | None = None  # as the PBX wrote it
    note: str | None = None  # e.g. the CDR userfield
    cdr_rows: list[CdrRecord] = field(default_factory=list)
    queue_events: list[QueueEvent] = field(default_factory=list)
    call_records: list[CallRecord] = field(default_factory=list)
    legs: list[CallLeg] = field(default_factory=list)
    ring_attempts: list[RingAttempt] = field(default_factory=list)
    transfers: list[Transfer] = field(default_factory=list)
    recordings: list[Recording] = field(default_factory=list)
    source_lines: list[SourceLine] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)  # every id that names this call

    @property
    def key(self) -> str:
        return self.uniqueid


@dataclass
class AgentPause:
    agent: str
    start: dt.datetime
    end: dt.datetime | None
    reason: str
    event_id: int  # the PAUSE event it starts with
    queue: str


def _agent_name(channel: str) -> str:
    return _CHANNEL_SUFFIX.sub("", channel)


def _data(event: QueueEvent) -> list[str]:
    return event.data.split("|") if event.data else []


def _int_at(values: list[str], index: int) -> int | None:
    try:
        return int(values[index])
    except (IndexError, ValueError):
        return None


class _Groups:
    """Union-find over the ids that name the same call."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, key: str) -> str:
        self.parent.setdefault(key, key)
        while self.parent[key] != key:
            self.parent[key] = self.parent[self.parent[key]]
            key = self.parent[key]
        return key

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


# --- reading ---------------------------------------------------------------------


def calls_for_numbers(
    session: Session, numbers: Iterable[str], zone: ZoneInfo | None = None
) -> list[Call]:
    """Every call to or from one of ``numbers`` (E.164), oldest first.

    ``zone`` is the zone the PBX's local times were read in: with it, a start
    time left ambiguous at import is resolved from the call's queue_log times.
    """
    wanted = sorted(set(numbers))
    if not wanted:
        return []
    own_rows = {
        r.id: r
        for r in session.scalars(
            select(CdrRecord).where(
                or_(CdrRecord.src_e164.in_(wanted), CdrRecord.dst_e164.in_(wanted))
            )
        )
    }
    queued = session.scalars(
        select(QueueEvent).where(
            QueueEvent.event == "ENTERQUEUE", QueueEvent.caller_e164.in_(wanted)
        )
    )
    cdr_rows, events = _linked_rows_and_events(session, own_rows, {e.uniqueid for e in queued})
    records = _call_records_for(session, wanted)
    return assemble_calls(
        session, list(cdr_rows.values()), list(events.values()), set(wanted), records, zone
    )


def _linked_rows_and_events(
    session: Session, cdr_rows: dict[int, CdrRecord], queued: set[str]
) -> tuple[dict[int, CdrRecord], dict[int, QueueEvent]]:
    """The customer's own CDR rows and queued calls (by uniqueid), followed to every row and
    queue event of the same calls: legs -> their uniqueids -> queue events -> agents' legs."""
    rows = dict(cdr_rows)
    uniqueids = {r.uniqueid for r in rows.values() if r.uniqueid} | queued
    linkedids = {r.linkedid for r in rows.values() if r.linkedid}
    events: dict[int, QueueEvent] = {}
    for _ in range(3):
        if not (uniqueids or linkedids):
            break
        more = select(CdrRecord).where(
            or_(
                CdrRecord.uniqueid.in_(sorted(uniqueids)),
                CdrRecord.linkedid.in_(sorted(linkedids | uniqueids)),
            )
        )
        for row in session.scalars(more):
            rows.setdefault(row.id, row)
        uniqueids |= {r.uniqueid for r in rows.values() if r.uniqueid}
        linkedids |= {r.linkedid for r in rows.values() if r.linkedid}
        for event in session.scalars(
            select(QueueEvent).where(
                QueueEvent.uniqueid.in_(sorted(uniqueids | linkedids)),
                QueueEvent.event.not_in(AGENT_EVENTS),
            )
        ):
            events.setdefault(event.id, event)
        bridged = {
            _data(e)[1] for e in events.values() if e.event == "CONNECT" and len(_data(e)) > 1
        }
        if bridged <= uniqueids:
            break
        uniqueids |= bridged
    return rows, events


def calls_between(
    session: Session,
    start: dt.datetime,
    end: dt.datetime,
    zone: ZoneInfo | None = None,
    *,
    details: bool = True,
) -> list[Call]:
    """Every call that started in ``[start, end)``, whoever it was with (company-wide
    figures); oldest first. Directions are read without a customer: an external
    caller is inbound, an external callee outbound. ``details=False`` leaves out the
    source lines and recordings (counting needs neither, and loading them is most of
    the work)."""
    # A call's rows and events start within its own length of its start: read a
    # margin either side, then keep the calls whose start is in the period.
    margin = dt.timedelta(hours=6)
    lo, hi = start - margin, end + margin
    cdr_rows = {
        r.id: r
        for r in session.scalars(
            select(CdrRecord).where(CdrRecord.started_at >= lo, CdrRecord.started_at < hi)
        )
    }
    events = {
        e.id: e
        for e in session.scalars(
            select(QueueEvent).where(
                QueueEvent.at >= lo, QueueEvent.at < hi, QueueEvent.event.not_in(AGENT_EVENTS)
            )
        )
    }
    records = {
        r.id: r
        for r in session.scalars(
            select(CallRecord).where(CallRecord.started_at >= lo, CallRecord.started_at < hi)
        )
    }
    calls = assemble_calls(
        session,
        list(cdr_rows.values()),
        list(events.values()),
        set(),
        list(records.values()),
        zone,
        details=details,
    )
    return [c for c in calls if start <= c.started_at < end]


def _call_records_for(session: Session, wanted: list[str]) -> list[CallRecord]:
    found = {
        r.id: r
        for r in session.scalars(
            select(CallRecord).where(
                or_(CallRecord.caller_e164.in_(wanted), CallRecord.callee_e164.in_(wanted))
            )
        )
    }
    ids = {r.call_id for r in found.values() if r.call_id} | {
        r.linked_id for r in found.values() if r.linked_id
    }
    if ids:
        for row in session.scalars(
            select(CallRecord).where(
                or_(CallRecord.call_id.in_(sorted(ids)), CallRecord.linked_id.in_(sorted(ids)))
            )
        ):
            found.setdefault(row.id, row)
    return list(found.values())


def assemble_calls(
    session: Session,
    cdr_rows: list[CdrRecord],
    events: list[QueueEvent],
    customer_numbers: set[str],
    records: list[CallRecord] | None = None,
    zone: ZoneInfo | None = None,
    *,
    details: bool = True,
) -> list[Call]:
    records = records or []
    rows_by_group, events_by_group = _asterisk_groups(cdr_rows, events)
    records_by_group = _record_groups(records)
    line_ids = (
        [r.source_line_id for r in cdr_rows]
        + [e.source_line_id for e in events]
        + [r.source_line_id for r in records]
        + [r.header_line_id for r in records if r.header_line_id]
    )
    lines = _source_lines(session, line_ids if details else [])
    calls = []
    for group in sorted(set(rows_by_group) | set(events_by_group)):
        rows = sorted(rows_by_group.get(group, []), key=lambda r: (r.started_at, r.id))
        evs = sorted(events_by_group.get(group, []), key=lambda e: (e.at, e.id))
        call = _derive(group, rows, evs, customer_numbers, lines, zone)
        call.ids = {r.uniqueid for r in rows if r.uniqueid} | {e.uniqueid for e in evs} | {group}
        calls.append(call)
    for group, recs in sorted(records_by_group.items()):
        recs.sort(key=lambda r: (r.started_at, r.id))
        call = _derive_record_call(session, group, recs, customer_numbers, lines)
        call.ids = (
            {group}
            | {r.call_id for r in recs if r.call_id}
            | {r.linked_id for r in recs if r.linked_id}
        )
        calls.append(call)
    if details:
        _attach_recordings(session, calls)
    return sorted(calls, key=lambda c: (c.started_at, c.uniqueid))


def _cdr_id(row: CdrRecord) -> str:
    return row.uniqueid or f"cdr-{row.id}"


def _record_id(record: CallRecord) -> str:
    return record.call_id or f"{record.format}-{record.id}"


def _asterisk_groups(
    cdr_rows: list[CdrRecord], events: list[QueueEvent]
) -> tuple[dict[str, list[CdrRecord]], dict[str, list[QueueEvent]]]:
    """CDR rows and queue events by the call they belong to: rows that share a linkedid,
    and the agent's leg that a queue's CONNECT names."""
    groups = _Groups()
    for row in cdr_rows:
        groups.find(_cdr_id(row))
        if row.linkedid:
            groups.union(_cdr_id(row), row.linkedid)
    for event in events:
        groups.find(event.uniqueid)
        data = _data(event)
        if event.event == "CONNECT" and len(data) > 1 and data[1]:
            groups.union(event.uniqueid, data[1])
    rows_by_group: dict[str, list[CdrRecord]] = defaultdict(list)
    for row in cdr_rows:
        rows_by_group[groups.find(_cdr_id(row))].append(row)
    events_by_group: dict[str, list[QueueEvent]] = defaultdict(list)
    for event in events:
        events_by_group[groups.find(event.uniqueid)].append(event)
    return rows_by_group, events_by_group


def _record_groups(records: list[CallRecord]) -> dict[str, list[CallRecord]]:
    """FreeSWITCH and CSV rows by the call they belong to (a call id, or the B leg's A leg)."""
    groups = _Groups()
    for rec in records:
        groups.find(_record_id(rec))
        if rec.linked_id:
            groups.union(_record_id(rec), rec.linked_id)
    by_group: dict[str, list[CallRecord]] = defaultdict(list)
    for rec in records:
        by_group[groups.find(_record_id(rec))].append(rec)
    return by_group


def _source_lines(session: Session, ids: list[int]) -> dict[int, SourceLine]:
    """The log lines of these ids, read 5,000 at a time."""
    lines: dict[int, SourceLine] = {}
    for start in range(0, len(ids), 5000):
        part = ids[start : start + 5000]
        for line in session.scalars(select(SourceLine).where(SourceLine.id.in_(part))):
            lines[line.id] = line
    return lines


def _attach_recordings(session: Session, calls: list[Call]) -> None:
    ids = sorted({i for call in calls for i in call.ids})
    by_id: dict[str, list[Recording]] = defaultdict(list)
    for start in range(0, len(ids), 5000):
        for rec in session.scalars(
            select(Recording).where(Recording.uniqueid.in_(ids[start : start + 5000]))
        ):
            by_id[rec.uniqueid or ""].append(rec)
    for call in calls:
        seen: set[int] = set()
        for uid in sorted(call.ids):
            for rec in by_id.get(uid, []):
                if rec.id not in seen:
                    seen.add(rec.id)
                    call.recordings.append(rec)


# --- Asterisk ----------------------------------------------------------------------


def _direction(
    row: CdrRecord | None, customer_numbers: set[str]
) -> tuple[Direction, str | None, str]:
    """Inbound, outbound or internal, and the other party, from the caller's leg."""
    if row is None:
        return Direction.INBOUND, None, ""
    src, dst = row.src_e164, row.dst_e164
    if src and src in customer_numbers:
        return Direction.INBOUND, src, row.src
    if dst and dst in customer_numbers:
        # An agent's callback to the customer is a contact too.
        return Direction.OUTBOUND, dst, row.dst
    if src and not dst:
        return Direction.INBOUND, src, row.src
    if dst and not src:
        return Direction.OUTBOUND, dst, row.dst
    if src and dst:
        if row.dcontext.lower() in INTERNAL_CONTEXTS:
            return Direction.OUTBOUND, dst, row.dst
        return Direction.INBOUND, src, row.src
    if is_hidden(row.src) and row.dcontext.lower() not in INTERNAL_CONTEXTS:
        return Direction.INBOUND, None, row.src
    return Direction.INTERNAL, None, row.src


def _leg(row: CdrRecord, lines: dict[int, SourceLine]) -> CallLeg:
    return CallLeg(
        id=_cdr_id(row),
        caller=row.channel,
        callee=row.dstchannel,
        app=row.lastapp or None,
        disposition=row.disposition,
        started_at=row.started_at,
        answered_at=row.answered_at,
        ended_at=row.ended_at,
        duration=row.duration,
        billsec=row.billsec,
        line=lines.get(row.source_line_id),
    )


def _derive(
    group: str,
    rows: list[CdrRecord],
    events: list[QueueEvent],
    customer_numbers: set[str],
    lines: dict[int, SourceLine],
    zone: ZoneInfo | None,
) -> Call:
    first = rows[0] if rows else None
    enter = next((e for e in events if e.event == "ENTERQUEUE"), None)
    direction, number, number_raw = _direction(first, customer_numbers)
    if first is None and enter is not None:
        data = _data(enter)
        number = enter.caller_e164
        number_raw = data[1] if len(data) > 1 else ""
    if first is not None:
        started, flag = first.started_at, first.time_flag
    else:
        started, flag = (enter or events[0]).at, None
    call = Call(
        uniqueid=(
            first.uniqueid if first and first.uniqueid else enter.uniqueid if enter else group
        ),
        started_at=started,
        time_flag=flag,
        direction=direction,
        number=number,
        number_raw=number_raw,
        number_hidden=number is None and direction is Direction.INBOUND and is_hidden(number_raw),
        start_local=first.start_local if first else None,
        ended_at=max((r.ended_at for r in rows if r.ended_at), default=None),
        note=first.userfield if first else None,
        cdr_rows=rows,
        queue_events=events,
        legs=[_leg(r, lines) for r in rows],
    )
    if first is not None and events and zone is not None:
        _resolve_from_queue_log(call, first, events, zone)
    if events:
        _from_queue_log(call, events)
        if call.queue_wait is None and rows and any(e.event == "ENTERQUEUE" for e in events):
            # queue_log's figure wins; a log without one (cut short) leaves the CDR's.
            _cdr_wait(call, rows, queued=True)
    elif first is not None:
        _from_cdr(call, rows)
    if call.ended_at is None and events:
        call.ended_at = events[-1].at
    call.source_lines = [
        lines[i]
        for i in [r.source_line_id for r in rows] + [e.source_line_id for e in events]
        if i in lines
    ]
    return call


def _resolve_from_queue_log(
    call: Call, first: CdrRecord, events: list[QueueEvent], zone: ZoneInfo
) -> None:
    """A start left ambiguous at import, placed by the queue_log's Unix time of the call."""
    if first.time_flag not in (FLAG_AMBIGUOUS, FLAG_NONEXISTENT):
        return
    try:
        naive = dt.datetime.fromisoformat(first.start_local.strip())
    except ValueError:
        return
    unresolved = resolve_local(naive, zone)
    if unresolved.at != first.started_at:
        return  # read in another zone than this one: leave it as imported
    resolved = resolve_local(naive, zone, events[0].at.timestamp())
    if resolved.flag in (FLAG_AMBIGUOUS, FLAG_NONEXISTENT):
        return
    shift = resolved.at - first.started_at
    call.started_at = resolved.at
    call.time_flag = FLAG_RESOLVED_BY_QUEUE_LOG
    if call.ended_at is not None:
        call.ended_at += shift


def _from_queue_log(call: Call, events: list[QueueEvent]) -> None:
    call.queue = next((e.queue for e in events if e.queue not in NO_QUEUE), None)
    waits = [wait for event in events if (wait := _apply_queue_event(call, event)) is not None]
    if waits:
        call.queue_wait, call.queue_wait_source = _total_wait(waits)
    if call.talk_time is None and call.outcome in ANSWERED and call.cdr_rows:
        answered = [r for r in call.cdr_rows if r.billsec]
        if answered:
            call.talk_time = answered[-1].billsec
            call.talk_time_source = "CDR billsec"


def _apply_queue_event(call: Call, event: QueueEvent) -> tuple[int, str] | None:
    """What one queue_log event of the caller's says of the call; the wait it gives, if any."""
    data = _data(event)
    name = event.event
    if name == "CONNECT":
        return _connected(call, event, data)
    if name in ("COMPLETECALLER", "COMPLETEAGENT"):
        call.talk_time = _int_at(data, 1)
        call.talk_time_source = f"queue_log {name} calltime"
        call.agent = call.agent or event.agent
        if call.outcome not in ANSWERED:
            call.outcome, call.outcome_source = CallOutcome.ANSWERED, f"queue_log {name}"
    elif name in TRANSFER_EVENTS:
        _transferred(call, event, data)
    elif name in ("RINGNOANSWER", "RINGCANCELED"):
        millis = _int_at(data, 0)
        call.ring_attempts.append(
            RingAttempt(
                event.at,
                event.agent,
                millis / 1000 if millis is not None else None,
                "no-answer" if name == "RINGNOANSWER" else "canceled",
            )
        )
    elif name in LEFT_QUEUE:
        return _left_queue(call, name, data)
    return None


def _connected(call: Call, event: QueueEvent, data: list[str]) -> tuple[int, str] | None:
    """CONNECT (holdtime|bridged uniqueid|ringtime): an agent answered; the caller's hold."""
    call.outcome, call.outcome_source = CallOutcome.ANSWERED, "queue_log CONNECT"
    call.agent = event.agent
    ring = _int_at(data, 2)
    if ring is not None:
        call.ring_time, call.ring_time_source = ring, "queue_log CONNECT ringtime"
    hold = _int_at(data, 0)
    return (hold, "queue_log CONNECT holdtime") if hold is not None else None


def _transferred(call: Call, event: QueueEvent, data: list[str]) -> None:
    # TRANSFER/BLINDTRANSFER: extension|context|holdtime|calltime|origposition;
    # ATTENDEDTRANSFER: method|method data (one or two fields)|holdtime|calltime|...
    name = event.event
    if name == "ATTENDEDTRANSFER":
        talk = _int_at(data, len(data) - 2) if len(data) >= 4 else None
        target = "|".join(data[:-3]) if len(data) >= 4 else "|".join(data)
    else:
        talk = _int_at(data, 3)
        target = "@".join(d for d in data[:2] if d)
    call.transfers.append(Transfer(event.at, name, event.agent, target))
    call.outcome, call.outcome_source = CallOutcome.TRANSFERRED, f"queue_log {name}"
    call.agent = call.agent or event.agent
    if talk is not None:
        call.talk_time, call.talk_time_source = talk, f"queue_log {name} calltime"


def _left_queue(call: Call, name: str, data: list[str]) -> tuple[int, str] | None:
    call.outcome, at = LEFT_QUEUE[name]
    call.outcome_source = f"queue_log {name}"
    wait = _int_at(data, at)
    return (wait, f"queue_log {name} waittime") if wait is not None else None


def _total_wait(waits: list[tuple[int, str]]) -> tuple[int, str]:
    """A caller who queued more than once waited for all the visits together."""
    if len(waits) == 1:
        return waits[0]
    return sum(
        w for w, _ in waits
    ), f"{' + '.join(s for _, s in waits)} ({len(waits)} queue visits)"


def _answered_legs(rows: list[CdrRecord]) -> list[CdrRecord]:
    """The caller's legs that a person answered (bridged to another channel)."""
    caller_channel = rows[0].channel
    return [
        r
        for r in rows
        if r.disposition.upper() == "ANSWERED"
        and r.billsec > 0
        and r.dstchannel
        and caller_channel in (r.channel, r.dstchannel)
    ]


def _cdr_wait(call: Call, rows: list[CdrRecord], *, queued: bool) -> None:
    """The caller's wait for a person from the CDR: a call that queued, or an inbound call
    that rang someone. Until the answer when a person answered, else the whole call (a
    leg the queue itself answered, to play music, was not answered by a person)."""
    first = rows[0]
    answered = _answered_legs(rows)
    if not queued:
        if call.direction is not Direction.INBOUND:
            return  # outbound or internal: no customer waited for us
        if not answered and call.outcome != CallOutcome.UNANSWERED:
            return  # busy or failed: it never rang
    if answered:
        lead = first if queued else answered[0]
        call.queue_wait = lead.duration - lead.billsec
        call.queue_wait_source = "CDR duration - billsec"
    else:
        call.queue_wait = first.duration
        call.queue_wait_source = "CDR duration (not answered)"


def _from_cdr(call: Call, rows: list[CdrRecord]) -> None:
    first = rows[0]
    if call.direction is Direction.OUTBOUND:
        call.agent = _agent_name(first.channel)
    answered = _answered_legs(rows)
    last = rows[-1]
    app = first.lastapp.lower()
    if app == "queue":
        call.queue = first.lastdata.split(",")[0] or None
    if answered:
        call.outcome = CallOutcome.ANSWERED
        call.outcome_source = "CDR disposition ANSWERED"
        if call.direction is not Direction.OUTBOUND:
            call.agent = _agent_name(answered[0].dstchannel)
        call.talk_time = sum(r.billsec for r in answered)
        call.talk_time_source = (
            "CDR billsec" if len(answered) == 1 else f"CDR billsec (sum of {len(answered)} legs)"
        )
        if len({_agent_name(r.dstchannel) for r in answered}) > 1:
            call.outcome = CallOutcome.TRANSFERRED
            call.outcome_source = "CDR legs with the same linkedid"
    elif app in IVR_APPS or (app not in ("queue", "dial") and not last.dstchannel):
        call.outcome, call.outcome_source = CallOutcome.IVR, f"CDR lastapp {first.lastapp}"
        return
    else:
        disposition = last.disposition.upper()
        call.outcome = {
            "BUSY": CallOutcome.BUSY,
            "FAILED": CallOutcome.FAILED,
            "CONGESTION": CallOutcome.FAILED,
        }.get(disposition, CallOutcome.UNANSWERED)
        call.outcome_source = f"CDR disposition {last.disposition}"
    if app != "queue":
        lead = answered[0] if answered else first
        call.ring_time = lead.duration - lead.billsec
        call.ring_time_source = "CDR duration - billsec"
    _cdr_wait(call, rows, queued=app == "queue")


# --- FreeSWITCH and mapped CSV ---------------------------------------------------------


def _system_name(session: Session, record: CallRecord) -> str:
    if record.format == "csv" and record.mapping_sha256:
        return _mapping(session, record.mapping_sha256).system
    return "FreeSWITCH" if record.format == "freeswitch-cdr" else record.format


def _mapping(session: Session, digest: str) -> Mapping:
    from evidence.ingest.csvmap import mapping_from_bytes
    from evidence.store.blobs import read_blob

    cache: dict[str, Mapping] = session.info.setdefault("csv_mappings", {})
    if digest not in cache:
        cache[digest] = mapping_from_bytes(read_blob(session, digest))
    return cache[digest]


def _figure_source(session: Session, record: CallRecord, name: str) -> str:
    if record.format == "freeswitch-cdr":
        return {
            "ring_time": "FreeSWITCH duration - billsec",
            "talk_time": "FreeSWITCH billsec",
            "outcome": "FreeSWITCH hangup_cause",
        }.get(name, "FreeSWITCH")
    if record.mapping_sha256:
        return _mapping(session, record.mapping_sha256).source_of(name)
    return record.format


@dataclass(frozen=True)
class _Terms:
    """What a call record's system calls the fields a wait is computed from (None: not given)."""

    system: str
    start: str | None
    answer: str | None
    end: str | None
    duration: str | None
    talk: str | None


FREESWITCH_TERMS = _Terms(
    "FreeSWITCH", "start_stamp", "answer_stamp", "end_stamp", "duration", "billsec"
)


def _terms(session: Session, record: CallRecord) -> _Terms | None:
    """None when the system gives the wait itself (a mapped wait column): its figure stands."""
    if record.format == "freeswitch-cdr":
        return FREESWITCH_TERMS
    if not record.mapping_sha256:
        return None
    mapping = _mapping(session, record.mapping_sha256)
    if "queue_wait" in mapping.columns:
        return None
    ref = mapping.column_ref
    return _Terms(
        f"{mapping.system}:",
        ref("start"),
        ref("answer"),
        ref("end"),
        ref("duration"),
        ref("talk_time"),
    )


def _seconds(later: dt.datetime, earlier: dt.datetime) -> int:
    return round((later - earlier).total_seconds())


def _record_wait(session: Session, call: Call, recs: list[CallRecord]) -> None:
    """The caller's wait for a person from a FreeSWITCH or CSV call's own times.

    Only for an inbound call that a person answered or that the caller gave up on:
    until the answer (a B leg answered after the A leg was answered by the IVR or a
    queue's music is the person's answer), else the whole call.
    """
    first = recs[0]
    terms = _terms(session, first)
    if terms is None or call.direction is not Direction.INBOUND:
        return
    if call.outcome not in ANSWERED + GAVE_UP:
        return  # busy, failed, IVR, voicemail, or a word the mapping does not know
    name = terms.system
    wait: int | None = None
    source = ""
    b_answer = min((r.answered_at for r in recs[1:] if r.answered_at), default=None)
    if terms.answer and b_answer and (first.answered_at is None or b_answer > first.answered_at):
        wait = _seconds(b_answer, first.started_at)
        source = f"{name} {terms.answer} (B leg) - {terms.start} (A leg)"
    elif terms.answer and first.answered_at is not None:
        wait = _seconds(first.answered_at, first.started_at)
        source = f"{name} {terms.answer} - {terms.start}"
    elif call.outcome in ANSWERED:
        if terms.duration and terms.talk and first.duration is not None and first.talk_time:
            wait = first.duration - first.talk_time
            source = f"{name} {terms.duration} - {terms.talk}"
    elif not first.talk_time:
        # Nobody answered: an empty answer time, or the system's own word says so.
        if not (terms.answer or first.outcome):
            return
        if terms.duration and first.duration is not None:
            wait = first.duration
            source = f"{name} {terms.duration} (not answered)"
        elif terms.end and first.ended_at is not None:
            wait = _seconds(first.ended_at, first.started_at)
            source = f"{name} {terms.end} - {terms.start} (not answered)"
    if wait is not None and wait >= 0:
        call.queue_wait, call.queue_wait_source = wait, source


def _derive_record_call(
    session: Session,
    group: str,
    recs: list[CallRecord],
    customer_numbers: set[str],
    lines: dict[int, SourceLine],
) -> Call:
    first = recs[0]
    direction, number, raw = _record_direction(first, customer_numbers)
    call = Call(
        uniqueid=first.call_id or group,
        started_at=first.started_at,
        time_flag=first.time_flag,
        direction=direction,
        number=number,
        number_raw=raw,
        number_hidden=number is None and direction is Direction.INBOUND and is_hidden(raw),
        system=_system_name(session, first),
        start_local=first.start_local,
        ended_at=max((r.ended_at for r in recs if r.ended_at), default=None),
        call_records=recs,
    )
    for name in ("queue_wait", "ring_time", "talk_time"):
        holder = next((r for r in recs if getattr(r, name) is not None), None)
        if holder is not None:
            setattr(call, name, getattr(holder, name))
            setattr(call, f"{name}_source", _figure_source(session, holder, name))
    call.queue = next((r.queue for r in recs if r.queue), None)
    call.agent = _record_agent(recs, direction)
    call.outcome_recorded = first.outcome_recorded
    call.outcome = first.outcome or (
        CallOutcome.UNKNOWN if first.outcome_recorded else CallOutcome.UNANSWERED
    )
    call.outcome_source = _figure_source(session, first, "outcome") or None
    if call.queue_wait is None:
        _record_wait(session, call, recs)
    call.legs = [_record_leg(r, lines) for r in recs]
    headers = sorted({r.header_line_id for r in recs if r.header_line_id})
    call.source_lines = [lines[i] for i in headers + [r.source_line_id for r in recs] if i in lines]
    return call


def _record_direction(
    first: CallRecord, customer_numbers: set[str]
) -> tuple[Direction, str | None, str]:
    """Inbound, outbound or internal, and the other party, from a call's first record: the
    customer's side when known, else the record's own direction, else the external side."""
    if first.caller_e164 and first.caller_e164 in customer_numbers:
        return Direction.INBOUND, first.caller_e164, first.caller
    if first.callee_e164 and first.callee_e164 in customer_numbers:
        return Direction.OUTBOUND, first.callee_e164, first.callee
    if first.direction:
        direction = Direction(first.direction)
        if direction is Direction.OUTBOUND:
            return direction, first.callee_e164, first.callee
        return direction, first.caller_e164, first.caller
    if first.caller_e164:
        return Direction.INBOUND, first.caller_e164, first.caller
    if first.callee_e164:
        return Direction.OUTBOUND, first.callee_e164, first.callee
    if is_hidden(first.caller):
        return Direction.INBOUND, None, first.caller
    return Direction.INTERNAL, None, first.caller


def _record_agent(recs: list[CallRecord], direction: Direction) -> str | None:
    """The agent a record names; for FreeSWITCH, else the internal party of the call."""
    agent = next((r.agent for r in recs if r.agent), None)
    first = recs[0]
    if agent is None and first.format == "freeswitch-cdr":
        if direction is Direction.OUTBOUND and not first.caller_e164:
            agent = first.caller
        elif first.outcome == CallOutcome.ANSWERED and not first.callee_e164:
            agent = first.callee
    return agent


def _record_leg(record: CallRecord, lines: dict[int, SourceLine]) -> CallLeg:
    return CallLeg(
        id=_record_id(record),
        caller=record.caller,
        callee=record.callee,
        app=record.context,
        disposition=record.outcome_recorded or "",
        started_at=record.started_at,
        answered_at=record.answered_at,
        ended_at=record.ended_at,
        duration=record.duration,
        billsec=record.talk_time,
        line=lines.get(record.source_line_id),
    )


# --- agents --------------------------------------------------------------------------


def agent_pauses(
    session: Session, start: dt.datetime | None, end: dt.datetime | None
) -> list[AgentPause]:
    """Agents' pauses (PAUSE..UNPAUSE, PAUSEALL..UNPAUSEALL) overlapping [start, end)."""
    query = select(QueueEvent).where(QueueEvent.event.in_(PAUSE_EVENTS))
    if end is not None:
        query = query.where(QueueEvent.at < end)
    open_pauses: dict[str, AgentPause] = {}
    pauses: list[AgentPause] = []
    for event in session.scalars(query.order_by(QueueEvent.at, QueueEvent.id)):
        if event.event in ("PAUSE", "PAUSEALL"):
            if event.agent not in open_pauses:
                pause = AgentPause(
                    agent=event.agent,
                    start=event.at,
                    end=None,
                    reason=_data(event)[0] if _data(event) else "",
                    event_id=event.id,
                    queue=event.queue,
                )
                open_pauses[event.agent] = pause
                pauses.append(pause)
        else:
            closing = open_pauses.pop(event.agent, None)
            if closing is not None:
                closing.end = event.at
    return [
        p
        for p in pauses
        if (start is None or p.end is None or p.end > start) and (end is None or p.start < end)
    ]


@dataclass
class QueueCount:
    logged_in: int
    available: int


@dataclass
class Availability:
    """Who could take calls from ``at`` on, after ``event`` (or the state at a period's start)."""

    at: dt.datetime
    event_id: int | None  # None: the state carried into the period
    event: str | None
    agent: str | None
    queue: str | None
    reason: str | None
    logged_in: list[str]
    available: list[str]
    paused: dict[str, str]  # agent -> pause reason
    queues: dict[str, QueueCount]
    line: SourceLine | None = None

    @property
    def id(self) -> str:
        return f"agent_availability:{self.event_id if self.event_id is not None else 'start'}"


class _AgentState:
    """Queue membership and pauses, replayed from queue_log's agent events."""

    def __init__(self) -> None:
        self.members: dict[str, set[str]] = defaultdict(set)  # agent -> queues ("" = unnamed)
        self.paused_all: dict[str, str] = {}  # agent -> reason, paused in every queue
        self.paused_in: dict[str, dict[str, str]] = defaultdict(dict)  # agent -> queue -> reason

    def apply(self, event: QueueEvent) -> None:
        agent, name = event.agent, event.event
        queue = "" if event.queue in NO_QUEUE else event.queue
        data = _data(event)
        reason = data[0] if data else ""
        if name in ("ADDMEMBER", "AGENTLOGIN", "AGENTCALLBACKLOGIN"):
            self.members[agent].add(queue)
        elif name == "REMOVEMEMBER":
            self.members[agent].discard(queue)
            self.paused_in[agent].pop(queue, None)
            if not self.members[agent]:
                self._forget(agent)
        elif name in ("AGENTLOGOFF", "AGENTCALLBACKLOGOFF"):
            self._forget(agent)
        elif name == "PAUSEALL" or (name == "PAUSE" and not queue):
            self.paused_all[agent] = reason
        elif name == "PAUSE":
            self.paused_in[agent][queue] = reason
        elif name == "UNPAUSEALL" or (name == "UNPAUSE" and not queue):
            self.paused_all.pop(agent, None)
            self.paused_in.pop(agent, None)
        elif name == "UNPAUSE":
            self.paused_in[agent].pop(queue, None)
            # An unpause in one queue ends a pause that was logged without a queue too.
            self.paused_all.pop(agent, None)

    def _forget(self, agent: str) -> None:
        self.members.pop(agent, None)
        self.paused_all.pop(agent, None)
        self.paused_in.pop(agent, None)

    def pause_reason(self, agent: str, queue: str | None = None) -> str | None:
        if agent in self.paused_all:
            return self.paused_all[agent]
        per_queue = self.paused_in.get(agent, {})
        if queue is not None:
            return per_queue.get(queue)
        named = {q for q in self.members.get(agent, set()) if q}
        # Paused overall when paused in every named queue it serves (or, when its
        # queues are not named in the log, in any queue).
        if per_queue and (not named or named <= set(per_queue)):
            return next(iter(per_queue.values()))
        return None

    def snapshot(self, at: dt.datetime, event: QueueEvent | None) -> Availability:
        logged_in = sorted(a for a, queues in self.members.items() if queues)
        paused = {a: reason for a in logged_in if (reason := self.pause_reason(a)) is not None}
        queues: dict[str, QueueCount] = {}
        names = sorted({q for qs in self.members.values() for q in qs if q})
        for queue in names:
            members = [a for a in logged_in if queue in self.members[a]]
            free = [a for a in members if self.pause_reason(a, queue) is None]
            queues[queue] = QueueCount(len(members), len(free))
        return Availability(
            at=at,
            event_id=event.id if event else None,
            event=event.event if event else None,
            agent=event.agent if event else None,
            queue=event.queue if event else None,
            reason=(_data(event)[0] if event and _data(event) else None),
            logged_in=logged_in,
            available=[a for a in logged_in if a not in paused],
            paused=paused,
            queues=queues,
        )


def agent_availability(
    session: Session, start: dt.datetime | None, end: dt.datetime | None
) -> list[Availability]:
    """How many agents were logged in and not paused, and why the others were paused.

    One entry for every agent event (ADDMEMBER, REMOVEMEMBER, PAUSE, UNPAUSE,
    PAUSEALL, UNPAUSEALL, AGENTLOGIN, AGENTLOGOFF) in [start, end), after a first
    entry with the state carried into the period. The state is replayed from the
    first agent event in the store, so it is right however long the log is.
    Empty when the store has no agent events.
    """
    query = select(QueueEvent).where(QueueEvent.event.in_(AGENT_EVENTS))
    if end is not None:
        query = query.where(QueueEvent.at < end)
    state = _AgentState()
    result: list[Availability] = []
    carried = False
    any_event = False
    for event in session.scalars(query.order_by(QueueEvent.at, QueueEvent.id)):
        any_event = True
        if start is not None and event.at >= start and not carried:
            result.append(state.snapshot(start, None))
            carried = True
        state.apply(event)
        if start is None or event.at >= start:
            result.append(state.snapshot(event.at, event))
    if any_event and start is not None and not carried:
        result.append(state.snapshot(start, None))
    if result:
        ids = [a.event_id for a in result if a.event_id is not None]
        if ids:
            line_of: dict[int, SourceLine] = {}
            for begin in range(0, len(ids), 5000):
                query_lines = (
                    select(QueueEvent.id, SourceLine)
                    .join(SourceLine, SourceLine.id == QueueEvent.source_line_id)
                    .where(QueueEvent.id.in_(ids[begin : begin + 5000]))
                )
                for event_id, line in session.execute(query_lines):
                    line_of[event_id] = line
            for item in result:
                if item.event_id is not None:
                    item.line = line_of.get(item.event_id)
    return result


def availability_at(changes: list[Availability], at: dt.datetime) -> Availability | None:
    """The state in force at ``at`` (the last change at or before it)."""
    current = None
    for change in changes:
        if change.at <= at:
            current = change
        else:
            break
    return current
