"""The dossier proves itself: manifest, inclusion proofs, signed checkpoint, VERIFYING.md.

Each test exports the sample dispute's dossier and checks it the way a third
party would: with `evidence verify dossier.pdf` (no store), and with the
standard tools VERIFYING.md names (qpdf, pdfdetach, sha256sum, openssl,
python3). Tampered copies must fail, each naming what was changed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pikepdf
import pytest

from evidence.ingest.asterisk import import_calls
from evidence.ingest.mail import import_mail
from evidence.ingest.recordings import import_recordings
from evidence.records.customers import add_customer
from evidence.records.incidents import add_incident
from evidence.render.dossier import export_dossier
from evidence.store import merkle
from evidence.store.audit import list_events
from evidence.store.db import Store
from evidence.verify.dossier import verify_dossier
from tests.conftest import Cli, Env, pdf_text
from tests.samples import SAMPLE_CASE, open_sample_case

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample"
UTC = dt.UTC
CASE = SAMPLE_CASE


def fill_sample(store: Store) -> None:
    add_customer(
        store, "200517", "Aino Laaksonen", ["aino.laaksonen@example.com"], ["050 765 4321"]
    )
    import_mail(store, sorted((SAMPLE / "mail").glob("*.eml")))
    import_calls(store, SAMPLE / "pbx/Master.csv", "asterisk-cdr")
    import_calls(store, SAMPLE / "pbx/queue_log", "asterisk-queue-log")
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
    open_sample_case(store)


def export(store: Store, out: Path) -> None:
    export_dossier(store, customer_ref=None, case_ref=CASE, output=out)


@pytest.fixture
def dossier(company_store: Store, tmp_path: Path) -> Path:
    fill_sample(company_store)
    out = tmp_path / "dossier.pdf"
    export(company_store, out)
    return out


def _attachments(path: Path) -> dict[str, bytes]:
    with pikepdf.open(path) as pdf:
        return {name: spec.get_file().read_bytes() for name, spec in pdf.attachments.items()}


def _manifest(path: Path) -> dict:
    return json.loads(_attachments(path)["manifest.json"])


def _rewrite(src: Path, dst: Path, **changes: bytes | None) -> Path:
    """A copy of the PDF with embedded files replaced (bytes), removed (None) or added."""
    with pikepdf.open(src) as pdf:
        for name, data in changes.items():
            if name in pdf.attachments:
                del pdf.attachments[name]
            if data is not None:
                pdf.attachments[name] = pikepdf.AttachedFileSpec(pdf, data, filename=name)
        pdf.save(dst)
    return dst


def _failures(path: Path) -> dict[str, str]:
    report = verify_dossier(path)
    assert not report.intact
    return {f.subject: f.problem for f in report.failures}


def test_dossier_carries_manifest_and_proves_itself(
    env: Env, company_store: Store, dossier: Path, cli: Cli
) -> None:
    manifest = _manifest(dossier)
    checkpoint = manifest["checkpoint"]
    files = _attachments(dossier)
    # Every embedded original is listed with its digest, under its exhibit.
    listed = {f["name"]: f["sha256"] for e in manifest["exhibits"] for f in e["files"]}
    originals = {
        n: d for n, d in files.items() if not n.startswith(("manifest", "checkpoint", "pages"))
    }
    assert listed == {n: hashlib.sha256(d).hexdigest() for n, d in originals.items()}
    assert {"checkpoint.txt", "checkpoint.sig", "checkpoint-key.pub.pem"} <= set(files)
    # Each record's proof leads to the signed root; each leaf is the ledger payload.
    root = bytes.fromhex(checkpoint["root"])
    kinds = {e["kind"] for e in manifest["exhibits"]}
    assert {"email", "call", "incident", "agent_pause", "case_document"} <= kinds
    for exhibit in manifest["exhibits"]:
        assert exhibit["records"], exhibit["exhibit"]
        for record in exhibit["records"]:
            leaf_hash = merkle.leaf_hash(record["leaf"].encode())
            proof = [bytes.fromhex(h) for h in record["inclusion_proof"]]
            merkle.verify_inclusion(
                record["leaf_index"], checkpoint["tree_size"], leaf_hash, proof, root
            )
    # The cover prints the root; the checkpoint on it is the export's.
    cover = "".join(pdf_text(dossier).split("\f")[0].split())
    assert checkpoint["root"] in cover and checkpoint["key_id"] in cover
    # It is the first signed checkpoint that covers every record shown (here the one
    # signed when the case's letter was attached, the newest record), so exporting
    # the same evidence again proves against the same checkpoint.
    newest = max(r["leaf_index"] for e in manifest["exhibits"] for r in e["records"])
    assert checkpoint["tree_size"] == newest + 1
    # The store-free check passes and says so.
    result = cli("verify", str(dossier))
    lines = result.stdout.splitlines()
    assert lines[-1] == "INTACT: every check passed"
    assert "  ok    the cover prints the checkpoint's root" in lines
    proved = r"  ok    E-\d{3}: 1 file matches the manifest; leaf #\d+ proved in the checkpoint"
    assert any(re.fullmatch(proved, line) for line in lines), lines
    # The export and the verification are in the audit log, with their output hashes.
    with company_store.session() as session:
        events = [e for e, _leaf in list_events(session)]
    assert [e.action for e in events] == ["export", "verify-dossier"]
    assert events[0].output_sha256 == hashlib.sha256(dossier.read_bytes()).hexdigest()
    details = json.loads(events[0].details or "{}")
    assert details["checkpoint_id"] == checkpoint["id"] and details["root"] == checkpoint["root"]
    assert json.loads(events[1].details or "{}")["intact"] is True
    # ... and the store, audit events included, verifies.
    cli("verify")


@pytest.mark.parametrize("env", ["sqlite"], indirect=True)
def test_verify_dossier_needs_no_store(env: Env, dossier: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "regulator"
    elsewhere.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "evidence", "verify", str(dossier), "--json"],
        env={"EVIDENCE_HOME": str(elsewhere), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["intact"] is True
    assert list(elsewhere.iterdir()) == []  # nothing was created: no store, no key


@pytest.mark.parametrize("env", ["sqlite"], indirect=True)
def test_tampered_dossiers_fail_and_say_where(
    env: Env, dossier: Path, tmp_path: Path, cli: Cli
) -> None:
    manifest = _manifest(dossier)
    files = _attachments(dossier)
    eml = next(n for n in files if n.endswith(".eml"))
    changed = bytearray(files[eml])
    changed[-3] ^= 0x20

    # 1. an original changed
    one = _rewrite(dossier, tmp_path / "1.pdf", **{eml: bytes(changed)})
    assert "the file was changed" in _failures(one)[eml]
    result = cli("verify", str(one), code=5)
    assert f"  FAIL  {eml}: its SHA-256 is {hashlib.sha256(changed).hexdigest()}" in result.stdout

    # 2. the original and its digest in the manifest changed together: the leaf no longer cites it
    forged = json.loads(json.dumps(manifest))
    for exhibit in forged["exhibits"]:
        for f in exhibit["files"]:
            if f["name"] == eml:
                f["sha256"] = hashlib.sha256(changed).hexdigest()
    two = _rewrite(
        dossier,
        tmp_path / "2.pdf",
        **{eml: bytes(changed), "manifest.json": json.dumps(forged).encode()},
    )
    assert "is not cited by any ledger entry" in _failures(two)[eml]

    # 3. ... and the leaf rewritten to cite it: the inclusion proof fails
    for exhibit in forged["exhibits"]:
        if any(f["name"] == eml for f in exhibit["files"]):
            record = exhibit["records"][0]
            leaf = json.loads(record["leaf"])
            leaf["raw_sha256"] = hashlib.sha256(changed).hexdigest()
            record["leaf"] = json.dumps(leaf, sort_keys=True, separators=(",", ":"))
            record.pop("leaf_hash")
            number, ref = exhibit["exhibit"], record["record"]
    three = _rewrite(
        dossier,
        tmp_path / "3.pdf",
        **{eml: bytes(changed), "manifest.json": json.dumps(forged).encode()},
    )
    failures = _failures(three)
    assert "is not proved in the checkpoint" in failures[f"{number} {ref}"]
    assert eml not in failures

    # 4. the checkpoint's root changed to match: its signature fails
    old_root = forged["checkpoint"]["root"]
    forged["checkpoint"]["root"] = "00" * 32
    forged["checkpoint"]["text"] = forged["checkpoint"]["text"].replace(old_root, "00" * 32)
    four = _rewrite(dossier, tmp_path / "4.pdf", **{"manifest.json": json.dumps(forged).encode()})
    cp = f"checkpoint #{manifest['checkpoint']['id']}"
    assert "signature does not match" in _failures(four)[cp]

    # 5. an original removed, and 6. a file slipped in
    five = _rewrite(dossier, tmp_path / "5.pdf", **{eml: None})
    assert "not embedded: it was removed" in _failures(five)[eml]
    six = _rewrite(dossier, tmp_path / "6.pdf", **{"lisays.eml": b"From: x\n\nlisatty\n"})
    assert "not in its manifest" in _failures(six)["lisays.eml"]

    # 7. no manifest at all
    seven = _rewrite(dossier, tmp_path / "7.pdf", **{"manifest.json": None})
    assert "not embedded" in _failures(seven)["manifest.json"]


def _python_from_verifying_md() -> str:
    text = (ROOT / "VERIFYING.md").read_text(encoding="utf-8")
    step5 = text[text.index("## 5. Every exhibit is in the signed log") :]
    match = re.search(r"```python\n(.*?)```", step5, flags=re.S)
    assert match is not None
    return match.group(1)


@pytest.mark.parametrize("env", ["sqlite"], indirect=True)
def test_verifying_md_works_with_standard_tools(env: Env, dossier: Path, tmp_path: Path) -> None:
    """Follow VERIFYING.md literally, with no evidence code at all."""

    def sh(
        *args: str, cwd: Path | None = None, ok: bool = True
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(args, capture_output=True, text=True, cwd=cwd, check=False)
        assert (proc.returncode == 0) == ok, (args, proc.stdout, proc.stderr)
        return proc

    assert "No syntax or stream encoding errors found" in sh("qpdf", "--check", str(dossier)).stdout
    files = tmp_path / "files"
    files.mkdir()
    sh("pdfdetach", "-saveall", "-o", str(files), str(dossier))
    sums = dict(
        reversed(line.split("  ", 1))
        for line in sh("sh", "-c", "sha256sum *", cwd=files).stdout.splitlines()
    )
    manifest = json.loads((files / "manifest.json").read_text())
    for exhibit in manifest["exhibits"]:
        for f in exhibit["files"]:
            assert sums[f["name"]] == f["sha256"]
    verified = sh(
        "openssl",
        "pkeyutl",
        "-verify",
        "-pubin",
        "-inkey",
        "checkpoint-key.pub.pem",
        "-rawin",
        "-in",
        "checkpoint.txt",
        "-sigfile",
        "checkpoint.sig",
        cwd=files,
    )
    assert "Signature Verified Successfully" in verified.stdout
    key_id = sh(
        "sh",
        "-c",
        "openssl pkey -pubin -in checkpoint-key.pub.pem -outform DER | tail -c 32 | sha256sum",
        cwd=files,
    ).stdout.split()[0]
    assert key_id == manifest["checkpoint"]["key_id"]
    assert key_id in "".join(pdf_text(dossier).split())
    program = _python_from_verifying_md()
    run = sh(sys.executable, "-I", "-c", program, cwd=files)
    assert run.stdout.count("ok  ") == sum(len(e["records"]) for e in manifest["exhibits"])
    # A changed checkpoint text fails openssl, and a changed leaf fails the program.
    text = (files / "checkpoint.txt").read_text()
    tampered = re.sub(r"reason: .*", "reason: forged", text)
    assert tampered != text
    (files / "checkpoint.txt").write_text(tampered)
    sh(
        "openssl",
        "pkeyutl",
        "-verify",
        "-pubin",
        "-inkey",
        "checkpoint-key.pub.pem",
        "-rawin",
        "-in",
        "checkpoint.txt",
        "-sigfile",
        "checkpoint.sig",
        cwd=files,
        ok=False,
    )
    (files / "checkpoint.txt").write_text(text)
    record = manifest["exhibits"][0]["records"][0]
    record["leaf"] = record["leaf"].replace('"_table"', '"_table" ', 1)
    (files / "manifest.json").write_text(json.dumps(manifest))
    bad = sh(sys.executable, "-I", "-c", program, cwd=files, ok=False)
    assert bad.stdout.startswith("FAIL E-001")


def test_verifying_section_is_in_the_dossier(dossier: Path) -> None:
    text = " ".join(pdf_text(dossier).split())
    assert "Näin tarkistat tämän asiakirjan" in text
    assert "openssl pkeyutl -verify -pubin -inkey checkpoint-key.pub.pem -rawin" in text
    assert "pdfdetach -saveall -o tiedostot dossier.pdf" in text


def _log_another_incident(store: Store) -> None:
    add_incident(
        store,
        title="Toinen häiriö",
        start=dt.datetime(2026, 3, 10, 12, 0, tzinfo=UTC),  # a day of the customer's contacts
        end=None,
        channels=[],
        note=None,
        logged_by="Mikko",
    )


def test_later_dossier_proves_the_earlier_log_is_its_prefix(
    env: Env, company_store: Store, dossier: Path, tmp_path: Path, cli: Cli
) -> None:
    _log_another_incident(company_store)
    later = tmp_path / "later.pdf"
    export(company_store, later)
    first, second = _manifest(dossier)["checkpoint"], _manifest(later)
    assert second["checkpoint"]["tree_size"] > first["tree_size"]
    [entry] = second["consistency"]
    assert (entry["checkpoint_id"], entry["root"]) == (first["id"], first["root"])
    result = cli("verify", str(later), "--previous", str(dossier))
    assert (
        f"  ok    the log of dossier.pdf ({first['tree_size']} entries) is a prefix of this one's"
        in result.stdout
    )
    # A later dossier that does not carry the proof cannot vouch for the earlier one.
    second["consistency"] = []
    stripped = _rewrite(
        later, tmp_path / "stripped.pdf", **{"manifest.json": json.dumps(second).encode()}
    )
    report = verify_dossier(stripped, previous=[dossier])
    # (pages.json names the manifest it was signed with: a replaced one is found too)
    [signed_for, failure] = report.failures
    assert (signed_for.subject, signed_for.problem) == (
        "pages.json",
        "was signed for another manifest.json than the embedded one",
    )
    assert failure.subject == "earlier dossier dossier.pdf"
    assert "carries no proof that its log extends" in failure.problem


def _rewrite_first_ledger_entry(env: Env, store: Store) -> None:
    from sqlalchemy import text

    from evidence.store.guards import trigger_names

    with store.engine.begin() as conn:
        if env.backend == "sqlite":
            for name in trigger_names("sqlite", "ledger"):
                conn.execute(text(f"DROP TRIGGER {name}"))
        else:
            conn.execute(text("ALTER TABLE ledger DISABLE TRIGGER ALL"))
        conn.execute(text("UPDATE ledger SET payload = payload || ' ' WHERE seq = 1"))


def test_export_refuses_when_an_earlier_dossiers_log_was_rewritten(
    env: Env,
    company_store: Store,
    dossier: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from evidence.errors import IntegrityFailure
    from evidence.render import dossier as dossier_module

    # Something new, so that the next dossier is proved against a later checkpoint, whose
    # log records the export of the earlier one.
    _log_another_incident(company_store)
    _rewrite_first_ledger_entry(env, company_store)
    with pytest.raises(IntegrityFailure, match="the store does not verify"):
        export(company_store, tmp_path / "again.pdf")
    # Behind that first refusal, the proofs' own check refuses too.
    monkeypatch.setattr(dossier_module, "refuse_an_altered_store", lambda store: None)
    with pytest.raises(IntegrityFailure, match="printed on an earlier dossier, no longer matches"):
        export(company_store, tmp_path / "again.pdf")
    assert not (tmp_path / "again.pdf").exists()


def test_export_refuses_when_its_checkpoints_log_was_rewritten(
    env: Env,
    company_store: Store,
    dossier: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same evidence again: proved against the earlier dossier's checkpoint, which no
    longer matches the log."""
    from evidence.errors import IntegrityFailure
    from evidence.render import dossier as dossier_module

    _rewrite_first_ledger_entry(env, company_store)
    with pytest.raises(IntegrityFailure, match="the store does not verify"):
        export(company_store, tmp_path / "again.pdf")
    # Behind that first refusal, the proofs' own check refuses too.
    monkeypatch.setattr(dossier_module, "refuse_an_altered_store", lambda store: None)
    with pytest.raises(IntegrityFailure, match="the ledger was altered after it was signed"):
        export(company_store, tmp_path / "again.pdf")
    assert not (tmp_path / "again.pdf").exists()


@pytest.mark.parametrize("lang", ["fi", "sv", "en"])
def test_verification_partials_render_in_each_language(lang: str) -> None:
    """issue 7 adds languages: each partial renders with the view the renderer passes."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(loader=FileSystemLoader(str(ROOT / "templates")), undefined=StrictUndefined)
    view = {
        "root": "ab" * 32,
        "tree_size": 57,
        "checkpoint_id": 9,
        "time": "26.11.2026 09.32.53 (UTC+2)",
        "key_id": "cd" * 32,
        "tsa_url": "http://tsa.example/tsr",
        "records": 21,
        "files": {
            "manifest": "manifest.json",
            "text": "checkpoint.txt",
            "signature": "checkpoint.sig",
            "key": "checkpoint-key.pub.pem",
            "timestamp": "checkpoint.tst",
        },
    }
    html = env.get_template(f"partials/verifying.{lang}.html.j2").render(
        verification=view, lang=lang
    )
    assert "checkpoint.tst" in html and "manifest.json" in html


def test_manifest_is_written_one_exhibit_at_a_time_as_json_dumps_would() -> None:
    """manifest.json of a long history is written piecewise (its whole structure would be
    hundreds of MB of objects); the bytes are those of one ``json.dumps``."""
    import json

    from evidence.proofs.manifest import manifest_json

    top = {"format": "f", "checkpoint": {"text": "a\nb"}, "consistency": [], "zz": "ä"}
    exhibits = [
        {
            "exhibit": f"E-{n:03d}",
            "files": [{"name": 'x"y\\z', "sha256": "ab" * 32}],
            "records": [{"leaf": '{"k":"v\\n"}', "inclusion_proof": ["00" * 32] * n}],
        }
        for n in range(4)
    ]
    for entries in (exhibits, []):
        whole = json.dumps(
            top | {"exhibits": entries}, ensure_ascii=False, indent=1, sort_keys=True
        )
        assert manifest_json(top, iter(entries)) == (whole + "\n").encode("utf-8")
