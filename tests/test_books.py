"""What decides what a dossier holds is evidence too: customers, their identifiers (and
versions), cases and their closing are append-only, chained, checked by `verify`, and
proved by the dossier. On SQLite and PostgreSQL, driven as a user does."""

from __future__ import annotations

import json
from pathlib import Path

import pikepdf
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from evidence.config import load_config
from evidence.store.db import Store, make_engine, open_store
from evidence.store.guards import trigger_names
from tests.conftest import SCENARIO, Env, need_shared, run_evidence

MATTI = "100234"
CASE = "ESAVI/31337/2026"


def _matti(env: Env, *, calls: bool = False) -> None:
    run_evidence(env, "init")
    run_evidence(
        env, "customer", "add", MATTI, "--name", "Matti Virtanen",
        "--email", "matti.virtanen@example.net", "--phone", "040 123 4567",
    )  # fmt: skip
    if calls:
        need_shared()
        pbx = SCENARIO / "pbx"
        run_evidence(env, "import", "calls", str(pbx / "Master.csv"), "--format", "asterisk-cdr")
    run_evidence(env, "case", "open", CASE, "--customer", MATTI, "--authority", "lvv")


def _store(env: Env) -> Store:
    return open_store(load_config(env.vars))


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE customers SET name = 'Joku Muu'",
        "DELETE FROM customers",
        "UPDATE customer_identifiers SET value = 'x@example.org'",
        "DELETE FROM customer_identifiers",
        "UPDATE cases SET authority = 'kkv'",
        "DELETE FROM cases",
        "DELETE FROM case_closures",
    ],
)
def test_the_database_refuses_to_change_them(env: Env, statement: str) -> None:
    _matti(env)
    run_evidence(env, "case", "close", CASE, "--reason", "decision received")
    store = _store(env)
    try:
        with pytest.raises(DBAPIError, match="append-only"):
            with store.engine.begin() as conn:
                conn.execute(text(statement))
    finally:
        store.close()
    assert run_evidence(env, "verify").stdout.splitlines()[-1] == "INTACT: every check passed"


def _attack(env: Env, table: str, statement: str) -> None:
    """Switch the guard off as an attacker with the database's password would."""
    engine = make_engine(env.database_url)
    try:
        with engine.begin() as conn:
            if env.backend == "sqlite":
                for name in trigger_names("sqlite", table):
                    conn.execute(text(f"DROP TRIGGER IF EXISTS {name}"))
            else:
                conn.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER ALL"))
            conn.execute(text(statement))
    finally:
        engine.dispose()


def test_a_deleted_identifier_is_found(env: Env) -> None:
    """The issue's attack: one DELETE removed all of Matti's calls from his dossier and
    `evidence verify` still said INTACT."""
    _matti(env, calls=True)
    calls = [i for i in json.loads(run_evidence(env, "timeline", MATTI, "--json").stdout)]
    assert len([c for c in calls if c["kind"] == "call"]) == 7
    _attack(env, "customer_identifiers", "DELETE FROM customer_identifiers WHERE kind = 'phone'")
    after = json.loads(run_evidence(env, "timeline", MATTI, "--json").stdout)
    assert [c for c in after if c["kind"] == "call"] == []  # the attack worked ...
    found = run_evidence(env, "verify", check_code=5)  # ... and is found
    assert "customer_identifiers/2" in found.stdout
    assert "the row is gone: it was deleted" in found.stdout
    assert "evidence_append_only_customer_identifiers" in found.stdout
    assert found.stdout.splitlines()[-1] == "NOT INTACT: 3 problems found"


@pytest.mark.parametrize(
    ("table", "statement", "named"),
    [
        ("customers", "UPDATE customers SET name = 'Joku Muu'", "customers/1"),
        ("cases", "UPDATE cases SET period_from = '2026-09-29'", "cases/1"),
    ],
)
def test_a_changed_customer_or_case_is_found(
    env: Env, table: str, statement: str, named: str
) -> None:
    _matti(env)
    _attack(env, table, statement)
    found = run_evidence(env, "verify", "--json", check_code=5)
    failures = {f["subject"]: f["problem"] for f in json.loads(found.stdout)["failures"]}
    assert "the row was changed" in failures[named]


def test_no_dossier_is_made_from_an_altered_store(env: Env, tmp_path: Path) -> None:
    """A forged row would be printed on the pages while the manifest proves the ledger's
    version, and the dossier would verify INTACT: the export refuses, naming the row, and
    writes nothing."""
    _matti(env)
    _attack(env, "customers", "UPDATE customers SET name = 'Joku Muu'")
    out = tmp_path / "dossier.pdf"
    refused = run_evidence(env, "export", "--case", CASE, "-o", str(out), check_code=5)
    [line] = refused.stderr.splitlines()
    assert "the store does not verify" in line and "customers/1" in line
    assert "the row was changed" in line and "evidence verify" in line
    assert not out.exists()


def test_the_dossier_proves_which_records_selected_its_items(env: Env, tmp_path: Path) -> None:
    _matti(env, calls=True)
    run_evidence(
        env, "customer", "update", MATTI, "--add-email", "matti@uusi.example",
        "--from", "2026-10-21", "--reason", "new address in the complaint",
    )  # fmt: skip
    out = tmp_path / "dossier.pdf"
    run_evidence(env, "export", "--case", CASE, "-o", str(out))
    with pikepdf.open(out) as pdf:
        manifest = json.loads(pdf.attachments["manifest.json"].get_file().read_bytes())
    [selection] = [e for e in manifest["exhibits"] if e["exhibit"] == "selection"]
    records = [r["record"] for r in selection["records"]]
    assert records == [
        "customers/1",
        "customer_identifiers/1",
        "customer_identifiers/2",
        "customer_changes/1",
        "cases/1",
    ]
    leaves = {r["record"]: json.loads(r["leaf"]) for r in selection["records"]}
    assert leaves["customer_identifiers/2"]["value"] == "+358401234567"
    assert leaves["customer_changes/1"]["_children"][0]["value"] == "matti@uusi.example"
    checked = run_evidence(env, "verify", str(out))
    assert checked.stdout.splitlines()[-1] == "INTACT: every check passed"
    assert "selection: no file; leaves #" in checked.stdout


def test_closing_a_case_is_a_record(env: Env) -> None:
    _matti(env)
    listed = json.loads(run_evidence(env, "case", "list", "--json").stdout)
    assert listed[0]["closed_at"] is None
    run_evidence(env, "case", "close", CASE, "--reason", "decision received", "--by", "Kaisa")
    [case] = json.loads(run_evidence(env, "case", "list", "--json").stdout)
    assert case["closed_at"] is not None
    again = run_evidence(env, "case", "close", CASE, "--reason", "twice", check_code=1)
    assert "already closed" in again.stderr
    # A closed case no longer holds the customer's data: the erasure goes ahead, and the
    # customer's name and identifiers are blanked, never deleted, so the store verifies.
    run_evidence(env, "customer", "erase", MATTI, "--reason", "request", "--yes")
    store = _store(env)
    try:
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT name FROM customers")).scalar() == ""
            values = set(conn.execute(text("SELECT value FROM customer_identifiers")).scalars())
            assert values == {""}
    finally:
        store.close()
    assert run_evidence(env, "verify").stdout.splitlines()[-1] == "INTACT: every check passed"


def test_a_store_from_before_is_chained_as_it_is(env: Env) -> None:
    """Customers, identifiers and cases written by revision 0011 (unchained, a case closed
    in place) are chained by the upgrade, and the closing becomes a record."""
    from alembic import command

    from evidence.store.db import alembic_config

    config = load_config(env.vars)
    command.downgrade(alembic_config(config.database_url), "0011")
    engine = make_engine(config.database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO customers (id, ref, name, created_at) "
                    "VALUES (1, '100234', 'Matti Virtanen', '2026-10-01 08:00:00.000000')"
                    if env.backend == "sqlite"
                    else "INSERT INTO customers (id, ref, name, created_at) "
                    "VALUES (1, '100234', 'Matti Virtanen', '2026-10-01 08:00:00+00')"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO customer_identifiers (id, customer_id, kind, value, raw) VALUES "
                    "(1, 1, 'email', 'matti.virtanen@example.net', 'matti.virtanen@example.net'),"
                    " (2, 1, 'phone', '+358401234567', '040 123 4567')"
                )
            )
            stamp = "'2026-10-20 08:00:00" + (".000000'" if env.backend == "sqlite" else "+00'")
            conn.execute(
                text(
                    "INSERT INTO cases (id, reference, customer_id, authority, opened_at, "
                    f"closed_at, closed_by, close_reason) VALUES (1, '{CASE}', 1, 'lvv', "
                    f"{stamp}, {stamp}, 'Kaisa', 'decision received')"
                )
            )
            if env.backend == "postgresql":
                for table in ("customers", "customer_identifiers", "cases"):
                    conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), 5)"))
    finally:
        engine.dispose()
    run_evidence(env, "init")
    [case] = json.loads(run_evidence(env, "case", "list", "--json").stdout)
    assert case["closed_at"] == "2026-10-20T08:00:00Z"
    checked = run_evidence(env, "verify")
    assert checked.stdout.splitlines()[-1] == "INTACT: every check passed"
    shown = json.loads(run_evidence(env, "customer", "show", MATTI, "--json").stdout)
    assert [i["value"] for i in shown["identifiers"]] == [
        "matti.virtanen@example.net",
        "+358401234567",
    ]
