"""Acceptance: the evacuation-day dispute in ../shared/scenario, driven through the CLI.

Every fact listed in the scenario's README is checked in the JSON timeline and
in the text of the exported PDF, on SQLite and on PostgreSQL, on a store made
with a bare `evidence init` (no options, no evidence.toml), each command in a
process of its own, as a new user runs them.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import SCENARIO, Env, need_shared, pdf_text, run_evidence

MATTI = "100234"
CASE = "ESAVI/31337/2026"


def _load_scenario(env: Env, mail_order: list[list[str]]) -> None:
    run_evidence(env, "init")
    run_evidence(
        env,
        "customer",
        "add",
        MATTI,
        "--name",
        "Matti Virtanen",
        "--email",
        "matti.virtanen@example.net",
        "--phone",
        "040 123 4567",
    )
    for paths in mail_order:
        run_evidence(env, "import", "mail", *paths)
    run_evidence(
        env, "import", "calls", str(SCENARIO / "pbx/Master.csv"), "--format", "asterisk-cdr"
    )
    run_evidence(
        env, "import", "calls", str(SCENARIO / "pbx/queue_log"), "--format", "asterisk-queue-log"
    )
    run_evidence(env, "import", "recordings", str(SCENARIO / "recordings"))
    run_evidence(
        env,
        "incident",
        "add",
        "--start",
        "2026-09-28 10:02",
        "--end",
        "2026-09-28 14:11",
        "--title",
        "Toimitalo tyhjennetty uhkatilanteen vuoksi",
        "--channel",
        "phone",
        "--channel",
        "email",
        "--logged-by",
        "Kaisa Lehtonen (esihenkilö)",
        "--logged-at",
        "2026-09-28 14:25",
    )
    run_evidence(
        env,
        "case",
        "open",
        CASE,
        "--customer",
        MATTI,
        "--authority",
        "Etelä-Suomen aluehallintovirasto",
        "--received",
        "2026-10-20",
    )
    run_evidence(
        env,
        "case",
        "attach",
        CASE,
        str(SCENARIO / "letters/ESAVI-31337-2026-selvityspyynto.pdf"),
        "--title",
        "Selvityspyyntö",
    )


@pytest.fixture
def scenario_env(env: Env) -> Env:
    need_shared()
    mail = sorted(str(p) for p in (SCENARIO / "mail").glob("*.eml"))
    mbox = str(SCENARIO / "mail/export-2026-09-29.mbox")
    # The mbox overlaps the .eml files; import it first, then everything, then again.
    _load_scenario(env, [[mbox], mail, [mbox, *mail]])
    return env


def _timeline(env: Env) -> list[dict]:
    return json.loads(run_evidence(env, "timeline", MATTI, "--json").stdout)


def test_scenario_timeline_facts(scenario_env: Env) -> None:
    items = _timeline(scenario_env)
    emails = [i for i in items if i["kind"] == "email"]
    calls = [i for i in items if i["kind"] == "call"]
    incidents = [i for i in items if i["kind"] == "incident"]

    # Exactly m01..m06; m07 (another customer) never appears.
    assert [e["message_id"] for e in emails] == [
        "<20260928091422.5521@mail.example.net>",
        "<20260928100109.7781@mail.example.net>",
        "<wm.1790583962.33@webmail.example.net>",
        "<20260928135240.1102@mail.example.net>",
        "<a7f3.20260928143715@aurora-energia.example>",
        "<20260929080351.2001@mail.example.net>",
    ]
    by_id = {e["message_id"]: e for e in emails}
    assert all("korhonen" not in json.dumps(i) for i in items)

    m03 = by_id["<wm.1790583962.33@webmail.example.net>"]
    assert m03["from"] == "matti.virtanen@example.net"
    assert m03["from_display"] == '"Virtanen, Matti" <MATTI.VIRTANEN@EXAMPLE.NET>'

    m02 = by_id["<20260928100109.7781@mail.example.net>"]
    assert m02["received_at"] == "2026-09-28T07:21:37Z"
    assert m02["date_header"] == "2026-09-28T10:01:09+03:00"
    assert m02["at"] == m02["received_at"]

    # The company's apology: no Received: line, placed at its own Date (flagged so),
    # never at the import time; sent to Matti, so outbound even with no domain set.
    m05 = by_id["<a7f3.20260928143715@aurora-energia.example>"]
    assert m05["direction"] == "outbound"
    assert m05["at"] == "2026-09-28T11:37:15Z"
    assert m05["received_source"] == "date-header"
    assert [e["direction"] for e in emails] == ["inbound"] * 4 + ["outbound", "inbound"]

    m04 = by_id["<20260928135240.1102@mail.example.net>"]
    [png] = m04["attachments"]
    assert png["filename"] == "soittohistoria ma 28.9.png"
    assert png["content_type"] == "image/png"
    assert png["sha256"] == hashlib.sha256(png_bytes_of_m04()).hexdigest()

    # Each stored raw message hashes to its recorded SHA-256 and is one of the files.
    eml_hashes = {
        hashlib.sha256(p.read_bytes()).hexdigest() for p in (SCENARIO / "mail").glob("*.eml")
    }
    assert by_id["<20260928091422.5521@mail.example.net>"]["sha256"] in eml_hashes

    # Calls: 7 from Matti; the 09:05 call from 0509876543 is not his.
    assert len(calls) == 7
    assert all(c["number"] == "+358401234567" for c in calls)
    on_28 = [c for c in calls if c["at"].startswith("2026-09-28")]
    assert [c["queue_wait"] for c in on_28] == [95, 240, 300, 31, 300, 100]
    assert [c["outcome"] for c in on_28] == [
        "abandoned",
        "abandoned",
        "timeout",
        "abandoned",
        "timeout",
        "answered",
    ]
    answered = on_28[-1]
    assert answered["agent"] == "PJSIP/1001"
    assert answered["talk_time"] == 372
    assert answered["uniqueid"] == "1790596202.317"
    wav = (SCENARIO / "recordings/1790596202.317.wav").read_bytes()
    assert answered["recording_sha256"] == hashlib.sha256(wav).hexdigest()
    assert max(c["queue_wait"] for c in on_28) == 300

    # The incident holds five of the calls.
    [incident] = incidents
    assert incident["start"] == "2026-09-28T07:02:00Z"
    assert incident["end"] == "2026-09-28T11:11:00Z"
    inside = [c for c in calls if c["incidents"] == [incident["id"]]]
    assert len(inside) == 5

    # The repeated autumn hour: the second 03:30 (EET), from the uniqueid.
    late = calls[-1]
    assert late["uniqueid"] == "1792891812.901"
    assert late["at"] == "2026-10-25T01:30:12Z"
    assert late["time_flag"] == "ambiguous-resolved-by-uniqueid"
    assert late["local_time"] == "2026-10-25 03:30:12"


def png_bytes_of_m04() -> bytes:
    import email

    msg = email.message_from_bytes((SCENARIO / "mail/m04-liite.eml").read_bytes())
    [part] = [p for p in msg.walk() if p.get_content_type() == "image/png"]
    data = part.get_payload(decode=True)
    assert isinstance(data, bytes)
    return data


def test_scenario_dossier_pdf(scenario_env: Env, tmp_path: Path) -> None:
    out = tmp_path / "dossier.pdf"
    run_evidence(scenario_env, "export", MATTI, "--case", CASE, "-o", str(out))
    text = pdf_text(out)
    flat = " ".join(text.split())

    # Both times of m02, in local time with the offset.
    assert "28.9.2026 10.21.37 (UTC+3)" in flat
    assert "28.9.2026 10.01.09 (UTC+3)" in flat
    # m05 placed at its own Date, not at the import time, and it answers m01: the
    # first-reply figure counts it.
    assert "28.9.2026 14.37.15 (UTC+3)" in flat
    assert "Aika ensimmäiseen vastaukseen 5 h 22 min 50 s (E-001, E-013)" in flat
    # Bodies verbatim from utf-8, iso-8859-1 and windows-1252; the swearing stays.
    for phrase in ("Mikä helvetti teillä on?", "VASTATKAA NYT SAATANA!!!", "4,90 €", "perkelettä"):
        assert phrase in flat, phrase
    # m03's HTML: no script text, nothing local read into the PDF.
    assert "alert(" not in flat
    assert "root:x:0:0" not in text
    hostname = Path("/etc/hostname").read_text().strip() if Path("/etc/hostname").exists() else ""
    if hostname:
        assert hostname not in flat
    # m07 and the other customer's call never appear.
    assert "Korhonen" not in flat and "Muutto" not in flat
    assert "0509876543" not in flat
    # m04's attachment listed with its SHA-256.
    assert "soittohistoria ma 28.9.png" in flat
    assert hashlib.sha256(png_bytes_of_m04()).hexdigest() in flat
    # Calls with their queue waits; the longest is 5 min 0 s; the answered one.
    for wait in ("1 min 35 s", "4 min 0 s", "5 min 0 s", "31 s", "1 min 40 s"):
        assert wait in flat, wait
    assert "6 min 12 s" in flat and "PJSIP/1001" in flat
    assert "30 min" not in flat
    # The incident and the flag on contacts inside it.
    assert "Toimitalo tyhjennetty uhkatilanteen vuoksi" in flat
    assert flat.count("Häiriön aikana: #1") == 8  # 5 calls + m02, m03, m04
    # The autumn-hour call at the second 03:30, and that it was resolved.
    assert "25.10.2026 03.30.12 (UTC+2)" in flat
    assert "1792891812.901" in flat
    # The recording linked with its SHA-256.
    wav = (SCENARIO / "recordings/1790596202.317.wav").read_bytes()
    assert hashlib.sha256(wav).hexdigest() in flat
    # The regulator's letter: case on the cover, the letter's own text appended.
    assert "ESAVI/31337/2026" in flat and "Etelä-Suomen aluehallintovirasto" in flat
    assert "SELVITYSPYYNTÖ" in flat

    # The originals are embedded byte for byte: pdfdetach + sha256 prove it.
    saved = tmp_path / "detached"
    saved.mkdir()
    subprocess.run(["pdfdetach", "-saveall", "-o", str(saved), str(out)], check=True)
    digests = {hashlib.sha256(p.read_bytes()).hexdigest() for p in saved.iterdir()}
    letter = (SCENARIO / "letters/ESAVI-31337-2026-selvityspyynto.pdf").read_bytes()
    assert hashlib.sha256(letter).hexdigest() in digests
    assert hashlib.sha256(wav).hexdigest() in digests
    m01 = (SCENARIO / "mail/m01-maksuaika.eml").read_bytes()
    assert hashlib.sha256(m01).hexdigest() in digests
    # and every embedded file's digest is printed in the manifest, but those of the
    # signature over the pages, which is made from the finished pages
    signed_pages = {
        hashlib.sha256((saved / name).read_bytes()).hexdigest()
        for name in ("pages.json", "pages.sig")
    }
    for digest in digests - signed_pages:
        assert digest in flat

    # The whole store, and the dossier on its own, verify intact (issue 8).
    store_check = run_evidence(scenario_env, "verify")
    assert store_check.stdout.splitlines()[-1] == "INTACT: every check passed"
    dossier_check = run_evidence(scenario_env, "verify", str(out))
    assert dossier_check.stdout.splitlines()[-1] == "INTACT: every check passed"
