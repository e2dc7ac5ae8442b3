"""``evidence status``: is the store current, and is it intact?

Intact is decided by the one verifier (``evidence.verify.store``), with every check of
``evidence verify`` but the one that reads every blob's bytes; the result lists what
it checked and what it left to ``evidence verify``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from evidence.errors import EvidenceError
from evidence.ingest.sync import configured_sources, run_state
from evidence.records.incidents import open_incidents
from evidence.store.checkpoints import key_path, load_signing_key
from evidence.store.db import Store
from evidence.store.ledger import chain_head
from evidence.store.models import QuarantineDismissal, QuarantineItem, SyncResult, SyncRun
from evidence.timeline.mailfacts import MailRules, describe_rules, unconfigured_note
from evidence.timeutil import iso_utc, utcnow
from evidence.verify.report import Report


def store_status(store: Store, *, now: dt.datetime | None = None) -> dict[str, Any]:
    """Everything ``evidence status`` shows, as plain data (also its ``--json``)."""
    from evidence.verify.store import verify_store

    at = now or utcnow()
    report = verify_store(store, read_blobs=False)
    with store.session() as session:
        return {
            "database": make_url(store.config.database_url).render_as_string(hide_password=True),
            "signing_key": _signing_key(store),
            "checked_at": iso_utc(at),
            "last_sync": _last_sync(session),
            "sources": _sources(session, store),
            "open_incidents": [
                {
                    "number": i.number,
                    "title": i.title,
                    "start": iso_utc(i.start),
                    "end": iso_utc(i.end),
                    "channels": i.channel_names,
                    "planned": i.plan_id is not None,
                }
                for i in open_incidents(session, at)
            ],
            "quarantine": _quarantine(session),
            "reconciliation": _reconciliation(session),
            "mail": _mail_rules(MailRules.of(store.config)),
            "chain": _chain(session, report),
        }


def _signing_key(store: Store) -> dict[str, Any]:
    """The key that signs checkpoints and dossiers' pages: its id is what the company
    publishes, so that a dossier can be tied to it (`evidence verify --key-id`)."""
    path = key_path(store.config)
    if not path.exists():
        return {"key_id": None, "path": str(path)}
    try:
        return {"key_id": load_signing_key(path).key_id, "path": str(path)}
    except (EvidenceError, OSError) as exc:  # unreadable here: status still reports the rest
        return {"key_id": None, "path": str(path), "error": str(exc)}


def _last_sync(session: Session) -> dict[str, Any] | None:
    run = session.scalar(select(SyncRun).order_by(SyncRun.id.desc()).limit(1))
    if run is None:
        return None
    return {
        "id": run.id,
        "started_at": iso_utc(run.started_at),
        "finished_at": iso_utc(run.finished_at),
        "exit_code": run.exit_code,
        "state": run_state(run),
        "host": run.host,
        "pid": run.pid,
    }


def _sources(session: Session, store: Store) -> list[dict[str, Any]]:
    """Each configured source (and any that synced before): its last attempt and success."""
    wanted = [(s.kind, s.label) for s in configured_sources(store.config)]
    latest: dict[tuple[str, str], SyncResult] = {}
    succeeded: dict[tuple[str, str], SyncResult] = {}
    for row in session.scalars(select(SyncResult).order_by(SyncResult.id)):
        key = (row.kind, "" if row.kind == "plans" else row.source)
        latest[key] = row
        if row.finished_at is not None and row.error is None:
            succeeded[key] = row
    keys = wanted + [("plans", "")] + [k for k in latest if k not in wanted and k[0] != "plans"]
    result = []
    for kind, label in keys:
        last, ok = latest.get((kind, label)), succeeded.get((kind, label))
        result.append(
            {
                "kind": kind,
                "source": (last.source if last else label) if kind == "plans" else label,
                "configured": (kind, label) in wanted or kind == "plans",
                "last_attempt_at": iso_utc(last.started_at) if last else None,
                "last_error": last.error if last else None,
                "interrupted": bool(last and last.finished_at is None),
                "last_synced_at": iso_utc(ok.finished_at) if ok else None,
                "imported": ok.imported if ok else None,
                "duplicates": ok.duplicates if ok else None,
                "quarantined": ok.quarantined if ok else None,
            }
        )
    return result


def _reconciliation(session: Session) -> list[dict[str, Any]]:
    """Each hosted folder: the server's count at the last run and what the store holds."""
    from evidence.timeline.completeness import reconciliations

    return [
        {
            "mailbox": mailbox,
            "folder": r.folder,
            "server_count": r.server_count,
            "in_store": r.held,
            "difference": r.difference,
            "counted_at": iso_utc(r.counted_at),
        }
        for mailbox, r in sorted(reconciliations(session).items())
    ]


def _mail_rules(rules: MailRules) -> dict[str, Any]:
    """How emails' directions and times are derived now, and what is missing."""
    return {
        "domains": list(rules.domains),
        "receiving_hosts": list(rules.receiving_hosts),
        "rules": describe_rules(rules),
        "note": unconfigured_note(rules),
    }


def _quarantine(session: Session) -> dict[str, Any]:
    """Quarantined items not dismissed, by kind; and how many were dismissed."""
    rows = session.execute(
        select(QuarantineItem.kind, func.count())
        .outerjoin(QuarantineDismissal, QuarantineDismissal.quarantine_id == QuarantineItem.id)
        .where(QuarantineDismissal.id.is_(None))
        .group_by(QuarantineItem.kind)
        .order_by(QuarantineItem.kind)
    )
    by_kind = {str(kind): int(count) for kind, count in rows}
    dismissed = session.scalar(select(func.count()).select_from(QuarantineDismissal)) or 0
    return {"total": sum(by_kind.values()), "by_kind": by_kind, "dismissed": dismissed}


def _chain(session: Session, report: Report) -> dict[str, Any]:
    """The verifier's outcome: what it checked, what it left out, each failure named."""
    return {
        "ok": report.intact,
        "entries": int(report.facts.get("tree_size", 0)),
        "head": chain_head(session).hash,
        "root": report.facts.get("root"),
        "checks": report.checks,
        "not_checked": report.not_checked,
        "problems": [f.as_dict() for f in report.failures],
        "notes": report.notes,
    }
