"""Bad input a user really gives, driven through the command line as a user types it:
the wrong file for an import, dates typed far off, the wrong way round or the Finnish
way, and customer or case references that no listing can show.

Every refusal is one line naming what is wrong, with nothing stored; nothing ends in a
traceback.
"""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from pathlib import Path

import click
import pytest
from sqlalchemy import func, select

from evidence.cli import main
from evidence.config import load_config
from evidence.store.db import open_store
from evidence.store.models import (
    Base,
    Blob,
    Customer,
    ImportRun,
    LedgerEntry,
    QuarantineDismissal,
    QuarantineItem,
)
from evidence.timeutil import DATE_FORMS, TIME_FORMS
from tests.conftest import NO_DOMAIN_NOTE, Cli, Env, page_texts, pdf_text, run_evidence
from tests.samples import SAMPLE

FORMS = f"({DATE_FORMS})"


def _counts(env: Env, *models: type[Base]) -> list[int]:
    store = open_store(load_config(env.vars))
    try:
        with store.session() as session:
            return [int(session.scalar(select(func.count()).select_from(m)) or 0) for m in models]
    finally:
        store.close()


def _only_error_line(stderr: str) -> str:
    """The one line a usage error says (click prints the usage above it)."""
    assert "Traceback" not in stderr
    return stderr.strip().splitlines()[-1]


# --- a file that is not mail, named for the mail import -----------------------------------

_AUDIO = "import recordings with `evidence import recordings {folder}`"


def _zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("Master.csv", (SAMPLE / "pbx/Master.csv").read_bytes())
    return out.getvalue()


NOT_MAIL: dict[str, tuple[bytes, str]] = {
    "Master.csv": (
        (SAMPLE / "pbx/Master.csv").read_bytes(),
        "looks like an Asterisk CDR (Master.csv): "
        "import it with `evidence import calls {file} --format asterisk-cdr`",
    ),
    "queue_log": (
        (SAMPLE / "pbx/queue_log").read_bytes(),
        "looks like an Asterisk queue_log: "
        "import it with `evidence import calls {file} --format asterisk-queue-log`",
    ),
    "kirje.pdf": (
        (SAMPLE / "letters/kkv-selvityspyynto.pdf").read_bytes(),
        "looks like a PDF document",
    ),
    "puhelu.wav": (
        (SAMPLE / "recordings/1773136100.1047.wav").read_bytes(),
        f"looks like a WAV audio recording: {_AUDIO}",
    ),
    "puhelu.mp3": (
        b"\xff\xfb\x90\x64" + bytes(413),
        f"looks like an MP3 audio recording: {_AUDIO}",
    ),
    "puhelu-id3.mp3": (b"ID3\x04\x00" + bytes(100), f"looks like an MP3 audio recording: {_AUDIO}"),
    "puhelu.ogg": (b"OggS\x00\x02" + bytes(100), f"looks like an Ogg audio recording: {_AUDIO}"),
    "puhelu.gsm": (
        bytes([0xD8, *[0x9F] * 32]) * 50,
        f"looks like a GSM audio recording: {_AUDIO}",
    ),
    "kuva.png": (b"\x89PNG\r\n\x1a\n" + bytes(40), "looks like a PNG image"),
    "kuva.jpg": (b"\xff\xd8\xff\xe0\x00\x10JFIF" + bytes(40), "looks like a JPEG image"),
    "kuva.gif": (b"GIF89a" + bytes(40), "looks like a GIF image"),
    "vienti.zip": (
        _zip(),
        "looks like a ZIP archive or an Office document: unpack it first, or export a sheet as CSV",
    ),
    "Master.csv.gz": (
        gzip.compress((SAMPLE / "pbx/Master.csv").read_bytes(), mtime=0),
        "looks like gzip-compressed data: unpack it first, e.g. with gunzip",
    ),
}


@pytest.mark.parametrize("name", sorted(NOT_MAIL))
def test_a_file_that_is_not_mail_is_refused_naming_what_it_is(
    cli: Cli, tmp_path: Path, name: str
) -> None:
    data, says = NOT_MAIL[name]
    folder = tmp_path / "pbx"
    folder.mkdir()
    path = folder / name
    path.write_bytes(data)
    result = cli("import", "mail", str(path), code=1)
    expected = says.format(file=path, folder=folder)
    assert result.stderr == f"evidence: {path} {expected}\n"
    assert result.stdout == ""
    # Nothing stored: no import run (a source in the dossier), no quarantine, no blob.
    assert _counts(cli.env, ImportRun, QuarantineItem, Blob, LedgerEntry) == [0, 0, 0, 0]
    status = json.loads(cli("status", "--json").stdout)
    assert status["quarantine"] == {"total": 0, "by_kind": {}, "dismissed": 0}


def test_one_wrong_file_among_several_refuses_the_whole_command(env: Env, tmp_path: Path) -> None:
    """No half work: the good files are not imported either, and the dossier names no
    mailbox: the user corrects the command and runs it again."""
    pbx = tmp_path / "pbx"
    pbx.mkdir()
    cdr = pbx / "Master.csv"
    cdr.write_bytes((SAMPLE / "pbx/Master.csv").read_bytes())
    mails = [str(p) for p in sorted((SAMPLE / "mail").glob("aino-*.eml"))]
    run_evidence(env, "init")
    run_evidence(
        env, "customer", "add", "200517", "--name", "Aino", "--email", "aino.laaksonen@example.com"
    )
    refused = run_evidence(env, "import", "mail", *mails, str(cdr), check_code=1)
    assert refused.stderr == (
        f"evidence: {cdr} looks like an Asterisk CDR (Master.csv): import it with "
        f"`evidence import calls {cdr} --format asterisk-cdr`; nothing was imported\n"
    )
    assert _counts(env, ImportRun, QuarantineItem) == [0, 0]
    status = run_evidence(env, "status").stdout
    assert "quarantined items: 0\n" in status

    run_evidence(env, "import", "mail", *mails)
    pdf = tmp_path / "dossier.pdf"
    run_evidence(env, "export", "200517", "-o", str(pdf))
    text = pdf_text(pdf)
    completeness = text[text.index("Lähteiden kattavuus") :]
    assert "postilaatikko: mail" in completeness  # the .eml files' folder
    assert "pbx" not in completeness and "Karanteeniin siirretty syöte" not in completeness


def test_inside_a_folder_what_is_not_mail_is_quarantined_saying_what_it_is(
    cli: Cli, tmp_path: Path
) -> None:
    folder = tmp_path / "saapuneet"
    folder.mkdir()
    (folder / "1.eml").write_bytes((SAMPLE / "mail/aino-1-lasku-88120.eml").read_bytes())
    (folder / "skannaus.pdf").write_bytes(NOT_MAIL["kirje.pdf"][0])
    result = cli("import", "mail", str(folder), code=3)
    assert result.stdout == "imported 1, duplicates 0, quarantined 1\n" + NO_DOMAIN_NOTE
    [item] = json.loads(cli("quarantine", "list", "--json").stdout)
    assert item["reason"] == "not an email or mbox: the file looks like a PDF document"


# --- quarantine dismiss ----------------------------------------------------------------


def _completeness(pdf: Path) -> str:
    text = pdf_text(pdf)
    return text[text.index("Lähteiden kattavuus") :]


def test_a_dismissed_file_is_kept_and_no_longer_a_source_of_mail(env: Env, tmp_path: Path) -> None:
    """A file imported as mail by mistake and quarantined whole (here a note that no
    importer recognises; before this release also a Master.csv) named its folder as a
    mailbox in every later dossier. Dismissed, it is kept and recorded, and is no source."""
    run_evidence(env, "init")
    run_evidence(
        env, "customer", "add", "200517", "--name", "Aino", "--email", "aino.laaksonen@example.com"
    )
    run_evidence(env, "import", "mail", str(SAMPLE / "mail/aino-1-lasku-88120.eml"))
    notes = tmp_path / "puhelinvaihde" / "muistiinpanot.txt"
    notes.parent.mkdir()
    notes.write_text("Soita Ainolle takaisin huomenna klo 9.\n", encoding="utf-8")
    quarantined = run_evidence(env, "import", "mail", str(notes), check_code=3)
    assert "(quarantine #1)" in quarantined.stderr

    before = tmp_path / "before.pdf"
    run_evidence(env, "export", "200517", "-o", str(before))
    assert "postilaatikko: puhelinvaihde" in _completeness(before)

    dismissed = run_evidence(
        env,
        "quarantine",
        "dismiss",
        "1",
        "--reason",
        "muistiinpano, ei sähköpostia",
        "--by",
        "Kaisa Lehtonen",
    )
    assert dismissed.stdout == (
        "quarantine #1 dismissed by Kaisa Lehtonen "
        "(kept, with its bytes: `evidence quarantine show 1`)\n"
    )
    again = run_evidence(env, "quarantine", "dismiss", "1", "--reason", "x", check_code=1)
    assert again.stderr.startswith("evidence: quarantine #1 was already dismissed at ")
    assert again.stderr.endswith(" by Kaisa Lehtonen: muistiinpano, ei sähköpostia\n")
    missing = run_evidence(env, "quarantine", "dismiss", "9", "--reason", "x", check_code=1)
    assert missing.stderr == "evidence: no quarantined item #9: see `evidence quarantine list`\n"

    after = tmp_path / "after.pdf"
    run_evidence(env, "export", "200517", "-o", str(after))
    completeness = _completeness(after)
    assert "puhelinvaihde" not in completeness and "muistiinpano" not in completeness
    assert "postilaatikko: mail" in completeness  # the real mailbox stays

    # Kept and listed, marked, with who, when and why.
    [row] = json.loads(run_evidence(env, "quarantine", "list", "--json").stdout)
    assert row["source"] == str(notes) and row["dismissed"] is True
    assert (row["dismissed_by"], row["dismiss_reason"]) == (
        "Kaisa Lehtonen",
        "muistiinpano, ei sähköpostia",
    )
    assert row["dismissed_at"].endswith("Z")
    [line] = run_evidence(env, "quarantine", "list").stdout.splitlines()
    assert line.startswith("#1\tmail\t") and "\tDISMISSED " in line
    assert line.endswith(" by Kaisa Lehtonen: muistiinpano, ei sähköpostia")
    assert run_evidence(env, "quarantine", "list", "--open").stdout == ""
    raw = run_evidence(env, "quarantine", "show", "1", "--raw").stdout
    assert raw == notes.read_text(encoding="utf-8")
    status = json.loads(run_evidence(env, "status", "--json").stdout)
    assert status["quarantine"] == {"total": 0, "by_kind": {}, "dismissed": 1}
    assert "quarantined items: 0; 1 dismissed\n" in run_evidence(env, "status").stdout
    # Chained like evidence, and the store still verifies.
    store = open_store(load_config(env.vars))
    try:
        with store.session() as session:
            entry = session.scalar(
                select(LedgerEntry).where(LedgerEntry.record_type == "quarantine_dismissals")
            )
            assert entry is not None and '"quarantine_id":1' in entry.payload
    finally:
        store.close()
    run_evidence(env, "verify")


def test_dismissal_needs_a_reason_and_is_append_only(cli: Cli, tmp_path: Path) -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import DatabaseError

    junk = tmp_path / "muistiinpanot.txt"
    junk.write_text("ei postia\n")
    cli("import", "mail", str(junk), code=3)
    blank = cli("quarantine", "dismiss", "1", "--reason", "  ", code=1)
    assert blank.stderr == (
        "evidence: say why: --reason 'a call log imported as mail by mistake'\n"
    )
    cli("quarantine", "dismiss", "1", "--reason", "muistiinpano")
    store = open_store(load_config(cli.env.vars))
    try:
        for statement in (
            "UPDATE quarantine_dismissals SET reason = 'x'",
            "DELETE FROM quarantine_dismissals",
        ):
            with pytest.raises(DatabaseError, match="append-only"):
                with store.engine.begin() as conn:
                    conn.execute(text(statement))
        with store.session() as session:
            [kept] = session.scalars(select(QuarantineDismissal))
            assert kept.reason == "muistiinpano"
    finally:
        store.close()


# --- dates -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "option", "value"),
    [
        pytest.param(
            ("timeline", "1", "--from", "0001-01-01"), "--from", "0001-01-01", id="timeline"
        ),
        pytest.param(
            ("timeline", "1", "--to", "9999-12-31"), "--to", "9999-12-31", id="timeline to"
        ),
        pytest.param(
            ("incident", "add", "--start", "0001-01-01 00:00", "--title", "x", "--logged-by", "k"),
            "--start",
            "0001-01-01 00:00",
            id="incident add",
        ),
        pytest.param(
            ("export", "1", "-o", "OUT", "--to", "9999-12-31"), "--to", "9999-12-31", id="export"
        ),
        pytest.param(
            ("report", "service", "--from", "0001-01-01"), "--from", "0001-01-01", id="report"
        ),
        pytest.param(("agents", "--from", "9999-12-31"), "--from", "9999-12-31", id="agents"),
    ],
)
def test_far_dates_are_refused_in_one_line_not_a_traceback(
    env: Env, tmp_path: Path, args: tuple[str, ...], option: str, value: str
) -> None:
    out = str(tmp_path / "x.pdf")
    result = run_evidence(env, *(out if a == "OUT" else a for a in args), check_code=2)
    assert _only_error_line(result.stderr) == (
        f"Error: Invalid value for '{option}': '{value}' is out of range: "
        "give a year from 1900 to 2999"
    )


def test_the_widest_period_allowed_works_everywhere(cli: Cli, tmp_path: Path) -> None:
    cli("customer", "add", "1", "--name", "A")
    cli("import", "calls", str(SAMPLE / "pbx/queue_log"), "--format", "asterisk-queue-log")
    wide = ("--from", "1900-01-01", "--to", "2999-12-31")
    assert cli("timeline", "1", *wide).stdout.startswith("1 A: 2 items\n")  # agents' pauses
    assert cli("agents", *wide).stdout.count("available") > 1
    report = json.loads(cli("report", "service", *wide, "--json").stdout)
    assert report["period"]["from"] == "1900-01-01" and report["period"]["to"] == "2999-12-31"
    pdf = tmp_path / "wide.pdf"
    cli("export", "1", "-o", str(pdf), "--from", "2999-12-30", "--to", "2999-12-31")
    assert "2999" in page_texts(pdf, 1)[0]


@pytest.mark.parametrize(
    "args",
    [
        ("timeline", "1"),
        ("export", "1", "-o", "OUT"),
        ("report", "service"),
        ("agents",),
    ],
    ids=" ".join,
)
def test_from_after_to_is_refused(cli: Cli, tmp_path: Path, args: tuple[str, ...]) -> None:
    cli("customer", "add", "1", "--name", "A")
    out = str(tmp_path / "x.pdf")
    args = tuple(out if a == "OUT" else a for a in args)
    result = cli(*args, "--from", "30.9.2026", "--to", "2026-09-28", code=2)
    assert _only_error_line(result.stderr) == "Error: --to 2026-09-28 is before --from 2026-09-30"


def test_a_case_period_or_deadline_the_wrong_way_round_is_refused(cli: Cli) -> None:
    cli("customer", "add", "1", "--name", "A")
    base = ("case", "open", "R/1", "--customer", "1", "--authority", "lvv")
    deadline = cli(*base, "--received", "20.10.2026", "--deadline", "2026-10-01", code=2)
    assert _only_error_line(deadline.stderr) == (
        "Error: --deadline 2026-10-01 is before --received 2026-10-20"
    )
    period = cli(*base, "--period", "2026-09-30..28.9.2026", code=2)
    assert _only_error_line(period.stderr) == (
        "Error: Invalid value for '--period': the period '2026-09-30..28.9.2026' ends before "
        "it starts"
    )
    assert json.loads(cli("case", "list", "--json").stdout) == []
    cli(*base, "--received", "20.10.2026", "--deadline", "3.11.2026", "--period", "28.9.2026..")
    [case] = json.loads(cli("case", "list", "--json").stdout)
    assert (case["received"], case["deadline"], case["period_from"], case["period_to"]) == (
        "2026-10-20",
        "2026-11-03",
        "2026-09-28",
        None,
    )


def test_finnish_dates_and_times_are_read_as_finns_write_them(cli: Cli) -> None:
    cli("customer", "add", "1", "--name", "A")
    added = cli(
        "incident",
        "add",
        "--start",
        "28.9.2026 10.02",
        "--end",
        "28.09.2026 14:11",
        "--title",
        "Evakuointi",
        "--logged-by",
        "Kaisa",
        "--logged-at",
        "28.9.2026 klo 14.25",
    )
    assert added.stdout.startswith(
        "incident #1: Evakuointi, 28.9.2026 10.02.00 (UTC+3) - 28.9.2026 14.11.00 (UTC+3)\n"
    )
    [incident] = json.loads(cli("incident", "list", "--json").stdout)
    assert (incident["start"], incident["end"], incident["logged_at"]) == (
        "2026-09-28T07:02:00Z",
        "2026-09-28T11:11:00Z",
        "2026-09-28T11:25:00Z",
    )
    shown = cli("timeline", "1", "--from", "28.9.2026", "--to", "28.09.2026").stdout
    assert "Evakuointi" in shown


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("--from", "2026/09/28", "cannot read the date '2026/09/28': write it as "
         f"{DATE_FORMS}, e.g. 2026-09-28 or 28.9.2026"),
        ("--from", "31.2.2026", "'31.2.2026' is not a day of the calendar"),
        ("--from", "28.9.26", "cannot read the date '28.9.26': write it as "
         f"{DATE_FORMS}, e.g. 2026-09-28 or 28.9.2026"),
    ],
)  # fmt: skip
def test_a_date_in_another_form_is_refused_saying_the_forms(
    cli: Cli, option: str, value: str, says: str
) -> None:
    result = cli("timeline", "1", option, value, code=2)
    assert _only_error_line(result.stderr) == f"Error: Invalid value for '{option}': {says}"


def test_a_time_without_its_clock_is_refused(cli: Cli) -> None:
    result = cli(
        "incident", "add", "--start", "28.9.2026", "--title", "x", "--logged-by", "k", code=2
    )
    assert _only_error_line(result.stderr) == (
        "Error: Invalid value for '--start': cannot read the time '28.9.2026': write it as "
        f"{TIME_FORMS}, e.g. 28.9.2026 10.02 or 2026-09-28T10:02+03:00"
    )


def _options(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, click.Option]]:
    found = []
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            found += _options(command, (*prefix, name))
            continue
        for param in command.params:
            if isinstance(param, click.Option):
                found.append((" ".join((*prefix, name, param.opts[0])), param))
    return found


DATE_OPTIONS = {
    "--from", "--to", "--since", "--today", "--date", "--received", "--deadline",
    "--baseline-from", "--baseline-to",
}  # fmt: skip
TIME_OPTIONS = {"--start", "--end", "--at", "--logged-at", "--generated-at"}


def test_every_date_option_takes_the_same_forms_and_says_which() -> None:
    seen = set()
    for where, option in _options(main):
        name = option.opts[0]
        if where == "customer update --from":  # a day (its start) or a time
            assert option.type.name == "moment", where
            assert FORMS[1:-1] in (option.help or "") and TIME_FORMS in (option.help or ""), where
        elif name in DATE_OPTIONS:
            assert option.type.name == "date", where
            assert FORMS[1:-1] in (option.help or ""), where
        elif name in TIME_OPTIONS:
            assert option.type.name == "time", where
            assert TIME_FORMS in (option.help or ""), where
        elif name == "--period":
            assert option.type.name == "period", where
            assert DATE_FORMS in (option.help or ""), where
        else:
            continue
        seen.add(where)
    assert len(seen) == 27, sorted(seen)


# --- references --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "says"),
    [
        ("", "the customer reference is empty or only spaces: give one"),
        ("   ", "the customer reference is empty or only spaces: give one"),
        ("100\n234", "the customer reference '100\\n234' holds a control character (U+000A): "
         "give it on one line, without control characters"),
        ("100234\u200b", "the customer reference '100234\\u200b' holds a control character "
         "(ZERO WIDTH SPACE): give it on one line, without control characters"),
        (" 100234", "the customer reference ' 100234' begins or ends with a space: "
         "give it without"),
        ("1" * 101, "the customer reference is 101 characters long: at most 100"),
    ],
    ids=["empty", "spaces", "newline", "zero-width", "leading space", "too long"],
)  # fmt: skip
def test_customer_refs_no_listing_can_show_are_refused(cli: Cli, ref: str, says: str) -> None:
    cli("customer", "add", "100234", "--name", "Matti")
    result = cli("customer", "add", ref, "--name", "Joku", code=1)
    assert result.stderr == f"evidence: {says}\n"
    assert cli("customer", "list").stdout == "100234\tMatti\t\n"
    assert _counts(cli.env, Customer) == [1]


def test_case_references_no_listing_can_show_are_refused(cli: Cli) -> None:
    cli("customer", "add", "1", "--name", "A")
    result = cli("case", "open", "ESAVI/1\n2026", "--customer", "1", "--authority", "lvv", code=1)
    assert result.stderr == (
        "evidence: the case reference 'ESAVI/1\\n2026' holds a control character (U+000A): "
        "give it on one line, without control characters\n"
    )
    blank = cli("case", "open", " ", "--customer", "1", "--authority", "lvv", code=1)
    assert blank.stderr == "evidence: the case reference is empty or only spaces: give one\n"
    assert cli("case", "list").stdout == ""
