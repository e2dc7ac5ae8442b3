"""Time is evidence: aware UTC inside, local time with its offset outside.

Local wall-clock times (from phone systems, typed by users) are resolved in a
configured zone. A wall time that occurs twice (the repeated hour when summer
time ends) or never (the skipped hour when it starts) is never guessed
silently: it is resolved from an independent Unix time when one exists, and
otherwise returned with a flag that says so.
"""

from __future__ import annotations

import datetime as dt
import re
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


# What a user may type. Years outside this range are typing errors here, and they keep
# every later step (a day added to a period's end, a zone applied) inside datetime's range.
MIN_YEAR = 1900
MAX_YEAR = 2999
DATE_FORMS = "YYYY-MM-DD or D.M.YYYY"
TIME_FORMS = "local YYYY-MM-DD HH:MM or D.M.YYYY HH.MM, or ISO 8601 with an offset"

_DATE = (
    r"(?:(?P<year>\d{4})-(?P<month>\d\d)-(?P<day>\d\d)"  # ISO 8601
    r"|(?P<d>\d{1,2})\.(?P<m>\d{1,2})\.(?P<y>\d{4}))"  # Finnish: 28.9.2026, 28.09.2026
)
_USER_DATE = re.compile(_DATE)
# 2026-09-28 10:02, 2026-09-28T10:02:00, 28.9.2026 10.02, 28.9.2026 klo 10:02
_USER_TIME = re.compile(
    _DATE + r"(?:T|\s+(?:klo\s+)?)(?P<hour>\d{1,2})[:.](?P<minute>\d\d)(?:[:.](?P<second>\d\d))?"
)


def _user_day(match: re.Match[str], text: str) -> dt.date:
    year, month, day = (
        (match["year"], match["month"], match["day"])
        if match["year"]
        else (match["y"], match["m"], match["d"])
    )
    try:
        found = dt.date(int(year), int(month), int(day))
    except ValueError:
        raise InvalidInput(f"{text.strip()!r} is not a day of the calendar") from None
    _check_year(found.year, text)
    return found


def _check_year(year: int, text: str) -> None:
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise InvalidInput(
            f"{text.strip()!r} is out of range: give a year from {MIN_YEAR} to {MAX_YEAR}"
        )


def parse_user_date(text: str) -> dt.date:
    """A day typed by a user: ``2026-09-28`` (ISO 8601) or ``28.9.2026`` (as Finns write it)."""
    match = _USER_DATE.fullmatch(text.strip())
    if match is None:
        raise InvalidInput(
            f"cannot read the date {text!r}: write it as {DATE_FORMS}, e.g. 2026-09-28 or 28.9.2026"
        )
    return _user_day(match, text)


@dataclass(frozen=True)
class UserTime:
    """A time typed by a user, its form and range checked: a local wall-clock time (placed
    in a zone by :meth:`at`), or an instant when it was typed with an offset."""

    text: str
    _parsed: dt.datetime  # naive: a wall-clock time in a zone not yet known

    def at(self, zone: ZoneInfo) -> dt.datetime:
        """The instant in UTC. An ambiguous or non-existent local time is refused with a
        message saying how to write it unambiguously, rather than guessed."""
        if self._parsed.tzinfo is not None:
            return self._parsed.astimezone(UTC)
        resolved = resolve_local(self._parsed, zone)
        if resolved.flag is not None:
            kind = "ambiguous" if "ambiguous" in resolved.flag else "not a valid time"
            raise InvalidInput(
                f"{self.text!r} is {kind} in {zone.key} (a daylight-saving change): add the "
                f"offset, e.g. {self._parsed:%Y-%m-%dT%H:%M}+03:00 or +02:00"
            )
        return resolved.at


def read_user_moment(text: str) -> UserTime:
    """A day (meaning its local start: a change that took effect that day) or a time, as
    :func:`parse_user_date` and :func:`read_user_time` read them."""
    try:
        day = parse_user_date(text)
    except InvalidInput:
        return read_user_time(text)
    return UserTime(text.strip(), dt.datetime(day.year, day.month, day.day))  # noqa: DTZ001


def read_user_time(text: str) -> UserTime:
    """Check a typed time's form and range; :meth:`UserTime.at` places it in a zone.

    Local wall time as ``2026-09-28 10:02`` or ``28.9.2026 10.02`` (seconds optional,
    ``:`` or ``.`` between them), or ISO 8601 with an offset (``2026-09-28T10:02+03:00``,
    ``...Z``). A day without its time of day is refused: midnight is rarely what was meant.
    """
    raw = text.strip()
    match = _USER_TIME.fullmatch(raw)
    if match is not None:
        day = _user_day(match, text)
        try:
            clock = dt.time(int(match["hour"]), int(match["minute"]), int(match["second"] or 0))
        except ValueError:
            raise InvalidInput(f"{text.strip()!r} is not a time of day") from None
        return UserTime(raw, dt.datetime.combine(day, clock))
    parsed = None
    if len(raw) > 10 and raw[10:11] in ("T", " "):  # ISO 8601 with an offset, fractions
        try:
            parsed = dt.datetime.fromisoformat(raw)
        except ValueError:
            parsed = None
    if parsed is None:
        raise InvalidInput(
            f"cannot read the time {text!r}: write it as {TIME_FORMS}, "
            "e.g. 28.9.2026 10.02 or 2026-09-28T10:02+03:00"
        )
    _check_year(parsed.year, text)
    return UserTime(raw, parsed)


def parse_user_time(text: str, zone: ZoneInfo) -> dt.datetime:
    """A time typed by a user (see :func:`read_user_time`) as an instant in UTC."""
    return read_user_time(text).at(zone)


def parse_period(text: str) -> tuple[dt.date | None, dt.date | None]:
    """``FROM..TO`` (local days, inclusive); either end may be left open, not both."""
    first, sep, last = text.strip().partition("..")
    if not sep or not (first.strip() or last.strip()):
        raise InvalidInput(
            f"cannot read the period {text!r}: write it as FROM..TO, e.g. 2026-09-28..2026-09-30"
        )
    date_from = parse_user_date(first) if first.strip() else None
    date_to = parse_user_date(last) if last.strip() else None
    if date_from and date_to and date_to < date_from:
        raise InvalidInput(f"the period {text.strip()!r} ends before it starts")
    return date_from, date_to


def require_order(
    first: dt.date | None,
    last: dt.date | None,
    first_name: str = "--from",
    last_name: str = "--to",
) -> None:
    """Refuse a period that ends before it starts (it would silently hold nothing)."""
    if first is not None and last is not None and last < first:
        raise InvalidInput(
            f"{last_name} {last.isoformat()} is before {first_name} {first.isoformat()}"
        )


def require_in_range(*days: dt.date | None) -> None:
    """Refuse days outside the years a user may give (library callers; the CLI's types
    already refuse them), so no period computation leaves datetime's range."""
    for day in days:
        if day is not None:
            _check_year(day.year, day.isoformat())


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
