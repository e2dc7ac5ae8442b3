"""Time is evidence: aware UTC inside, local time with its offset outside.

Local wall-clock times (from phone systems, typed by users) are resolved in a
configured zone. A wall time that occurs twice (the repeated hour when summer
time ends) or never (the skipped hour when it starts) is never guessed
silently: it is resolved from an independent Unix time when one exists, and
otherwise returned with a flag that says so.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from evidence.errors import InvalidInput

UTC = dt.UTC

# How a local time was turned into an instant; stored with the record.
FLAG_RESOLVED_BY_UNIQUEID = "ambiguous-resolved-by-uniqueid"
FLAG_AMBIGUOUS = "ambiguous-unresolved"
FLAG_NONEXISTENT_RESOLVED = "nonexistent-resolved-by-uniqueid"
FLAG_NONEXISTENT = "nonexistent-unresolved"
# The start taken from an unambiguous end time less the recorded duration.
FLAG_RESOLVED_BY_DURATION = "ambiguous-resolved-by-duration"
# The start taken from the queue_log's Unix times of the same call (at read time).
FLAG_RESOLVED_BY_QUEUE_LOG = "ambiguous-resolved-by-queue-log"

# A Unix time embedded in an identifier (Asterisk's uniqueid) is taken as
# proof of the instant only when it lies this close to one candidate.
MAX_HINT_DISTANCE = dt.timedelta(minutes=30)


def utcnow() -> dt.datetime:
    return dt.datetime.now(UTC)


def require_aware(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: evidence times must carry a zone")
    return value.astimezone(UTC)


@dataclass(frozen=True)
class ResolvedTime:
    at: dt.datetime  # aware UTC
    flag: str | None  # None: the local time was unambiguous


def resolve_local(
    naive: dt.datetime, zone: ZoneInfo, hint_epoch: float | None = None
) -> ResolvedTime:
    """Turn a wall-clock time in ``zone`` into UTC, flagging ambiguity."""
    if naive.tzinfo is not None:
        raise ValueError("resolve_local takes a naive wall-clock time")
    first = naive.replace(tzinfo=zone, fold=0)
    second = naive.replace(tzinfo=zone, fold=1)
    off0, off1 = first.utcoffset(), second.utcoffset()
    if off0 == off1:
        return ResolvedTime(first.astimezone(UTC), None)
    candidates = [first.astimezone(UTC), second.astimezone(UTC)]
    exists = _exists(naive, zone)
    hint = dt.datetime.fromtimestamp(hint_epoch, UTC) if hint_epoch is not None else None
    if hint is not None:
        best = min(candidates, key=lambda c: abs(c - hint))
        if abs(best - hint) <= MAX_HINT_DISTANCE:
            flag = FLAG_RESOLVED_BY_UNIQUEID if exists else FLAG_NONEXISTENT_RESOLVED
            return ResolvedTime(best, flag)
    # Unresolved: keep the earlier instant, flagged, so nobody reads it as fact.
    return ResolvedTime(min(candidates), FLAG_AMBIGUOUS if exists else FLAG_NONEXISTENT)


def _exists(naive: dt.datetime, zone: ZoneInfo) -> bool:
    """A wall time exists when it survives a round trip through UTC."""
    for fold in (0, 1):
        back = naive.replace(tzinfo=zone, fold=fold).astimezone(UTC).astimezone(zone)
        if back.replace(tzinfo=None) == naive:
            return True
    return False


_INPUT_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M")


def parse_user_time(text: str, zone: ZoneInfo) -> dt.datetime:
    """A time typed by a user: ISO 8601 with an offset, or local wall time in ``zone``.

    An ambiguous or non-existent local time is refused with a message saying how
    to write it unambiguously, rather than guessed.
    """
    raw = text.strip()
    try:
        parsed = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        parsed = None
        for fmt in _INPUT_FORMATS:
            try:
                parsed = dt.datetime.strptime(raw, fmt)  # noqa: DTZ007 - zone applied below
                break
            except ValueError:
                continue
    if parsed is None:
        raise InvalidInput(
            f"cannot read the time {text!r}: write it as YYYY-MM-DD HH:MM "
            "(local time) or with an offset, e.g. 2026-09-28T10:02+03:00"
        )
    if parsed.tzinfo is not None:
        return parsed.astimezone(UTC)
    resolved = resolve_local(parsed, zone)
    if resolved.flag is not None:
        raise InvalidInput(
            f"{text!r} is {'ambiguous' if 'ambiguous' in resolved.flag else 'not a valid time'} "
            f"in {zone.key} (a daylight-saving change): add the offset, "
            f"e.g. {parsed:%Y-%m-%dT%H:%M}+03:00 or +02:00"
        )
    return resolved.at


def parse_user_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        pass
    for fmt in ("%d.%m.%Y",):
        try:
            return dt.datetime.strptime(text.strip(), fmt).date()  # noqa: DTZ007 - a date only
        except ValueError:
            continue
    raise InvalidInput(f"cannot read the date {text!r}: write it as YYYY-MM-DD, e.g. 2026-09-28")


def day_start(day: dt.date, zone: ZoneInfo) -> dt.datetime:
    """The first instant of a local calendar day, in UTC."""
    return resolve_local(dt.datetime.combine(day, dt.time()), zone).at


def offset_label(value: dt.datetime) -> str:
    """``UTC+3``, ``UTC+5:30``, ``UTC``."""
    offset = value.utcoffset() or dt.timedelta()
    minutes = int(offset.total_seconds() // 60)
    if minutes == 0:
        return "UTC"
    sign = "+" if minutes > 0 else "-"
    hours, mins = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours}" + (f":{mins:02d}" if mins else "")


def format_local(value: dt.datetime | None, zone: ZoneInfo, *, seconds: bool = True) -> str:
    """Finnish style local time with its offset: ``28.9.2026 10.21.37 (UTC+3)``."""
    if value is None:
        return "–"
    local = value.astimezone(zone)
    clock = f"{local.hour:02d}.{local.minute:02d}" + (f".{local.second:02d}" if seconds else "")
    return f"{local.day}.{local.month}.{local.year} {clock} ({offset_label(local)})"


def format_with_own_offset(value: dt.datetime | None) -> str:
    """A time in the offset it was written with (the sender's Date header)."""
    if value is None:
        return "–"
    clock = f"{value.hour:02d}.{value.minute:02d}.{value.second:02d}"
    return f"{value.day}.{value.month}.{value.year} {clock} ({offset_label(value)})"


def format_duration(seconds: int | None) -> str:
    if seconds is None:
        return "–"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min {secs} s"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


def iso_utc(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
