"""Asterisk logs: layouts, DST, joins, re-import, bad rows."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import func, select

from evidence.errors import InvalidInput
from evidence.ingest.asterisk import import_calls
from evidence.store.blobs import read_blob
from evidence.store.db import Store
from evidence.store.models import QuarantineItem, SourceLine
from evidence.timeline.calls import calls_for_numbers
from evidence.timeutil import FLAG_AMBIGUOUS, FLAG_RESOLVED_BY_UNIQUEID

BASE16 = (
    '"","0401234567","500","from-pstn","""Matti"" <0401234567>",'
    '"PJSIP/trunk-00000001","PJSIP/1001-00000002",'
    '"Queue","asiakaspalvelu,t","{start}","{answer}","{end}","{duration}","{billsec}",'
    '"{disposition}","DOCUMENTATION"'
)


def cdr(
    start: str, answer: str, end: str, duration: int, billsec: int, disp: str, extra: str = ""
) -> str:
    return (
        BASE16.format(
            start=start,
            answer=answer,
            end=end,
            duration=duration,
            billsec=billsec,
            disposition=disp,
        )
        + extra
    )


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_all_three_cdr_layouts(store: Store, tmp_path: Path) -> None:
    rows = [
        cdr(
            "2026-09-28 09:00:00",
            "2026-09-28 09:00:30",
            "2026-09-28 09:02:30",
            150,
            120,
            "ANSWERED",
        ),
        cdr(
            "2026-09-28 10:00:00",
            "",
            "2026-09-28 10:01:00",
            60,
            0,
            "NO ANSWER",
            ',"1790578800.5",""',
        ),
        cdr(
            "2026-09-28 11:00:00",
            "2026-09-28 11:00:10",
            "2026-09-28 11:01:10",
            70,
            60,
            "ANSWERED",
            ',"1790582400.7","","","1790582400.7","3"',
        ),
    ]
    report = import_calls(store, _write(tmp_path / "Master.csv", rows), "asterisk-cdr")
    assert (report.imported, report.quarantined) == (3, 0)
    with store.session() as session:
        calls = calls_for_numbers(session, ["+358401234567"])
    assert [c.started_at.isoformat() for c in calls] == [
        "2026-09-28T06:00:00+00:00",
        "2026-09-28T07:00:00+00:00",
        "2026-09-28T08:00:00+00:00",
    ]
    # Without queue_log, CDR figures are used and said to be: wait = duration - billsec.
    assert [(c.outcome, c.queue_wait, c.talk_time) for c in calls] == [
        ("answered", 30, 120),
        ("unanswered", 60, None),
        ("answered", 10, 60),
    ]
    assert calls[0].queue_wait_source == "CDR duration - billsec"
    assert calls[0].agent == "PJSIP/1001"


def test_ambiguous_autumn_hour(store: Store, tmp_path: Path) -> None:
    # 03:30 on 25.10.2026 happens twice in Helsinki. 1792891812 = the second (EET).
    with_id = cdr(
        "2026-10-25 03:30:12", "", "2026-10-25 03:30:32", 20, 0, "NO ANSWER", ',"1792891812.901",""'
    )
    without_id = cdr("2026-10-25 03:40:00", "", "2026-10-25 03:40:20", 20, 0, "NO ANSWER", ',"",""')
    import_calls(store, _write(tmp_path / "Master.csv", [with_id, without_id]), "asterisk-cdr")
    with store.session() as session:
        first, second = calls_for_numbers(session, ["+358401234567"])
    by_flag = {c.time_flag: c for c in (first, second)}
    resolved = by_flag[FLAG_RESOLVED_BY_UNIQUEID]
    assert resolved.started_at == dt.datetime(2026, 10, 25, 1, 30, 12, tzinfo=dt.UTC)
    unresolved = by_flag[FLAG_AMBIGUOUS]
    # Kept, flagged, never silently one of the two.
    assert unresolved.started_at in (
        dt.datetime(2026, 10, 25, 0, 40, tzinfo=dt.UTC),
        dt.datetime(2026, 10, 25, 1, 40, tzinfo=dt.UTC),
    )


def test_queue_log_only_call_still_counts_and_joins(store: Store, tmp_path: Path) -> None:
    log = [
        "1790579705|1790579705.312|asiakaspalvelu|NONE|ENTERQUEUE||0401234567|1",
        "1790579800|1790579705.312|asiakaspalvelu|NONE|ABANDON|1|1|95",
        "1790578980|NONE|asiakaspalvelu|PJSIP/1001|PAUSE|evakuointi",
        "1790594140|NONE|asiakaspalvelu|PJSIP/1001|UNPAUSE|",
    ]
    report = import_calls(store, _write(tmp_path / "queue_log", log), "asterisk-queue-log")
    assert report.imported == 4
    with store.session() as session:
        [call] = calls_for_numbers(session, ["+358401234567"])
    assert (call.outcome, call.queue_wait, call.queue_wait_source) == (
        "abandoned",
        95,
        "queue_log ABANDON waittime",
    )
    assert call.started_at == dt.datetime.fromtimestamp(1790579705, dt.UTC)
    assert len(call.source_lines) == 2


def test_reimport_and_grown_log_add_only_new_lines(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "queue_log"
    lines = ["1790579705|1790579705.312|q|NONE|ENTERQUEUE||0401234567|1"]
    _write(path, lines)
    assert import_calls(store, path, "asterisk-queue-log").imported == 1
    lines.append("1790579800|1790579705.312|q|NONE|ABANDON|1|1|95")
    _write(path, lines)
    again = import_calls(store, path, "asterisk-queue-log")
    assert (again.imported, again.duplicates) == (1, 1)
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(SourceLine)) == 2


def test_broken_rows_are_quarantined_and_the_rest_imported(store: Store, tmp_path: Path) -> None:
    good = cdr("2026-09-28 09:00:00", "", "2026-09-28 09:01:00", 60, 0, "NO ANSWER")
    path = tmp_path / "Master.csv"
    path.write_bytes(
        (good + "\n").encode()
        + b'"","1","2","x"\n'
        + cdr("yesterday", "", "", 1, 0, "NO ANSWER").encode()
        + b"\n"
        + b"\xff\xfe\x00junk\n"
        + (good.replace("09:00:00", "09:30:00") + "\n").encode()
    )
    report = import_calls(store, path, "asterisk-cdr")
    assert (report.imported, report.quarantined) == (2, 3)
    with store.session() as session:
        items = list(session.scalars(select(QuarantineItem).order_by(QuarantineItem.id)))
        assert [i.locator for i in items] == ["line 2", "line 3", "line 4"]
        assert "4 columns" in items[0].reason
        assert "start time 'yesterday'" in items[1].reason
        assert items[2].reason == "not UTF-8 text"
        assert read_blob(session, items[2].raw_sha256) == b"\xff\xfe\x00junk"


def test_wrong_format_is_refused_naming_the_right_one(store: Store, tmp_path: Path) -> None:
    path = _write(tmp_path / "queue_log", ["1790579705|1790579705.312|q|NONE|ENTERQUEUE||040|1"])
    with pytest.raises(InvalidInput, match="looks like an Asterisk queue_log, not asterisk-cdr"):
        import_calls(store, path, "asterisk-cdr")
