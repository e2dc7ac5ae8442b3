"""`evidence verify` on the store: an intact store passes; every change is found and named.

The attacks are made as someone with database access would make them: the
append-only guard is switched off first (SQLite: DROP TRIGGER; PostgreSQL:
ALTER TABLE ... DISABLE TRIGGER ALL), on both databases.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest
from sqlalchemy import select, text

from evidence.ingest.asterisk import import_calls
from evidence.ingest.mail import import_mail
from evidence.ingest.recordings import import_recordings
from evidence.records.customers import add_customer
from evidence.records.incidents import add_incident
from evidence.store import ledger, merkle
from evidence.store.checkpoints import signature_valid
from evidence.store.db import Store
from evidence.store.guards import trigger_names
from evidence.store.models import (
    APPEND_ONLY_TABLES,
    Blob,
    Checkpoint,
    Email,
    LedgerEntry,
    Recording,
)
from evidence.verify.store import verify_store
from tests.conftest import Cli, Env, run_evidence

SAMPLE = Path(__file__).resolve().parents[1] / "sample"
UTC = dt.UTC


def _fill(store: Store) -> None:
    add_customer(store, "200517", "Aino", ["aino.laaksonen@example.com"], ["050 765 4321"])
    import_mail(store, sorted((SAMPLE / "mail").glob("*.eml")))
    import_calls(store, SAMPLE / "pbx/Master.csv", "asterisk-cdr")
    import_recordings(store, SAMPLE / "recordings")
    add_incident(
        store,
        title="Puhelinjärjestelmän häiriö",
        start=dt.datetime(2026, 3, 10, 6, 40, tzinfo=UTC),
        end=dt.datetime(2026, 3, 10, 9, 5, tzinfo=UTC),
        channels=["phone"],
        note=None,
        logged_by="Mikko",
    )


@pytest.fixture
def filled(company_store: Store) -> Store:
    _fill(company_store)
    return company_store


def _attack(env: Env, store: Store, table: str, *statements: tuple[str, dict]) -> None:
    """Switch the guard off on ``table`` as an attacker would, then run ``statements``."""
    with store.engine.begin() as conn:
        if env.backend == "sqlite":
            for name in trigger_names("sqlite", table):
                conn.execute(text(f"DROP TRIGGER IF EXISTS {name}"))
        else:
            conn.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER ALL"))
        for sql, params in statements:
            conn.execute(text(sql), params)


def _failures(store: Store) -> dict[str, str]:
    report = verify_store(store)
    assert not report.intact
    return {f.subject: f.problem for f in report.failures}


def test_checkpoints_written_at_each_import(filled: Store) -> None:
    with filled.session() as session:
        checkpoints = list(session.scalars(select(Checkpoint).order_by(Checkpoint.id)))
        size = session.scalar(select(LedgerEntry.seq).order_by(LedgerEntry.seq.desc()).limit(1))
        payloads = list(session.scalars(select(LedgerEntry.payload).order_by(LedgerEntry.seq)))
    # the customer, mail, calls, recordings, incident: one each, in that order
    assert [c.reason for c in checkpoints] == [
        "customer add",
        "import mail",
        "import asterisk-cdr",
        "import recordings",
        "incident",
    ]
    last = checkpoints[-1]
    assert last.tree_size == size == len(payloads)
    # The signed root is the RFC 6962 root over the payloads, recomputed here from scratch.
    assert last.root_hash == merkle.root_of(merkle.leaf_hash(p.encode()) for p in payloads).hex()
    assert last.body.splitlines()[1:3] == [f"tree size: {size}", f"root: {last.root_hash}"]
    assert signature_valid(last.body, last.signature, last.public_key)
    assert not signature_valid(
        last.body.replace("tree size", "tree  size"), last.signature, last.public_key
    )


def test_key_is_private_and_made_once(env: Env, filled: Store) -> None:
    key = env.home / "checkpoint-key.pem"
    assert key.stat().st_mode & 0o077 == 0
    assert (env.home / "checkpoint-key.pub.pem").read_text().startswith("-----BEGIN PUBLIC KEY")
    with filled.session() as session:
        assert len(set(session.scalars(select(Checkpoint.key_id)))) == 1


def test_intact_store_verifies(filled: Store, cli: Cli) -> None:
    report = verify_store(filled)
    assert report.intact, report.lines()
    result = cli("verify")
    assert result.stdout.splitlines()[-1] == "INTACT: every check passed"
    assert "every SHA-256 and size match" in result.stdout
    tables = len(APPEND_ONLY_TABLES)
    assert f"triggers: {2 * tables} append-only triggers in place on {tables} tables" in (
        result.stdout
    )
    as_json = cli("verify", "--json")
    data = json.loads(as_json.stdout)
    assert data["intact"] is True and data["failures"] == []
    # The verification itself went into the audit log, with the hash of its output.
    audit = json.loads(cli("audit", "--json").stdout)
    assert [a["action"] for a in audit] == ["verify-store", "verify-store"]
    assert audit[1]["output_sha256"] == hashlib.sha256(as_json.stdout[:-1].encode()).hexdigest()
    assert audit[1]["details"]["intact"] is True
    listed = cli("audit").stdout.splitlines()
    assert len(listed) == 2 and listed[1].startswith("#2\t")
    assert f"\tverify-store\t{audit[1]['actor']}\t" in listed[1]
    assert listed[1].endswith(f"SHA-256 {audit[1]['output_sha256']}")


def test_flipped_byte_in_a_blob(env: Env, filled: Store, cli: Cli) -> None:
    with filled.session() as session:
        mail = session.scalars(select(Email).order_by(Email.id)).first()
        assert mail is not None
        digest, email_id = mail.raw_sha256, mail.id
        data = bytearray(session.scalar(select(Blob.data).where(Blob.sha256 == digest)))
    data[40] ^= 0x01
    _attack(
        env,
        filled,
        "blobs",
        ("UPDATE blobs SET data = :d WHERE sha256 = :s", {"d": bytes(data), "s": digest}),
    )
    failures = _failures(filled)
    problem = failures[f"blob {digest[:16]}…"]
    assert f"cited by emails/{email_id}" in problem and "bytes were changed" in problem
    guard = trigger_names(env.backend, "blobs")[0]
    assert f"trigger {guard}" in failures
    assert ("is missing" if env.backend == "sqlite" else "is disabled") in failures[
        f"trigger {guard}"
    ]
    result = cli("verify", code=5)
    assert f"FAIL  blob {digest[:16]}…: its bytes now hash to" in result.stdout
    assert result.stdout.splitlines()[-1].startswith("NOT INTACT: ")


def test_row_changed_behind_the_applications_back(env: Env, filled: Store) -> None:
    _attack(env, filled, "incidents", ("UPDATE incidents SET title = 'Ei häiriötä'", {}))
    failures = _failures(filled)
    problem = failures["incidents/1"]
    assert "the row was changed" in problem
    assert 'title: "Puhelinjärjestelmän häiriö" → "Ei häiriötä"' in problem


def _line_entries(store: Store) -> list[tuple[int, str, dict]]:
    with store.session() as session:
        rows = session.execute(
            select(LedgerEntry.seq, LedgerEntry.record_id, LedgerEntry.payload)
            .where(LedgerEntry.record_type == "source_lines")
            .order_by(LedgerEntry.seq)
        )
        return [(seq, record_id, json.loads(payload)) for seq, record_id, payload in rows]


def test_a_phone_line_is_chained_by_its_digest(env: Env, filled: Store) -> None:
    """The leaf carries the line's SHA-256, not its bytes; a changed byte is still found."""
    entries = _line_entries(filled)
    assert entries
    with filled.session() as session:
        for _seq, record_id, payload in entries:
            raw = session.scalar(
                text("SELECT raw FROM source_lines WHERE id = :i"), {"i": record_id}
            )
            assert "raw" not in payload
            assert payload["line_sha256"] == hashlib.sha256(raw).hexdigest()
    seq, record_id, _ = entries[0]
    _attack(
        env,
        filled,
        "source_lines",
        ("UPDATE source_lines SET raw = :r WHERE id = :i", {"r": b"forged,line", "i": record_id}),
    )
    failures = _failures(filled)
    problem = failures[f"source_lines/{record_id}"]
    assert f"differs from what ledger entry #{seq} recorded" in problem
    assert "line_sha256" in problem and hashlib.sha256(b"forged,line").hexdigest()[:20] in problem


def test_lines_chained_with_their_bytes_still_verify(env: Env, filled: Store) -> None:
    """Stores written before the digest rule carry each line in base64: still verified."""
    with filled.session() as session:
        rows = list(
            session.execute(
                select(LedgerEntry.seq, LedgerEntry.record_type, LedgerEntry.payload).order_by(
                    LedgerEntry.seq
                )
            )
        )
        raws = dict(session.execute(text("SELECT id, raw FROM source_lines")).all())
    # Rewrite the log as the old encoding had it, re-linking the chain.
    prev, statements = ledger.GENESIS, []
    for seq, record_type, payload in rows:
        fields = json.loads(payload)
        if record_type == "source_lines":
            raw = raws[fields["id"]]
            fields["raw"] = {"base64": base64.b64encode(raw).decode("ascii")}
            payload = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        new_hash = ledger.entry_hash(prev, payload)
        statements.append(
            (
                "UPDATE ledger SET payload = :p, entry_hash = :h, prev_hash = :v WHERE seq = :s",
                {"p": payload, "h": new_hash, "v": prev, "s": seq},
            )
        )
        prev = new_hash
    _attack(env, filled, "ledger", *statements)
    failures = verify_store_failures(filled)
    # Only what the attack itself broke: the signed roots and the ledger's guard.
    assert failures and all(s.startswith(("checkpoint #", "trigger ")) for s in failures), failures
    # ...and a changed byte in such a line is found too.
    record_id = next(iter(raws))
    _attack(
        env,
        filled,
        "source_lines",
        ("UPDATE source_lines SET raw = :r WHERE id = :i", {"r": b"forged,line", "i": record_id}),
    )
    assert "raw: " in verify_store_failures(filled)[f"source_lines/{record_id}"]


def verify_store_failures(store: Store) -> dict[str, str]:
    return {f.subject: f.problem for f in verify_store(store).failures}


def test_row_and_log_rewritten_together_break_the_signed_checkpoints(
    env: Env, filled: Store
) -> None:
    """A careful attacker also rewrites the ledger entry and re-links the hash chain:
    only the signed checkpoints can tell, and they do."""
    with filled.session() as session:
        entry = session.scalar(
            select(LedgerEntry).where(
                LedgerEntry.record_type == "incidents", LedgerEntry.record_id == "1"
            )
        )
        assert entry is not None
        seq = entry.seq
        payload = json.loads(entry.payload)
        payload["title"] = "Ei häiriötä"
        new_payload = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        later = list(session.scalars(select(LedgerEntry).where(LedgerEntry.seq > seq)))
        assert later == []  # the incident is the last entry
        new_hash = ledger.entry_hash(entry.prev_hash, new_payload)
    _attack(env, filled, "incidents", ("UPDATE incidents SET title = 'Ei häiriötä'", {}))
    _attack(
        env,
        filled,
        "ledger",
        (
            "UPDATE ledger SET payload = :p, entry_hash = :h WHERE seq = :s",
            {"p": new_payload, "h": new_hash, "s": seq},
        ),
    )
    failures = _failures(filled)
    assert "incidents/1" not in failures  # row and log agree now ...
    assert f"ledger entry #{seq}" not in failures  # ... and the chain is re-linked,
    cp = failures["checkpoint #5"]  # but the checkpoint signed at the incident disagrees.
    assert "signed root" in cp and f"entry #{seq} was changed or replaced after it was signed" in cp


def test_deleted_row(env: Env, filled: Store) -> None:
    _attack(env, filled, "recordings", ("DELETE FROM recordings", {}))
    failures = _failures(filled)
    problem = failures["recordings/1"]
    assert "the row is gone: it was deleted" in problem


def test_row_added_behind_the_applications_back(env: Env, filled: Store) -> None:
    with filled.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO incidents (id, title, start, channels, logged_by, logged_at, "
                "recorded_at) VALUES (99, 'keksitty', :t, '', 'x', :t, :t)"
            ),
            {
                "t": dt.datetime(2026, 3, 1, tzinfo=UTC)
                if env.backend == "postgresql"
                else "2026-03-01 00:00:00.000000"
            },
        )
    failures = _failures(filled)
    assert "added behind the application's back" in failures["incidents/99"]


def test_truncated_log(env: Env, filled: Store) -> None:
    with filled.session() as session:
        size = session.scalar(select(LedgerEntry.seq).order_by(LedgerEntry.seq.desc()).limit(1))
        assert size is not None
    keep = size - 3
    _attack(env, filled, "ledger", ("DELETE FROM ledger WHERE seq > :k", {"k": keep}))
    failures = _failures(filled)
    assert failures["checkpoint #5"] == (
        f"signed {size} entries but the log now has {keep}: entries #{keep + 1}–#{size} were "
        "removed (the log was truncated)"
    )
    # The records whose entries went are named too.
    assert "in no ledger entry" in failures["incidents/1"]
    assert "in no ledger entry" in failures["recordings/1"]


def test_entry_deleted_from_the_middle_of_the_log(env: Env, filled: Store) -> None:
    _attack(env, filled, "ledger", ("DELETE FROM ledger WHERE seq = 2", {}))
    failures = _failures(filled)
    assert failures["ledger entry #2"] == "missing: deleted from the log"
    assert "ledger entry #2 is missing" in failures["checkpoint #5"]


@pytest.mark.parametrize("env", ["postgresql"], indirect=True)
def test_truncate_table_on_postgresql(env: Env, filled: Store) -> None:
    _attack(env, filled, "ledger", ("TRUNCATE ledger", {}))
    failures = _failures(filled)
    assert "the log now has 0" in failures["checkpoint #1"]
    assert "in no ledger entry" in failures["emails/1"]


def test_altered_checkpoint(env: Env, filled: Store) -> None:
    _attack(
        env,
        filled,
        "checkpoints",
        ("UPDATE checkpoints SET body = replace(body, 'incident', 'x') WHERE id = 5", {}),
    )
    failures = _failures(filled)
    assert "its signature does not match its text" in failures["checkpoint #5"]


def test_guard_restored_after_the_change_still_found(env: Env, filled: Store) -> None:
    """The attacker puts the guard back: the triggers pass, the changed row does not."""
    _attack(env, filled, "recordings", ("UPDATE recordings SET filename = 'muu.wav'", {}))
    with filled.engine.begin() as conn:
        if env.backend == "sqlite":
            conn.execute(text("DROP TRIGGER IF EXISTS evidence_append_only_recordings_delete"))
            for action in ("UPDATE", "DELETE"):
                conn.execute(
                    text(
                        f"CREATE TRIGGER evidence_append_only_recordings_{action.lower()} BEFORE "
                        f"{action} ON recordings BEGIN SELECT RAISE(ABORT, 'evidence is "
                        f"append-only: {action} on recordings refused'); END"
                    )
                )
        else:
            conn.execute(text("ALTER TABLE recordings ENABLE TRIGGER ALL"))
    failures = _failures(filled)
    assert list(failures) == ["recordings/1"]
    assert 'filename: "1773136100.1047.wav" → "muu.wav"' in failures["recordings/1"]
    with filled.session() as session:
        assert session.scalar(select(Recording.filename)) == "muu.wav"


def test_init_creates_the_checkpoint_key_once(env: Env, cli: Cli) -> None:
    first = cli("init").stdout.splitlines()[-1]
    assert first.startswith(f"checkpoint key created: {env.home / 'checkpoint-key.pem'} (key id ")
    again = cli("init").stdout.splitlines()[-1]
    assert again == first.replace("created", "kept")


def test_checkpoints_by_an_untrusted_key_fail_until_it_is_trusted(
    env: Env, company_store: Store
) -> None:
    from evidence.config import load_config
    from evidence.store.db import open_store
    from tests.conftest import COMPANY_TOML

    # A colleague's workstation signs with its own key ...
    env.write_config(COMPANY_TOML + '\n[checkpoints]\nkey = "colleague.pem"\n')
    colleague = open_store(load_config())
    try:
        _fill(colleague)
    finally:
        colleague.close()
    # ... and this one, with the default key, has not been told to trust it.
    env.write_config(COMPANY_TOML)
    mine = open_store(load_config())
    try:
        add_incident(
            mine,
            title="oma",
            start=dt.datetime(2026, 3, 11, tzinfo=UTC),
            end=None,
            channels=[],
            note=None,
            logged_by="k",
        )
        failures = _failures(mine)
        assert set(failures) == {f"checkpoint #{n}" for n in (1, 2, 3, 4, 5)}
        assert all("not trusted here" in p for p in failures.values())
        env.write_config(COMPANY_TOML + '\n[checkpoints]\ntrusted_keys = ["colleague.pub.pem"]\n')
        trusting = open_store(load_config())
        try:
            assert verify_store(trusting).intact
        finally:
            trusting.close()
    finally:
        mine.close()


def _flip_a_blob_byte(env: Env, store: Store) -> str:
    """One byte of one stored blob flipped; the append-only guard put back as it was, so
    the only thing wrong is that byte."""
    with store.engine.begin() as conn:
        digest, data = conn.execute(
            text("SELECT sha256, data FROM blobs WHERE size > 100 ORDER BY sha256 LIMIT 1")
        ).one()
        flipped = bytearray(data)
        flipped[50] ^= 0xFF
        update = text("UPDATE blobs SET data = :d WHERE sha256 = :s")
        if env.backend == "sqlite":
            guards = conn.execute(
                text(
                    "SELECT name, sql FROM sqlite_master "
                    "WHERE type = 'trigger' AND tbl_name = 'blobs'"
                )
            ).all()
            for name, _sql in guards:
                conn.execute(text(f"DROP TRIGGER {name}"))
            conn.execute(update, {"d": bytes(flipped), "s": digest})
            for _name, sql in guards:
                conn.execute(text(sql))
        else:
            conn.execute(text("ALTER TABLE blobs DISABLE TRIGGER ALL"))
            conn.execute(update, {"d": bytes(flipped), "s": digest})
            conn.execute(text("ALTER TABLE blobs ENABLE TRIGGER ALL"))
    return str(digest)


def test_status_says_it_did_not_read_the_blobs_and_verify_finds_the_flipped_byte(
    env: Env, filled: Store
) -> None:
    """`status` runs the one verifier without reading the blobs' bytes, and says so; it
    does not claim what it did not check. `verify` reads them: exit 5, the blob named."""
    blobs = len(filled_blobs(filled))
    digest = _flip_a_blob_byte(env, filled)
    status = run_evidence(env, "status")  # exit 0: nothing it checked failed
    assert f"  not checked  the bytes of the {blobs} blobs (" in status.stdout
    assert "against their SHA-256 and size: `evidence verify` reads and checks them\n" in (
        status.stdout
    )
    assert "store: verifies as far as checked, " in status.stdout
    assert "every SHA-256 and size match" not in status.stdout
    assert "  ok    blobs: the " in status.stdout  # what it did check: every cited blob is there
    data = json.loads(run_evidence(env, "status", "--json").stdout)["chain"]
    assert data["ok"] is True and len(data["not_checked"]) == 1
    assert any(c.startswith("ledger: ") for c in data["checks"])
    assert any(c.startswith("triggers: ") for c in data["checks"])
    verify = run_evidence(env, "verify", check_code=5)
    assert f"  FAIL  blob {digest[:16]}…: its bytes now hash to " in verify.stdout
    assert "not checked" not in verify.stdout


def filled_blobs(store: Store) -> list[str]:
    with store.session() as session:
        return list(session.scalars(select(Blob.sha256)))
