"""Opening hours per channel, with public holidays, judged in local wall-clock time.

Configured in ``evidence.toml``::

    [opening_hours]
    holidays = "FI"            # country whose public holidays are closed days; "" for none
    # holiday_subdivision = "" # a region, as the `holidays` package names it

    [opening_hours.phone]
    mon-thu = "08:00-16:00"
    fri = "08:00-11:30, 12:30-15:00"
    # a day not listed is closed

    [opening_hours.phone.exceptions]
    "2026-12-23" = "08:00-12:00"
    "2026-12-28" = "closed"

A channel without a table is always open. Each contact's instant is turned into
the local date and time of the configured zone first, so "08:00-16:00" means
08:00-16:00 local on both sides of a DST change. An exception beats a holiday;
a holiday beats the weekly schedule.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from evidence.config import DAYS, DEFAULT_HOLIDAYS, ChannelHoursSettings, Config
from evidence.errors import EvidenceError

CHANNELS = ("phone", "email")
_INTERVAL = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")

Intervals = tuple[tuple[int, int], ...]  # minutes after local midnight, [start, end)


@dataclass(frozen=True)
class HoursVerdict:
    """Whether a channel was open at an instant, and on what grounds."""

    channel: str
    open: bool
    local: dt.datetime  # the instant in local time
    hours: Intervals  # that day's opening hours; () = closed all day
    basis: str  # weekly, holiday, exception
    holiday: str | None = None

    def hours_text(self) -> str:
        return ", ".join(f"{_clock(a)}-{_clock(b)}" for a, b in self.hours) or "closed"

    def describe(self) -> str:
        """English, for JSON and the terminal (the dossier words it in its own language)."""
        day = f"{DAYS[self.local.weekday()].capitalize()} {self.local:%Y-%m-%d}"
        if self.basis == "holiday":
            why = f"public holiday {self.holiday} ({day})"
        elif self.basis == "exception":
            why = f"exception for {day}: {self.hours_text()}"
        else:
            why = f"{day}: {self.hours_text()}"
        return f"{self.channel} {'open' if self.open else 'closed'}, {why}"


@dataclass
class ChannelHours:
    weekly: dict[int, Intervals]
    exceptions: dict[dt.date, Intervals]


@dataclass
class OpeningHours:
    zone: ZoneInfo
    channels: dict[str, ChannelHours]
    holidays_country: str | None = DEFAULT_HOLIDAYS
    holidays_subdivision: str | None = None
    language: str | None = None
    _holidays: dict[int, Mapping[dt.date, str]] = field(default_factory=dict, repr=False)

    def holiday(self, day: dt.date) -> str | None:
        if not self.holidays_country:
            return None
        if day.year not in self._holidays:
            self._holidays[day.year] = _holiday_table(
                self.holidays_country, self.holidays_subdivision, self.language, day.year
            )
        return self._holidays[day.year].get(day)

    def check(self, channel: str, at: dt.datetime) -> HoursVerdict | None:
        """The verdict for ``channel`` at ``at``; None when the channel has no hours set."""
        hours = self.channels.get(channel)
        if hours is None:
            return None
        local = at.astimezone(self.zone)
        day = local.date()
        holiday = self.holiday(day)
        if day in hours.exceptions:
            intervals, basis = hours.exceptions[day], "exception"
        elif holiday is not None:
            intervals, basis = (), "holiday"
        else:
            intervals, basis = hours.weekly.get(day.weekday(), ()), "weekly"
        minute = local.hour * 60 + local.minute + local.second / 60
        is_open = any(a <= minute < b for a, b in intervals)
        return HoursVerdict(channel, is_open, local, intervals, basis, holiday)


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _holiday_table(
    country: str, subdivision: str | None, language: str | None, year: int
) -> Mapping[dt.date, str]:
    import holidays

    try:
        probe = holidays.country_holidays(country, subdiv=subdivision)
        lang = language if language in getattr(probe, "supported_languages", ()) else None
        table = holidays.country_holidays(country, subdiv=subdivision, years=year, language=lang)
    except NotImplementedError as exc:
        raise EvidenceError(
            f"evidence.toml: opening_hours.holidays = {country!r} is not a country the "
            'holidays package knows: use an ISO code such as FI or SE, or "" for none'
        ) from exc
    return dict(table.items())


def parse_intervals(text: str, where: str) -> Intervals:
    """``"08:00-16:00"``, ``"08:00-11:30, 12:30-16:00"``, ``"closed"``, ``"00:00-24:00"``."""
    value = text.strip().lower()
    if value in ("", "closed"):
        return ()
    result = []
    for part in value.split(","):
        match = _INTERVAL.match(part.strip())
        if not match:
            raise EvidenceError(
                f'evidence.toml: {where} = {text!r}: write hours as "08:00-16:00", several '
                'as "08:00-11:30, 12:30-16:00", or "closed"'
            )
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if m1 > 59 or m2 > 59 or start >= 24 * 60 or end > 24 * 60 or end <= start:
            raise EvidenceError(
                f"evidence.toml: {where} = {text!r}: each interval must end after it starts, "
                "within one day (00:00-24:00)"
            )
        result.append((start, end))
    return tuple(sorted(result))


def _channel_hours(table: ChannelHoursSettings, where: str) -> ChannelHours:
    weekly: dict[int, Intervals] = {}
    exceptions = {
        date: parse_intervals(hours, f"{where}.exceptions.{date}")
        for date, hours in table.exceptions
    }
    for key, weekdays, value in table.weekly:
        for weekday in weekdays:
            weekly[weekday] = parse_intervals(value, f"{where}.{key}")
    return ChannelHours(weekly, exceptions)


def opening_hours(config: Config) -> OpeningHours | None:
    """The configured opening hours, or None when ``[opening_hours]`` is not set."""
    section = config.opening_hours
    if section is None:
        return None
    channels = {
        key: _channel_hours(table, f"opening_hours.{key}")
        for key, table in section.channels.items()
    }
    country, subdivision = section.holidays, section.holiday_subdivision
    hours = OpeningHours(config.zone, channels, country, subdivision, config.language)
    if country:
        hours.holiday(dt.date(2000, 1, 1))  # an unknown country fails now, with its reason
    return hours
