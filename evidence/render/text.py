"""The timeline as lines of text for a terminal."""

from __future__ import annotations

from collections.abc import Iterator
from zoneinfo import ZoneInfo

from evidence.domain import outcome_label
from evidence.store.models import Direction, Email, Incident
from evidence.timeline.calls import AgentPause, Call
from evidence.timeline.history import Timeline
from evidence.timeutil import format_duration, format_local


def timeline_lines(timeline: Timeline, zone: ZoneInfo) -> Iterator[str]:
    customer = timeline.customer
    yield f"{customer.ref} {customer.name}: {len(timeline.items)} items"
    for item in timeline.items:
        when = format_local(item.at, zone)
        record = item.record
        flag = f"  [incident #{item.incidents[0].number}]" if item.incidents else ""
        if not flag and item.hours is not None and not item.hours.open:
            flag = f"  [outside opening hours: {item.hours.describe()}]"
        if isinstance(record, Email):
            subject = record.subject or "(no subject)"
            if item.direction is Direction.INBOUND:
                party = f"<- {record.from_addr}"
            else:
                party = "-> " + ", ".join(
                    a.address for a in record.addresses if a.role in ("to", "cc")
                )
            yield f"{when}  email {party}: {subject}{flag}"
        elif isinstance(record, Call):
            wait = format_duration(record.queue_wait)
            talk = format_duration(record.talk_time)
            yield (
                f"{when}  call {record.direction.value} {record.number or record.number_raw}: "
                f"{outcome_label(record.outcome)}, queue {wait}, talk {talk}"
                + (f", agent {record.agent}" if record.agent else "")
                + (f" ({record.time_flag})" if record.time_flag else "")
                + flag
            )
        elif isinstance(record, Incident):
            until = format_local(record.end, zone)
            planned = " (planned)" if record.plan_id is not None else ""
            yield f"{when}  INCIDENT #{record.number}{planned} until {until}: {record.title}"
        elif isinstance(record, AgentPause):
            yield (
                f"{when}  pause {record.agent} until {format_local(record.end, zone)}"
                + (f": {record.reason}" if record.reason else "")
            )
