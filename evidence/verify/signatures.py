"""Checking the PAdES signatures in a dossier (pyHanko): integrity, and trust against the
certificates given (signing is :mod:`evidence.proofs.signing`)."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class SignatureCheck:
    field_name: str
    signer: str
    intact: bool
    valid: bool
    trusted: bool | None  # None: no trust anchors given
    whole_file: bool
    signed_at: str | None
    timestamp: str | None  # the TSA's time, when the signature carries a timestamp
    timestamp_ok: bool | None
    problems: list[str] = field(default_factory=list)


def _load_certs(paths: list[Path]) -> list[Any]:
    from asn1crypto import pem, x509

    certs = []
    for path in paths:
        data = path.read_bytes()
        if pem.detect(data):
            for _kind, _headers, der in pem.unarmor(data, multiple=True):
                certs.append(x509.Certificate.load(der))
        else:
            certs.append(x509.Certificate.load(data))
    return certs


def check_signatures(pdf: bytes, trusted_certificates: list[Path]) -> list[SignatureCheck]:
    """Validate every signature in ``pdf`` (integrity; trust only against the given CAs)."""
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko.sign.validation.status import SignatureCoverageLevel
    from pyhanko_certvalidator import ValidationContext

    reader = PdfFileReader(io.BytesIO(pdf), strict=False)
    anchors = _load_certs(trusted_certificates)
    context = ValidationContext(trust_roots=anchors, allow_fetching=False)
    results = []
    for sig in reader.embedded_signatures:
        try:
            status = validate_pdf_signature(
                sig, signer_validation_context=context, ts_validation_context=context
            )
        except Exception as exc:  # a damaged signature dictionary or CMS blob
            results.append(
                SignatureCheck(
                    field_name=sig.field_name,
                    signer="?",
                    intact=False,
                    valid=False,
                    trusted=None,
                    whole_file=False,
                    signed_at=None,
                    timestamp=None,
                    timestamp_ok=None,
                    problems=[f"cannot be validated: {type(exc).__name__}: {exc}"],
                )
            )
            continue
        ts = status.timestamp_validity
        check = SignatureCheck(
            field_name=sig.field_name,
            signer=status.signing_cert.subject.human_friendly,
            intact=bool(status.intact),
            valid=bool(status.valid),
            trusted=bool(status.trusted) if anchors else None,
            whole_file=status.coverage == SignatureCoverageLevel.ENTIRE_FILE,
            signed_at=status.signer_reported_dt.isoformat() if status.signer_reported_dt else None,
            timestamp=ts.timestamp.isoformat() if ts is not None else None,
            timestamp_ok=(bool(ts.intact and ts.valid) if ts is not None else None),
        )
        if not check.intact:
            check.problems.append("the signed bytes were changed after signing")
        elif not check.valid:
            check.problems.append("the signature value does not verify")
        if check.intact and not check.whole_file:
            check.problems.append(
                "the file was changed after it was signed (content added after the signature)"
            )
        if check.trusted is False and check.intact and check.valid:
            check.problems.append("the signer's certificate does not chain to a trusted CA")
        if ts is not None and not check.timestamp_ok:
            check.problems.append("its timestamp does not verify")
        results.append(check)
    return results
