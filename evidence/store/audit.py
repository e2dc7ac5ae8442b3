"""The audit log: exports, verifications and corrections, kept as evidence themselves.

Each event is a row of ``audit_events`` appended to the ledger like any record,
so it is covered by the Merkle tree and by the next signed checkpoint: nobody
can quietly remove the trace of an export or of a failed verification.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from evidence.store import ledger
from evidence.store.checkpoints import actor as current_actor
from evidence.store.checkpoints import write_checkpoint
from evidence.store.db import Store
from evidence.store.models import AuditEvent, LedgerEntry
from evidence.timeutil import utcnow

ACTIONS = (
    "export",
    "verify-store",
    "verify-dossier",
    "correction",
    "case-close",
    # the legal desk: who signed in, saw, uploaded, claimed, queued and downloaded what
    "sign-in",
    "timeline-view",
    "case-open",
    "document-upload",
    "claim",
    "export-queued",
    "download",
    "incident",
)


def record(
    session: Session,
    *,
    action: str,
    subject: str,
    output_sha256: str | None = None,
    details: Mapping[str, Any] | None = None,
    actor: str | None = None,
    at: dt.datetime | None = None,
) -> AuditEvent:
    """Append one event to the log (the caller holds the writer lock); ``at``: when it
    happened, if before now (an event written after the fact, e.g. the desk's page views)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    event = AuditEvent(
        action=action,
        actor=current_actor(actor),
        at=at or utcnow(),
        subject=subject,
        output_sha256=output_sha256,
        details=json.dumps(dict(details), sort_keys=True, separators=(",", ":"), default=str)
        if details
        else None,
    )
    return ledger.add(session, event)


def log_event(
    store: Store,
    *,
    action: str,
    subject: str,
    output_sha256: str | None = None,
    details: Mapping[str, Any] | None = None,
    actor: str | None = None,
    checkpoint: bool = True,
) -> AuditEvent:
    """Record an event in its own transaction, followed by a checkpoint that covers it
    (``checkpoint=False``: the next checkpoint covers it, e.g. for the desk's page views)."""
    with store.writing() as session:
        event = record(
            session,
            action=action,
            subject=subject,
            output_sha256=output_sha256,
            details=details,
            actor=actor,
        )
        if checkpoint:
            write_checkpoint(session, store.config, f"audit {action}")
    return event


def list_events(session: Session) -> list[tuple[AuditEvent, int | None]]:
    """Every event, oldest first, with the leaf index of its ledger entry."""
    events = list(session.scalars(select(AuditEvent).order_by(AuditEvent.id)))
    seqs = {
        str(record_id): int(seq)
        for record_id, seq in session.execute(
            select(LedgerEntry.record_id, LedgerEntry.seq).where(
                LedgerEntry.record_type == AuditEvent.__tablename__
            )
        )
    }
    return [(e, (int(seqs[str(e.id)]) - 1) if str(e.id) in seqs else None) for e in events]

