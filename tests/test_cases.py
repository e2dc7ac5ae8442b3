"""Cases: period, deadlines, claims tied to timeline items, attached PDFs, and exports."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pikepdf
import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DatabaseError

from evidence.store.blobs import read_blob
from evidence.store.db import Store
from evidence.store.ledger import chain_head
from evidence.store.models import CaseDocument, Claim, ClaimEvidence, ExportRecord, LedgerEntry
from tests.conftest import Cli, Env, pdf_text
from tests.samples import AINO

CASE = "KKV/1234/2026"


def _open(cli: Cli, *extra: str) -> None:
    cli("case", "open", CASE, "--customer", AINO, "--authority", "KKV", *extra)


def test_case_period_is_stored_and_shown(sample_store: Store, cli: Cli) -> None:
    _open(cli, "--received", "2026-03-20", "--deadline", "2026-04-03", "--period", "2026-03-09..")
    shown = json.loads(cli("case", "show", CASE, "--json").stdout)
    assert shown["period_from"] == "2026-03-09" and shown["period_to"] is None
    assert shown["received"] == "2026-03-20" and shown["deadline"] == "2026-04-03"
    assert shown["claims"] == [] and shown["documents"] == []
    assert "period 2026-03-09..\n" in cli("case", "show", CASE).stdout

    bad = cli(
        "case", "open", "X/1", "--customer", AINO, "--authority", "A", "--period", "9.3.", code=2
    )  # fmt: skip
    assert bad.stderr.endswith(
        "Error: Invalid value for '--period': cannot read the period '9.3.': write it as "
        "FROM..TO, e.g. 2026-09-28..2026-09-30\n"
    )
    backwards = cli(
        "case", "open", "X/2", "--customer", AINO, "--authority", "A",
        "--period", "2026-03-10..2026-03-01", code=2,
    )  # fmt: skip
    assert "ends before it starts" in backwards.stderr


def test_case_list_counts_days_left_overdue_first(store: Store, cli: Cli) -> None:
    cli("customer", "add", "1", "--name", "A")
    for ref, deadline in [("B/2", "2026-04-10"), ("C/3", None), ("A/1", "2026-03-30"),
                          ("D/4", "2026-04-01"), ("E/5", "2026-03-25")]:  # fmt: skip
        extra = ["--deadline", deadline] if deadline else []
        cli("case", "open", ref, "--customer", "1", "--authority", "AVI", *extra)
    rows = json.loads(cli("case", "list", "--today", "2026-04-01", "--json").stdout)
    assert [(r["reference"], r["days_left"], r["overdue"]) for r in rows] == [
        ("E/5", -7, True),
        ("A/1", -2, True),
        ("D/4", 0, False),
        ("B/2", 9, False),
        ("C/3", None, False),
    ]
    assert rows[0] == {
        "reference": "E/5",
        "customer": "1",
        "authority": "AVI",
        "authority_name": "AVI",
        "received": None,
        "deadline": "2026-03-25",
        "days_left": -7,
        "overdue": True,
        "period_from": None,
        "period_to": None,
        "documents": 0,
        "claims": 0,
        "closed_at": None,
    }
    assert cli("case", "list", "--today", "2026-04-01").stdout == (
        "E/5\t1\tAVI\t2026-03-25\toverdue by 7 days\n"
        "A/1\t1\tAVI\t2026-03-30\toverdue by 2 days\n"
        "D/4\t1\tAVI\t2026-04-01\tdue today\n"
        "B/2\t1\tAVI\t2026-04-10\t9 days left\n"
        "C/3\t1\tAVI\t-\tno deadline\n"
    )


def test_claims_are_tied_to_the_customers_items(env: Env, sample_store: Store, cli: Cli) -> None:
    _open(cli)
    items = {i["id"]: i for i in json.loads(cli("timeline", AINO, "--json").stdout)}
    calls = [i for i in items if i.startswith("call:")]
    assert calls == ["call:1773126750.1041", "call:1773129795.1044", "call:1773136100.1047"]
    out = cli(
        "case", "claim", CASE, "--text", "jonotin puoli tuntia",
        "--evidence", calls[0], "--evidence", calls[1], "--evidence", "incident:1",
        "--evidence", calls[0],
    )  # fmt: skip
    assert out.stdout == f"claim #1 recorded on {CASE} (3 items)\n"
    with sample_store.session() as session:
        [claim] = session.scalars(select(Claim)).all()
        assert claim.text == "jonotin puoli tuntia"
        assert claim.item_ids == [calls[0], calls[1], "incident:1"]
        entry = session.scalars(
            select(LedgerEntry).where(LedgerEntry.record_type == "claims")
        ).one()
        payload = json.loads(entry.payload)
        assert payload["text"] == "jonotin puoli tuntia"
        assert [c["item_id"] for c in payload["_children"]] == claim.item_ids

    # Malformed, unknown, and another customer's items are refused; nothing is stored.
    malformed = cli("case", "claim", CASE, "--text", "x", "--evidence", "puhelu 3", code=1)
    assert "'puhelu 3' is not a timeline item id" in malformed.stderr
    unknown = cli("case", "claim", CASE, "--text", "x", "--evidence", "email:999", code=1)
    assert unknown.stderr == (
        f"evidence: email:999 is not in customer {AINO}'s timeline: "
        f"use an id printed by `evidence timeline {AINO} --json`\n"
    )
    # 1773123670.1038 is the other caller's call in the sample queue_log.
    other = cli("case", "claim", CASE, "--text", "x", "--evidence", "call:1773123670.1038", code=1)
    assert "is not in customer" in other.stderr
    empty = cli("case", "claim", CASE, "--text", "  ", code=1)
    assert "needs its --text" in empty.stderr

    # A correction is a new claim; show lists the current version only.
    cli("case", "claim", CASE, "--text", "jonotin 7 minuuttia", "--evidence", calls[1],
        "--corrects", "1")  # fmt: skip
    again = cli("case", "claim", CASE, "--text", "y", "--corrects", "1", code=1)
    assert "already corrected by #2" in again.stderr
    shown = json.loads(cli("case", "show", CASE, "--json").stdout)
    assert [(c["id"], c["text"], c["evidence"], c["corrects"]) for c in shown["claims"]] == [
        (2, "jonotin 7 minuuttia", [calls[1]], 1)
    ]
    human = cli("case", "show", CASE).stdout
    assert f"  claim #2: jonotin 7 minuuttia\n    evidence: {calls[1]}\n" in human

    with sample_store.session() as session:
        assert session.scalar(select(ClaimEvidence.id).where(ClaimEvidence.claim_id == 3)) is None
        assert len(session.scalars(select(Claim)).all()) == 2
    for statement in ("UPDATE claims SET text = 'muokattu'", "DELETE FROM claim_evidence"):
        with pytest.raises(DatabaseError, match="append-only"):
            with sample_store.engine.begin() as conn:
                conn.execute(text(statement))


def _pdf(**encryption: str) -> bytes:
    pdf = pikepdf.new()
    pdf.add_blank_page()
    buffer = io.BytesIO()
    if encryption:
        pdf.save(buffer, encryption=pikepdf.Encryption(**encryption))
    else:
        pdf.save(buffer)
    return buffer.getvalue()


def test_case_attach_encrypted_pdfs(store: Store, cli: Cli, tmp_path: Path) -> None:
    cli("customer", "add", "1", "--name", "A")
    cli("case", "open", "R/1", "--customer", "1", "--authority", "AVI")
    locked = tmp_path / "salattu.pdf"
    locked.write_bytes(_pdf(owner="omistaja", user="avaa"))
    with pytest.raises(pikepdf.PasswordError):
        pikepdf.open(locked)  # really needs a password to open
    refused = cli("case", "attach", "R/1", str(locked), "--title", "x", code=1)
    assert refused.stderr == (
        "evidence: salattu.pdf is encrypted with a password: attach a copy without the password\n"
    )
    # Only an owner password (restrictions, no password to open): readable, so accepted as is.
    restricted = tmp_path / "rajoitettu.pdf"
    data = _pdf(owner="omistaja", user="")
    restricted.write_bytes(data)
    with pikepdf.open(restricted) as check:
        assert check.is_encrypted
    cli("case", "attach", "R/1", str(restricted), "--title", "Vastine")
    with store.session() as session:
        [doc] = session.scalars(select(CaseDocument)).all()
        assert doc.sha256 == hashlib.sha256(data).hexdigest()
        assert read_blob(session, doc.sha256) == data


def test_export_uses_case_period_and_is_recorded(
    sample_store: Store, cli: Cli, tmp_path: Path
) -> None:
    _open(cli, "--period", "2026-03-11..2026-03-12")
    with sample_store.session() as session:
        head_before = chain_head(session)
    out = tmp_path / "d.pdf"
    result = cli(
        "export", "--case", CASE, "-o", str(out), "--generated-at", "2026-03-21T09:00+02:00",
        "--by", "Laura Lakimies",
    )  # fmt: skip
    assert ", 0 items," in result.stdout  # the case's period holds none of Aino's contacts
    assert "11.3.2026 – 12.3.2026" in " ".join(pdf_text(out).split())
    whole = tmp_path / "koko.pdf"
    result = cli("export", AINO, "--case", CASE, "--from", "2026-03-10", "-o", str(whole))
    assert ", 12 items," in result.stdout

    rows = json.loads(cli("exports", "list", "--json").stdout)
    assert [r["id"] for r in rows] == [1, 2]
    first, second = rows
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    assert first["sha256"] == digest and first["size"] == out.stat().st_size
    assert first["exported_by"] == "Laura Lakimies"
    assert first["customer"] == AINO and first["case"] == CASE and first["format"] == "pdf"
    assert first["output"] == str(out.resolve())
    assert first["arguments"] == {
        "customer": None,
        "case": CASE,
        "from": None,
        "to": None,
        "generated_at": "2026-03-21T09:00+02:00",
        "lang": None,
        "jobs": None,
        "no_cache": False,
        "format": "pdf",
        "force": False,
        "output": str(out),
    }
    # The export logs itself (an audit entry) before it is recorded here.
    assert first["chain_seq"] == head_before.seq + 1
    assert second["exported_by"]  # EVIDENCE_USER, else login@host
    assert second["arguments"]["from"] == "2026-03-10"
    assert second["sha256"] == hashlib.sha256(whole.read_bytes()).hexdigest()
    listed = cli("exports", "list").stdout.splitlines()
    assert listed[0].split("\t")[2:] == [
        "Laura Lakimies", CASE, "pdf", f"{out.stat().st_size} bytes", digest, str(out.resolve())
    ]  # fmt: skip

    # Each export is in the audit log and its record is chained: two entries each.
    with sample_store.session() as session:
        assert chain_head(session).seq == head_before.seq + 4
        assert len(session.scalars(select(ExportRecord)).all()) == 2
    with pytest.raises(DatabaseError, match="append-only"):
        with sample_store.engine.begin() as conn:
            conn.execute(text("UPDATE exports SET exported_by = 'joku muu'"))
