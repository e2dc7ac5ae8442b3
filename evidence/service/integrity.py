"""Integrity: verify the store or a dossier (each check kept in the audit log), back the
store up, list the audit log."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from evidence.errors import EvidenceError, StoreNotInitialised, StoreOutdated
from evidence.service.result import Result, opened
from evidence.store.backup import backup_store as backup
from evidence.store.db import database_failure

if TYPE_CHECKING:
    from pathlib import Path

    from evidence.config import Config
    from evidence.store.db import Store
    from evidence.store.models import AuditEvent
    from evidence.verify.report import Report

__all__ = [
    "AuditRow",
    "DossierChecked",
    "backup",
    "list_audit",
    "verify_dossier",
    "verify_store",
    "verify_upload",
]


def verify_store(config: Config) -> Report:
    """Every check of the store, blobs' bytes included; the verification is logged."""
    from evidence.verify.audit import record_verification
    from evidence.verify.store import verify_store as verify

    with opened(config) as store:
        report = verify(store)
        record_verification(store, report)
    return report


@dataclass(frozen=True)
class DossierChecked:
    """A dossier's report, and why its check is not in the audit log when it could not be
    logged (``None`` when it was, or when there is no store to log it in)."""

    report: Report
    not_logged: str | None = None


def verify_dossier(
    dossier: Path,
    *,
    trust: Sequence[Path] = (),
    previous: Sequence[Path] = (),
    key_ids: Sequence[str] = (),
    config: Callable[[], Config],
) -> DossierChecked:
    """Check a dossier on its own (no store needed). When a store is at hand (``config``
    reads its settings) the check is logged in it; the report stands whatever happens there."""
    from evidence.verify.dossier import verify_dossier as verify

    report = verify(
        dossier, trusted_certificates=list(trust), previous=list(previous), key_ids=key_ids
    )
    return DossierChecked(report, _record_if_store(report, config))


def _record_if_store(report: Report, config: Callable[[], Config]) -> str | None:
    from evidence.verify.audit import record_verification

    try:
        with opened(config()) as store:
            record_verification(store, report)
    except (StoreNotInitialised, StoreOutdated):
        return None
    except Exception as exc:  # the dossier's report stands on its own; only the log failed
        why = database_failure(exc) if not isinstance(exc, EvidenceError) else exc
        return str(why or type(exc).__name__)
    return None


def verify_upload(source: Config | Store, data: bytes, name: str, *, by: str) -> Report:
    """Check a dossier uploaded to the desk (its bytes; ``name`` is only reported), as
    ``evidence verify FILE`` does; the check is logged naming ``by``."""
    from evidence.verify.audit import verify_uploaded_dossier

    with opened(source) as store:
        return verify_uploaded_dossier(store, data, name, by=by)


@dataclass(frozen=True)
class AuditRow(Result):
    """An event of the audit log (an export, a verification, a correction...) with the leaf
    index of its own ledger entry."""

    id: int
    action: str
    actor: str
    at: dt.datetime
    subject: str
    output_sha256: str | None
    details: dict[str, Any] | None
    leaf_index: int | None

    @classmethod
    def of(cls, event: AuditEvent, leaf_index: int | None) -> AuditRow:
        return cls(
            id=event.id,
            action=event.action,
            actor=event.actor,
            at=event.at,
            subject=event.subject,
            output_sha256=event.output_sha256,
            details=json.loads(event.details) if event.details else None,
            leaf_index=leaf_index,
        )


def list_audit(source: Config | Store, *, about: Sequence[str] = ()) -> tuple[AuditRow, ...]:
    """The audit log, oldest first; ``about``: only the events on these subjects (``case
    X``, ``customer 100234``), a subject naming more (``customer 100234, case X``) included."""
    from evidence.store.audit import list_events

    with opened(source) as store, store.session() as session:
        return tuple(
            AuditRow.of(e, leaf)
            for e, leaf in list_events(session)
            if not about or any(_names(e.subject, s) for s in about)
        )


def _names(subject: str, wanted: str) -> bool:
    return subject == wanted or subject.startswith((wanted + " ", wanted + ","))
