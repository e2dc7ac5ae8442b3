"""`evidence backup DEST` and restoring: a SQLite backup made while the store is in use,
restored into a fresh EVIDENCE_HOME, verifies; a PostgreSQL store dumped with pg_dump and
restored into a new database verifies. Driven as a user would, in fresh processes."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from evidence.config import load_config
from evidence.ingest.asterisk import import_calls
from evidence.ingest.mail import import_mail
from evidence.ingest.recordings import import_recordings
from evidence.records.customers import add_customer
from evidence.store.db import open_store
from tests.conftest import COMPANY_TOML, Env, _pg_admin, pg_url, run_evidence
from tests.contacts import cdr_row

SAMPLE = Path(__file__).resolve().parents[1] / "sample"
SQLITE = pytest.mark.parametrize("env", ["sqlite"], indirect=True)
POSTGRESQL = pytest.mark.parametrize("env", ["postgresql"], indirect=True)


def _fill(env: Env) -> None:
    env.write_config(COMPANY_TOML)
    store = open_store(load_config())
    try:
        add_customer(store, "200517", "Aino", ["aino.laaksonen@example.com"], ["050 765 4321"])
        import_mail(store, sorted((SAMPLE / "mail").glob("*.eml")))
        import_calls(store, SAMPLE / "pbx/Master.csv", "asterisk-cdr")
        import_recordings(store, SAMPLE / "recordings")
    finally:
        store.close()


def _restored(backup: Path, where: Path) -> Env:
    """DEST copied into a fresh EVIDENCE_HOME, as README's "Backups and restore" says."""
    home = where / "restored-home"
    shutil.copytree(backup, home)
    return Env("sqlite", home, f"sqlite:///{home / 'evidence.db'}")


@SQLITE
@pytest.mark.slow
def test_a_backup_restored_into_a_fresh_home_verifies(env: Env, tmp_path: Path) -> None:
    _fill(env)
    chain = json.loads(run_evidence(env, "status", "--json").stdout)["chain"]  # writes nothing
    dest = tmp_path / "backups" / "evidence-1"
    made = run_evidence(env, "backup", str(dest))
    assert made.stdout.splitlines()[-1] == "INTACT: the copy verifies"
    assert (
        f"checkpoint: {chain['entries']} ledger entries, Merkle root {chain['root']}; "
        f"chain head #{chain['entries']} {chain['head']}\n"
    ) in made.stdout
    assert "  ok    blobs: " in made.stdout and "every SHA-256 and size match" in made.stdout
    assert sorted(p.name for p in dest.iterdir()) == [
        "checkpoint-key.pem",
        "checkpoint-key.pub.pem",
        "evidence.db",
        "evidence.toml",
    ]
    assert (dest / "evidence.db").stat().st_mode & 0o077 == 0
    assert (dest / "checkpoint-key.pem").stat().st_mode & 0o077 == 0

    restored = _restored(dest, tmp_path)
    verified = json.loads(run_evidence(restored, "verify", "--json").stdout)
    assert verified["intact"] is True, verified["failures"]
    assert (verified["tree_size"], verified["root"]) == (chain["entries"], chain["root"])
    # The restored store goes on with the same key: its next checkpoints verify with the old.
    run_evidence(restored, "incident", "start", "--title", "Katko", "--logged-by", "K")
    again = run_evidence(restored, "verify")
    assert "INTACT: every check passed" in again.stdout
    assert _signing_keys(again.stdout) == _signing_keys(made.stdout)


def _signing_keys(output: str) -> list[str]:
    """The key ids of `checkpoints: N with valid signatures (key A…, B…)`."""
    line = next(line for line in output.splitlines() if "with valid signatures (key " in line)
    keys = line.split("(key ", 1)[1].split(")", 1)[0].split(", ")
    assert len(keys) == 1, line
    return keys


@SQLITE
def test_an_existing_dest_is_refused_unless_force_replaces_an_earlier_backup(
    env: Env, tmp_path: Path
) -> None:
    _fill(env)
    dest = tmp_path / "evidence-backup"
    first = json.loads(run_evidence(env, "backup", str(dest), "--json").stdout)
    assert first["replaced"] is False and first["intact"] is True
    refused = run_evidence(env, "backup", str(dest), check_code=1)
    assert refused.stderr == (
        f"evidence: {dest} already exists: give a new folder, or add --force to replace that "
        "backup\n"
    )
    run_evidence(env, "incident", "start", "--title", "Katko", "--logged-by", "K")
    second = json.loads(run_evidence(env, "backup", str(dest), "--force", "--json").stdout)
    assert second["replaced"] is True and second["tree_size"] > first["tree_size"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".evidence-backup")]
    # --force never replaces what is not a backup.
    other = tmp_path / "documents"
    other.mkdir()
    (other / "letter.txt").write_text("keep me")
    run_evidence(env, "backup", str(other), "--force", check_code=1)
    assert [p.name for p in other.iterdir()] == ["letter.txt"]
    # ...nor the store's own folder.
    inside = run_evidence(env, "backup", str(env.home / "copy"), check_code=1)
    assert "the store's own folder" in inside.stderr


@SQLITE
@pytest.mark.slow
def test_a_backup_taken_while_another_process_imports_is_consistent(
    env: Env, tmp_path: Path
) -> None:
    """The import commits chunk after chunk while the backup copies: the copy is one
    commit's state (whole chunks, a chain that verifies), and the import is not disturbed."""
    base = dt.datetime(2026, 9, 1, 5, 0, tzinfo=dt.UTC)
    cdr = tmp_path / "Master.csv"
    lines = 40_000
    cdr.write_text(
        "".join(cdr_row(base + dt.timedelta(seconds=41 * i)) + "\n" for i in range(lines))
    )
    importer = subprocess.Popen(
        [sys.executable, "-m", "evidence", "import", "calls", str(cdr), "--format", "asterisk-cdr"],
        env={**os.environ, **env.vars},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # wait for the first chunk to commit
            conn = sqlite3.connect(env.home / "evidence.db", timeout=30)
            try:
                if conn.execute("SELECT count(*) FROM ledger").fetchone()[0]:
                    break
            finally:
                conn.close()
            time.sleep(0.05)
        dest = tmp_path / "during-import"
        made = json.loads(run_evidence(env, "backup", str(dest), "--json").stdout)
        out, err = importer.communicate(timeout=300)
    finally:
        if importer.poll() is None:
            importer.kill()
    assert importer.returncode == 0, (out, err)
    assert f"imported {lines:,}" in out
    assert made["intact"] is True, made["failures"]
    # The state of one commit, taken after the first chunk: in the middle of the import
    # unless the machine let the import finish before the backup's process started.
    final = json.loads(run_evidence(env, "verify", "--json").stdout)
    assert final["intact"] is True
    assert 0 < made["tree_size"] <= final["tree_size"], (made["tree_size"], final["tree_size"])
    restored = _restored(dest, tmp_path)
    verified = json.loads(run_evidence(restored, "verify", "--json").stdout)
    assert verified["intact"] is True and verified["tree_size"] == made["tree_size"]


@POSTGRESQL
def test_backup_of_a_postgresql_store_says_how(env: Env, tmp_path: Path) -> None:
    proc = run_evidence(env, "backup", str(tmp_path / "b"), check_code=1)
    assert "back it up with `pg_dump --format=custom`" in proc.stderr
    assert not (tmp_path / "b").exists()


@POSTGRESQL
def test_a_pg_dump_restored_into_a_new_database_verifies(env: Env, tmp_path: Path) -> None:
    """README's commands: pg_dump --format=custom, createdb, pg_restore --no-owner."""
    _fill(env)
    chain = json.loads(run_evidence(env, "status", "--json").stdout)["chain"]
    url = make_url(env.database_url)
    libpq = url.set(drivername="postgresql").render_as_string(hide_password=False)
    dump = tmp_path / "evidence.dump"
    subprocess.run(
        ["pg_dump", "--format=custom", f"--file={dump}", libpq], check=True, capture_output=True
    )
    name = f"{url.database}_restored"
    _pg_admin(f"CREATE DATABASE {name}")
    try:
        restored_url = pg_url(name)
        subprocess.run(
            [
                "pg_restore",
                "--no-owner",
                "--exit-on-error",
                f"--dbname={make_url(restored_url).set(drivername='postgresql').render_as_string(hide_password=False)}",
                str(dump),
            ],
            check=True,
            capture_output=True,
        )
        restored = Env("postgresql", env.home, restored_url)
        verified = run_evidence(restored, "verify", "--json")
        data = json.loads(verified.stdout)
        assert data["intact"] is True, data["failures"]
        assert (data["tree_size"], data["root"]) == (chain["entries"], chain["root"])
        assert any(c.startswith("triggers: ") for c in data["checks"])  # restored with the data
    finally:
        _pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
