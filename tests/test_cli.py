"""The command line: help on every command, exit codes, one-line errors."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from evidence.cli import main
from tests.conftest import NO_DOMAIN_NOTE, Cli, Env


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, command in sorted(group.commands.items()):
        path = (*prefix, name)
        found.append(path)
        if isinstance(command, click.Group):
            found += _commands(command, path)
    return found


@pytest.mark.parametrize("path", _commands(main), ids=" ".join)
def test_every_command_has_help_with_an_example(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0
    assert len(result.output) > 80
    command = main
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    if not isinstance(command, click.Group):
        assert "Example:" in result.output, path
        # The example is shown line for line as written, not re-wrapped by click.
        doc = command.help or ""
        example = doc.split("Example:", 1)[1].replace("\b\n", "")
        for line in (raw.strip() for raw in example.splitlines()):
            if line:
                assert any(shown.strip() == line for shown in result.output.splitlines()), line
    short = CliRunner().invoke(main, [*path, "-h"])
    assert short.output == result.output


def test_missing_store_is_one_line_saying_what_to_do(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["timeline", "1"],
        env={"EVIDENCE_HOME": str(tmp_path), "EVIDENCE_DATABASE_URL": ""},
    )
    assert result.exit_code == 1
    assert (
        result.stderr
        == f"evidence: no evidence store at {tmp_path}/evidence.db: run `evidence init` first\n"
    )


def test_usage_error_exits_2(cli: Cli, tmp_path: Path) -> None:
    missing = tmp_path / "missing.csv"
    result = cli("import", "calls", str(missing), "--format", "asterisk-cdr", code=2)
    assert f"File '{missing}' does not exist" in result.stderr
    assert result.stderr.startswith("Usage: evidence import calls")


def test_quarantine_exits_3_and_says_why(cli: Cli, tmp_path: Path) -> None:
    junk = tmp_path / "notmail.bin"
    junk.write_bytes(b"\x00\x01binary")
    result = cli("import", "mail", str(junk), code=3)
    assert result.stdout == "imported 0, duplicates 0, quarantined 1\n" + NO_DOMAIN_NOTE
    assert "not an email or mbox" in result.stderr


def test_customer_and_unknown_customer(cli: Cli) -> None:
    out = cli(
        "customer",
        "add",
        "9",
        "--name",
        "Aino",
        "--phone",
        "050 765 4321",
        "--email",
        "Aino@Example.com",
    )
    assert out.stdout == "customer 9 (Aino): aino@example.com, +358507654321\n"
    missing = cli("timeline", "404", code=1)
    assert missing.stderr == (
        "evidence: no customer '404': add it with `evidence customer add 404 --name ...`\n"
    )
    bad = cli("customer", "add", "9", "--phone", "banaani", code=1)
    assert "is not a phone number" in bad.stderr


def test_ambiguous_incident_time_is_refused(cli: Cli) -> None:
    result = cli(
        "incident",
        "add",
        "--start",
        "2026-10-25 03:30",
        "--title",
        "x",
        "--logged-by",
        "k",
        code=1,
    )
    assert "ambiguous" in result.stderr and "+03:00 or +02:00" in result.stderr


def test_case_attach_refuses_a_non_pdf(cli: Cli, tmp_path: Path) -> None:
    cli("customer", "add", "1", "--name", "A")
    cli("case", "open", "R/1", "--customer", "1", "--authority", "AVI")
    fake = tmp_path / "letter.pdf"
    fake.write_text("not a pdf")
    result = cli("case", "attach", "R/1", str(fake), "--title", "x", code=1)
    assert (
        result.stderr == "evidence: letter.pdf is not a PDF file (it does not start with %PDF-)\n"
    )


def test_quarantine_list_and_show_every_kind(cli: Cli, tmp_path: Path) -> None:
    junk = tmp_path / "notmail.bin"
    junk.write_bytes(b"\x00\x01binary")
    cli("import", "mail", str(junk), code=3)
    cdr = tmp_path / "Master.csv"
    cdr.write_text('"","0401234567","100","from-pstn"\n')
    cli("import", "calls", str(cdr), "--format", "asterisk-cdr", code=3)

    listed = json.loads(cli("quarantine", "list", "--json").stdout)
    assert [(q["id"], q["kind"]) for q in listed] == [(1, "mail"), (2, "asterisk-cdr")]
    assert listed[0]["source"] == str(junk) and listed[0]["size"] == 8
    assert "not an email or mbox" in listed[0]["reason"]
    assert listed[1]["locator"] == "line 1" and "columns" in listed[1]["reason"]
    only_mail = json.loads(cli("quarantine", "list", "--kind", "mail", "--json").stdout)
    assert [q["id"] for q in only_mail] == [1]
    lines = cli("quarantine", "list").stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith("#1\tmail\t")

    shown = cli("quarantine", "show", "1").stdout
    assert f"from:   {junk}" in shown
    assert "reason: not an email or mbox" in shown
    assert hashlib.sha256(junk.read_bytes()).hexdigest() in shown
    raw = cli("quarantine", "show", "1", "--raw").stdout_bytes
    assert raw == junk.read_bytes()
    missing = cli("quarantine", "show", "99", code=1)
    assert missing.stderr == "evidence: no quarantined item #99: see `evidence quarantine list`\n"


def test_import_mail_summary_and_json(cli: Cli, tmp_path: Path) -> None:
    box = tmp_path / "export.mbox"
    box.write_bytes(
        b"From x Mon Sep 28 10:00:00 2026\nFrom: a@example.net\nSubject: 1\n\none\n\n"
        b"From x Mon Sep 28 10:00:00 2026\nFrom: a@example.net\nSubject: 2\n\ntwo\n\n"
    )
    assert cli("import", "mail", str(box)).stdout == (
        "imported 2, duplicates 0, quarantined 0\n" + NO_DOMAIN_NOTE
    )
    again = json.loads(cli("import", "mail", str(box), "--json").stdout)
    assert again == {
        "imported": 0,
        "duplicates": 2,
        "quarantined": 0,
        "quarantine_reasons": [],
        "notes": [NO_DOMAIN_NOTE.removeprefix("note: ").rstrip("\n")],
    }


def test_live_counts_line_has_progress_counts_and_rate(capsys: pytest.CaptureFixture[str]) -> None:
    from evidence.cli.base import LiveCounts
    from evidence.ingest import ImportReport

    live = LiveCounts("importing mail", total=1000)
    live(250, ImportReport(imported=200, duplicates=40, quarantined=10))
    live.close()
    line = capsys.readouterr().err
    assert line.startswith("\rimporting mail  25%  imported 200, duplicates 40, quarantined 10  ")
    assert line.rstrip("\n").endswith(" msg/s")  # (click drops the erase-line code off a TTY)


@pytest.mark.parametrize("env", ["sqlite"], indirect=True)
def test_reader_going_away_is_sigpipe_not_an_error(env: Env, cli: Cli) -> None:
    """`evidence customer list | head -0`: exit 141 as `git log | head` does, no message."""
    for ref in range(40):
        cli("customer", "add", str(ref), "--name", f"Asiakas {ref}")
    proc = subprocess.Popen(
        [sys.executable, "-m", "evidence", "customer", "list"],
        env={**os.environ, **env.vars},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    stderr = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 141
    assert stderr == b""


def _params(group: click.Group) -> set[tuple[str, str]]:
    """Every (command, parameter) of the tree, e.g. ("incident end", "number")."""
    found = set()
    for path in _commands(group):
        command: click.Command = group
        for name in path:
            assert isinstance(command, click.Group)
            command = command.commands[name]
        found |= {(" ".join(path), p.name or "") for p in command.params}
    return found


# The parameters that name an item, an incident or a quarantined input: each takes the id
# that a `--json` prints. A new one must be walked below, or this test fails.
ID_PARAMETERS = {"number", "item_id", "items"}


@pytest.mark.usefixtures("sample_store")
def test_every_command_takes_the_id_its_json_prints(cli: Cli) -> None:
    """incident:2 as `incident list --json` prints it, the timeline's ids as `timeline
    --json` prints them, a quarantined input's number as `quarantine list --json` does."""
    from tests.samples import AINO

    takes_ids = {(c, p) for c, p in _params(main) if p in ID_PARAMETERS}
    assert takes_ids == {
        ("incident end", "number"),
        ("incident correct", "number"),
        ("incident show", "number"),
        ("case claim", "items"),
        ("quarantine show", "item_id"),
        ("quarantine dismiss", "item_id"),
    }
    cli("incident", "start", "--title", "Puhelinjärjestelmä ei vastaa", "--logged-by", "Kaisa")
    listed = json.loads(cli("incident", "list", "--json").output)
    going_on = [i["id"] for i in listed if i["end"] is None]
    assert going_on == ["incident:2"]
    shown = json.loads(cli("incident", "show", going_on[0], "--json").output)
    assert shown["id"] == "incident:2"
    cli("incident", "end", going_on[0], "--by", "Kaisa")
    cli("incident", "correct", going_on[0], "--title", "Vaihde", "--reason", "r", "--by", "K")
    shown = json.loads(cli("incident", "show", going_on[0], "--json").output)
    assert (shown["title"], len(shown["versions"])) == ("Vaihde", 3)

    cli("case", "open", "KKV/9/2026", "--customer", AINO, "--authority", "kkv")
    items = [i["id"] for i in json.loads(cli("timeline", AINO, "--json").output)]
    contacts = [i for i in items if i.split(":")[0] in ("email", "call", "incident")]
    claim = ["case", "claim", "KKV/9/2026", "--text", "t"]
    for item in contacts:
        claim += ["--evidence", item]
    cli(*claim)
    claims = json.loads(cli("case", "show", "KKV/9/2026", "--json").output)["claims"]
    assert claims[0]["evidence"] == contacts and len(contacts) >= 10

    notes = cli.env.home / "muistiinpanot.txt"
    notes.write_text("Soita Ainolle.\n", encoding="utf-8")
    cli("import", "mail", str(notes), code=3)
    (quarantined,) = json.loads(cli("quarantine", "list", "--json").output)
    item_id = str(quarantined["id"])
    assert json.loads(cli("quarantine", "show", item_id, "--json").output) == quarantined
    cli("quarantine", "dismiss", item_id, "--reason", "notes, not mail")
