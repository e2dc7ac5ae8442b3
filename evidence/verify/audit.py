"""Keep each verification in the audit log: who checked what, when, and the outcome."""

from __future__ import annotations

import hashlib
import json

from evidence.errors import EvidenceError, IntegrityFailure, InvalidInput
from evidence.store.audit import log_event, record
from evidence.store.db import Store
from evidence.verify.report import Report


def report_sha256(report: Report) -> str:
    """SHA-256 of the report as `--json` prints it (sorted keys): the verification's output."""
    text = json.dumps(report.as_dict(), sort_keys=True, ensure_ascii=False, indent=2)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def record_verification(store: Store, report: Report, *, by: str | None = None) -> None:
    """Log the verification (``by``: who, else :func:`evidence.store.checkpoints.actor`);
    a store too damaged to log in gets a note in the report."""
    action = "verify-store" if report.what == "store" else "verify-dossier"
    details: dict[str, object] = {
        "intact": report.intact,
        "failures": len(report.failures),
        **{k: report.facts[k] for k in ("tree_size", "root", "pdf_sha256") if k in report.facts},
    }
    subject = report.target
    try:
        try:
            log_event(
                store,
                action=action,
                subject=subject,
                output_sha256=report_sha256(report),
                details=details,
                actor=by,
            )
        except IntegrityFailure:
            # The tree cannot be signed as it is; log the event without a checkpoint.
            with store.writing() as session:
                record(
                    session,
                    action=action,
                    subject=subject,
                    output_sha256=report_sha256(report),
                    details=details,
                    actor=by,
                )
    except (EvidenceError, OSError) as exc:
        report.notes.append(f"this verification could not be kept in the audit log: {exc}")
    except Exception as exc:  # a database refusing writes must not hide the report
        report.notes.append(
            f"this verification could not be kept in the audit log: {type(exc).__name__}"
        )


def verify_uploaded_dossier(store: Store, data: bytes, name: str, *, by: str) -> Report:
    """Check a dossier given as bytes (an upload), as ``evidence verify FILE`` does, and log
    the verification naming ``by``. ``name`` (the uploader's file name) is only reported."""
    import tempfile
    from pathlib import Path

    from evidence.verify.dossier import verify_dossier

    shown = name.replace("\\", "/").rsplit("/", 1)[-1].strip()[:200] or "dossier.pdf"
    # A PDF may have up to 1024 bytes before its header (ISO 32000-2, 7.5.2).
    if b"%PDF-" not in data[:1024]:
        raise InvalidInput(
            f"{shown} is not a PDF file (it does not start with %PDF-): upload the dossier's PDF"
        )
    with tempfile.TemporaryDirectory(prefix="evidence-verify-") as folder:
        path = Path(folder) / "dossier.pdf"
        path.write_bytes(data)
        report = verify_dossier(path)
    report.target = f"upload {shown}"
    record_verification(store, report, by=by)
    return report
