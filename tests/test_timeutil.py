from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from evidence.errors import InvalidInput
from evidence.phones import normalize_number
from evidence.timeutil import (
    FLAG_AMBIGUOUS,
    FLAG_NONEXISTENT,
    FLAG_NONEXISTENT_RESOLVED,
    FLAG_RESOLVED_BY_UNIQUEID,
    format_local,
    parse_user_time,
    resolve_local,
)

HEL = ZoneInfo("Europe/Helsinki")
UTC = dt.UTC


def test_plain_local_time() -> None:
    r = resolve_local(dt.datetime(2026, 9, 28, 10, 15, 5), HEL)  # noqa: DTZ001
    assert (r.at, r.flag) == (dt.datetime(2026, 9, 28, 7, 15, 5, tzinfo=UTC), None)


@pytest.mark.parametrize(
    ("hint", "expected", "flag"),
    [
        (1792891812, dt.datetime(2026, 10, 25, 1, 30, 12, tzinfo=UTC), FLAG_RESOLVED_BY_UNIQUEID),
        (
            1792891812 - 3600,
            dt.datetime(2026, 10, 25, 0, 30, 12, tzinfo=UTC),
            FLAG_RESOLVED_BY_UNIQUEID,
        ),
        (None, dt.datetime(2026, 10, 25, 0, 30, 12, tzinfo=UTC), FLAG_AMBIGUOUS),
        (1700000000, dt.datetime(2026, 10, 25, 0, 30, 12, tzinfo=UTC), FLAG_AMBIGUOUS),
    ],
)
def test_repeated_autumn_hour(hint: int | None, expected: dt.datetime, flag: str) -> None:
    r = resolve_local(dt.datetime(2026, 10, 25, 3, 30, 12), HEL, hint)  # noqa: DTZ001
    assert (r.at, r.flag) == (expected, flag)


def test_skipped_spring_hour() -> None:
    naive = dt.datetime(2026, 3, 29, 3, 30)  # noqa: DTZ001 - does not exist in Helsinki
    assert resolve_local(naive, HEL).flag == FLAG_NONEXISTENT
    hinted = resolve_local(naive, HEL, dt.datetime(2026, 3, 29, 1, 30, tzinfo=UTC).timestamp())
    assert hinted.flag == FLAG_NONEXISTENT_RESOLVED


def test_user_times() -> None:
    assert parse_user_time("2026-09-28 10:02", HEL) == dt.datetime(2026, 9, 28, 7, 2, tzinfo=UTC)
    assert parse_user_time("2026-10-25T03:30+02:00", HEL) == dt.datetime(
        2026, 10, 25, 1, 30, tzinfo=UTC
    )
    with pytest.raises(InvalidInput, match="ambiguous.*add the offset"):
        parse_user_time("2026-10-25 03:30", HEL)
    with pytest.raises(InvalidInput, match="cannot read the time"):
        parse_user_time("huomenna", HEL)


def test_display_shows_offset() -> None:
    when = dt.datetime(2026, 9, 28, 7, 21, 37, tzinfo=UTC)
    assert format_local(when, HEL) == "28.9.2026 10.21.37 (UTC+3)"
    assert format_local(dt.datetime(2026, 10, 25, 1, 30, 12, tzinfo=UTC), HEL) == (
        "25.10.2026 03.30.12 (UTC+2)"
    )


@pytest.mark.parametrize(
    "spelling", ["040 123 4567", "040-1234567", "0401234567", "+358401234567", "00358401234567"]
)
def test_phone_spellings_are_one_number(spelling: str) -> None:
    assert normalize_number(spelling) == "+358401234567"


@pytest.mark.parametrize("hidden", ["anonymous", "", "Restricted", "1001"])
def test_hidden_and_extensions_are_not_numbers(hidden: str) -> None:
    assert normalize_number(hidden) is None
