"""Calls, derived from what the phone system itself recorded.

A call is the CDR rows and queue_log events that share a uniqueid (or a
linkedid, for calls in several CDR legs). Every figure says where it came
from: the queue wait is queue_log's own hold/wait time when there is one, and
CDR ``duration - billsec`` otherwise; nothing is modelled or estimated.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from evidence.store.models import CdrRecord, Direction, QueueEvent, Recording, SourceLine

IVR_APPS = frozenset(
    {"playback", "background", "read", "voicemail", "hangup", "wait", "answer", "progress"}
)
PAUSE_EVENTS = ("PAUSE", "UNPAUSE", "PAUSEALL", "UNPAUSEALL")
_CHANNEL_SUFFIX = re.compile(r"-[0-9a-f]{6,}(;\d+)?$")

OUTCOME_LABELS = {
    "answered": "answered",
    "abandoned": "abandoned by the caller in the queue",
    "timeout": "queue timeout",
    "exit-empty": "left the queue: no agents",
    "exit-key": "left the queue by key press",
    "ivr": "ended in the IVR or an announcement",
    "unanswered": "not answered",
    "busy": "busy",
    "failed": "failed",
}


@dataclass
class Call:
    uniqueid: str
    started_at: dt.datetime
    time_flag: str | None
    direction: Direction
    number: str | None  # E.164 of the other party
    number_raw: str
    queue: str | None = None
    queue_wait: int | None = None
    queue_wait_source: str | None = None
    talk_time: int | None = None
    talk_time_source: str | None = None
    outcome: str = "unanswered"
    agent: str | None = None
    ended_at: dt.datetime | None = None
    start_local: str | None = None  # as the PBX wrote it
    note: str | None = None  # e.g. the CDR userfield
    cdr_rows: list[CdrRecord] = field(default_factory=list)
    queue_events: list[QueueEvent] = field(default_factory=list)
    recordings: list[Recording] = field(default_factory=list)
    source_lines: list[SourceLine] = field(default_factory=list)

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


def calls_for_numbers(session: Session, numbers: Iterable[str]) -> list[Call]:
    """Every call to or from one of ``numbers`` (E.164), oldest first."""
    wanted = sorted(set(numbers))
    if not wanted:
        return []
    cdr_rows = list(
        session.scalars(
            select(CdrRecord).where(
                or_(CdrRecord.src_e164.in_(wanted), CdrRecord.dst_e164.in_(wanted))
            )
        )
    )
    entered = list(
        session.scalars(
            select(QueueEvent).where(
                QueueEvent.event == "ENTERQUEUE", QueueEvent.caller_e164.in_(wanted)
            )
        )
    )
    uniqueids = {r.uniqueid for r in cdr_rows if r.uniqueid} | {e.uniqueid for e in entered}
    linkedids = {r.linkedid for r in cdr_rows if r.linkedid}
    if uniqueids or linkedids:
        more = select(CdrRecord).where(
            or_(
                CdrRecord.uniqueid.in_(sorted(uniqueids)), CdrRecord.linkedid.in_(sorted(linkedids))
            )
        )
        known = {r.id for r in cdr_rows}
        cdr_rows += [r for r in session.scalars(more) if r.id not in known]
    events = (
        list(
            session.scalars(
                select(QueueEvent)
                .where(QueueEvent.uniqueid.in_(sorted(uniqueids)))
                .order_by(QueueEvent.at, QueueEvent.id)
            )
        )
        if uniqueids
        else []
    )
    return assemble_calls(session, cdr_rows, events, set(wanted))


def assemble_calls(
    session: Session,
    cdr_rows: list[CdrRecord],
    events: list[QueueEvent],
    customer_numbers: set[str],
) -> list[Call]:
    # A call in several CDR legs shares a linkedid; queue_log knows the caller's uniqueid.
    group_of: dict[str, str] = {}
    for row in cdr_rows:
        if row.uniqueid:
            group_of.setdefault(row.uniqueid, row.linkedid or row.uniqueid)
    rows_by_group: dict[str, list[CdrRecord]] = defaultdict(list)
    for row in cdr_rows:
        rows_by_group[row.linkedid or row.uniqueid or f"cdr-{row.id}"].append(row)
    events_by_group: dict[str, list[QueueEvent]] = defaultdict(list)
    for event in events:
        events_by_group[group_of.get(event.uniqueid, event.uniqueid)].append(event)

    line_ids = [r.source_line_id for r in cdr_rows] + [e.source_line_id for e in events]
    lines = (
        {
            line.id: line
            for line in session.scalars(select(SourceLine).where(SourceLine.id.in_(line_ids)))
        }
        if line_ids
        else {}
    )
    all_uniqueids = {r.uniqueid for r in cdr_rows if r.uniqueid} | {e.uniqueid for e in events}
    recordings: dict[str, list[Recording]] = defaultdict(list)
    if all_uniqueids:
        for rec in session.scalars(
            select(Recording).where(Recording.uniqueid.in_(sorted(all_uniqueids)))
        ):
            recordings[rec.uniqueid or ""].append(rec)

    calls = []
    for group in sorted(set(rows_by_group) | set(events_by_group)):
        rows = sorted(rows_by_group.get(group, []), key=lambda r: (r.started_at, r.id))
        evs = sorted(events_by_group.get(group, []), key=lambda e: (e.at, e.id))
        call = _derive(group, rows, evs, customer_numbers)
        call.source_lines = [
            lines[i]
            for i in [r.source_line_id for r in rows] + [e.source_line_id for e in evs]
            if i in lines
        ]
        ids = {r.uniqueid for r in rows if r.uniqueid} | {e.uniqueid for e in evs} | {group}
        call.recordings = [rec for uid in sorted(ids) for rec in recordings.get(uid, [])]
        calls.append(call)
    return sorted(calls, key=lambda c: (c.started_at, c.uniqueid))


def _direction(
    row: CdrRecord | None, customer_numbers: set[str]
) -> tuple[Direction, str | None, str]:
    if row is None:
        return Direction.INBOUND, None, ""
    if row.src_e164 and not row.dst_e164:
        return Direction.INBOUND, row.src_e164, row.src
    if row.dst_e164 and not row.src_e164:
        return Direction.OUTBOUND, row.dst_e164, row.dst
    if row.src_e164 and row.dst_e164:
        if row.dst_e164 in customer_numbers and row.src_e164 not in customer_numbers:
            return Direction.OUTBOUND, row.dst_e164, row.dst
        return Direction.INBOUND, row.src_e164, row.src
    return Direction.INTERNAL, None, row.src


def _derive(
    group: str, rows: list[CdrRecord], events: list[QueueEvent], customer_numbers: set[str]
) -> Call:
    first = rows[0] if rows else None
    enter = next((e for e in events if e.event == "ENTERQUEUE"), None)
    direction, number, number_raw = _direction(first, customer_numbers)
    if first is None and enter is not None:
        number = enter.caller_e164
        number_raw = _data(enter)[1] if len(_data(enter)) > 1 else ""
    if first is not None:
        started, flag = first.started_at, first.time_flag
    else:
        assert enter is not None or events
        started, flag = (enter or events[0]).at, None
    call = Call(
        uniqueid=(first.uniqueid if first and first.uniqueid else group),
        started_at=started,
        time_flag=flag,
        direction=direction,
        number=number,
        number_raw=number_raw,
        start_local=first.start_local if first else None,
        ended_at=max((r.ended_at for r in rows if r.ended_at), default=None),
        note=first.userfield if first else None,
        cdr_rows=rows,
        queue_events=events,
    )
    if events:
        _from_queue_log(call, events)
    elif first is not None:
        _from_cdr(call, rows)
    if call.ended_at is None and events:
        call.ended_at = events[-1].at
    return call


def _from_queue_log(call: Call, events: list[QueueEvent]) -> None:
    call.queue = next((e.queue for e in events if e.queue and e.queue != "NONE"), None)
    for event in events:
        data = _data(event)
        name = event.event
        if name == "CONNECT":
            call.outcome = "answered"
            call.agent = event.agent
            call.queue_wait = _int_at(data, 0)
            call.queue_wait_source = "queue_log CONNECT holdtime"
        elif name in ("COMPLETECALLER", "COMPLETEAGENT"):
            call.talk_time = _int_at(data, 1)
            call.talk_time_source = f"queue_log {name} calltime"
            call.agent = call.agent or event.agent
        elif name in ("ABANDON", "EXITWITHTIMEOUT", "EXITEMPTY"):
            call.outcome = {"ABANDON": "abandoned", "EXITWITHTIMEOUT": "timeout"}.get(
                name, "exit-empty"
            )
            call.queue_wait = _int_at(data, 2)
            call.queue_wait_source = f"queue_log {name} waittime"
        elif name == "EXITWITHKEY":
            call.outcome = "exit-key"
            call.queue_wait = _int_at(data, 3)
            call.queue_wait_source = "queue_log EXITWITHKEY waittime"
    if call.talk_time is None and call.outcome == "answered" and call.cdr_rows:
        answered = [r for r in call.cdr_rows if r.billsec]
        if answered:
            call.talk_time = answered[-1].billsec
            call.talk_time_source = "CDR billsec"


def _from_cdr(call: Call, rows: list[CdrRecord]) -> None:
    row = rows[-1]
    app = row.lastapp.lower()
    disposition = row.disposition.upper()
    if app == "queue":
        call.queue = row.lastdata.split(",")[0] or None
    if app in IVR_APPS or (app not in ("queue", "dial") and not row.dstchannel):
        call.outcome = "ivr"
        return
    if disposition == "ANSWERED" and row.billsec > 0 and row.dstchannel:
        call.outcome = "answered"
        call.agent = _agent_name(row.dstchannel)
        call.talk_time = row.billsec
        call.talk_time_source = "CDR billsec"
    else:
        call.outcome = {"BUSY": "busy", "FAILED": "failed"}.get(disposition, "unanswered")
    if app == "queue":
        call.queue_wait = row.duration - row.billsec
        call.queue_wait_source = "CDR duration - billsec"


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
