"""Asterisk call logs: cdr_csv ``Master.csv`` and ``queue_log``, line by line.

Every line is kept byte-exact (``SourceLine``) with its file and line number,
and parsed into a ``CdrRecord`` or ``QueueEvent`` (the bulk work is done by
``evidence.ingest.phonelog``). Calls are derived from these when read (see
``evidence.timeline.calls``), so the order in which the two files arrive does not matter.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from evidence.domain import CallLogFormat
from evidence.ingest.phonelog import LineError, csv_row, import_calls
from evidence.phones import NumberCache
from evidence.store.models import Base, CdrRecord, QueueEvent
from evidence.timeutil import (
    FLAG_AMBIGUOUS,
    FLAG_NONEXISTENT,
    FLAG_RESOLVED_BY_DURATION,
    UTC,
    resolve_local,
)

__all__ = ["CdrParser", "LineError", "QueueLogParser", "import_calls", "uniqueid_epoch"]

FORMAT_CDR = CallLogFormat.CDR
FORMAT_QUEUE_LOG = CallLogFormat.QUEUE_LOG

CDR_BASE = (
    "accountcode",
    "src",
    "dst",
    "dcontext",
    "clid",
    "channel",
    "dstchannel",
    "lastapp",
    "lastdata",
    "start",
    "answer",
    "end",
    "duration",
    "billsec",
    "disposition",
    "amaflags",
)
CDR_LAYOUTS = {
    16: CDR_BASE,
    18: CDR_BASE + ("uniqueid", "userfield"),
    21: CDR_BASE + ("uniqueid", "userfield", "peeraccount", "linkedid", "sequence"),
}
# A uniqueid is "<unix time>.<counter>", optionally after "<systemname>-".
_UNIQUEID_EPOCH = re.compile(r"(?:^|-)(\d{9,11})\.\d+$")
_CDR_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
_EPOCH = re.compile(r"\d{9,11}(\.\d+)?")
_EVENT = re.compile(r"[A-Z][A-Z_]*")

AGENT_EVENTS = frozenset(
    {
        "ADDMEMBER",
        "REMOVEMEMBER",
        "PAUSE",
        "UNPAUSE",
        "PAUSEALL",
        "UNPAUSEALL",
        "AGENTLOGIN",
        "AGENTLOGOFF",
        "AGENTCALLBACKLOGIN",
        "AGENTCALLBACKLOGOFF",
    }
)


def uniqueid_epoch(uniqueid: str | None) -> int | None:
    match = _UNIQUEID_EPOCH.search(uniqueid or "")
    return int(match.group(1)) if match else None


def _int(value: str, name: str) -> int:
    try:
        number = int(value.strip() or "0")
    except ValueError as exc:
        raise LineError(f"{name} is not a whole number: {value!r}") from exc
    if not -(2**31) <= number < 2**31:  # an INTEGER column; and no call lasts 68 years
        raise LineError(f"{name} {number} is out of range")
    return number


def _naive(value: str, name: str) -> dt.datetime | None:
    text = value.strip()
    if not text:
        return None
    try:
        if not _CDR_TIME.fullmatch(text):
            raise ValueError(text)
        return dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise LineError(f"{name} time {text!r} is not YYYY-MM-DD HH:MM:SS") from exc


@dataclass
class LocalTimes:
    """A record's start, answer and end as instants, with how the start was placed."""

    started: dt.datetime
    answered: dt.datetime | None
    ended: dt.datetime | None
    flag: str | None


def resolve_record_times(
    start: dt.datetime,
    answer: dt.datetime | None,
    end: dt.datetime | None,
    *,
    zone: ZoneInfo | None,
    hint_epoch: float | None,
    duration: int | None,
    billsec: int | None,
) -> LocalTimes:
    """Place a phone system's wall-clock times; ``zone`` None means they are UTC.

    The start comes from the wall clock, or, in a repeated or skipped hour, from
    an independent Unix time (the uniqueid) or from an unambiguous end time less
    the recorded duration; otherwise it is flagged. The answer and end are placed
    near the start plus the recorded durations, so a call across a DST change
    keeps its length.
    """
    if zone is None:
        return LocalTimes(
            start.replace(tzinfo=UTC),
            answer.replace(tzinfo=UTC) if answer else None,
            end.replace(tzinfo=UTC) if end else None,
            None,
        )
    resolved = resolve_local(start, zone, hint_epoch)
    started, flag = resolved.at, resolved.flag
    if flag in (FLAG_AMBIGUOUS, FLAG_NONEXISTENT) and end is not None and duration is not None:
        end_alone = resolve_local(end, zone)
        if end_alone.flag is None:
            started = end_alone.at - dt.timedelta(seconds=duration)
            flag = FLAG_RESOLVED_BY_DURATION

    def place(naive: dt.datetime | None, after: int | None) -> dt.datetime | None:
        if naive is None:
            return None
        expected = started + (dt.timedelta(seconds=after) if after is not None else naive - start)
        return resolve_local(naive, zone, expected.timestamp()).at

    answer_after = duration - billsec if duration is not None and billsec is not None else None
    return LocalTimes(started, place(answer, answer_after), place(end, duration), flag)


@dataclass
class WallClockRows:
    """What a parser of a phone system's CSV rows with wall-clock times shares: the zone
    the times are in (or UTC) and the region its numbers are dialled in."""

    zone_key: str
    utc: bool
    region: str
    numbers: NumberCache = field(init=False)

    def __post_init__(self) -> None:
        self.numbers = NumberCache(self.region)

    def times(
        self,
        start: dt.datetime,
        answer: dt.datetime | None,
        end: dt.datetime | None,
        *,
        hint_epoch: float | None,
        duration: int | None,
        billsec: int | None,
    ) -> LocalTimes:
        return resolve_record_times(
            start,
            answer,
            end,
            zone=None if self.utc else ZoneInfo(self.zone_key),
            hint_epoch=hint_epoch,
            duration=duration,
            billsec=billsec,
        )


@dataclass
class CdrParser(WallClockRows):
    """cdr_csv rows, in the layout given by their width (16, 18 or 21 columns)."""

    format: str = FORMAT_CDR
    encoding: str = "utf-8"
    multiline: bool = True

    def parse(self, text: str) -> tuple[type[Base], dict[str, Any]]:
        row = csv_row(text)
        layout = CDR_LAYOUTS.get(len(row))
        if layout is None:
            raise LineError(
                f"{len(row)} columns; an Asterisk CDR row has 16, 18 or 21 (see cdr_csv.conf)"
            )
        f = dict(zip(layout, row, strict=True))
        start = _naive(f["start"], "start")
        if start is None:
            raise LineError("the start time is empty")
        duration = _int(f["duration"], "duration")
        billsec = _int(f["billsec"], "billsec")
        uniqueid = f.get("uniqueid") or None
        times = self.times(
            start,
            _naive(f["answer"], "answer"),
            _naive(f["end"], "end"),
            hint_epoch=uniqueid_epoch(uniqueid),
            duration=duration,
            billsec=billsec,
        )
        return CdrRecord, {
            "uniqueid": uniqueid,
            "linkedid": f.get("linkedid") or None,
            "src": f["src"],
            "dst": f["dst"],
            "src_e164": self.numbers(f["src"]),
            "dst_e164": self.numbers(f["dst"]),
            "dcontext": f["dcontext"],
            "clid": f["clid"],
            "channel": f["channel"],
            "dstchannel": f["dstchannel"],
            "lastapp": f["lastapp"],
            "lastdata": f["lastdata"],
            "start_local": f["start"],
            "started_at": times.started,
            "answered_at": times.answered,
            "ended_at": times.ended,
            "time_flag": times.flag,
            "duration": duration,
            "billsec": billsec,
            "disposition": f["disposition"],
            "userfield": f.get("userfield") or None,
        }


@dataclass
class QueueLogParser:
    """``epoch|uniqueid|queue|agent|event|data...``: times are Unix times, never ambiguous."""

    region: str
    format: str = FORMAT_QUEUE_LOG
    encoding: str = "utf-8"
    multiline: bool = False
    numbers: NumberCache = field(init=False)

    def __post_init__(self) -> None:
        self.numbers = NumberCache(self.region)

    def parse(self, text: str) -> tuple[type[Base], dict[str, Any]]:
        fields = text.split("|")
        if len(fields) < 5:
            raise LineError(f"{len(fields)} fields; a queue_log line has at least 5")
        epoch_text, uniqueid, queue, agent, event, *data = fields
        if not _EPOCH.fullmatch(epoch_text):
            raise LineError(f"the time {epoch_text!r} is not a Unix time")
        at = dt.datetime.fromtimestamp(float(epoch_text), UTC)
        if not _EVENT.fullmatch(event):
            raise LineError(f"unknown event {event!r}")
        caller = None
        if event == "ENTERQUEUE" and len(data) >= 2:
            caller = self.numbers(data[1])
        return QueueEvent, {
            "at": at,
            "uniqueid": uniqueid,
            "queue": queue,
            "agent": agent,
            "event": event,
            "data": "|".join(data),
            "caller_e164": caller,
        }
