"""PAdES signatures (pyHanko) and RFC 3161 timestamps, against our own CA and a local TSA.

The TSA is `openssl ts -reply` behind an HTTP handler on 127.0.0.1; the tokens
are checked with `openssl ts -verify`, the signatures with pyHanko's validator.
"""

from __future__ import annotations

import base64
import io
import logging
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pikepdf
import pytest
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext
from sqlalchemy import select

from evidence.records.incidents import add_incident
from evidence.store.db import Store
from evidence.store.models import Checkpoint
from evidence.verify.dossier import verify_dossier
from evidence.verify.signatures import _load_certs
from tests.conftest import COMPANY_TOML, Cli, Env, run_evidence
from tests.pki import LocalTsa, issue, local_tsa, make_ca, write_pkcs12
from tests.test_verify_dossier import export, fill_sample

PASSPHRASE = "salasana-123"
pytestmark = pytest.mark.parametrize("env", ["sqlite"], indirect=True)


@pytest.fixture
def ca(tmp_path: Path):  # type: ignore[no-untyped-def]
    directory = tmp_path / "pki"
    directory.mkdir()
    return make_ca(directory)


@pytest.fixture
def tsa(tmp_path: Path) -> Iterator[LocalTsa]:
    with local_tsa(tmp_path / "tsa") as running:
        yield running


def _open(env: Env, extra_toml: str) -> Store:
    from evidence.config import load_config
    from evidence.store.db import open_store

    env.write_config(COMPANY_TOML + extra_toml)
    return open_store(load_config())


def _validate(pdf: bytes, *anchors: Path):  # type: ignore[no-untyped-def]
    reader = PdfFileReader(io.BytesIO(pdf))
    [sig] = reader.embedded_signatures
    context = ValidationContext(trust_roots=_load_certs(list(anchors)), allow_fetching=False)
    return validate_pdf_signature(
        sig, signer_validation_context=context, ts_validation_context=context
    )


def _store_key(env: Env) -> str:
    from evidence.store.checkpoints import load_signing_key

    return load_signing_key(env.home / "checkpoint-key.pem").key_id


def _flip_version(pdf: bytes) -> bytes:
    """Change one byte inside the signed range, leaving a readable PDF."""
    assert pdf.startswith(b"%PDF-1.")
    return pdf[:7] + (b"3" if pdf[7:8] != b"3" else b"4") + pdf[8:]


def _append_revision(pdf: bytes) -> bytes:
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    writer.root[generic.NameObject("/EvidenceNote")] = generic.TextStringObject("lisätty")
    writer.update_root()
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_pades_signature_from_pkcs12(
    env: Env, ca, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Cli
) -> None:  # type: ignore[no-untyped-def]
    signer = issue(ca.cert_pem.parent, ca, "signer", "Aurora Energia Oy, todisteet")
    p12 = write_pkcs12(tmp_path / "pki/signer.p12", signer, ca, PASSPHRASE.encode())
    monkeypatch.setenv("EVIDENCE_SIGNING_PASSPHRASE", PASSPHRASE)
    store = _open(env, f'\n[signing]\npkcs12 = "{p12}"\n')
    try:
        fill_sample(store)
        out = tmp_path / "signed.pdf"
        export(store, out)
    finally:
        store.close()
    signed = out.read_bytes()
    assert out.stat().st_mode & 0o777 == 0o600  # owner-only, as the unsigned dossier
    status = _validate(signed, ca.cert_pem)
    assert status.bottom_line and status.intact and status.valid and status.trusted
    assert status.coverage == SignatureCoverageLevel.ENTIRE_FILE
    assert "Aurora Energia Oy, todisteet" in status.signing_cert.subject.human_friendly
    # Our check: intact, whole file, chained to the CA we trust; the proofs still hold.
    result = cli("verify", str(out), "--trust", str(ca.cert_pem))
    assert "covers the whole file, certificate chains to a trusted CA" in result.stdout
    assert result.stdout.splitlines()[-1] == "INTACT: every check passed"
    # The pages were signed with the store's key before the PAdES signature was added, and
    # still match: the signature's invisible field shows nothing. In a fresh process, as a
    # user runs it, with the company's key pinned: no warning (pyHanko's DSA one) on stderr.
    pinned = run_evidence(
        env, "verify", str(out), "--trust", str(ca.cert_pem), "--key-id", _store_key(env)
    )
    assert pinned.stderr == ""
    assert re.search(r"  ok    all \d+ pages show what key [0-9a-f]{64} signed", pinned.stdout)
    assert pinned.stdout.splitlines()[-1] == "INTACT: every check passed"
    # poppler's pdfsig, as VERIFYING.md has a third party run it, agrees.
    shown = subprocess.run(["pdfsig", str(out)], capture_output=True, text=True).stdout
    assert "Total document signed" in shown and "Signature is Valid." in shown
    # Without a trust anchor the signature is intact but its certificate is not vouched for.
    untrusted = verify_dossier(out)
    assert untrusted.intact
    assert any("certificate not checked: give --trust CA.pem" in c for c in untrusted.checks)

    # One byte changed inside the signed range: the signature breaks, pyHanko and ours.
    flipped = tmp_path / "flipped.pdf"
    flipped.write_bytes(_flip_version(signed))
    assert not _validate(flipped.read_bytes(), ca.cert_pem).intact
    failures = {f.subject: f.problem for f in verify_dossier(flipped, [ca.cert_pem]).failures}
    assert failures == {
        "PDF signature EvidenceDossier": "the signed bytes were changed after signing"
    }
    cli("verify", str(flipped), code=5)
    shown = subprocess.run(["pdfsig", str(flipped)], capture_output=True, text=True).stdout
    assert "Digest Mismatch" in shown

    # A revision appended after signing: the signature no longer covers the file.
    appended = tmp_path / "appended.pdf"
    appended.write_bytes(_append_revision(signed))
    assert (
        _validate(appended.read_bytes(), ca.cert_pem).coverage != SignatureCoverageLevel.ENTIRE_FILE
    )
    failures = {f.subject: f.problem for f in verify_dossier(appended, [ca.cert_pem]).failures}
    assert "changed after it was signed" in failures["PDF signature EvidenceDossier"]
    shown = subprocess.run(["pdfsig", str(appended)], capture_output=True, text=True).stdout
    assert "Total document signed" not in shown

    # Checked against a CA that never certified the signer: intact, but not trusted.
    (tmp_path / "other").mkdir()
    other_ca = make_ca(tmp_path / "other", "Toinen CA")
    failures = {f.subject: f.problem for f in verify_dossier(out, [other_ca.cert_pem]).failures}
    assert failures == {
        "PDF signature EvidenceDossier": "the signer's certificate does not chain to a trusted CA"
    }


def test_pades_signature_from_pem_key_and_certificate(
    env: Env, ca, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    signer = issue(ca.cert_pem.parent, ca, "signer", "Aurora Energia Oy", passphrase=b"avain")
    monkeypatch.setenv("ALLEKIRJOITUS_SALASANA", "avain")
    store = _open(
        env,
        "\n[signing]\n"
        f'key = "{signer.key_pem}"\ncertificate = "{signer.cert_pem}"\n'
        f'chain = ["{ca.cert_pem}"]\npassphrase_env = "ALLEKIRJOITUS_SALASANA"\n',
    )
    try:
        fill_sample(store)
        out = tmp_path / "signed.pdf"
        export(store, out)
        monkeypatch.setenv("ALLEKIRJOITUS_SALASANA", "väärä")
        from evidence.errors import EvidenceError

        with pytest.raises(EvidenceError, match="wrong passphrase"):
            export(store, tmp_path / "ei.pdf")
    finally:
        store.close()
    status = _validate(out.read_bytes(), ca.cert_pem)
    assert status.bottom_line and status.coverage == SignatureCoverageLevel.ENTIRE_FILE
    assert not (tmp_path / "ei.pdf").exists()


def _openssl_ts_verify(data: Path, token: Path, ca_pem: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "openssl",
            "ts",
            "-verify",
            "-data",
            str(data),
            "-in",
            str(token),
            "-token_in",
            "-CAfile",
            str(ca_pem),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def test_checkpoints_and_signature_are_timestamped(
    env: Env, ca, tsa: LocalTsa, tmp_path: Path, cli: Cli
) -> None:  # type: ignore[no-untyped-def]
    signer = issue(ca.cert_pem.parent, ca, "signer", "Aurora Energia Oy")
    store = _open(
        env,
        f'\n[timestamping]\nurl = "{tsa.url}"\n'
        f'\n[signing]\nkey = "{signer.key_pem}"\ncertificate = "{signer.cert_pem}"\n',
    )
    try:
        fill_sample(store)
        out = tmp_path / "stamped.pdf"
        export(store, out)
        with store.session() as session:
            checkpoints = list(session.scalars(select(Checkpoint).order_by(Checkpoint.id)))
    finally:
        store.close()
    assert checkpoints and all(cp.timestamp_token for cp in checkpoints)
    assert all(cp.tsa_url == tsa.url for cp in checkpoints)
    # Every checkpoint's token verifies with openssl against the TSA's CA; other data does not.
    for cp in checkpoints:
        body, token = tmp_path / f"cp{cp.id}.txt", tmp_path / f"cp{cp.id}.tst"
        body.write_text(cp.body, encoding="utf-8")
        token.write_bytes(cp.timestamp_token or b"")
        proc = _openssl_ts_verify(body, token, tsa.ca.cert_pem)
        assert proc.returncode == 0 and "Verification: OK" in proc.stdout, proc.stderr
    body.write_text(cp.body.replace("tree size", "tree-size"), encoding="utf-8")
    assert _openssl_ts_verify(body, token, tsa.ca.cert_pem).returncode != 0
    # The dossier carries the export checkpoint's token as checkpoint.tst, as VERIFYING.md says.
    files = tmp_path / "files"
    files.mkdir()
    subprocess.run(["pdfdetach", "-saveall", "-o", str(files), str(out)], check=True)
    proc = _openssl_ts_verify(files / "checkpoint.txt", files / "checkpoint.tst", tsa.ca.cert_pem)
    assert "Verification: OK" in proc.stdout, proc.stderr
    shown = subprocess.run(
        ["openssl", "ts", "-reply", "-in", str(files / "checkpoint.tst"), "-token_in", "-text"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Time stamp:" in shown
    # The PAdES signature carries a timestamp too (PAdES B-T), valid against the TSA's CA.
    status = _validate(out.read_bytes(), ca.cert_pem, tsa.ca.cert_pem)
    assert status.bottom_line
    assert status.timestamp_validity is not None and status.timestamp_validity.valid
    assert status.timestamp_validity.trusted
    result = cli("verify", str(out), "--trust", str(ca.cert_pem), "--trust", str(tsa.ca.cert_pem))
    assert ", timestamped 20" in result.stdout
    assert f"by {tsa.url}" in result.stdout  # the checkpoint's timestamp, read from the manifest
    store_check = cli("verify")
    assert f"{len(checkpoints) + 1} timestamped" in store_check.stdout  # + the audit's checkpoint
    assert tsa.requests  # the TSA was really asked


def test_checkpoint_without_a_reachable_tsa_is_written_and_says_so(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    store = _open(env, '\n[timestamping]\nurl = "http://127.0.0.1:9/tsr"\n')
    try:
        import datetime as dt

        with caplog.at_level(logging.WARNING):
            add_incident(
                store,
                title="x",
                start=dt.datetime(2026, 3, 10, tzinfo=dt.UTC),
                end=None,
                channels=[],
                note=None,
                logged_by="k",
            )
        with store.session() as session:
            [cp] = session.scalars(select(Checkpoint))
    finally:
        store.close()
    assert cp.timestamp_token is None and cp.tsa_url is None
    assert "checkpoint written without a timestamp: no timestamp from http://127.0.0.1:9/tsr" in (
        caplog.text
    )


def test_tampered_token_is_found(env: Env, tsa: LocalTsa, tmp_path: Path) -> None:
    """A token that was swapped for another checkpoint's is named by the dossier check."""
    store = _open(env, f'\n[timestamping]\nurl = "{tsa.url}"\n')
    try:
        fill_sample(store)
        out = tmp_path / "d.pdf"
        export(store, out)
        with store.session() as session:
            first = session.scalars(select(Checkpoint).order_by(Checkpoint.id)).first()
            assert first is not None and first.timestamp_token
            other = first.timestamp_token
    finally:
        store.close()
    import json

    with pikepdf.open(out) as pdf:
        manifest = json.loads(pdf.attachments["manifest.json"].get_file().read_bytes())
        manifest["checkpoint"]["timestamp_token"] = base64.b64encode(other).decode()
        del pdf.attachments["manifest.json"]
        pdf.attachments["manifest.json"] = pikepdf.AttachedFileSpec(
            pdf, json.dumps(manifest).encode(), filename="manifest.json"
        )
        pdf.save(tmp_path / "swapped.pdf")
    failures = {f.subject: f.problem for f in verify_dossier(tmp_path / "swapped.pdf").failures}
    assert failures[f"checkpoint #{manifest['checkpoint']['id']}"] == (
        "its timestamp token is for other data than its text"
    )
