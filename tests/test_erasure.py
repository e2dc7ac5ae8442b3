"""Legal holds and erasure (GDPR Art. 17): refused while held, then content gone, chain intact.

Run on SQLite and PostgreSQL. The customer's mail carries canary strings in its
subject, body and attachment, so "gone" is checked on the bytes the database holds.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from evidence.ingest.asterisk import import_calls
from evidence.ingest.mail import import_mail
from evidence.ingest.recordings import import_recordings
from evidence.records.customers import add_customer
from evidence.store.db import Store, sqlite_path
from evidence.store.guards import ERASURE_PATHS
from evidence.store.models import (
    Base,
    Blob,
    CdrRecord,
    Email,
    ErasedBlob,
    ErasedEntry,
    LedgerEntry,
    Recording,
    SourceLine,
)
from evidence.verify.store import verify_store
from tests.conftest import Cli, Env

SAMPLE = Path(__file__).resolve().parents[1] / "sample"
ANNA = "100001"
BERTTA = "100002"
SUBJECT = "CANARY-SUBJECT-7f3a"
BODY = "CANARY-BODY-7f3a"
NUMBER = "0507654321"  # Anna's, as the sample's PBX wrote it
OWN_ATTACHMENT = b"CANARY-ATTACHMENT-7f3a: only Anna's\n"
SHARED_ATTACHMENT = b"tariff sheet 2026, sent to everyone\n"


def _mail(
    path: Path,
    *,
    sender: str,
    to: str,
    subject: str,
    body: str,
    attachment: bytes | None = None,
    cc: str | None = None,
    n: int = 1,
) -> Path:
    head = (
        f"Date: Tue, 10 Mar 2026 08:0{n}:00 +0200\n"
        f"From: {sender}\nTo: {to}\n"
        + (f"Cc: {cc}\n" if cc else "")
        + f"Subject: {subject}\nMessage-ID: <m{n}-{path.stem}@example.net>\nMIME-Version: 1.0\n"
    )
    if attachment is None:
        text_ = head + "Content-Type: text/plain; charset=utf-8\n\n" + body + "\n"
    else:
        text_ = (
            head
            + 'Content-Type: multipart/mixed; boundary="b1"\n\n--b1\n'
            + "Content-Type: text/plain; charset=utf-8\n\n"
            + body
            + "\n--b1\nContent-Type: text/plain\n"
            + 'Content-Disposition: attachment; filename="anna-liite.txt"\n'
            + "Content-Transfer-Encoding: base64\n\n"
            + base64.b64encode(attachment).decode()
            + "\n--b1--\n"
        )
    path.write_text(text_, encoding="utf-8")
    return path


@pytest.fixture
def two_customers(company_store: Store, tmp_path: Path) -> Store:
    store = company_store
    add_customer(store, ANNA, "Anna Asiakas", ["anna@example.net"], ["050 765 4321"])
    add_customer(store, BERTTA, "Bertta Toinen", ["bertta@example.org"], [])
    own = "asiakaspalvelu@aurora-energia.example"
    mails = [
        _mail(
            tmp_path / "a1.eml",
            sender="anna@example.net",
            to=own,
            subject=SUBJECT,
            body=BODY,
            attachment=OWN_ATTACHMENT,
            n=1,
        ),
        _mail(
            tmp_path / "a2.eml",
            sender="anna@example.net",
            to=own,
            subject="Toinen viesti",
            body="tariff?",
            attachment=SHARED_ATTACHMENT,
            n=2,
        ),
        # Outbound to both customers: shared, kept whole.
        _mail(
            tmp_path / "ab.eml",
            sender=own,
            to="anna@example.net",
            cc="bertta@example.org",
            subject="Tiedote molemmille",
            body="katko huomenna",
            n=3,
        ),
        _mail(
            tmp_path / "b1.eml",
            sender="bertta@example.org",
            to=own,
            subject="Bertan viesti",
            body="sama liite",
            attachment=SHARED_ATTACHMENT,
            n=4,
        ),
    ]
    import_mail(store, mails)
    import_calls(store, SAMPLE / "pbx/Master.csv", "asterisk-cdr")
    import_recordings(store, SAMPLE / "recordings")
    return store


def _chain_length(store: Store) -> int:
    with store.session() as session:
        return int(session.scalar(select(func.count()).select_from(LedgerEntry)) or 0)


def _blob(store: Store, digest: str) -> bytes:
    with store.session() as session:
        return bytes(session.scalar(select(Blob.data).where(Blob.sha256 == digest)) or b"")


def test_refused_while_held_then_erased_and_still_verifies(
    env: Env, two_customers: Store, cli: Cli, tmp_path: Path
) -> None:
    store = two_customers
    with store.session() as session:
        anna_mail = {
            e.subject: e
            for e in session.scalars(select(Email).where(Email.from_addr == "anna@example.net"))
        }
        first = anna_mail[SUBJECT]
        raw_digest = first.raw_sha256
        own_att = next(a.sha256 for a in session.get(Email, first.id).attachments)  # type: ignore[union-attr]
        shared_att = next(
            a.sha256
            for a in session.get(Email, anna_mail["Toinen viesti"].id).attachments  # type: ignore[union-attr]
        )
        recording = session.scalars(select(Recording)).one()
    assert SUBJECT.encode() in _blob(store, raw_digest)

    # A legal hold refuses the erasure (exit 6), naming the hold and the law.
    cli("hold", "add", ANNA, "--reason", "court summons 2026-11-20")
    held = json.loads(cli("hold", "list", "--json").stdout)
    assert [(h["ref"], h["active"], h["reason"]) for h in held] == [
        (ANNA, True, "court summons 2026-11-20")
    ]
    refused = cli("customer", "erase", ANNA, "--reason", "request", "--yes", code=6)
    assert "legal hold (#1 on 100001: court summons 2026-11-20)" in refused.stderr
    assert "GDPR Art. 17(3)(e)" in refused.stderr
    cli("hold", "release", ANNA, "--reason", "proceedings ended")
    held = json.loads(cli("hold", "list", "--json").stdout)
    assert held[0]["active"] is False and held[0]["release_reason"] == "proceedings ended"

    # So does an open case, until it is closed.
    cli("case", "open", "KKV/1/2026", "--customer", ANNA, "--authority", "KKV")
    refused = cli("customer", "erase", ANNA, "--reason", "request", "--yes", code=6)
    assert "open case (KKV/1/2026)" in refused.stderr and "Art. 17(3)(e)" in refused.stderr
    # A hold placed by case reference holds the case's customer.
    cli("hold", "add", "KKV/1/2026", "--reason", "regulator asked to keep it")
    cli("case", "close", "KKV/1/2026", "--reason", "decision received")
    refused = cli("customer", "erase", ANNA, "--reason", "request", "--yes", code=6)
    assert "#3 on KKV/1/2026: regulator asked to keep it" in refused.stderr
    cli("hold", "release", "KKV/1/2026", "--reason", "decision final")
    # Nothing was erased by the refusals.
    assert SUBJECT.encode() in _blob(store, raw_digest)

    cached = env.home / "cache" / "render" / "ab" / "page.pdf"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"%PDF- a rendered page of Anna's mail")
    before = _chain_length(store)
    done = cli("customer", "erase", ANNA, "--reason", "erasure request 2026-11-21", "--yes")
    assert "erased customer 100001: 2 emails, 1 recordings, 3 call-log lines, 4 blobs" in (
        done.stdout
    )
    assert _chain_length(store) == before + 1  # the tombstone (checkpoints are not entries)
    assert not cached.exists()

    # The bytes are gone from the table; the shared attachment and shared email stay.
    assert _blob(store, raw_digest) == b""
    assert _blob(store, own_att) == b""
    assert _blob(store, recording.sha256) == b""
    assert _blob(store, shared_att) == SHARED_ATTACHMENT
    with store.session() as session:
        for data in session.scalars(select(Blob.data)):
            assert SUBJECT.encode() not in bytes(data) and BODY.encode() not in bytes(data)
            assert OWN_ATTACHMENT not in bytes(data)
        # Derived fields are blank in the rows and in the ledger payloads.
        row = session.get(Email, first.id)
        assert row is not None and row.subject is None and row.from_addr is None
        assert [a.address for a in row.addresses] == ["", ""]
        redacted = set(session.scalars(select(ErasedEntry.seq)))
        for seq, payload in session.execute(select(LedgerEntry.seq, LedgerEntry.payload)):
            assert SUBJECT not in payload
            # Anna's address stays only in the mail she shares with Bertta.
            assert seq not in redacted or "anna@example.net" not in payload
        # Her calls' phone-system lines: bytes and numbers gone, times and figures kept.
        cdr = list(session.scalars(select(CdrRecord).order_by(CdrRecord.id)))
        assert len(cdr) == 4  # the sample's Master.csv
        hers = [r for r in cdr if r.src == ""]
        assert len(hers) == 3 and all(r.src_e164 is None and r.clid == "" for r in hers)
        assert all(r.duration > 0 and r.started_at for r in hers)
        assert "+358507654321" not in {r.src_e164 for r in cdr}
        for line in session.scalars(select(SourceLine)):
            assert NUMBER.encode() not in bytes(line.raw)
        assert sum(1 for line in session.scalars(select(SourceLine)) if not line.raw) == 3
        for payload in session.scalars(select(LedgerEntry.payload)):
            fields = json.loads(payload)
            if fields["_table"] == "source_lines":
                # A line's entry carries its SHA-256, not its bytes (older entries: base64).
                assert "raw" not in fields or NUMBER.encode() not in base64.b64decode(
                    fields["raw"]["base64"]
                )
            assert "+358507654321" not in payload
        shared = session.scalars(select(Email).where(Email.subject == "Tiedote molemmille")).one()
        erased = set(session.scalars(select(ErasedBlob.sha256)))
    assert b"Tiedote molemmille" in _blob(store, shared.raw_sha256)
    assert erased == {raw_digest, own_att, recording.sha256, anna_mail["Toinen viesti"].raw_sha256}
    if env.backend == "sqlite":
        db = sqlite_path(env.database_url)
        assert db is not None
        for path in (db, db.with_name(db.name + "-wal")):
            if path.exists():
                raw = path.read_bytes()
                assert SUBJECT.encode() not in raw and BODY.encode() not in raw, path
                assert b"CANARY-ATTACHMENT" not in raw, path
                assert NUMBER.encode() not in raw and b"+358507654321" not in raw, path
                assert b"Anna Asiakas" not in raw, path  # her name went too

    # verify passes and reports the erasure, not a missing blob.
    report = verify_store(store)
    assert report.intact, "\n".join(report.lines())
    assert any("erasure #1: customer 100001's content erased" in n for n in report.notes)
    out = cli("verify")
    assert out.stdout.splitlines()[-1] == "INTACT: every check passed"
    assert "4 erased, as their erasures recorded" in out.stdout
    data = json.loads(cli("verify", "--json").stdout)
    assert data["intact"] is True
    assert data["erasures"][0]["customer"] == ANNA
    assert data["erasures"][0]["reason"] == "erasure request 2026-11-21"
    assert set(data["erasures"][0]["blobs"]) == erased
    # 2 emails, 1 recording, 3 lines, and the customer as added with its 2 identifiers
    assert len(data["erasures"][0]["ledger_entries"]) == 9
    status = json.loads(cli("status", "--json").stdout)
    assert status["chain"]["ok"] is True, status["chain"]["problems"]
    assert status["chain"]["entries"] == _chain_length(store) == before + 3  # + 2 verify audits

    # The erased customer's timeline says so; the export refuses with the date and reason.
    items = json.loads(cli("timeline", ANNA, "--json").stdout)
    assert [i["kind"] for i in items] == ["erasure"]
    assert items[0]["reason"] == "erasure request 2026-11-21" and items[0]["id"] == "erasure:1"
    assert "ERASED" in cli("timeline", ANNA).stdout
    out_pdf = tmp_path / "anna.pdf"
    refused = cli("export", ANNA, "-o", str(out_pdf), code=1)
    assert "erased on" in refused.stderr and "erasure request 2026-11-21" in refused.stderr
    assert not out_pdf.exists()
    # The other customer keeps the shared mail, whole.
    other = json.loads(cli("timeline", BERTTA, "--json").stdout)
    assert {i.get("subject") for i in other} == {"Tiedote molemmille", "Bertan viesti"}
    # A second erasure of the same customer is refused.
    cli("customer", "erase", ANNA, "--reason", "again", "--yes", code=1)


def test_the_database_allows_only_the_erasure_path(env: Env, two_customers: Store) -> None:
    store = two_customers
    with store.session() as session:
        digest = session.scalars(select(Email.raw_sha256)).first()
        email_id = session.scalars(select(Email.id)).first()
    attempts = [
        ("UPDATE blobs SET data = :d WHERE sha256 = :s", {"d": b"", "s": digest}),
        ("UPDATE emails SET subject = NULL WHERE id = :i", {"i": email_id}),
        ("UPDATE ledger SET payload = '{}' WHERE seq = 1", {}),
        ("DELETE FROM blobs WHERE sha256 = :s", {"s": digest}),
    ]
    for sql, params in attempts:
        with pytest.raises(DBAPIError, match="append-only"):
            with store.engine.begin() as conn:
                conn.execute(text(sql), params)

    from evidence.records.erasure import erase_customer

    erase_customer(store, ANNA, reason="request")
    with store.session() as session:
        erased = session.scalars(select(ErasedBlob.sha256)).first()
        erased_email = session.scalars(select(Email.id).where(Email.subject.is_(None))).first()
    after = [
        # The bytes cannot come back, nor can an erased row change otherwise.
        ("UPDATE blobs SET data = :d WHERE sha256 = :s", {"d": b"x", "s": erased}),
        ("UPDATE emails SET direction = 'outbound' WHERE id = :i", {"i": erased_email}),
        ("UPDATE emails SET subject = 'forged' WHERE id = :i", {"i": erased_email}),
        ("DELETE FROM erased_blobs", {}),
    ]
    for sql, params in after:
        with pytest.raises(DBAPIError, match="append-only"):
            with store.engine.begin() as conn:
                conn.execute(text(sql), params)


def test_verify_finds_a_widened_erasure_path_and_a_forged_redaction(
    env: Env, two_customers: Store
) -> None:
    from evidence.records.erasure import erase_customer

    store = two_customers
    erase_customer(store, ANNA, reason="request")
    assert verify_store(store).intact
    with store.engine.begin() as conn:
        if env.backend == "sqlite":
            conn.execute(text("DROP TRIGGER evidence_append_only_ledger_update"))
            conn.execute(
                text(
                    "CREATE TRIGGER evidence_append_only_ledger_update BEFORE UPDATE ON ledger "
                    "WHEN 0 BEGIN SELECT RAISE(ABORT, 'x'); END"
                )
            )
        else:
            conn.execute(text("ALTER TABLE ledger DISABLE TRIGGER evidence_append_only_ledger_row"))
        seq = conn.execute(
            text(
                "SELECT min(e.seq) FROM erased_entries e JOIN ledger l ON l.seq = e.seq "
                "WHERE l.record_type = 'emails'"
            )
        ).scalar()
        conn.execute(
            text(
                "UPDATE ledger SET payload = replace(payload, '\"role\"', '\"rool\"') "
                "WHERE seq = :s"
            ),
            {"s": seq},
        )
    report = verify_store(store)
    problems = {f.subject: f.problem for f in report.failures}
    assert f"ledger entry #{seq}" in problems
    assert "redacted payload is not the one erasure #1 recorded" in problems[f"ledger entry #{seq}"]
    if env.backend == "sqlite":
        assert (
            "allows more than erasure on ledger"
            in problems["trigger evidence_append_only_ledger_update"]
        )
    else:
        assert "is disabled" in problems["trigger evidence_append_only_ledger_row"]


def test_erasure_paths_name_every_column() -> None:
    """A column added to an erasable table must be named kept or erased, or erasure could change
    it: this fails until evidence.store.guards.ERASURE_PATHS (and a migration) say which."""
    for table, path in ERASURE_PATHS.items():
        columns = {c.name for c in Base.metadata.tables[table].columns}
        named = set(path.kept) | set(path.erased)
        free = {"payload"} if table == "ledger" else set()
        assert columns - named == free, table
        assert named <= columns, table


def test_erase_asks_first_and_says_what_it_will_do(env: Env, two_customers: Store) -> None:
    from click.testing import CliRunner

    from evidence.cli import main

    result = CliRunner().invoke(
        main, ["customer", "erase", ANNA, "--reason", "request"], input="n\n", env=env.vars
    )
    assert result.exit_code == 1  # aborted
    assert (
        "customer 100001: 2 emails, 1 recordings and 3 call-log lines erased, 4 blobs removed; "
        "kept as shared with other customers: 1 emails, 0 recordings, 0 call-log lines, 1 blobs"
    ) in result.stdout
    with two_customers.session() as session:
        assert session.scalar(select(func.count()).select_from(ErasedBlob)) == 0
        assert (
            session.scalar(select(func.count()).select_from(Email).where(Email.subject == SUBJECT))
            == 1
        )


@pytest.mark.slow
def test_other_customers_dossier_still_proves_itself_after_an_erasure(
    env: Env, two_customers: Store, cli: Cli, tmp_path: Path
) -> None:
    """Inclusion proofs are computed over the tree with the erased leaves' original hashes."""
    before = tmp_path / "before.pdf"
    cli("export", BERTTA, "-o", str(before), "--jobs", "1")
    cli("customer", "erase", ANNA, "--reason", "request", "--yes")
    after = tmp_path / "after.pdf"
    out = cli("export", BERTTA, "-o", str(after), "--jobs", "1")
    assert "2 items" in out.stdout
    checked = cli("verify", str(after), "--previous", str(before))
    assert checked.stdout.splitlines()[-1] == "INTACT: every check passed"
    cli("verify", str(before))
