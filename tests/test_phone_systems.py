"""Phone systems: every queue_log event, legs, callbacks, FreeSWITCH, mapped CSV, agents."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from evidence.calls import agent_availability, assemble_calls, calls_for_numbers
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
from evidence.timeutil import (
    FLAG_AMBIGUOUS,
    FLAG_RESOLVED_BY_DURATION,
    FLAG_RESOLVED_BY_QUEUE_LOG,
)
from tests.conftest import Cli

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
