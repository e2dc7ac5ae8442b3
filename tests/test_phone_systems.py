"""Phone systems: every queue_log event, legs, callbacks, FreeSWITCH, mapped CSV, agents."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from evidence.errors import InvalidInput
from evidence.ingest.phonelog import BulkOptions, import_calls
from evidence.ingest.recordings import gsm_duration, import_recordings, mp3_duration
from evidence.store import ledger
from evidence.store.blobs import read_blob
from evidence.store.db import Store
from evidence.store.models import (
    CallRecord,
    CdrRecord,
    LedgerEntry,
    QuarantineItem,
    QueueEvent,
    SourceLine,
)
from evidence.timeline.calls import agent_availability, assemble_calls, calls_for_numbers
from evidence.timeutil import (
    FLAG_AMBIGUOUS,
    FLAG_RESOLVED_BY_DURATION,
    FLAG_RESOLVED_BY_QUEUE_LOG,
)
from tests.conftest import Cli, Env

MATTI = "+358401234567"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "mappings"
UTC = dt.UTC


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def cdr21(
    src: str,
    dst: str,
    channel: str,
    dstchannel: str,
    app: str,
    start: str,
    answer: str,
    end: str,
    duration: int,
    billsec: int,
    disposition: str,
    uniqueid: str,
    linkedid: str,
    context: str = "from-pstn",
    data: str = "",
) -> str:
    return (
        f'"","{src}","{dst}","{context}","""{src}"" <{src}>","{channel}","{dstchannel}",'
        f'"{app}","{data}","{start}","{answer}","{end}","{duration}","{billsec}",'
        f'"{disposition}","DOCUMENTATION","{uniqueid}","","","{linkedid}","1"'
    )


def test_bulk_rows_are_chained_with_the_orm_encoding(store: Store, tmp_path: Path) -> None:
    """The bulk path's ledger payloads equal canonical_payload of the rows read back."""
    cdr = _write(
        tmp_path / "Master.csv",
        [
            cdr21(
                "0401234567",
                "500",
                "PJSIP/trunk-01",
                "PJSIP/1001-02",
                "Queue",
                "2026-09-28 09:00:00",
                "2026-09-28 09:00:30",
                "2026-09-28 09:02:30",
                150,
                120,
                "ANSWERED",
                "1790575200.1",
                "1790575200.1",
            )
        ],
    )
    log = _write(
        tmp_path / "queue_log",
        ["1790575200|1790575200.1|q|NONE|ENTERQUEUE||0401234567|1"],
    )
    fs = _write(
        tmp_path / "fs.csv",
        [
            '"Matti","0401234567","0201234500","public","2026-09-28 09:10:00",'
            '"2026-09-28 09:10:05","2026-09-28 09:11:05","65","60","NORMAL_CLEARING",'
            '"0b7f6a1e-2c43-4d1a-9a53-3f1f1c3e2b10","","","PCMA","PCMA"'
        ],
    )
    import_calls(store, cdr, "asterisk-cdr")
    import_calls(store, log, "asterisk-queue-log")
    import_calls(store, fs, "freeswitch-cdr")
    with store.session() as session:
        entries = list(session.scalars(select(LedgerEntry).order_by(LedgerEntry.seq)))
        assert len(entries) == 3
        prev = ledger.GENESIS
        for entry, child_model in zip(entries, (CdrRecord, QueueEvent, CallRecord), strict=True):
            line = session.get(SourceLine, int(entry.record_id))
            assert line is not None
            child = session.scalar(select(child_model).where(child_model.source_line_id == line.id))
            assert child is not None
            assert entry.payload == ledger.canonical_payload(line, [child])
            assert entry.prev_hash == prev
            assert entry.entry_hash == ledger.entry_hash(prev, entry.payload)
            prev = entry.entry_hash
        assert read_blob is not None


def test_worker_process_imports_the_same(store: Store, tmp_path: Path) -> None:
    lines = [
        f"{1790575200 + i}|1790575200.{i}|q|NONE|ENTERQUEUE||0401234567|1" for i in range(250)
    ] + ["junk line"]
    path = _write(tmp_path / "queue_log", lines)
    options = BulkOptions(chunk_lines=40, worker_min_bytes=0)
    report = import_calls(store, path, "asterisk-queue-log", options=options)
    assert (report.imported, report.quarantined) == (250, 1)
    again = import_calls(store, path, "asterisk-queue-log", options=options)
    assert (again.imported, again.duplicates, again.quarantined) == (0, 251, 0)
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(QueueEvent)) == 250
        assert session.scalar(select(func.count()).select_from(LedgerEntry)) == 251
        assert len(calls_for_numbers(session, [MATTI])) == 250


def test_every_queue_log_event(store: Store, tmp_path: Path) -> None:
    log = [
        "1790575000|NONE|q|PJSIP/1001|ADDMEMBER|",
        # Rings 1002 without answer, 1001 answers, then a blind transfer to billing.
        "1790575200|1790575200.1|q|NONE|ENTERQUEUE||0401234567|1",
        "1790575215|1790575200.1|q|PJSIP/1002|RINGNOANSWER|15000",
        "1790575230|1790575200.1|q|PJSIP/1001|CONNECT|30|1790575215.2|3",
        "1790575290|1790575200.1|q|PJSIP/1001|BLINDTRANSFER|600|from-internal|30|60|1",
        # Attended transfer (Asterisk 12+, BRIDGE method).
        "1790576000|1790576000.3|q|NONE|ENTERQUEUE||0401234567|1",
        "1790576010|1790576000.3|q|PJSIP/1002|RINGCANCELED|2500",
        "1790576010|1790576000.3|q|PJSIP/1001|CONNECT|10|1790576005.4|2",
        "1790576100|1790576000.3|q|PJSIP/1001|ATTENDEDTRANSFER|BRIDGE|abc-bridge|10|90|1",
        "1790577000|1790577000.5|q|NONE|ENTERQUEUE||0401234567|1",
        "1790577003|1790577000.5|q|NONE|EXITEMPTY|1|1|3",
        "1790578000|1790578000.6|q|NONE|ENTERQUEUE||0401234567|1",
        "1790578020|1790578000.6|q|NONE|EXITWITHKEY|5|1|1|20",
        "1790579000|1790579000.7|q|NONE|ENTERQUEUE||0401234567|1",
        "1790579010|1790579000.7|q|PJSIP/1001|CONNECT|10|1790579005.8|4",
        "1790579070|1790579000.7|q|PJSIP/1001|COMPLETEAGENT|10|60|1",
    ]
    import_calls(store, _write(tmp_path / "queue_log", log), "asterisk-queue-log")
    with store.session() as session:
        blind, attended, empty, key, complete = calls_for_numbers(session, [MATTI])
    assert (blind.outcome, blind.queue_wait, blind.talk_time, blind.ring_time) == (
        "transferred",
        30,
        60,
        3,
    )
    assert blind.ring_time_source == "queue_log CONNECT ringtime"
    assert blind.talk_time_source == "queue_log BLINDTRANSFER calltime"
    assert [(t.kind, t.agent, t.target) for t in blind.transfers] == [
        ("BLINDTRANSFER", "PJSIP/1001", "600@from-internal")
    ]
    assert [(r.agent, r.ring_time, r.result) for r in blind.ring_attempts] == [
        ("PJSIP/1002", 15.0, "no-answer")
    ]
    assert (attended.outcome, attended.talk_time) == ("transferred", 90)
    assert attended.transfers[0].target == "BRIDGE|abc-bridge"
    assert attended.ring_attempts[0].result == "canceled"
    assert (empty.outcome, empty.queue_wait, empty.queue_wait_source) == (
        "exit-empty",
        3,
        "queue_log EXITEMPTY waittime",
    )
    assert (key.outcome, key.queue_wait) == ("exit-key", 20)
    assert (complete.outcome, complete.talk_time, complete.agent) == ("answered", 60, "PJSIP/1001")
    assert complete.outcome_source == "queue_log CONNECT"


def test_cdr_legs_with_one_linkedid_are_one_call(store: Store, tmp_path: Path) -> None:
    caller = "PJSIP/trunk-00000001"
    rows = [
        cdr21(
            "0401234567",
            "500",
            caller,
            "PJSIP/1001-00000002",
            "Queue",
            "2026-09-28 09:00:00",
            "2026-09-28 09:00:40",
            "2026-09-28 09:02:40",
            160,
            120,
            "ANSWERED",
            "1790575200.1",
            "1790575200.1",
            data="asiakaspalvelu,t",
        ),
        cdr21(
            "0401234567",
            "600",
            caller,
            "PJSIP/1002-00000003",
            "Dial",
            "2026-09-28 09:02:40",
            "2026-09-28 09:02:50",
            "2026-09-28 09:04:50",
            130,
            120,
            "ANSWERED",
            "1790575360.4",
            "1790575200.1",
        ),
    ]
    import_calls(store, _write(tmp_path / "Master.csv", rows), "asterisk-cdr")
    with store.session() as session:
        [call] = calls_for_numbers(session, [MATTI])
    assert [leg.id for leg in call.legs] == ["1790575200.1", "1790575360.4"]
    assert (call.outcome, call.queue_wait, call.talk_time) == ("transferred", 40, 240)
    assert call.talk_time_source == "CDR billsec (sum of 2 legs)"
    assert call.agent == "PJSIP/1001"
    assert len(call.source_lines) == 2


def test_callback_from_an_agent_is_an_outbound_contact(store: Store, tmp_path: Path) -> None:
    row = cdr21(
        "1001",
        "0401234567",
        "PJSIP/1001-00000010",
        "PJSIP/trunk-00000011",
        "Dial",
        "2026-09-28 15:00:00",
        "2026-09-28 15:00:12",
        "2026-09-28 15:03:12",
        192,
        180,
        "ANSWERED",
        "1790596800.20",
        "1790596800.20",
        context="from-internal",
    )
    import_calls(store, _write(tmp_path / "Master.csv", [row]), "asterisk-cdr")
    with store.session() as session:
        [call] = calls_for_numbers(session, [MATTI])
    assert (call.direction.value, call.number, call.agent) == ("outbound", MATTI, "PJSIP/1001")
    assert (call.outcome, call.talk_time, call.ring_time) == ("answered", 180, 12)
    assert call.ring_time_source == "CDR duration - billsec"


def test_hidden_caller_is_kept_hidden(store: Store, tmp_path: Path) -> None:
    row = cdr21(
        "anonymous",
        "500",
        "PJSIP/trunk-01",
        "",
        "Queue",
        "2026-09-28 09:00:00",
        "",
        "2026-09-28 09:01:00",
        60,
        0,
        "NO ANSWER",
        "1790575200.1",
        "1790575200.1",
    )
    import_calls(store, _write(tmp_path / "Master.csv", [row]), "asterisk-cdr")
    with store.session() as session:
        rows = list(session.scalars(select(CdrRecord)))
        assert rows[0].src_e164 is None
        [call] = assemble_calls(session, rows, [], {MATTI})
        assert calls_for_numbers(session, [MATTI]) == []
    assert (call.direction.value, call.number, call.number_raw, call.number_hidden) == (
        "inbound",
        None,
        "anonymous",
        True,
    )


def test_autumn_hour_resolved_from_queue_log_or_duration(store: Store, tmp_path: Path) -> None:
    from zoneinfo import ZoneInfo

    no_epoch = cdr21(
        "0401234567",
        "500",
        "PJSIP/trunk-01",
        "",
        "Queue",
        "2026-10-25 03:30:12",
        "",
        "2026-10-25 03:30:32",
        20,
        0,
        "NO ANSWER",
        "pbx-call-77",
        "pbx-call-77",
    )
    # Starts in the repeated hour, ends after it: the end less the duration places it.
    spans = cdr21(
        "0401234567",
        "500",
        "PJSIP/trunk-02",
        "",
        "Queue",
        "2026-10-25 03:59:50",
        "",
        "2026-10-25 04:00:30",
        40,
        0,
        "NO ANSWER",
        "pbx-call-78",
        "pbx-call-78",
    )
    import_calls(store, _write(tmp_path / "Master.csv", [no_epoch, spans]), "asterisk-cdr")
    with store.session() as session:
        flags = {r.uniqueid: r.time_flag for r in session.scalars(select(CdrRecord))}
        assert flags == {"pbx-call-77": FLAG_AMBIGUOUS, "pbx-call-78": FLAG_RESOLVED_BY_DURATION}
        calls = calls_for_numbers(session, [MATTI], ZoneInfo("Europe/Helsinki"))
        # Without the queue_log, still flagged.
        assert calls[0].time_flag == FLAG_AMBIGUOUS
    assert calls[1].started_at == dt.datetime(2026, 10, 25, 1, 59, 50, tzinfo=UTC)
    # 1792891815 = 03:30:15 EET, the second 03:30.
    log = ["1792891815|pbx-call-77|q|NONE|ENTERQUEUE||0401234567|1"]
    import_calls(store, _write(tmp_path / "queue_log", log), "asterisk-queue-log")
    with store.session() as session:
        call = calls_for_numbers(session, [MATTI], ZoneInfo("Europe/Helsinki"))[0]
    assert call.time_flag == FLAG_RESOLVED_BY_QUEUE_LOG
    assert call.started_at == dt.datetime(2026, 10, 25, 1, 30, 12, tzinfo=UTC)


AGENT_LOG = [
    "1790571600|NONE|asiakaspalvelu|PJSIP/1001|ADDMEMBER|",
    "1790571605|NONE|asiakaspalvelu|PJSIP/1002|ADDMEMBER|",
    "1790578980|NONE|asiakaspalvelu|PJSIP/1001|PAUSE|evakuointi",
    "1790578982|NONE|asiakaspalvelu|PJSIP/1002|PAUSE|evakuointi",
    "1790579705|1790579705.312|asiakaspalvelu|NONE|ENTERQUEUE||0401234567|1",
    "1790579800|1790579705.312|asiakaspalvelu|NONE|ABANDON|1|1|95",
    "1790594140|NONE|asiakaspalvelu|PJSIP/1001|UNPAUSE|",
    "1790595000|NONE|NONE|PJSIP/1002|AGENTLOGOFF|PJSIP/1002|23395",
]


def test_agent_availability_over_time(store: Store, tmp_path: Path) -> None:
    import_calls(store, _write(tmp_path / "queue_log", AGENT_LOG), "asterisk-queue-log")
    start = dt.datetime(2026, 9, 28, 6, 0, tzinfo=UTC)
    with store.session() as session:
        changes = agent_availability(session, start, start + dt.timedelta(hours=12))
    assert [(c.event, len(c.logged_in), len(c.available)) for c in changes] == [
        (None, 2, 2),  # carried in: both logged in since 03:00 UTC
        ("PAUSE", 2, 1),
        ("PAUSE", 2, 0),
        ("UNPAUSE", 2, 1),
        ("AGENTLOGOFF", 1, 1),
    ]
    assert changes[2].paused == {"PJSIP/1001": "evakuointi", "PJSIP/1002": "evakuointi"}
    assert changes[2].queues["asiakaspalvelu"].available == 0
    assert changes[2].line is not None and changes[2].line.line_number == 4


def test_timeline_json_has_availability_and_keeps_pauses(cli: Cli, tmp_path: Path) -> None:
    cli("customer", "add", "100234", "--name", "Matti", "--phone", "040 123 4567")
    path = _write(tmp_path / "queue_log", AGENT_LOG)
    cli("import", "calls", str(path), "--format", "asterisk-queue-log")
    items = json.loads(cli("timeline", "100234", "--json").stdout)
    kinds = [i["kind"] for i in items]
    assert kinds.count("agent_pause") == 2 and kinds.count("call") == 1
    # The state at local midnight (nobody yet), both ADDMEMBERs, two pauses, UNPAUSE, logoff.
    assert kinds.count("agent_availability") == 7
    [call] = [i for i in items if i["kind"] == "call"]
    assert call["agents_at_start"] == {
        "logged_in": 2,
        "available": 0,
        "paused": [
            {"agent": "PJSIP/1001", "reason": "evakuointi"},
            {"agent": "PJSIP/1002", "reason": "evakuointi"},
        ],
    }
    assert call["outcome_source"] == "queue_log ABANDON"
    agents = json.loads(cli("agents", "--from", "2026-09-28", "--json").stdout)
    assert [a["available"] for a in agents] == [0, 1, 2, 1, 0, 1, 1]
    assert agents[4]["paused"][1] == {"agent": "PJSIP/1002", "reason": "evakuointi"}
    text = cli("agents", "--from", "2026-09-28").stdout
    assert "available 0 of 2 logged in  [PAUSE PJSIP/1002 (evakuointi)]" in text


FS_A = (
    '"Matti Virtanen","0401234567","0201234500","public","2026-09-28 10:15:05",'
    '"2026-09-28 10:15:25","2026-09-28 10:21:25","380","360","NORMAL_CLEARING",'
    '"0b7f6a1e-2c43-4d1a-9a53-3f1f1c3e2b10","5d6c1e2f-aaaa-4bbb-8ccc-0123456789ab","",'
    '"PCMA","PCMA"'
)
FS_B = (
    '"Matti Virtanen","0401234567","1001","default","2026-09-28 10:15:07",'
    '"2026-09-28 10:15:25","2026-09-28 10:21:25","378","360","NORMAL_CLEARING",'
    '"5d6c1e2f-aaaa-4bbb-8ccc-0123456789ab","","","PCMA","PCMA"'
)
FS_BUSY_13 = (
    '"","0401234567","0201234500","public","2026-09-28 11:00:00","",'
    '"2026-09-28 11:00:02","2","0","USER_BUSY","9a1d7c55-1111-4222-8333-444455556666","",""'
)


def test_freeswitch_default_template(store: Store, tmp_path: Path) -> None:
    path = _write(tmp_path / "Master.csv", [FS_A, FS_B, FS_BUSY_13, '"only","three","cols"'])
    report = import_calls(store, path, "freeswitch-cdr")
    assert (report.imported, report.quarantined) == (3, 1)
    with store.session() as session:
        answered, busy = calls_for_numbers(session, [MATTI])
        [item] = session.scalars(select(QuarantineItem))
        assert "3 columns" in item.reason and item.locator == "line 4"
    assert answered.started_at == dt.datetime(2026, 9, 28, 7, 15, 5, tzinfo=UTC)
    assert [leg.id for leg in answered.legs] == [
        "0b7f6a1e-2c43-4d1a-9a53-3f1f1c3e2b10",
        "5d6c1e2f-aaaa-4bbb-8ccc-0123456789ab",
    ]
    assert (answered.direction.value, answered.outcome, answered.talk_time) == (
        "inbound",
        "answered",
        360,
    )
    assert (answered.ring_time, answered.ring_time_source) == (20, "FreeSWITCH duration - billsec")
    assert answered.system == "FreeSWITCH"
    assert (busy.outcome, busy.outcome_recorded) == ("busy", "USER_BUSY")


def test_cloud_pbx_example_mapping(store: Store) -> None:
    report = import_calls(
        store,
        EXAMPLES / "cloud-pbx.csv",
        "csv",
        mapping=EXAMPLES / "cloud-pbx.toml",
    )
    assert (report.imported, report.quarantined) == (5, 0)
    with store.session() as session:
        calls = calls_for_numbers(session, [MATTI])
        mapping = (EXAMPLES / "cloud-pbx.toml").read_bytes()
        assert read_blob(session, hashlib.sha256(mapping).hexdigest()) == mapping
        header = session.scalar(select(SourceLine).where(SourceLine.format == "csv-header"))
        assert header is not None and header.raw.startswith(b"\xef\xbb\xbfCall ID,")
        records = list(session.scalars(select(CallRecord).order_by(CallRecord.id)))
        hidden = assemble_calls(session, [], [], {MATTI}, [records[3]])[0]
        internal = assemble_calls(session, [], [], {MATTI}, [records[4]])[0]
    assert [(c.outcome, c.queue_wait, c.talk_time, c.direction.value) for c in calls] == [
        ("abandoned", 95, None, "inbound"),
        ("answered", 100, 372, "inbound"),
        ("answered", None, 120, "outbound"),
    ]
    answered = calls[1]
    assert answered.queue_wait_source == "Cloud PBX call history: column 'Wait (s)'"
    assert answered.talk_time_source == "Cloud PBX call history: column 'Talk (s)'"
    assert answered.agent == "Liisa Mäkelä" and answered.uniqueid == "c-5002"
    assert [line.format for line in answered.source_lines] == ["csv-header", "csv"]
    assert (hidden.number, hidden.number_hidden) == (None, True)
    assert internal.direction.value == "internal"


def test_contact_centre_example_mapping(store: Store) -> None:
    report = import_calls(
        store,
        EXAMPLES / "contact-centre-fi.csv",
        "csv",
        mapping=EXAMPLES / "contact-centre-fi.toml",
    )
    assert (report.imported, report.quarantined) == (4, 0)
    with store.session() as session:
        calls = calls_for_numbers(session, [MATTI])
    assert [(c.outcome, c.queue_wait, c.talk_time) for c in calls] == [
        ("abandoned", 95, None),
        ("answered", 100, 372),
        ("answered", None, 120),
        ("timeout", 20, None),
    ]
    assert calls[0].started_at == dt.datetime(2026, 9, 28, 7, 15, 5, tzinfo=UTC)
    assert calls[1].agent == "Liisa Mäkelä"  # decoded from Windows-1252
    assert calls[2].direction.value == "outbound"
    # No Unix time anywhere: the repeated autumn hour is flagged, not guessed.
    assert (calls[3].time_flag, calls[3].start_local) == (FLAG_AMBIGUOUS, "25.10.2026 03:30:12")
    again = import_calls(
        store,
        EXAMPLES / "contact-centre-fi.csv",
        "csv",
        mapping=EXAMPLES / "contact-centre-fi.toml",
    )
    assert (again.imported, again.duplicates) == (0, 4)


def test_bad_mappings_are_refused(store: Store, tmp_path: Path) -> None:
    csv_path = EXAMPLES / "cloud-pbx.csv"
    unknown = tmp_path / "m1.toml"
    unknown.write_text('[columns]\nstart = "Start Time"\ncaller = "From"\nwho = "X"\n')
    with pytest.raises(InvalidInput, match="unknown column key"):
        import_calls(store, csv_path, "csv", mapping=unknown)
    missing = tmp_path / "m2.toml"
    missing.write_text('[columns]\nstart = "Begins"\ncaller = "From"\n')
    with pytest.raises(InvalidInput, match="column 'Begins' \\(start\\) is not in the file's"):
        import_calls(store, csv_path, "csv", mapping=missing)
    with pytest.raises(InvalidInput, match="needs --mapping"):
        import_calls(store, csv_path, "csv")


def test_wrong_formats_are_refused_by_name(store: Store, tmp_path: Path) -> None:
    csv_path = EXAMPLES / "cloud-pbx.csv"
    with pytest.raises(InvalidInput, match="looks like a CSV export with a header row"):
        import_calls(store, csv_path, "asterisk-cdr")
    fs = _write(tmp_path / "fs.csv", [FS_A])
    with pytest.raises(InvalidInput, match=r"a FreeSWITCH CDR \(mod_cdr_csv\), not asterisk-cdr"):
        import_calls(store, fs, "asterisk-cdr")
    pdf = tmp_path / "letter.pdf"
    pdf.write_bytes(b"%PDF-1.7\n%\xe2\xe3\n")
    with pytest.raises(InvalidInput, match="looks like a PDF document"):
        import_calls(store, pdf, "asterisk-queue-log")
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(SourceLine)) == 0


def test_import_calls_csv_from_the_command_line(cli: Cli) -> None:
    result = cli(
        "import",
        "calls",
        str(EXAMPLES / "cloud-pbx.csv"),
        "--format",
        "csv",
        "--mapping",
        str(EXAMPLES / "cloud-pbx.toml"),
        "--json",
    )
    assert json.loads(result.stdout)["imported"] == 5
    refused = cli(
        "import", "calls", str(EXAMPLES / "cloud-pbx.csv"), "--format", "asterisk-cdr", code=1
    )
    assert "--format csv --mapping" in refused.stderr


def test_recordings_by_pattern_durations_and_unmatched(store: Store, tmp_path: Path) -> None:
    import_calls(store, _write(tmp_path / "fs.csv", [FS_A, FS_B]), "freeswitch-cdr")
    folder = tmp_path / "rec"
    folder.mkdir()
    gsm = b"\xd8" * 33 * 150  # 150 frames of 20 ms
    (folder / "rec-0b7f6a1e-2c43-4d1a-9a53-3f1f1c3e2b10.gsm").write_bytes(gsm)
    (folder / "rec-ffffffff-2c43-4d1a-9a53-3f1f1c3e2b10.gsm").write_bytes(gsm + b"\xd8" * 33)
    report = import_recordings(store, folder, r"rec-(?P<id>[0-9a-f-]{36})\.gsm")
    assert report.imported == 2
    assert [Path(u.split(":")[0]).name for u in report.unmatched] == [
        "rec-ffffffff-2c43-4d1a-9a53-3f1f1c3e2b10.gsm"
    ]
    with store.session() as session:
        [call] = calls_for_numbers(session, [MATTI])
    [recording] = call.recordings
    assert (recording.duration, recording.sha256) == (3.0, hashlib.sha256(gsm).hexdigest())
    assert gsm_duration(b"\x00" * 10) is None


def test_mp3_duration_from_frame_headers() -> None:
    # MPEG-1 layer III, 128 kbit/s, 44.1 kHz: 417-byte frames of 1152 samples.
    frame = bytes([0xFF, 0xFB, 0x90, 0x00]) + b"\x00" * 413
    assert mp3_duration(frame * 100) == pytest.approx(100 * 1152 / 44100, abs=0.001)
    assert mp3_duration(b"not audio") is None


def test_csv_row_with_a_line_break_in_quotes_is_one_record(store: Store, tmp_path: Path) -> None:
    mapping = tmp_path / "m.toml"
    mapping.write_text(
        '[columns]\nstart = "Start"\ncaller = "From"\noutcome = "Result"\n'
        '[outcome]\n"Answered" = "answered"\n',
        encoding="utf-8",
    )
    path = tmp_path / "export.csv"
    path.write_bytes(
        b"Start,From,Result,Note\n"
        b'2026-09-28T07:15:05Z,0401234567,Answered,"two\nlines"\n'
        b"2026-09-28T08:00:00Z,0401234567,Answered,plain\n"
        b"not a time,0401234567,Answered,x\n"
    )
    report = import_calls(store, path, "csv", mapping=mapping)
    assert (report.imported, report.quarantined) == (2, 1)
    with store.session() as session:
        rows = list(
            session.scalars(
                select(SourceLine).where(SourceLine.format == "csv").order_by(SourceLine.id)
            )
        )
        [bad] = session.scalars(select(QuarantineItem))
    assert [(r.line_number, r.raw) for r in rows] == [
        (2, b'2026-09-28T07:15:05Z,0401234567,Answered,"two\nlines"'),
        (4, b"2026-09-28T08:00:00Z,0401234567,Answered,plain"),
    ]
    assert bad.locator == "line 5" and "start time 'not a time'" in bad.reason


def test_dossier_shows_sources_transfers_and_agents(cli: Cli, tmp_path: Path) -> None:
    from tests.conftest import pdf_text

    cli("customer", "add", "100234", "--name", "Matti", "--phone", "040 123 4567")
    log = AGENT_LOG + [
        "1790596202|1790596202.317|asiakaspalvelu|NONE|ENTERQUEUE||0401234567|1",
        "1790596220|1790596202.317|asiakaspalvelu|PJSIP/1002|RINGNOANSWER|15000",
        "1790596302|1790596202.317|asiakaspalvelu|PJSIP/1001|CONNECT|100|1790596202.3171|7",
        "1790596674|1790596202.317|asiakaspalvelu|PJSIP/1001|BLINDTRANSFER|600|laskutus|100|372|1",
    ]
    cli(
        "import",
        "calls",
        str(_write(tmp_path / "queue_log", log)),
        "--format",
        "asterisk-queue-log",
    )
    callback = cdr21(
        "1001",
        "0401234567",
        "PJSIP/1001-00000010",
        "PJSIP/trunk-00000011",
        "Dial",
        "2026-09-28 15:00:00",
        "2026-09-28 15:00:12",
        "2026-09-28 15:03:12",
        192,
        180,
        "ANSWERED",
        "1790596800.20",
        "1790596800.20",
        context="from-internal",
    )
    cli(
        "import",
        "calls",
        str(_write(tmp_path / "Master.csv", [callback])),
        "--format",
        "asterisk-cdr",
    )
    out = tmp_path / "dossier.pdf"
    cli("export", "100234", "-o", str(out))
    flat = " ".join(pdf_text(out).split())
    # The abandoned call during the evacuation: nobody was free, and why.
    assert (
        "Vapaita palvelijoita puhelun alkaessa 0 (kirjautuneena 2; PJSIP/1001: evakuointi;" in flat
    )
    assert "lähde: queue_log ABANDON" in flat
    # The transferred call: its ring time and its transfer, each with its source.
    assert "Soittoaika 7 s (lähde: queue_log CONNECT ringtime)" in flat
    assert "PJSIP/1001 → 600@laskutus (BLINDTRANSFER)" in flat
    assert "Soi vastaamatta" in flat and "PJSIP/1002 (15 s)" in flat
    assert "6 min 12 s (lähde: queue_log BLINDTRANSFER calltime)" in flat
    # The agent's callback is in the customer's dossier as an outbound call.
    assert "lähtevä" in flat and "12 s (lähde: CDR duration - billsec)" in flat


def test_recordings_json_lists_unmatched(cli: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "monitor"
    folder.mkdir()
    (folder / "1790596202.317.gsm").write_bytes(b"\xd8" * 33)
    data = json.loads(cli("import", "recordings", str(folder), "--json").stdout)
    assert data["imported"] == 1
    [line] = data["unmatched_recordings"]
    assert "1790596202.317.gsm" in line and "no call with id 1790596202.317" in line


def test_readme_mapping_example_is_a_valid_mapping() -> None:
    from evidence.ingest.csvmap import parse_mapping

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    block = readme.split("### Mapping files")[1].split("```toml\n")[1].split("```")[0]
    mapping = parse_mapping(block.encode("utf-8"), "README")
    assert mapping.columns["queue_wait"] == "Wait (s)"
    assert mapping.source_of("queue_wait") == "Cloud PBX call history: column 'Wait (s)'"


# --- the wait for a person, from the phone system's own records ---------------------------


def _calls_by_id(cli: Cli, ref: str = "100234") -> dict[str, dict[str, object]]:
    items = json.loads(cli("timeline", ref, "--json").stdout)
    return {str(i["uniqueid"]): i for i in items if i["kind"] == "call"}


def _waits(calls: dict[str, dict[str, object]]) -> dict[str, tuple[object, object]]:
    return {key: (c["queue_wait"], c["queue_wait_source"]) for key, c in calls.items()}


def _fs(
    caller: str,
    callee: str,
    context: str,
    start: str,
    answer: str,
    end: str,
    duration: int,
    billsec: int,
    cause: str,
    uuid: str,
    bleg: str = "",
) -> str:
    return (
        f'"Matti Virtanen","{caller}","{callee}","{context}","2026-09-28 {start}",'
        f'"{"2026-09-28 " + answer if answer else ""}","2026-09-28 {end}","{duration}",'
        f'"{billsec}","{cause}","{uuid}","{bleg}","","PCMA","PCMA"'
    )


FS_WAITS = [
    # Answered after 40 s.
    _fs("0401234567", "0201234500", "public", "10:15:05", "10:15:45", "10:20:45", 340, 300,
        "NORMAL_CLEARING", "00000000-0000-4000-8000-000000000001"),
    # The caller gave up after 75 s.
    _fs("0401234567", "0201234500", "public", "11:00:00", "", "11:01:15", 75, 0,
        "ORIGINATOR_CANCEL", "00000000-0000-4000-8000-000000000002"),
    # Busy: it never rang, nobody waited.
    _fs("0401234567", "0201234500", "public", "11:30:00", "", "11:30:02", 2, 0,
        "USER_BUSY", "00000000-0000-4000-8000-000000000003"),
    # Our agent's call to the customer: the customer waited for nobody.
    _fs("1001", "0401234567", "default", "12:00:00", "12:00:09", "12:02:09", 129, 120,
        "NORMAL_CLEARING", "00000000-0000-4000-8000-000000000004"),
    # The IVR answered the A leg at once; the agent's B leg answered 40 s after the start.
    _fs("0401234567", "0201234500", "public", "13:00:00", "13:00:01", "13:05:40", 340, 339,
        "NORMAL_CLEARING", "00000000-0000-4000-8000-000000000005",
        "00000000-0000-4000-8000-0000000000b5"),
    _fs("0401234567", "1001", "default", "13:00:30", "13:00:40", "13:05:40", 310, 300,
        "NORMAL_CLEARING", "00000000-0000-4000-8000-0000000000b5"),
]  # fmt: skip


def test_freeswitch_wait_comes_from_the_cdr(cli: Cli, tmp_path: Path) -> None:
    """No queue_log: the wait before the answer or the hang-up is the CDR's, and says so."""
    cli("customer", "add", "100234", "--name", "Matti", "--phone", "040 123 4567")
    path = _write(tmp_path / "Master.csv", FS_WAITS)
    cli("import", "calls", str(path), "--format", "freeswitch-cdr")
    calls = _calls_by_id(cli)
    assert _waits(calls) == {
        "00000000-0000-4000-8000-000000000001": (40, "FreeSWITCH answer_stamp - start_stamp"),
        "00000000-0000-4000-8000-000000000002": (75, "FreeSWITCH duration (not answered)"),
        "00000000-0000-4000-8000-000000000003": (None, None),
        "00000000-0000-4000-8000-000000000004": (None, None),
        "00000000-0000-4000-8000-000000000005": (
            40,
            "FreeSWITCH answer_stamp (B leg) - start_stamp (A leg)",
        ),
    }
    assert calls["00000000-0000-4000-8000-000000000002"]["outcome"] == "unanswered"
    # The ring time stays what it was: the CDR's duration - billsec of an answered call.
    assert calls["00000000-0000-4000-8000-000000000004"]["ring_time"] == 9
    # Company-wide, the callers who waited count as having reached a queue, not the IVR.
    report = json.loads(cli("report", "service", "--from", "2026-09-28", "--json").stdout)
    counts = report["period"]["calls"]
    assert (counts["offered"], counts["reached_queue"]) == (4, 3)
    assert (counts["wait_median"], counts["wait_max"], counts["service_level"]) == (40, 75, 2 / 3)


def test_asterisk_cdr_wait_without_queue_log_and_queue_log_wins(cli: Cli, tmp_path: Path) -> None:
    cli("customer", "add", "100234", "--name", "Matti", "--phone", "040 123 4567")
    trunk = "PJSIP/trunk-0000000"
    rows = [
        # The queue answered the caller (music on hold); nobody did: 75 s waited.
        cdr21("0401234567", "500", f"{trunk}1", "", "Queue", "2026-09-28 09:00:00",
              "2026-09-28 09:00:05", "2026-09-28 09:01:15", 75, 70, "ANSWERED",
              "1790575200.1", "1790575200.1", data="asiakaspalvelu"),
        # Queued, not answered, billsec 0.
        cdr21("0401234567", "500", f"{trunk}2", "", "Queue", "2026-09-28 09:30:00", "",
              "2026-09-28 09:31:00", 60, 0, "NO ANSWER", "1790577000.2", "1790577000.2",
              data="asiakaspalvelu"),
        # Rang an agent's phone directly, nobody answered.
        cdr21("0401234567", "1001", f"{trunk}3", "PJSIP/1001-00000004", "Dial",
              "2026-09-28 10:00:00", "", "2026-09-28 10:00:30", 30, 0, "NO ANSWER",
              "1790578800.3", "1790578800.3"),
        # Rang an agent's phone, answered after 12 s.
        cdr21("0401234567", "1001", f"{trunk}5", "PJSIP/1001-00000006", "Dial",
              "2026-09-28 11:00:00", "2026-09-28 11:00:12", "2026-09-28 11:03:12", 192, 180,
              "ANSWERED", "1790582400.5", "1790582400.5"),
        # Our agent's callback, and a call that ended in the IVR: no wait for a person.
        cdr21("1001", "0401234567", "PJSIP/1001-00000007", f"{trunk}8", "Dial",
              "2026-09-28 12:00:00", "2026-09-28 12:00:12", "2026-09-28 12:03:12", 192, 180,
              "ANSWERED", "1790586000.7", "1790586000.7", context="from-internal"),
        cdr21("0401234567", "500", f"{trunk}9", "", "Playback", "2026-09-28 12:30:00",
              "2026-09-28 12:30:00", "2026-09-28 12:30:20", 20, 20, "ANSWERED",
              "1790587800.9", "1790587800.9"),
        # With queue_log: its holdtime wins over the CDR's 2 s.
        cdr21("0401234567", "500", "PJSIP/trunk-00000010", "PJSIP/1001-00000011", "Queue",
              "2026-09-28 14:00:00", "2026-09-28 14:00:02", "2026-09-28 14:02:27", 147, 145,
              "ANSWERED", "1790593200.10", "1790593200.10", data="asiakaspalvelu"),
        # queue_log cut short after ENTERQUEUE: the CDR's figure.
        cdr21("0401234567", "500", "PJSIP/trunk-00000012", "", "Queue", "2026-09-28 15:00:00",
              "", "2026-09-28 15:00:40", 40, 0, "NO ANSWER", "1790596800.12", "1790596800.12",
              data="asiakaspalvelu"),
    ]  # fmt: skip
    log = [
        "1790593200|1790593200.10|asiakaspalvelu|NONE|ENTERQUEUE||0401234567|1",
        "1790593225|1790593200.10|asiakaspalvelu|PJSIP/1001|CONNECT|25|1790593222.11|3",
        "1790593345|1790593200.10|asiakaspalvelu|PJSIP/1001|COMPLETECALLER|25|120|1",
        "1790596800|1790596800.12|asiakaspalvelu|NONE|ENTERQUEUE||0401234567|1",
    ]
    cli("import", "calls", str(_write(tmp_path / "Master.csv", rows)), "--format", "asterisk-cdr")
    queue_log = _write(tmp_path / "queue_log", log)
    cli("import", "calls", str(queue_log), "--format", "asterisk-queue-log")
    assert _waits(_calls_by_id(cli)) == {
        "1790575200.1": (75, "CDR duration (not answered)"),
        "1790577000.2": (60, "CDR duration (not answered)"),
        "1790578800.3": (30, "CDR duration (not answered)"),
        "1790582400.5": (12, "CDR duration - billsec"),
        "1790586000.7": (None, None),
        "1790587800.9": (None, None),
        "1790593200.10": (25, "queue_log CONNECT holdtime"),
        "1790596800.12": (40, "CDR duration (not answered)"),
    }


CSV_NO_WAIT_MAPPING = """
system = "Hosted PBX"
[columns]
call_id = "ID"
start = "Start"
answer = "Answered"
end = "End"
caller = "From"
callee = "To"
direction = "Direction"
outcome = "Result"
[direction]
"in" = "inbound"
"out" = "outbound"
[outcome]
"answered" = "answered"
"missed" = "abandoned"
"busy" = "busy"
"voicemail" = "voicemail"
"""


def test_csv_without_a_wait_column_takes_it_from_the_times(cli: Cli, tmp_path: Path) -> None:
    cli("customer", "add", "100234", "--name", "Matti", "--phone", "040 123 4567")
    mapping = tmp_path / "hosted.toml"
    mapping.write_text(CSV_NO_WAIT_MAPPING, encoding="utf-8")
    path = _write(
        tmp_path / "calls.csv",
        [
            "ID,Start,Answered,End,From,To,Direction,Result",
            "h-1,2026-09-28T07:15:05Z,2026-09-28T07:15:45Z,2026-09-28T07:20:45Z,"
            "0401234567,0201234500,in,answered",
            "h-2,2026-09-28T08:00:00Z,,2026-09-28T08:01:15Z,0401234567,0201234500,in,missed",
            "h-3,2026-09-28T08:30:00Z,,2026-09-28T08:30:02Z,0401234567,0201234500,in,busy",
            "h-4,2026-09-28T09:00:00Z,2026-09-28T09:00:09Z,2026-09-28T09:02:09Z,"
            "0201234500,0401234567,out,answered",
            # Voicemail answered: no person did, and its answer time is not one.
            "h-5,2026-09-28T09:30:00Z,2026-09-28T09:30:20Z,2026-09-28T09:31:00Z,"
            "0401234567,0201234500,in,voicemail",
        ],
    )
    cli("import", "calls", str(path), "--format", "csv", "--mapping", str(mapping))
    assert _waits(_calls_by_id(cli)) == {
        "h-1": (40, "Hosted PBX: column 'Answered' - column 'Start'"),
        "h-2": (75, "Hosted PBX: column 'End' - column 'Start' (not answered)"),
        "h-3": (None, None),
        "h-4": (None, None),
        "h-5": (None, None),
    }


def test_dossier_shows_a_freeswitch_wait_and_its_source(cli: Cli, tmp_path: Path) -> None:
    from tests.conftest import pdf_text

    cli("customer", "add", "100234", "--name", "Matti", "--phone", "040 123 4567")
    path = _write(tmp_path / "Master.csv", FS_WAITS[:2])
    cli("import", "calls", str(path), "--format", "freeswitch-cdr")
    out = tmp_path / "dossier.pdf"
    cli("export", "100234", "-o", str(out))
    flat = " ".join(pdf_text(out).split())
    assert "Jonotusaika 40 s (lähde: FreeSWITCH answer_stamp - start_stamp)" in flat
    assert "Jonotusaika 1 min 15 s (lähde: FreeSWITCH duration (not answered))" in flat
    # The caller who gave up waited for a person: not a call that ended before the queue.
    assert "ei vastattu, jonotusaika 1 min 15 s" in flat
    read = subprocess.run(["pdftotext", str(out), "-"], capture_output=True, text=True, check=True)
    figures = " ".join(read.stdout.split())
    assert "päättyi ennen jonoa (puhelinvalikko, tiedote) 0 0,0" in figures
    assert "Jonotusaika: mediaani 58 s" in figures


# --- empty files and progress --------------------------------------------------------------


def test_an_empty_call_log_says_so(cli: Cli, tmp_path: Path) -> None:
    empty = tmp_path / "Master.csv"
    empty.write_bytes(b"")
    blank = tmp_path / "queue_log"
    blank.write_bytes(b"\n\n")
    header = tmp_path / "export.csv"
    header.write_bytes((EXAMPLES / "cloud-pbx.csv").read_bytes().splitlines(keepends=True)[0])
    nothing = tmp_path / "nothing.csv"
    nothing.write_bytes(b"")
    mapping = ("--mapping", str(EXAMPLES / "cloud-pbx.toml"))
    cases = [
        (empty, ("--format", "asterisk-cdr"), "is empty (0 bytes)"),
        (empty, ("--format", "freeswitch-cdr"), "is empty (0 bytes)"),
        (blank, ("--format", "asterisk-queue-log"), "holds only blank lines"),
        (header, ("--format", "csv", *mapping), "holds only its header row"),
        (nothing, ("--format", "csv", *mapping), "is empty (0 bytes)"),
    ]
    for path, options, why in cases:
        result = cli("import", "calls", str(path), *options)
        assert result.stdout == "imported 0, duplicates 0, quarantined 0\n"
        assert result.stderr == f"evidence: {path} {why}: no calls in it, nothing imported\n"
        data = json.loads(cli("import", "calls", str(path), *options, "--json").stdout)
        assert (data["imported"], data["empty"]) == (0, True)
    full = _write(tmp_path / "fs.csv", [FS_A])
    result = cli("import", "calls", str(full), "--format", "freeswitch-cdr", "--json")
    assert (json.loads(result.stdout)["empty"], result.stderr) == (False, "")
    again = cli("import", "calls", str(full), "--format", "freeswitch-cdr", "--json")
    assert json.loads(again.stdout) == {
        "imported": 0,
        "duplicates": 1,
        "quarantined": 0,
        "quarantine_reasons": [],
        "notes": [],
        "empty": False,
    }


@pytest.mark.parametrize("worker_min_bytes", [0, 1 << 30])
def test_import_progress_counts_the_file_bytes(
    store: Store, tmp_path: Path, worker_min_bytes: int
) -> None:
    lines = [f"{1790575200 + i}|1790575200.{i}|q|NONE|ENTERQUEUE||0401234567|1" for i in range(80)]
    path = tmp_path / "queue_log"
    path.write_bytes(("\n".join(lines) + "\n\n\n").encode())
    steps: list[int] = []
    options = BulkOptions(chunk_lines=40, worker_min_bytes=worker_min_bytes)
    import_calls(store, path, "asterisk-queue-log", progress=steps.append, options=options)
    # One step per chunk of 40 lines, then the blank lines at the end.
    assert steps == [
        sum(len(line) + 1 for line in lines[:40]),
        sum(len(line) + 1 for line in lines[40:]),
        2,
    ]
    assert sum(steps) == path.stat().st_size


def test_import_progress_bar_on_a_terminal(env: Env, tmp_path: Path) -> None:
    """The bar moves with the bytes read: not full from the start, not "7889/0"."""
    lines = [
        f"{1790575200 + i}|1790575200.{i}|q|NONE|ENTERQUEUE||0401234567|1" for i in range(10_500)
    ]
    path = _write(tmp_path / "queue_log", lines)
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "evidence", "import", "calls", str(path)]
        + ["--format", "asterisk-queue-log"],
        env={**os.environ, **env.vars},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=secondary,
    )
    os.close(secondary)
    shown = b""
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # the terminal is gone with the process
            break
        if not chunk:
            break
        shown += chunk
    os.close(primary)
    assert proc.stdout is not None
    with proc.stdout:
        assert proc.stdout.read() == b"imported 10,500, duplicates 0, quarantined 0\n"
    assert proc.wait(timeout=300) == 0
    text = re.sub(r"\x1b\[[?0-9;]*[A-Za-z]", "", shown.decode())
    states = [s.strip() for s in text.split("\r") if "importing" in s]
    # A share of the file (and the time left), never a count against nothing.
    bar = re.compile(r"importing queue_log +\[[#-]+\] +(\d+)%( +\d\d:\d\d:\d\d)?")
    matched = [bar.fullmatch(s) for s in states]
    assert states and all(matched), states
    shares = [int(m.group(1)) for m in matched if m]
    assert shares[0] == 0 and shares[-1] == 100
    assert any(0 < share < 100 for share in shares), states
