"""`evidence report service`, the dossier's Reachability and Evidence of absence, and
authority presets: on a small phone log of our own (no ../shared needed), on SQLite
and PostgreSQL.

The day, Tuesday 10.3.2026 (Europe/Helsinki, UTC+2), phone open 08-16:

| local | caller | what the log says | counts as |
|---|---|---|---|
| 09.00 | 040 111 1111 | queue, CONNECT after 20 s | answered within 60 s |
| 09.30 | 040 222 2222 | ABANDON after 90 s; called back 11.00 | abandoned, in the incident |
| 10.00 | 040 333 3333 | EXITWITHTIMEOUT after 300 s; called back 11.3. | timeout |
| 10.30 | 040 444 4444 | CDR Playback, no queue | IVR only, never called back |
| 12.00 | anonymous | queue, CONNECT after 120 s | answered, not within 60 s |
| 18.00 | 040 555 5555 | CDR Playback "suljettu" | IVR only, after hours, never called back |

Monday 9.3.2026: one call answered after 10 s (the baseline). An incident
(phone) 09.15-09.45 on 10.3.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest

from tests.conftest import SCENARIO, Cli, Env, need_shared, pdf_text
from tests.contacts import HOURS_TOML, at_local

COMPANY = """
[company]
name = "Aurora Energia Oy"
mail_domains = ["aurora-energia.example"]
"""
CUSTOMER_MAIL = "aino.asiakas@example.net"


def _epoch(local: str) -> int:
    return int(at_local(local).timestamp())


def _cdr(
    local: str,
    src: str,
    dst: str,
    *,
    context: str = "from-pstn",
    app: str = "Queue",
    data: str = "asiakaspalvelu",
    seconds: int = 60,
    billsec: int = 0,
    uniqueid: str,
    dstchannel: str = "",
) -> str:
    start = dt.datetime.fromisoformat(local)
    end = start + dt.timedelta(seconds=seconds)
    answer = (end - dt.timedelta(seconds=billsec)).isoformat(sep=" ") if billsec else ""
    fields = [
        "",
        src,
        dst,
        context,
        f'"" <{src}>',
        "PJSIP/trunk-00000001" if context == "from-pstn" else "PJSIP/1001-00000001",
        dstchannel,
        app,
        data,
        start.isoformat(sep=" "),
        answer,
        end.isoformat(sep=" "),
        str(seconds),
        str(billsec),
        "ANSWERED" if billsec or app == "Playback" else "NO ANSWER",
        "DOCUMENTATION",
        uniqueid,
        "",
    ]
    return ",".join(f.isdigit() and f or '"' + f.replace('"', '""') + '"' for f in fields)


def _queue_call(local: str, uid: str, caller: str, end_event: str, wait: int) -> list[str]:
    t = _epoch(local)
    lines = [f"{t}|{uid}|asiakaspalvelu|NONE|ENTERQUEUE||{caller}|1"]
    if end_event == "CONNECT":
        lines.append(f"{t + wait}|{uid}|asiakaspalvelu|PJSIP/1001|CONNECT|{wait}|{uid}1|3")
        lines.append(
            f"{t + wait + 100}|{uid}|asiakaspalvelu|PJSIP/1001|COMPLETECALLER|{wait}|100|1"
        )
    else:
        lines.append(f"{t + wait}|{uid}|asiakaspalvelu|NONE|{end_event}|1|1|{wait}")
    return lines


def _write_logs(directory: Path) -> tuple[Path, Path]:
    queue_log = [
        f"{_epoch('2026-03-09 07:55:00')}|NONE|asiakaspalvelu|PJSIP/1001|ADDMEMBER|",
        *_queue_call("2026-03-09 09:00:00", "1773039600.1", "0401111111", "CONNECT", 10),
        *_queue_call("2026-03-10 09:00:00", "1773126000.2", "0401111111", "CONNECT", 20),
        f"{_epoch('2026-03-10 09:15:00')}|NONE|asiakaspalvelu|PJSIP/1001|PAUSE|palaveri",
        *_queue_call("2026-03-10 09:30:00", "1773127800.3", "0402222222", "ABANDON", 90),
        f"{_epoch('2026-03-10 09:45:00')}|NONE|asiakaspalvelu|PJSIP/1001|UNPAUSE|",
        *_queue_call("2026-03-10 10:00:00", "1773129600.4", "0403333333", "EXITWITHTIMEOUT", 300),
        *_queue_call("2026-03-10 12:00:00", "1773136800.6", "anonymous", "CONNECT", 120),
    ]
    cdr = [
        _cdr(
            "2026-03-10 10:30:00",
            "0404444444",
            "500",
            app="Playback",
            data="valikko",
            seconds=15,
            uniqueid="1773131400.5",
        ),  # fmt: skip
        _cdr(
            "2026-03-10 11:00:00",
            "1001",
            "0402222222",
            context="from-internal",
            app="Dial",
            data="PJSIP/trunk/0402222222",
            seconds=90,
            billsec=60,
            uniqueid="1773133200.7",
            dstchannel="PJSIP/trunk-00000009",
        ),  # fmt: skip
        _cdr(
            "2026-03-10 18:00:00",
            "0405555555",
            "500",
            app="Playback",
            data="suljettu",
            seconds=20,
            uniqueid="1773158400.8",
        ),  # fmt: skip
        _cdr(
            "2026-03-11 09:00:00",
            "1001",
            "0403333333",
            context="from-internal",
            app="Dial",
            data="PJSIP/trunk/0403333333",
            seconds=90,
            billsec=60,
            uniqueid="1773212400.9",
            dstchannel="PJSIP/trunk-00000010",
        ),  # fmt: skip
    ]
    (directory / "queue_log").write_text("\n".join(queue_log) + "\n", encoding="utf-8")
    (directory / "Master.csv").write_text("\n".join(cdr) + "\n", encoding="utf-8")
    return directory / "Master.csv", directory / "queue_log"


def _mail(directory: Path) -> None:
    def message(name: str, headers: str, body: str) -> None:
        (directory / name).write_text(headers + "\n" + body + "\n", encoding="utf-8")

    message(
        "in1.eml",
        "Received: from mail.example.net by mx.aurora-energia.example; "
        "Tue, 10 Mar 2026 09:00:00 +0200\n"
        f"From: Aino Asiakas <{CUSTOMER_MAIL}>\nTo: asiakaspalvelu@aurora-energia.example\n"
        "Subject: Lasku\nDate: Tue, 10 Mar 2026 08:59:58 +0200\nMessage-ID: <in1@example.net>\n",
        "Miksi lasku on niin suuri?",
    )
    message(
        "out1.eml",
        f"From: Asiakaspalvelu <asiakaspalvelu@aurora-energia.example>\nTo: {CUSTOMER_MAIL}\n"
        "Subject: RE: Lasku\nDate: Tue, 10 Mar 2026 11:00:00 +0200\n"
        "Message-ID: <out1@aurora-energia.example>\nIn-Reply-To: <in1@example.net>\n",
        "Tarkistamme asian.",
    )
    # Another customer writes with the same subject; we never answer them. Aino's reply
    # must not count as theirs (threads are per correspondent).
    message(
        "other.eml",
        "Received: from mail.example.org by mx.aurora-energia.example; "
        "Tue, 10 Mar 2026 09:10:00 +0200\n"
        "From: Olli Muu <olli@example.org>\nTo: asiakaspalvelu@aurora-energia.example\n"
        "Subject: Lasku\nDate: Tue, 10 Mar 2026 09:09:58 +0200\nMessage-ID: <o1@example.org>\n",
        "Minunkin laskuni.",
    )
    message(
        "in2.eml",
        "Received: from mail.example.net by mx.aurora-energia.example; "
        "Tue, 10 Mar 2026 10:00:00 +0200\n"
        f"From: Aino Asiakas <{CUSTOMER_MAIL}>\nTo: asiakaspalvelu@aurora-energia.example\n"
        "Subject: Muutto\nDate: Tue, 10 Mar 2026 09:59:58 +0200\nMessage-ID: <in2@example.net>\n",
        "Muutan huhtikuussa.",
    )


@pytest.fixture
def day(env: Env, cli: Cli, tmp_path: Path) -> Cli:
    """The store with the day above, the customer Aino (two of the numbers and the mail)."""
    env.write_config(COMPANY + HOURS_TOML)
    cdr, queue_log = _write_logs(tmp_path)
    mail = tmp_path / "mail"
    mail.mkdir()
    _mail(mail)
    cli("init")
    cli("customer", "add", "7", "--name", "Aino Asiakas", "--email", CUSTOMER_MAIL,
        "--phone", "040 222 2222", "--phone", "040 444 4444")  # fmt: skip
    cli("import", "calls", str(cdr), "--format", "asterisk-cdr")
    cli("import", "calls", str(queue_log), "--format", "asterisk-queue-log")
    cli("import", "mail", str(mail))
    cli("incident", "add", "--start", "2026-03-10 09:15", "--end", "2026-03-10 09:45",
        "--title", "Palaveri", "--channel", "phone", "--logged-by", "Kaisa")  # fmt: skip
    return cli


def _report(cli: Cli, *args: str) -> dict[str, object]:
    out = cli("report", "service", "--from", "2026-03-10", "--json", *args).output
    data = json.loads(out)
    assert isinstance(data, dict)
    return data


def test_report_figures(day: Cli) -> None:
    data = _report(day, "--baseline-from", "2026-03-09", "--baseline-to", "2026-03-09")
    period = data["period"]
    assert isinstance(period, dict)
    assert period["calls"] == {
        "offered": 6,
        "answered": 2,
        "abandoned": 1,
        "timeout": 1,
        "ivr_only": 2,  # 10.30 phone menu and the 18.00 closed message
        "after_hours": 1,
        "other": 0,
        "reached_queue": 4,
        "service_level": 0.25,  # 1 of 4 queued calls answered within 60 s
        "wait_median": 105.0,  # 20, 90, 120, 300
        "wait_p90": 300,
        "wait_max": 300,
    }
    assert period["callbacks"] == {
        "unanswered": 4,  # hidden numbers cannot be called back: not counted
        "called_back": 2,
        "called_back_same_day": 1,
        "callback_same_day_share": 0.25,
        "callback_delay_mean": (90 * 60 + 23 * 3600) / 2,
        "not_called_back": 2,
    }
    assert period["email"] == {
        "inbound": 3,
        "answered": 1,
        "first_reply_median": 7200.0,
        "first_reply_max": 7200,
        "unanswered": 2,  # Olli's "Lasku" and Aino's "Muutto"
    }
    states = period["states"]
    assert states["incident"]["calls"]["offered"] == 1  # the 09.30 call
    assert states["incident"]["calls"]["abandoned"] == 1
    assert states["outside_hours"]["calls"]["offered"] == 1  # the 18.00 call
    assert states["outside_hours"]["calls"]["ivr_only"] == 1
    assert states["normal"]["calls"]["offered"] == 4
    assert states["normal"]["email"]["inbound"] == 3
    baseline = data["baseline"]
    assert baseline["from"] == baseline["to"] == "2026-03-09" and baseline["days"] == 1
    assert baseline["calls"]["offered"] == baseline["calls"]["answered"] == 1
    assert baseline["calls"]["service_level"] == 1.0 and baseline["calls"]["wait_max"] == 10
    assert data["threshold"] == 60
    # Agents over time: logged in and available, counts only.
    assert [(a["logged_in"], a["available"]) for a in data["agents"]] == [(1, 1), (1, 0), (1, 1)]
    assert [i["channels"] for i in data["incidents"]] == [["phone"]]


def test_default_baseline_threshold_and_hours(day: Cli, env: Env) -> None:
    data = _report(day, "--by", "hour", "--threshold", "150")
    baseline = data["baseline"]
    assert (baseline["from"], baseline["to"], baseline["days"]) == ("2026-02-10", "2026-03-09", 28)
    assert baseline["calls"]["offered"] == 1
    # 20 s and 120 s are within 150 s; 90 and 300 were not answered.
    assert data["period"]["calls"]["service_level"] == 0.5
    buckets = data["buckets"]
    assert data["by"] == "hour" and len(buckets) == 24
    assert buckets[9]["start"] == "2026-03-10T09:00:00+02:00"
    assert (buckets[9]["calls"]["offered"], buckets[9]["calls"]["answered"]) == (2, 1)
    assert buckets[18]["calls"]["after_hours"] == 1
    # The threshold from evidence.toml, when no --threshold is given.
    env.write_config(COMPANY + HOURS_TOML + "\n[reports]\nservice_level_threshold = 150\n")
    assert _report(day)["period"]["calls"]["service_level"] == 0.5
    by_day = _report(day, "--to", "2026-03-11", "--by", "day")
    assert [b["calls"]["offered"] for b in by_day["buckets"]] == [6, 0]


def test_report_text_has_no_personal_data(day: Cli) -> None:
    text = day("report", "service", "--from", "2026-03-10").output
    assert "calls offered (inbound attempts)" in text
    assert re.search(r"IVR only \(never reached a queue\)\s+2\s+0\s+1\s+1\s+0", text), text
    assert re.search(r"service level\s+25 %", text)
    assert re.search(r"queue wait longest\s+5 min 00 s", text)
    full = text + day("report", "service", "--from", "2026-03-10", "--json", "--by", "hour").output
    private_data = ("040", "+358", "example.net", "example.org", "Aino", "Olli", "anonymous")
    for private in private_data:
        assert private not in full, private


def test_report_refuses_bad_input(day: Cli) -> None:
    result = day("report", "service", "--from", "2026-03-10", "--to", "2026-03-09", code=2)
    assert result.stderr.endswith("Error: --to 2026-03-09 is before --from 2026-03-10\n")
    result = day("report", "service", "--from", "2026-03-10", "--baseline-from", "2026-03-01",
                 code=1)  # fmt: skip
    assert "--baseline-to" in result.stderr


@pytest.mark.slow
def test_dossier_reachability_section(day: Cli, tmp_path: Path) -> None:
    out = tmp_path / "en.pdf"
    day("export", "7", "-o", str(out), "--lang", "en", "--from", "2026-03-10", "--to",
        "2026-03-11")  # fmt: skip
    flat = " ".join(pdf_text(out).split())
    assert "Reachability" in flat and "Evidence of absence" in flat
    assert "The customer's contact attempts" in flat
    # The abandoned call: in the incident, called back at 11.00 the same day.
    # (Table cells wrap, so the text of a row comes in pieces.)
    assert "E-004 10 Mar 2026 09:30:00 (UTC+2) Call during an" in flat
    assert "caller hung up in the queue, queue wait 1 min 30 s;" in flat
    assert "called back 10 Mar 2026 11:00:00 (UTC+2) (E-007)" in flat
    assert "E-006 10 Mar 2026 10:30:00 (UTC+2) Call normal ended in the phone menu" in flat
    assert "agent); not called back" in flat
    assert "replied after 2 h 0 min 0 s" in flat and "no reply" in flat
    # The company's figures on 10.3 against the 28 days before.
    assert "Baseline 10 Feb 2026 – 9 Mar 2026, per day" in flat
    assert re.search(r"Calls offered 6 0\.0", flat), flat  # 1 call in 28 days rounds to 0.0
    assert re.search(r"Answered within 60 s 25 % 100 %", flat)
    assert "Calls per hour, 10 Mar 2026" in flat
    # Evidence of absence: both unanswered calls of the customer with their own lines.
    absence = flat[
        flat.index("Evidence of absence Every call") : flat.index("Completeness of the sources")
    ]
    assert "queue_log, line 9" in absence  # ENTERQUEUE of the 09.30 call
    assert (
        f"{_epoch('2026-03-10 09:30:00') + 90}|1773127800.3|asiakaspalvelu|NONE|ABANDON|1|1|90"
        in absence
    )
    assert "Master.csv, line 1" in absence and '"Playback","valikko"' in absence
    assert "CDR lastapp Playback" in absence
    assert absence.count("Outcome from") == 2


@pytest.mark.slow
def test_dossier_reachability_in_finnish_and_swedish(day: Cli, tmp_path: Path) -> None:
    day("case", "open", "K/1", "--customer", "7", "--authority", "KRIL",
        "--period", "2026-03-10..2026-03-10")  # fmt: skip
    shown = json.loads(day("case", "show", "K/1", "--json").output)
    assert (shown["authority"], shown["authority_name"]) == ("kril", "Consumer Disputes Board")
    fi, sv = tmp_path / "fi.pdf", tmp_path / "sv.pdf"
    day("export", "--case", "K/1", "-o", str(fi), "--lang", "fi")
    day("export", "--case", "K/1", "-o", str(sv), "--lang", "sv")
    fi_text, sv_text = (" ".join(pdf_text(p).split()) for p in (fi, sv))
    assert "Viranomainen Kuluttajariitalautakunta" in fi_text
    assert "Konsumenttvistenämnden" in sv_text and "Kuluttajariitalautakunta" not in sv_text
    assert "Tavoitettavuus" in fi_text and "Näyttö tavoittamattomuudesta" in fi_text
    assert "Vertailujakso 10.2.2026 – 9.3.2026, keskimäärin päivässä" in fi_text
    assert "soitettu takaisin 10.3.2026 11.00.00 (UTC+2)" in fi_text
    assert "queue_log, rivi 9" in fi_text
    assert "Nåbarhet" in sv_text and "Bevis på att ingen nåddes" in sv_text
    assert "Jämförelseperiod 10.2.2026 – 9.3.2026, per dag" in sv_text
    assert "Master.csv, rad 1" in sv_text


def test_authority_free_text_and_presets(env: Env, cli: Cli) -> None:
    cli("init")
    cli("customer", "add", "1", "--name", "A")
    cli("case", "open", "A/1", "--customer", "1", "--authority", "lvv")
    cli("case", "open", "A/2", "--customer", "1", "--authority", "Etelä-Suomen AVI")
    cases = {c["reference"]: c for c in json.loads(cli("case", "list", "--json").output)}
    assert cases["A/1"]["authority"] == "lvv"
    assert cases["A/1"]["authority_name"] == "Finnish Supervisory Agency"
    assert cases["A/2"]["authority"] == cases["A/2"]["authority_name"] == "Etelä-Suomen AVI"
    assert "Finnish Supervisory Agency" in cli("case", "show", "A/1").output
    result = cli("case", "open", "A/3", "--customer", "1", "--authority", " ", code=1)
    assert "lvv (Lupa- ja valvontavirasto)" in result.stderr


def test_authority_names() -> None:
    from evidence.records.authorities import AUTHORITIES, authority_name, authority_value

    assert authority_value(" Traficom ") == "traficom"
    assert authority_value("Etelä-Suomen AVI") == "Etelä-Suomen AVI"
    assert authority_name("traficom", "sv") == "Transport- och kommunikationsverket Traficom"
    assert authority_name("energiavirasto", "fi") == "Energiavirasto"
    assert authority_name("energiavirasto", "sv") == "Energimyndigheten"
    assert authority_name("kkv", "fi") == "Kilpailu- ja kuluttajavirasto, kuluttajaneuvonta"
    assert authority_name("kkv", "sv") == "Konkurrens- och konsumentverket, konsumentrådgivningen"
    assert authority_name("lvv", "sv") == "Tillstånds- och tillsynsverket"
    assert sorted(AUTHORITIES) == ["energiavirasto", "kkv", "kril", "lvv", "traficom"]


def test_percentile_is_nearest_rank() -> None:
    from evidence.timeline.reports import _p90

    assert _p90([]) is None
    assert _p90([5]) == 5
    assert _p90(list(range(1, 11))) == 9  # 90 % of ten values are at most 9
    assert _p90(list(range(1, 12))) == 10


# --- the scenario ---------------------------------------------------------------------------


@pytest.fixture
def scenario(env: Env, cli: Cli) -> Cli:
    need_shared()
    cli("init", "--company", "Aurora Energia Oy", "--mail-domain", "aurora-energia.example")
    cli("customer", "add", "100234", "--name", "Matti Virtanen", "--email",
        "matti.virtanen@example.net", "--phone", "040 123 4567")  # fmt: skip
    cli("import", "mail", *sorted(str(p) for p in (SCENARIO / "mail").glob("m0*.eml")))
    cli("import", "calls", str(SCENARIO / "pbx/Master.csv"), "--format", "asterisk-cdr")
    cli("import", "calls", str(SCENARIO / "pbx/queue_log"), "--format", "asterisk-queue-log")
    cli("incident", "add", "--start", "2026-09-28 10:02", "--end", "2026-09-28 14:11",
        "--title", "Toimitalo tyhjennetty uhkatilanteen vuoksi", "--channel", "phone",
        "--channel", "email", "--logged-by", "Kaisa Lehtonen (esihenkilö)",
        "--logged-at", "2026-09-28 14:25")  # fmt: skip
    return cli


def test_scenario_report(scenario: Cli) -> None:
    data = json.loads(scenario("report", "service", "--from", "2026-09-28", "--json").output)
    calls = data["period"]["calls"]
    assert (calls["offered"], calls["answered"], calls["abandoned"], calls["timeout"]) == (
        7, 2, 3, 2,
    )  # fmt: skip
    assert calls["reached_queue"] == 7 and calls["ivr_only"] == 0
    assert calls["wait_max"] == 300
    assert data["period"]["states"]["incident"]["calls"]["offered"] == 5
    # Matti's first email (received 09.14.25) was answered at 14.37.15: 5 h 23 min.
    email = data["period"]["email"]
    assert email["first_reply_max"] == 5 * 3600 + 22 * 60 + 50
    assert round(email["first_reply_max"] / 60) == 5 * 60 + 23
    text = scenario("report", "service", "--from", "2026-09-28").output
    assert re.search(r"first reply, longest\s+5 h 23 min", text)
    assert "0401234567" not in text and "matti" not in text.lower()


@pytest.mark.slow
def test_scenario_dossier(scenario: Cli, tmp_path: Path) -> None:
    scenario("case", "open", "ESAVI/31337/2026", "--customer", "100234", "--authority", "lvv",
             "--period", "2026-09-28..2026-09-30")  # fmt: skip
    out = tmp_path / "d.pdf"
    scenario("export", "--case", "ESAVI/31337/2026", "-o", str(out))
    flat = " ".join(pdf_text(out).split())
    assert "Viranomainen Lupa- ja valvontavirasto" in flat
    section = flat[
        flat.index("Tavoitettavuus Asiakkaan omat") : flat.index(
            "Näyttö tavoittamattomuudesta Jokainen"
        )
    ]
    assert section.count("Puhelu häiriön aikana") == 5  # the incident holds 5 of his calls
    assert "vastattu 5 h 22 min 50 s kuluttua" in section
    assert re.search(r"Tulleet puhelut 7 ", section)
    assert re.search(r"joista häiriön aikana 5 ", section)
    assert re.search(r"Jonotusaika: pisin 5 min 0 s", section)
    absence = flat[
        flat.index("Näyttö tavoittamattomuudesta Jokainen") : flat.index("Lähteiden kattavuus")
    ]
    assert absence.count("Lopputuloksen lähde") == 5
    for uid in ("1790579705.312", "1790581330.313", "1790584260.314", "1790586390.315",
                "1790591580.316"):  # fmt: skip
        assert f"|{uid}|asiakaspalvelu|NONE|ENTERQUEUE||0401234567|1" in absence
    assert "1790596202.317|asiakaspalvelu|NONE|ENTERQUEUE" not in absence  # answered
