"""Incidents as versions, attachments, opening hours, planned incidents, service states."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import func, select

from evidence.config import load_config
from evidence.errors import EvidenceError, InvalidInput
from evidence.ingest.asterisk import import_calls
from evidence.ingest.mail import import_mail
from evidence.records.incidents import (
    add_incident,
    correct_incident,
    current_incidents,
    end_incident,
    get_chain,
    start_incident,
)
from evidence.records.plans import materialise_plans, plan_incident
from evidence.store.blobs import read_blob
from evidence.store.db import Store
from evidence.store.models import Incident, IncidentAttachment, IncidentPlan, LedgerEntry
from evidence.timeline.history import build_timeline, timeline_json
from evidence.timeline.hours import opening_hours
from evidence.timeline.mailfacts import MailRules
from evidence.timeutil import format_local, utcnow
from evidence.verify.store import verify_store
from tests.conftest import Cli, Env, pdf_text, run_evidence
from tests.contacts import (
    CUSTOMER_EMAIL,
    CUSTOMER_PHONE,
    HELSINKI,
    HOURS_TOML,
    at_local,
    eml,
    write_cdr,
)

UTC = dt.UTC
REF = "200100"


def _customer(cli: Cli) -> None:
    cli("customer", "add", REF, "--name", "Aino Asiakas", "--email", CUSTOMER_EMAIL,
        "--phone", CUSTOMER_PHONE)  # fmt: skip


def _contacts(store: Store, tmp_path: Path, calls: list[str], mails: list[str]) -> None:
    """Calls and emails from the customer at the given local (Helsinki) times."""
    if calls:
        cdr = write_cdr(tmp_path / "Master.csv", [at_local(t) for t in calls])
        import_calls(store, cdr, "asterisk-cdr")
    if mails:
        maildir = tmp_path / "mail"
        maildir.mkdir(exist_ok=True)
        for t in mails:
            eml(maildir, at_local(t))
        import_mail(store, [maildir])


def _timeline(store: Store, date_from: str, date_to: str) -> list[dict]:
    config = load_config()
    with store.session() as session:
        built = build_timeline(
            session,
            REF,
            config.zone,
            dt.date.fromisoformat(date_from),
            dt.date.fromisoformat(date_to),
            hours=opening_hours(config),
            rules=MailRules.of(config),
        )
        return timeline_json(built)


def _contacts_by_time(items: list[dict]) -> dict[str, dict]:
    return {i["at"]: i for i in items if i["kind"] in ("email", "call")}


# --- versions -------------------------------------------------------------------


def test_start_end_correct_are_new_versions_pointing_back(store: Store) -> None:
    started = start_incident(
        store, title="Puhelinjärjestelmä ei vastaa", channels=["phone"], note=None,
        logged_by="Kaisa",
    )  # fmt: skip
    ended = end_incident(store, started.number, by="Kaisa")
    right_end = ended.end - dt.timedelta(minutes=1)  # type: ignore[operator]
    corrected = correct_incident(
        store, started.number, start=started.start - dt.timedelta(hours=2), end=right_end,
        reason="katko alkoi jo kahta tuntia aiemmin", by="Pekka",
    )  # fmt: skip
    with store.session() as session:
        rows = list(session.scalars(select(Incident).order_by(Incident.id)))
        assert [(r.id, r.corrects_id, r.original_id, r.version_kind) for r in rows] == [
            (1, None, None, "logged"),
            (2, 1, 1, "ended"),
            (3, 2, 1, "corrected"),
        ]
        assert rows[0].end is None  # the first version still says what it said
        assert rows[1].end == ended.end and rows[1].corrected_by == "Kaisa"
        assert rows[2].end == right_end and rows[2].correction_reason.startswith("katko alkoi")
        assert [i.id for i in current_incidents(session)] == [3]
        chain = get_chain(session, 2)  # any version's id finds the incident
        assert chain.number == 1 and [v.id for v in chain.versions] == [1, 2, 3]
        # every version is on the hash chain
        chained = session.scalars(
            select(LedgerEntry.record_id).where(LedgerEntry.record_type == "incidents")
        )
        assert sorted(chained) == ["1", "2", "3"]
        # The correction is in the audit log, with who and why.
        from evidence.store.audit import list_events

        [(event, _leaf)] = [
            (e, leaf) for e, leaf in list_events(session) if e.action == "correction"
        ]
        assert "incident #1" in event.subject
        assert json.loads(event.details)["reason"].startswith("katko alkoi")
    assert corrected.number == 1
    assert verify_store(store).intact


def test_end_is_refused_twice_and_in_the_future(store: Store) -> None:
    started = start_incident(store, title="x", channels=[], note=None, logged_by="k")
    with pytest.raises(InvalidInput, match="cannot end in the future"):
        end_incident(store, started.number, at=started.start + dt.timedelta(hours=2))
    # An end before the start is named in local time, as the user typed it.
    with pytest.raises(InvalidInput) as caught:
        end_incident(store, started.number, at=started.start - dt.timedelta(hours=1))
    zone = store.config.zone
    assert str(caught.value) == (
        f"incident #1 started at {format_local(started.start, zone)}: it cannot end at "
        f"{format_local(started.start - dt.timedelta(hours=1), zone)}; give a later --at"
    )
    assert "(UTC+" in str(caught.value)
    end_incident(store, started.number)
    with pytest.raises(InvalidInput, match="already ended.*incident correct 1"):
        end_incident(store, started.number)
    with pytest.raises(InvalidInput, match="nothing to correct"):
        correct_incident(store, 1, reason="r", by="b")
    # Nor corrected to end later than now: it would be open again, with a promised end.
    with pytest.raises(InvalidInput, match="cannot end in the future"):
        correct_incident(
            store, 1, reason="r", by="b", end=utcnow() + dt.timedelta(minutes=10)
        )
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(Incident)) == 2


def test_cli_versions_attachments_and_late_entry(cli: Cli, env: Env, tmp_path: Path) -> None:
    order = tmp_path / "poliisin-maarays.pdf"
    order_bytes = b"%PDF-1.4 evacuation order \x00\xff bytes"
    order.write_bytes(order_bytes)
    out = cli(
        "incident", "add", "--start", "2026-09-28 10:02", "--end", "2026-09-28 14:11",
        "--title", "Toimitalo tyhjennetty", "--channel", "phone", "--logged-by", "Kaisa",
        "--logged-at", "2026-09-28 14:25", "--attach", str(order),
    )  # fmt: skip
    assert out.stdout.startswith("incident #1: Toimitalo tyhjennetty, 28.9.2026 10.02.00 (UTC+3)")
    assert "note: entered" in out.stdout and "recorded afterwards" in out.stdout
    cli(
        "incident", "correct", "1", "--end", "2026-09-28 14:31", "--reason",
        "henkilöstö palasi 14.31", "--by", "Pekka",
    )  # fmt: skip
    shown = json.loads(cli("incident", "show", "1", "--json").stdout)
    assert shown["id"] == "incident:1" and shown["record_id"] == 2
    assert shown["end"] == "2026-09-28T11:31:00Z" and shown["corrected"] is True
    assert shown["logged_at"] == "2026-09-28T11:25:00Z"
    assert shown["recorded_at"] > "2026-11"  # entered now, not back-dated
    assert [(v["kind"], v["end"], v["by"], v["reason"]) for v in shown["versions"]] == [
        ("logged", "2026-09-28T11:11:00Z", "Kaisa", None),
        ("corrected", "2026-09-28T11:31:00Z", "Pekka", "henkilöstö palasi 14.31"),
    ]
    [attached] = shown["attachments"]
    assert attached["sha256"] == hashlib.sha256(order_bytes).hexdigest()
    assert attached["size"] == len(order_bytes) and attached["filename"] == order.name
    text = cli("incident", "show", "1").stdout
    assert "reason: henkilöstö palasi 14.31" in text and attached["sha256"] in text
    listed = cli("incident", "list").stdout
    assert listed.startswith("#1\t28.9.2026 10.02.00 (UTC+3) - 28.9.2026 14.31.00 (UTC+3)")
    assert "(corrected)" in listed

    # The bytes are stored exactly and come back hash-checked.
    from evidence.store.db import open_store

    opened = open_store(load_config())
    try:
        with opened.session() as session:
            row = session.scalar(select(IncidentAttachment))
            assert row is not None and read_blob(session, row.sha256) == order_bytes
    finally:
        opened.close()

    # The dossier shows the current version, the correction, and embeds the file.
    cli("customer", "add", REF, "--name", "Aino Asiakas", "--phone", CUSTOMER_PHONE)
    pdf = tmp_path / "d.pdf"
    cli("export", REF, "--from", "2026-09-28", "--to", "2026-09-28", "-o", str(pdf))
    flat = " ".join(pdf_text(pdf).split())
    assert "28.9.2026 10.02.00 (UTC+3) – 28.9.2026 14.31.00 (UTC+3)" in flat
    assert "Merkintää on korjattu" in flat and "syy: henkilöstö palasi 14.31" in flat
    assert "Merkintä on tallennettu järjestelmään jälkikäteen." in flat
    assert "Merkintä on tallennettu järjestelmään vasta häiriön jälkeen." in flat
    saved = tmp_path / "detached"
    saved.mkdir()
    subprocess.run(["pdfdetach", "-saveall", "-o", str(saved), str(pdf)], check=True)
    assert order_bytes in [p.read_bytes() for p in saved.iterdir()]


# --- contacts against incidents -------------------------------------------------


def test_contact_exactly_at_the_boundary(cli: Cli, store: Store, tmp_path: Path) -> None:
    """Start inclusive, end exclusive, to the second, on both channels."""
    _customer(cli)
    add_incident(
        store, title="Sähkökatko", start=at_local("2026-09-28 10:00"),
        end=at_local("2026-09-28 11:00"), channels=[], note=None, logged_by="k",
    )  # fmt: skip
    _contacts(
        store,
        tmp_path,
        calls=["2026-09-28 09:59:59", "2026-09-28 10:00:00", "2026-09-28 10:59:59"],
        mails=["2026-09-28 11:00:00", "2026-09-28 10:00:00"],
    )
    items = _timeline(store, "2026-09-28", "2026-09-28")
    assert [
        (i["kind"], i["at"], i["service_state"], i["incidents"])
        for i in items
        if i["kind"] in ("email", "call")
    ] == [
        ("call", "2026-09-28T06:59:59Z", "normal", []),
        ("call", "2026-09-28T07:00:00Z", "incident", ["incident:1"]),
        ("email", "2026-09-28T07:00:00Z", "incident", ["incident:1"]),
        ("call", "2026-09-28T07:59:59Z", "incident", ["incident:1"]),
        ("email", "2026-09-28T08:00:00Z", "normal", []),
    ]


def test_overlapping_incidents(cli: Cli, store: Store, tmp_path: Path) -> None:
    _customer(cli)
    add_incident(
        store, title="Puhelinvaihde rikki", start=at_local("2026-09-28 09:00"),
        end=at_local("2026-09-28 12:00"), channels=["phone"], note=None, logged_by="k",
    )  # fmt: skip
    add_incident(
        store, title="Evakuointi", start=at_local("2026-09-28 11:00"),
        end=at_local("2026-09-28 13:00"), channels=["all"], note=None, logged_by="k",
    )  # fmt: skip
    _contacts(
        store,
        tmp_path,
        calls=["2026-09-28 10:00", "2026-09-28 11:30", "2026-09-28 12:30", "2026-09-28 13:30"],
        mails=["2026-09-28 10:00:05", "2026-09-28 11:30:05"],
    )
    items = _timeline(store, "2026-09-28", "2026-09-28")
    assert [i["id"] for i in items if i["kind"] == "incident"] == ["incident:1", "incident:2"]
    contacts = _contacts_by_time(items)
    assert {at: c["incidents"] for at, c in contacts.items()} == {
        "2026-09-28T07:00:00Z": ["incident:1"],  # call, phone outage only
        "2026-09-28T07:00:05Z": [],  # email: the phone outage does not apply
        "2026-09-28T08:30:00Z": ["incident:1", "incident:2"],  # call inside both
        "2026-09-28T08:30:05Z": ["incident:2"],
        "2026-09-28T09:30:00Z": ["incident:2"],
        "2026-09-28T10:30:00Z": [],
    }
    both = contacts["2026-09-28T08:30:00Z"]
    assert both["service_detail"] == (
        "inside incident #1: Puhelinvaihde rikki; inside incident #2: Evakuointi"
    )


def test_timeline_shows_incidents_without_contacts(cli: Cli, store: Store) -> None:
    _customer(cli)
    add_incident(
        store, title="Myrsky", start=at_local("2026-10-01 08:00"),
        end=at_local("2026-10-01 20:00"), channels=[], note=None, logged_by="k",
    )  # fmt: skip
    items = _timeline(store, "2026-10-01", "2026-10-01")
    assert [(i["kind"], i["title"]) for i in items] == [("incident", "Myrsky")]
    assert _timeline(store, "2026-10-02", "2026-10-03") == []


# --- opening hours --------------------------------------------------------------


def test_opening_hours_across_the_dst_change(
    cli: Cli, env: Env, store: Store, tmp_path: Path
) -> None:
    """08:00-16:00 local on both sides of 25.10.2026 (EEST UTC+3 -> EET UTC+2)."""
    env.write_config(HOURS_TOML)
    _customer(cli)
    _contacts(
        store,
        tmp_path,
        calls=[
            "2026-10-23 07:59:59",  # Friday, summer time: 04:59:59Z, closed
            "2026-10-23 08:00",  # 05:00Z open
            "2026-10-23 15:59",  # 12:59Z open
            "2026-10-23 16:00",  # 13:00Z closed
            "2026-10-26 07:30",  # Monday, winter time: 05:30Z, closed
            "2026-10-26 08:00",  # 06:00Z open (at 05:00Z it would still be closed)
            "2026-10-26 15:30",  # 13:30Z open (in summer this instant was 16:30: closed)
        ],
        mails=["2026-10-24 12:00"],  # Saturday: email is closed too
    )
    contacts = _contacts_by_time(_timeline(store, "2026-10-23", "2026-10-26"))
    assert {at: c["service_state"] for at, c in contacts.items()} == {
        "2026-10-23T04:59:59Z": "outside-hours",
        "2026-10-23T05:00:00Z": "normal",
        "2026-10-23T12:59:00Z": "normal",
        "2026-10-23T13:00:00Z": "outside-hours",
        "2026-10-24T09:00:00Z": "outside-hours",
        "2026-10-26T05:30:00Z": "outside-hours",
        "2026-10-26T06:00:00Z": "normal",
        "2026-10-26T13:30:00Z": "normal",
    }
    assert contacts["2026-10-26T05:30:00Z"]["service_detail"] == (
        "phone closed, Mon 2026-10-26: 08:00-16:00"
    )
    assert contacts["2026-10-24T09:00:00Z"]["service_detail"] == (
        "email closed, Sat 2026-10-24: closed"
    )


def test_holidays_and_exceptions(cli: Cli, env: Env, store: Store, tmp_path: Path) -> None:
    env.write_config(HOURS_TOML)
    _customer(cli)
    _contacts(
        store,
        tmp_path,
        calls=[
            "2026-12-06 10:00",  # Sunday and Independence Day
            "2026-12-08 10:00",  # Tuesday: open
            "2026-12-23 11:00",  # exception 08-12: open
            "2026-12-23 13:00",  # exception: closed
            "2026-12-24 10:00",  # Thursday, Christmas Eve: holiday
            "2026-12-31 10:00",  # exception: closed all day
        ],
        mails=[],
    )
    contacts = _contacts_by_time(_timeline(store, "2026-12-01", "2026-12-31"))
    assert [(c["service_state"], c["service_detail"]) for c in contacts.values()] == [
        ("outside-hours", "phone closed, public holiday Itsenäisyyspäivä (Sun 2026-12-06)"),
        ("normal", "phone open, Tue 2026-12-08: 08:00-16:00"),
        ("normal", "phone open, exception for Wed 2026-12-23: 08:00-12:00"),
        ("outside-hours", "phone closed, exception for Wed 2026-12-23: 08:00-12:00"),
        ("outside-hours", "phone closed, public holiday Jouluaatto (Thu 2026-12-24)"),
        ("outside-hours", "phone closed, exception for Thu 2026-12-31: closed"),
    ]


@pytest.mark.parametrize("env", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[opening_hours.phone]\nmon = "8-16"', 'write hours as "08:00-16:00"'),
        ('[opening_hours.phone]\nmon = "16:00-08:00"', "must end after it starts"),
        ('[opening_hours.phone]\nmonday = "08:00-16:00"', "use a day (mon, tue"),
        ('[opening_hours.fax]\nmon = "08:00-16:00"', "unknown key 'fax' in [opening_hours]"),
        ('[opening_hours]\nholidays = "XX"', "not a country the holidays package knows"),
    ],
)
def test_bad_opening_hours_are_explained(env: Env, toml: str, message: str) -> None:
    env.write_config(toml)
    with pytest.raises(EvidenceError, match="evidence.toml") as caught:
        opening_hours(load_config())
    assert message in str(caught.value)


# --- planned incidents ----------------------------------------------------------


def test_recurring_plan_over_the_autumn_and_spring_changes(
    cli: Cli, env: Env, store: Store, tmp_path: Path
) -> None:
    """Fridays 15:00-16:00 local from October to April: 12:00Z in summer, 13:00Z in winter."""
    env.write_config(HOURS_TOML)
    _customer(cli)
    plan, _ = plan_incident(
        store, title="Viikkopalaveri", start=at_local("2026-10-16 15:00"),
        end=at_local("2026-10-16 16:00"), rrule_text="FREQ=WEEKLY;BYDAY=FR;UNTIL=20270409T235959",
        channels=["phone"], note=None, logged_by="Kaisa", horizon_days=0,
    )  # fmt: skip
    materialise_plans(store, dt.datetime(2027, 6, 1, tzinfo=UTC))
    materialise_plans(store, dt.datetime(2027, 6, 1, tzinfo=UTC))  # idempotent
    with store.session() as session:
        starts = list(
            session.scalars(select(Incident.start).where(Incident.plan_id == plan.id).order_by(
                Incident.start))
        )  # fmt: skip
    assert len(starts) == 26  # 16.10.2026 .. 9.4.2027, every Friday, once each
    local = {s.astimezone(HELSINKI).strftime("%H:%M") for s in starts}
    assert local == {"15:00"}
    by_day = {s.astimezone(HELSINKI).date().isoformat(): s for s in starts}
    assert by_day["2026-10-23"] == dt.datetime(2026, 10, 23, 12, 0, tzinfo=UTC)  # EEST
    assert by_day["2026-10-30"] == dt.datetime(2026, 10, 30, 13, 0, tzinfo=UTC)  # EET
    assert by_day["2027-03-26"] == dt.datetime(2027, 3, 26, 13, 0, tzinfo=UTC)  # EET
    assert by_day["2027-04-02"] == dt.datetime(2027, 4, 2, 12, 0, tzinfo=UTC)  # EEST

    # A call at 15:30 local on the first Friday after each change is inside the break.
    _contacts(store, tmp_path, calls=["2026-10-30 15:30", "2027-04-02 15:30"], mails=[])
    items = _timeline(store, "2026-10-30", "2027-04-02")
    occurrences = [i for i in items if i["kind"] == "incident"]
    assert len(occurrences) == 23 and all(o["planned"] for o in occurrences)
    assert occurrences[0]["start"] == "2026-10-30T13:00:00Z"
    assert occurrences[0]["end"] == "2026-10-30T14:00:00Z"
    assert occurrences[-1]["start"] == "2027-04-02T12:00:00Z"
    assert occurrences[0]["rrule"] == "FREQ=WEEKLY;BYDAY=FR;UNTIL=20270409T235959"
    calls = [i for i in items if i["kind"] == "call"]
    assert [(c["at"], c["service_state"]) for c in calls] == [
        ("2026-10-30T13:30:00Z", "incident"),
        ("2027-04-02T12:30:00Z", "incident"),
    ]
    assert calls[0]["incidents"] == [occurrences[0]["id"]]


def test_plan_cli_and_a_corrected_occurrence_is_not_made_again(cli: Cli, store: Store) -> None:
    out = cli(
        "incident", "plan", "--title", "Huoltokatko", "--start", "2026-11-06 15:00",
        "--end", "2026-11-06 16:00", "--rrule", "RRULE:FREQ=WEEKLY;COUNT=3",
        "--logged-by", "Kaisa",
    )  # fmt: skip
    assert out.stdout == "plan #1: Huoltokatko, 3 occurrence(s) stored up to 60 days ahead\n"
    correct_incident(
        store, 2, start=at_local("2026-11-13 15:30"), reason="alkoi myöhässä", by="Kaisa"
    )
    assert materialise_plans(store, dt.datetime(2027, 1, 1, tzinfo=UTC)) == 0
    listed = json.loads(cli("incident", "list", "--json").stdout)
    assert [(i["id"], i["start"], i["planned"]) for i in listed] == [
        ("incident:1", "2026-11-06T13:00:00Z", True),
        ("incident:2", "2026-11-13T13:30:00Z", True),
        ("incident:3", "2026-11-20T13:00:00Z", True),
    ]
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(IncidentPlan)) == 1
    assert verify_store(store).intact


@pytest.mark.parametrize("env", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("rrule", "message"),
    [
        ("FREQ=WEEKLY;BYDAY=XX", "not a valid RFC 5545 RRULE"),
        ("FREQ=WEEKLY;UNTIL=20271231T000000Z", "write UNTIL as a local time without Z"),
        ("DTSTART:20260101T000000\nRRULE:FREQ=DAILY", "without DTSTART"),
        ("FREQ=MINUTELY", "would add"),
    ],
)
def test_bad_plans_are_refused_and_store_nothing(cli: Cli, rrule: str, message: str) -> None:
    result = cli(
        "incident", "plan", "--title", "x", "--start", "2026-11-06 15:00", "--end",
        "2026-11-06 16:00", "--rrule", rrule, "--logged-by", "k", code=1,
    )  # fmt: skip
    assert message in result.stderr
    assert json.loads(cli("incident", "list", "--json").stdout) == []


def test_dossier_counts_contacts_per_state(
    cli: Cli, env: Env, store: Store, tmp_path: Path
) -> None:
    env.write_config(HOURS_TOML)
    _customer(cli)
    add_incident(
        store, title="Evakuointi", start=at_local("2026-09-28 10:00"),
        end=at_local("2026-09-28 11:00"), channels=[], note=None, logged_by="k",
    )  # fmt: skip
    _contacts(
        store,
        tmp_path,
        calls=["2026-09-28 10:30", "2026-09-28 07:00", "2026-09-26 12:00"],
        mails=["2026-09-28 12:00", "2026-09-28 10:45"],
    )
    pdf = tmp_path / "d.pdf"
    cli("export", REF, "-o", str(pdf), "--generated-at", "2026-10-20T12:00:00+03:00")
    flat = " ".join(pdf_text(pdf).split())
    assert (
        "Yhteydenotot palvelutilanteittain häiriön aikana: 2, aukioloajan ulkopuolella: 2, "
        "normaali palvelu: 1"
    ) in flat
    assert "Palvelutilanne aukioloajan ulkopuolella – puhelin: la 26.9.2026 suljettu" in flat
    assert "Palvelutilanne aukioloajan ulkopuolella – puhelin: ma 28.9.2026 08.00–16.00" in flat
    assert "Palvelutilanne häiriön aikana – #1 Evakuointi; puhelin: ma 28.9.2026" in flat
    assert "Palvelutilanne normaali palvelu – sähköposti: ma 28.9.2026 08.00–16.00" in flat


def test_every_incident_command_takes_the_id_json_prints(cli: Cli, env: Env) -> None:
    """`incident list --json` prints "id": "incident:1"; end, correct and show take it (and
    the bare number, and #1 as the listings print it)."""
    cli("incident", "start", "--title", "Sähkökatko", "--logged-by", "Kaisa")
    [listed] = json.loads(cli("incident", "list", "--json").stdout)
    assert listed["id"] == "incident:1"

    # The issue's own example, in a process of its own as a user runs it.
    ended = run_evidence(env, "incident", "end", listed["id"], "--by", "Kaisa")
    assert ended.stdout.startswith("incident #1 ended ")
    cli("incident", "correct", "#1", "--title", "Sähkökatko (koko talo)", "--reason", "r",
        "--by", "Pekka")  # fmt: skip
    for form in ("incident:1", "1", "#1", " incident:1 "):
        shown = json.loads(cli("incident", "show", form, "--json").stdout)
        assert shown["id"] == "incident:1" and shown["title"] == "Sähkökatko (koko talo)"
        assert [v["kind"] for v in shown["versions"]] == ["logged", "ended", "corrected"]

    for wrong in ("call:1", "incident:", "incident:x", "1.5", "incident:-1"):
        refused = cli("incident", "show", wrong, code=2)
        assert f"Invalid value for 'INCIDENT': {wrong!r} is not an incident" in refused.stderr
        assert "e.g. 7 or incident:7" in refused.stderr
    missing = cli("incident", "end", "incident:99", code=1)
    assert missing.stderr == "evidence: no incident #99: see `evidence incident list`\n"
