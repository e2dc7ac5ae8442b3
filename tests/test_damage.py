"""A damaged store is called damaged; a bug is called a bug; neither message holds evidence.

Run as a user would: `evidence` in a fresh process, on a store whose SQLite file
had one byte flipped after the store was closed.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from evidence.config import load_config
from evidence.ingest.asterisk import import_calls
from evidence.ingest.mail import import_mail
from evidence.records.customers import add_customer
from evidence.store.db import open_store
from tests.conftest import Cli, Env, run_evidence

SAMPLE = Path(__file__).resolve().parents[1] / "sample"
PHONE = "0507654321"
SECRETS = (PHONE, "+358507654321", "765 4321", "aino.laaksonen@example.com", "Aino")
DAMAGED = 8
BUG = 1


def _fill(env: Env) -> None:
    store = open_store(load_config())
    try:
        add_customer(store, "200517", "Aino", ["aino.laaksonen@example.com"], ["050 765 4321"])
        import_mail(store, sorted((SAMPLE / "mail").glob("*.eml")))
        import_calls(store, SAMPLE / "pbx/Master.csv", "asterisk-cdr")
    finally:
        store.close()  # the last connection checkpoints the WAL into the file


@pytest.fixture
def sqlite_env(
    sqlite_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Env]:
    """A filled SQLite store, closed: its evidence is in evidence.db, no WAL beside it."""
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    shutil.copy2(sqlite_template, home / "evidence.db")
    env = Env("sqlite", home, f"sqlite:///{home / 'evidence.db'}")
    for key, value in env.vars.items():
        monkeypatch.setenv(key, value)
    _fill(env)
    assert not (home / "evidence.db-wal").exists()
    yield env


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def _first_page(db: Path, name: str) -> tuple[int, int, int]:
    """Where the first page of table or index ``name`` starts in the file, the page size,
    and the page's number."""
    conn = sqlite3.connect(db)
    try:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        root = conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = ?", (name,)
        ).fetchone()[0]
    finally:
        conn.close()
    return (root - 1) * page_size, page_size, root


def _assert_damage_reported(env: Env, command: str) -> None:
    proc = run_evidence(env, command, check_code=None)
    assert proc.returncode == DAMAGED, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("evidence: the store's database is damaged (")
    assert "restore the last backup" in lines[0] and "evidence backup" in lines[0]
    assert "run the command again" not in lines[0]  # the old, false comfort
    for secret in SECRETS:
        assert secret not in proc.stderr and secret not in proc.stdout, secret


@pytest.mark.parametrize("command", ["status", "verify"])
def test_a_flipped_header_byte_is_damage(sqlite_env: Env, command: str) -> None:
    _flip(sqlite_env.home / "evidence.db", 0)  # "SQLite format 3\0"
    _assert_damage_reported(sqlite_env, command)
    assert "not a SQLite database" in run_evidence(sqlite_env, command, check_code=None).stderr


@pytest.mark.parametrize("command", ["status", "verify"])
def test_a_flipped_byte_in_a_payload_with_a_phone_number_is_damage(
    sqlite_env: Env, command: str
) -> None:
    """The byte flipped is a digit of the number in a ledger payload (the JSON of a call
    record), so the page holds the number; the message must not."""
    db = sqlite_env.home / "evidence.db"
    marker = f'"src":"{PHONE}"'.encode()
    offset = db.read_bytes().find(marker)
    assert offset > 0
    _flip(db, offset + len('"src":"'))  # b"0" -> 0xcf: no longer UTF-8
    _assert_damage_reported(sqlite_env, command)


def test_a_flipped_byte_in_the_btree_is_damage(sqlite_env: Env) -> None:
    """A page's header (the ledger table's first page): SQLite finds the file malformed."""
    db = sqlite_env.home / "evidence.db"
    start, _, _ = _first_page(db, "ledger")
    _flip(db, start)  # the page type byte
    _assert_damage_reported(sqlite_env, "verify")


@pytest.mark.parametrize("command", ["status", "verify"])
def test_a_flipped_byte_in_an_index_page_is_damage_in_one_line(
    sqlite_env: Env, command: str
) -> None:
    """SQLite's check reports such a page on two lines ("*** in database main ***", then
    the page): the message is still one line, naming the page."""
    db = sqlite_env.home / "evidence.db"
    start, _, root = _first_page(db, "ix_emails_from_addr")
    _flip(db, start)  # the page type byte
    _assert_damage_reported(sqlite_env, command)
    proc = run_evidence(sqlite_env, command, check_code=DAMAGED)
    assert "***" not in proc.stderr
    if command == "status":  # the quick check lists the page (verify's full check stops first)
        assert f"the first: Page {root}: btreeInitPage() returns error code 11)" in proc.stderr


def _drop_a_column(env: Env) -> None:
    store = open_store(load_config())
    try:
        with store.engine.begin() as conn:
            conn.execute(text("ALTER TABLE sync_runs DROP COLUMN host"))
    finally:
        store.close()


def test_a_query_the_schema_cannot_answer_is_a_bug_not_a_database_failure(env: Env) -> None:
    """SQLite says "no such column" as an OperationalError, PostgreSQL as a ProgrammingError:
    both mean the program asked for something wrong. Exit 1, one line, no traceback."""
    _drop_a_column(env)
    proc = run_evidence(env, "status", check_code=BUG)
    assert proc.stderr.splitlines() == [
        f"evidence: this is a bug in evidence "
        f"({'OperationalError' if env.backend == 'sqlite' else 'ProgrammingError'}): "
        "please report it (set EVIDENCE_DEBUG=1 for the traceback)"
    ]
    debug = run_evidence(env, "status", check_code=BUG, extra_env={"EVIDENCE_DEBUG": "1"})
    assert "Traceback (most recent call last)" in debug.stderr
    assert "host" in debug.stderr  # the real cause, for the person reporting it
    assert debug.stderr.splitlines()[-1].startswith("evidence: this is a bug in evidence")


def _raised(engine_url: str, sql: str) -> BaseException:
    """The exception a real database raises for ``sql``, as SQLAlchemy hands it on."""
    from sqlalchemy import create_engine

    engine = create_engine(engine_url)
    try:
        with engine.connect() as conn:
            conn.execute(text(sql))
    except Exception as exc:  # the exception is what is tested
        return exc
    finally:
        engine.dispose()
    raise AssertionError(f"{sql} did not fail")


def test_failures_are_classified_by_meaning(tmp_path: Path) -> None:
    """Real errors from SQLite and PostgreSQL: damage 8, a failing database 7, a bug None."""
    from evidence.errors import StoreDamaged, StoreWriteFailed
    from evidence.store.db import database_failure
    from tests.conftest import PG_ADMIN_URL

    good = tmp_path / "good.db"
    sqlite_url = f"sqlite:///{good}"
    sqlite3.connect(good).execute("CREATE TABLE t (a TEXT)").connection.close()
    read_only = f"sqlite:///file:{good}?mode=ro&uri=true"
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all" * 300)
    closed_port = "postgresql+psycopg://postgres@127.0.0.1:9/postgres?connect_timeout=2"
    cases: list[tuple[BaseException, type | None]] = [
        (_raised(f"sqlite:///{garbage}", "SELECT 1 FROM sqlite_master"), StoreDamaged),
        (_raised(sqlite_url, "SELECT nope FROM sqlite_master"), None),  # OperationalError
        (_raised(sqlite_url, "SELEC 1"), None),
        (_raised(sqlite_url, "SELECT 1 FROM no_such_table"), None),
        (_raised(read_only, "INSERT INTO t VALUES ('x')"), StoreWriteFailed),  # SQLITE_READONLY
        (_raised(PG_ADMIN_URL, "SELECT nope FROM pg_class"), None),  # ProgrammingError
        (_raised(PG_ADMIN_URL, "SELECT 1/0"), None),
        (_raised(closed_port, "SELECT 1"), StoreWriteFailed),
    ]
    for exc, expected in cases:
        failure = database_failure(exc, "/the/store")
        assert (type(failure) if failure is not None else None) is expected, (exc, failure)


def test_an_index_that_no_longer_matches_its_table_fails_the_integrity_check(
    sqlite_env: Env,
) -> None:
    """One letter of an address in an index page: every row reads back, but SQLite's
    integrity check (run by `verify`) finds the index wrong. `status` runs the quick
    check, which does not compare indexes with tables, and says which check it ran."""
    db = sqlite_env.home / "evidence.db"
    start, page_size, _ = _first_page(db, "ix_emails_from_addr")
    at = db.read_bytes()[start : start + page_size].rfind(b"@example.com")
    assert at > 0
    _flip_bits(db, start + at - 2, 0x01)  # "aino.laaksonen" -> "aino.laaksoneo"
    _assert_damage_reported(sqlite_env, "verify")
    verify = run_evidence(sqlite_env, "verify", check_code=DAMAGED)
    assert "(SQLite's integrity check found 1 problem, the first: row " in verify.stderr
    assert "missing from index ix_emails_from_addr)" in verify.stderr
    status = run_evidence(sqlite_env, "status")
    assert "  ok    database file: SQLite's quick check found no damage\n" in status.stdout


def _flip_bits(path: Path, offset: int, bits: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= bits
    path.write_bytes(bytes(data))


def test_any_unexpected_exception_is_a_bug_in_one_line_without_its_text(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The exception's text can hold stored content: the line names its type only; the
    traceback (with the text) comes only when asked for with EVIDENCE_DEBUG=1."""
    import evidence.service.status

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError(f"unexpected value {PHONE}")

    monkeypatch.setattr(evidence.service.status, "store_status", broken)
    result = cli("status", code=BUG)
    assert result.stderr == (
        "evidence: this is a bug in evidence (RuntimeError): please report it "
        "(set EVIDENCE_DEBUG=1 for the traceback)\n"
    )
    monkeypatch.setenv("EVIDENCE_DEBUG", "1")
    debug = cli("status", code=BUG)
    assert "Traceback (most recent call last)" in debug.stderr and PHONE in debug.stderr


def test_psycopgs_log_line_after_a_lost_connection_is_not_printed() -> None:
    """psycopg logs "error ignored terminating <Pipeline ...>" when the connection is lost in
    a pipeline; evidence says so itself in one line, so that line is not printed too. Other
    psycopg warnings still are."""
    import sys

    code = (
        "import logging\n"
        "from evidence.known_warnings import PSYCOPG_TERMINATING, silence_known_warnings\n"
        "silence_known_warnings()\n"
        "log = logging.getLogger('psycopg')\n"
        "log.warning(PSYCOPG_TERMINATING, object(), 'the connection is lost')\n"
        "log.warning('something else %s', 'happened')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (done.returncode, done.stderr) == (0, "something else happened\n")
