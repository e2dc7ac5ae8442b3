"""`evidence sync` and `evidence status`: scheduled imports, the lock, crashes, monitoring."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import Engine

from evidence.config import load_config
from evidence.ingest.sync import sync_lock
from evidence.store.db import open_store
from evidence.store.models import (
    CdrRecord,
    Email,
    LedgerEntry,
    QuarantineItem,
    SourceLine,
    SyncResult,
    SyncRun,
)
from evidence.verify.store import verify_store
from tests.conftest import SCENARIO, Cli, Env, need_shared, run_evidence
from tests.contacts import HELSINKI, cdr_row, eml

BASE = dt.datetime(2026, 9, 1, 5, 0, tzinfo=dt.UTC)


def _cdr_file(path: Path, lines: int) -> Path:
    path.write_text(
        "".join(cdr_row(BASE + dt.timedelta(seconds=41 * i)) + "\n" for i in range(lines)),
        encoding="utf-8",
    )
    return path


def _mail_dir(path: Path, count: int) -> Path:
    path.mkdir()
    for i in range(count):
        eml(path, BASE + dt.timedelta(minutes=7 * i))
    return path


def _sync_toml(*, mail: Path | None = None, cdr: Path | None = None, extra: str = "") -> str:
    parts = []
    if mail is not None:
        parts.append(f'[[sync.mail]]\npath = "{mail}"\n')
    if cdr is not None:
        parts.append(f'[[sync.calls]]\npath = "{cdr}"\nformat = "asterisk-cdr"\n')
    return "\n".join(parts) + extra


def _count(engine: Engine, model: type) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(model)).scalar_one())


@contextmanager
def _reader(env: Env) -> Iterator[Engine]:
    """A plain engine that only reads (no writer lock), for watching another process."""
    engine = create_engine(env.database_url)
    try:
        yield engine
    finally:
        engine.dispose()


def _spawn_sync(env: Env) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "evidence", "sync"],
        env={**os.environ, **env.vars},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# --- what a run does ----------------------------------------------------------------


def test_sync_runs_every_source_with_one_line_each(cli: Cli, env: Env, tmp_path: Path) -> None:
    need_shared()
    recordings = SCENARIO / "recordings"
    env.write_config(
        _sync_toml(mail=SCENARIO / "mail")
        + f"""
[[sync.calls]]
path = "{SCENARIO / "pbx/Master.csv"}"
format = "asterisk-cdr"

[[sync.calls]]
path = "{SCENARIO / "pbx/queue_log"}"
format = "asterisk-queue-log"

[[sync.recordings]]
path = "{recordings}"
"""
    )
    first = cli("sync")
    lines = first.stdout.splitlines()
    assert len(lines) == 5
    assert [line.split(" ", 1)[1] for line in lines[:4]] == [
        f"mail {SCENARIO / 'mail'}: imported 7, duplicates 6, quarantined 0"
        + lines[0][lines[0].rindex(" (") :],
        f"calls {SCENARIO / 'pbx/Master.csv'}: imported 8, duplicates 0, quarantined 0"
        + lines[1][lines[1].rindex(" (") :],
        f"calls {SCENARIO / 'pbx/queue_log'}: imported 22, duplicates 0, quarantined 0"
        + lines[2][lines[2].rindex(" (") :],
        f"recordings {recordings}: imported 1, duplicates 0, quarantined 0"
        + lines[3][lines[3].rindex(" (") :],
    ]
    assert lines[4].split(" ", 1)[1].startswith("plans: 0 occurrences materialised up to ")
    again = json.loads(cli("sync", "--json").stdout)
    assert again["exit_code"] == 0
    assert [(s["kind"], s["imported"], s["duplicates"]) for s in again["sources"]] == [
        ("mail", 0, 13),
        ("calls", 0, 8),
        ("calls", 0, 22),
        ("recordings", 0, 1),
        ("plans", 0, 0),
    ]


def test_a_failing_source_does_not_stop_the_others(cli: Cli, env: Env, tmp_path: Path) -> None:
    cdr = _cdr_file(tmp_path / "Master.csv", 3)
    env.write_config(
        _sync_toml(mail=tmp_path / "missing", cdr=cdr)
        # An IMAP server that is not there (a closed port on this machine).
        + '\n[[sync.imap]]\nname = "asiakaspalvelu"\nhost = "127.0.0.1"\nport = 1\n'
        + 'user = "cs"\n'
    )
    result = cli("sync", code=1)
    lines = [line.split(" ", 1)[1] for line in result.stdout.splitlines()]
    assert lines[0] == f"mail {tmp_path / 'missing'}: FAILED: {tmp_path / 'missing'} does not exist"
    assert lines[1].startswith(f"calls {cdr}: imported 3, duplicates 0, quarantined 0")
    assert lines[2].startswith("imap asiakaspalvelu: FAILED: ")
    status = json.loads(cli("status", "--json").stdout)
    assert status["last_sync"]["exit_code"] == 1 and status["last_sync"]["state"] == "finished"
    by_kind = {s["kind"]: s for s in status["sources"]}
    assert by_kind["calls"]["imported"] == 3 and by_kind["calls"]["last_error"] is None
    assert by_kind["mail"]["last_synced_at"] is None
    assert by_kind["mail"]["last_error"].endswith("does not exist")


def test_quarantined_input_is_reported_once(cli: Cli, env: Env, tmp_path: Path) -> None:
    maildir = _mail_dir(tmp_path / "mail", 2)
    (maildir / "scan.pdf").write_bytes(b"%PDF-1.4 not mail")
    env.write_config(_sync_toml(mail=maildir))
    first = cli("sync", code=3)
    assert "imported 2, duplicates 0, quarantined 1" in first.stdout
    assert "not an email or mbox" in first.stderr
    second = cli("sync", code=0)
    assert "imported 0, duplicates 3, quarantined 0" in second.stdout
    opened = open_store(load_config())
    try:
        with opened.session() as session:
            assert session.scalar(select(func.count()).select_from(QuarantineItem)) == 1
    finally:
        opened.close()


@pytest.mark.parametrize("env", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[sync]\nmail = 1", "write each source as [[sync.mail]]"),
        ("[[sync.calls]]\npath = 'x.csv'\nformat = 'cdr'", "format must be one of asterisk-cdr"),
        ("[sync]\nhorizon_days = 'kolme'", "sync.horizon_days must be a whole number"),
        ("[[sync.fax]]\npath = 'x'", "unknown key 'fax' in [sync]: the keys it knows are"),
        ("[[sync.mail]]\npaths = []", "sync.mail #1 needs path or paths"),
    ],
)
def test_bad_sync_configuration_is_explained(cli: Cli, env: Env, toml: str, message: str) -> None:
    env.write_config(toml)
    result = cli("sync", code=1)
    assert result.stderr.startswith("evidence: ")
    assert "evidence.toml: " in result.stderr and message in result.stderr


def test_sync_extends_planned_incidents(cli: Cli, env: Env) -> None:
    env.write_config("[sync]\nhorizon_days = 0\n")
    first = (dt.datetime.now(HELSINKI) + dt.timedelta(days=10)).replace(
        hour=12, minute=0, second=0, microsecond=0
    )
    start, end = f"{first:%Y-%m-%d %H:%M}", f"{first:%Y-%m-%d} 13:00"
    planned = cli(
        "incident", "plan", "--title", "Koulutus", "--start", start, "--end", end,
        "--rrule", "FREQ=WEEKLY", "--logged-by", "Kaisa",
    )  # fmt: skip
    assert "0 occurrence(s) stored" in planned.stdout
    env.write_config("[sync]\nhorizon_days = 30\n")
    out = cli("sync").stdout
    assert "plans: 3 occurrences materialised up to " in out
    assert "plans: 0 occurrences" in cli("sync").stdout
    listed = json.loads(cli("incident", "list", "--json").stdout)
    assert [i["start"] for i in listed] == [
        (first + dt.timedelta(weeks=w)).astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
        for w in range(3)
    ]


# --- one at a time --------------------------------------------------------------


def test_sync_exits_4_while_another_holds_the_lock(env: Env, tmp_path: Path) -> None:
    env.write_config(_sync_toml(cdr=_cdr_file(tmp_path / "Master.csv", 3)))
    opened = open_store(load_config())
    try:
        with sync_lock(opened):
            proc = run_evidence(env, "sync", check_code=4)
    finally:
        opened.close()
    assert proc.stdout == ""
    assert proc.stderr.startswith(
        f"evidence: another `evidence sync` is running (pid {os.getpid()}"
    )
    assert proc.stderr.endswith(
        "this run did nothing and the next scheduled run picks up where it ends\n"
    )
    with _reader(env) as engine:
        assert _count(engine, SourceLine) == 0
        assert _count(engine, SyncRun) == 0
    run_evidence(env, "sync", check_code=0)  # the lock is free again


@pytest.mark.parametrize("env", ["postgresql"], indirect=True)
def test_postgresql_lock_holds_across_machines(env: Env, tmp_path: Path) -> None:
    """A second EVIDENCE_HOME (as on another machine) against the same database."""
    env.write_config(_sync_toml(cdr=_cdr_file(tmp_path / "Master.csv", 3)))
    other = Env(env.backend, tmp_path / "other-home", env.database_url)
    other.home.mkdir()
    other.write_config(_sync_toml(cdr=tmp_path / "Master.csv"))
    opened = open_store(load_config())
    try:
        with sync_lock(opened):
            proc = run_evidence(other, "sync", check_code=4)
    finally:
        opened.close()
    assert proc.stderr == (
        "evidence: another `evidence sync` is running against this database (from another "
        "machine or EVIDENCE_HOME); this run did nothing\n"
    )
    run_evidence(other, "sync", check_code=0)


@pytest.mark.slow
def test_two_syncs_started_together(env: Env, tmp_path: Path) -> None:
    # Large enough that the first run is still importing when the second starts.
    cdr = _cdr_file(tmp_path / "Master.csv", 30000)
    env.write_config(_sync_toml(cdr=cdr))
    procs = [_spawn_sync(env), _spawn_sync(env)]
    results = [(p.wait(timeout=600), *p.communicate()) for p in procs]
    assert sorted(code for code, _, _ in results) == [0, 4], results
    [(_, out, _)] = [r for r in results if r[0] == 0]
    [(_, lost_out, lost_err)] = [r for r in results if r[0] == 4]
    assert f"calls {cdr}: imported 30,000, duplicates 0, quarantined 0" in out
    assert lost_out == ""
    assert lost_err.startswith("evidence: another `evidence sync` is running")
    with _reader(env) as engine:
        assert _count(engine, SourceLine) == 30000
        assert _count(engine, SyncRun) == 1


@pytest.mark.slow
def test_sync_killed_mid_import_and_run_again(env: Env, tmp_path: Path) -> None:
    """SIGKILL after some chunks are committed: the next run adds exactly what is missing."""
    total_lines, total_mail = 30000, 20  # large enough to be killed half-way
    cdr = _cdr_file(tmp_path / "Master.csv", total_lines)
    maildir = _mail_dir(tmp_path / "mail", total_mail)
    env.write_config(_sync_toml(mail=maildir, cdr=cdr))
    with _reader(env) as engine:
        proc = _spawn_sync(env)
        deadline = time.monotonic() + 300
        while _count(engine, SourceLine) < 500:  # the first chunk of the call log is committed
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)  # reaps it and closes the pipes
        assert proc.returncode == -signal.SIGKILL
        partial = _count(engine, SourceLine)
        assert 500 <= partial < total_lines, "the run was not killed half-way"
        # Only whole records: every committed line has its parsed row and its chain entry.
        assert _count(engine, CdrRecord) == partial
        assert _count(engine, LedgerEntry) == partial + total_mail  # the mail ran first
        with engine.connect() as conn:
            assert conn.execute(select(SyncRun.finished_at)).scalars().all() == [None]
            [calls_result] = conn.execute(
                select(SyncResult.finished_at).where(SyncResult.kind == "calls")
            ).all()
            assert calls_result.finished_at is None

        status = json.loads(run_evidence(env, "status", "--json").stdout)
        assert status["last_sync"]["state"] == "interrupted"
        assert status["chain"]["ok"] is True
        assert {s["kind"]: s["interrupted"] for s in status["sources"]}["calls"] is True

        again = run_evidence(env, "sync")
        assert f"imported {total_lines - partial:,}, duplicates {partial:,}" in again.stdout
        assert f"mail {maildir}: imported 0, duplicates {total_mail}" in again.stdout

        # Nothing lost, nothing twice: every line of the file exactly once, byte for byte.
        expected = set(cdr.read_bytes().splitlines())
        with engine.connect() as conn:
            raws = [bytes(r) for r in conn.execute(select(SourceLine.raw)).scalars()]
            assert len(raws) == total_lines and set(raws) == expected
            assert conn.execute(select(func.count()).select_from(CdrRecord)).scalar() == total_lines
            assert conn.execute(select(func.count()).select_from(Email)).scalar() == total_mail
            assert conn.execute(select(func.count()).select_from(LedgerEntry)).scalar() == (
                total_lines + total_mail
            )
    opened = open_store(load_config())
    try:
        assert verify_store(opened).intact
    finally:
        opened.close()


# --- status ---------------------------------------------------------------------


def test_status_text_and_json(cli: Cli, env: Env, tmp_path: Path) -> None:
    maildir = _mail_dir(tmp_path / "mail", 1)
    (maildir / "junk.bin").write_bytes(b"\x00junk")
    env.write_config(_sync_toml(mail=maildir))
    assert cli("status").stdout.splitlines()[1:4] == [
        f"signing key: none yet at {env.home / 'checkpoint-key.pem'} (`evidence init` creates it)",
        "last sync: never",
        f"  mail {maildir}: never synced",
    ]
    cli("sync", code=3)
    cli("incident", "start", "--title", "Puhelinkatko", "--channel", "phone", "--logged-by", "K")
    data = json.loads(cli("status", "--json").stdout)
    assert data["database"] == env.database_url
    assert data["last_sync"]["exit_code"] == 3 and data["last_sync"]["state"] == "finished"
    [mail, plans] = data["sources"]
    assert (mail["kind"], mail["imported"], mail["quarantined"]) == ("mail", 1, 1)
    assert mail["last_synced_at"] is not None and plans["kind"] == "plans"
    [incident] = data["open_incidents"]
    assert (incident["number"], incident["title"], incident["channels"]) == (
        1,
        "Puhelinkatko",
        ["phone"],
    )
    assert data["quarantine"] == {"total": 1, "by_kind": {"mail": 1}, "dismissed": 0}
    assert data["chain"]["ok"] is True and data["chain"]["entries"] == 3
    text_ = cli("status").stdout
    assert "open incidents: 1\n  #1 since " in text_
    assert "quarantined items: 1 (mail 1)\n" in text_
    assert (
        f"store: verifies as far as checked, 3 ledger entries, head {data['chain']['head']}\n"
        in text_
    )
    # The key the sync's checkpoint was signed with: the id a company publishes.
    from evidence.store.checkpoints import load_signing_key

    key_id = load_signing_key(env.home / "checkpoint-key.pem").key_id
    assert data["signing_key"] == {"key_id": key_id, "path": str(env.home / "checkpoint-key.pem")}
    assert f"signing key id: {key_id} (publish it: " in text_


def test_status_exits_5_when_the_chain_is_broken(cli: Cli, env: Env) -> None:
    cli("incident", "start", "--title", "Katko", "--logged-by", "K")
    opened = open_store(load_config())
    try:
        with opened.engine.begin() as conn:
            if env.backend == "sqlite":
                conn.execute(text("DROP TRIGGER evidence_append_only_incidents_update"))
            else:
                conn.execute(text("ALTER TABLE incidents DISABLE TRIGGER USER"))
            conn.execute(text("UPDATE incidents SET title = 'Ei katkoa'"))
    finally:
        opened.close()
    result = cli("status", code=5)
    assert "store: DOES NOT VERIFY (" in result.stdout and "), 1 ledger entries" in result.stdout
    assert (
        "  FAIL  incidents/1: differs from what ledger entry #1 recorded (title: "
        '"Katko" → "Ei katkoa"): the row was changed\n'
    ) in result.stdout
    assert "  FAIL  trigger " in result.stdout  # the guard switched off is named too
