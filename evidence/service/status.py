"""Scheduled work and the state of the store: ``sync`` brings it up to date, ``store_status``
says whether it is current and intact.

Intact is decided by the one verifier (``evidence.verify.store``), with every check of
``evidence verify`` but the one that reads every blob's bytes; the result lists what
it checked and what it left to ``evidence verify``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from evidence.errors import EvidenceError
from evidence.ingest.sync import SyncOutcome, configured_sources, run_state
from evidence.records.incidents import open_incidents
from evidence.service.result import Result, opened
from evidence.store.checkpoints import key_path, load_signing_key
from evidence.store.ledger import chain_head
from evidence.store.models import QuarantineDismissal, QuarantineItem, SyncResult, SyncRun
from evidence.timeline.mailfacts import MailRules, describe_rules, unconfigured_note
from evidence.timeutil import utcnow

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from evidence.config import Config
    from evidence.store.db import Store
    from evidence.verify.report import Report


def sync(config: Config, *, log: Callable[[str], None] = lambda line: None) -> SyncOutcome:
    """Import from every configured source, then extend planned incidents; one ``log``
    line each. Raises ``SyncAlreadyRunning`` when another run holds the lock."""
    from evidence.ingest.sync import run_sync

    with opened(config) as store:
        return run_sync(store, log=log)


@dataclass(frozen=True)
class SigningKey(Result):
    """The key that signs checkpoints and dossiers' pages: its id is what the company
    publishes, so that a dossier can be tied to it (`evidence verify --key-id`)."""

    key_id: str | None
    path: str
    error: str | None = None  # unreadable here: status still reports the rest

    def as_dict(self) -> dict[str, Any]:
        data = super().as_dict()
        if self.error is None:
            del data["error"]
        return data


@dataclass(frozen=True)
class LastSync(Result):
    id: int
    started_at: dt.datetime
    finished_at: dt.datetime | None
    exit_code: int | None
    state: str  # finished, running, interrupted
    host: str
    pid: int


@dataclass(frozen=True)
class SourceState(Result):
    """A source's last attempt, and its last success with what it brought."""

    kind: str
    source: str
    configured: bool
    last_attempt_at: dt.datetime | None
    last_error: str | None
    interrupted: bool
    last_synced_at: dt.datetime | None
    imported: int | None
    duplicates: int | None
    quarantined: int | None


@dataclass(frozen=True)
class OpenIncident(Result):
    number: int
    title: str
    start: dt.datetime
    end: dt.datetime | None
    channels: tuple[str, ...]
    planned: bool


@dataclass(frozen=True)
class QuarantineCounts(Result):
    """Quarantined items not dismissed, by kind; and how many were dismissed."""

    total: int
    by_kind: dict[str, int]
    dismissed: int


@dataclass(frozen=True)
class FolderCount(Result):
    """A hosted folder: the server's count at the last run beside what the store holds."""

    mailbox: str
    folder: str
    server_count: int
    in_store: int
    difference: int  # positive: not in the store; negative: more in the store
    counted_at: dt.datetime


@dataclass(frozen=True)
class MailState(Result):
    """How emails' directions and times are derived now, and what is missing."""

    domains: tuple[str, ...]
    receiving_hosts: tuple[str, ...]
    rules: tuple[str, ...]
    note: str | None


@dataclass(frozen=True)
class Problem(Result):
    subject: str
    problem: str


@dataclass(frozen=True)
class StoreChecks(Result):
    """The verifier's outcome: what it checked, what it left out, each failure named."""

    ok: bool
    entries: int
    head: str
    root: str | None
    checks: tuple[str, ...]
    not_checked: tuple[str, ...]
    problems: tuple[Problem, ...]
    notes: tuple[str, ...]


@dataclass(frozen=True)
class StoreStatus(Result):
    """Everything ``evidence status`` shows; ``as_dict()`` is its ``--json``."""

    database: str
    signing_key: SigningKey
    checked_at: dt.datetime
    last_sync: LastSync | None
    sources: tuple[SourceState, ...]
    open_incidents: tuple[OpenIncident, ...]
    quarantine: QuarantineCounts
    reconciliation: tuple[FolderCount, ...]
    mail: MailState
    chain: StoreChecks


def store_status(config: Config, *, now: dt.datetime | None = None) -> StoreStatus:
    """Is the store current (sources, plans, quarantine, hosted folders) and intact?"""
    from evidence.verify.store import verify_store

    at = now or utcnow()
    with opened(config) as store:
        report = verify_store(store, read_blobs=False)
        with store.session() as session:
            return StoreStatus(
                database=make_url(store.config.database_url).render_as_string(
                    hide_password=True
                ),
                signing_key=_signing_key(store),
                checked_at=at,
                last_sync=_last_sync(session),
                sources=_sources(session, store),
                open_incidents=tuple(
                    OpenIncident(
                        number=i.number,
                        title=i.title,
                        start=i.start,
                        end=i.end,
                        channels=tuple(i.channel_names),
                        planned=i.plan_id is not None,
                    )
                    for i in open_incidents(session, at)
                ),
                quarantine=_quarantine(session),
                reconciliation=_reconciliation(session),
                mail=_mail_rules(MailRules.of(store.config)),
                chain=_chain(session, report),
            )


def _signing_key(store: Store) -> SigningKey:
    path = key_path(store.config)
    if not path.exists():
        return SigningKey(None, str(path))
    try:
        return SigningKey(load_signing_key(path).key_id, str(path))
    except (EvidenceError, OSError) as exc:
        return SigningKey(None, str(path), str(exc))


def _last_sync(session: Session) -> LastSync | None:
    run = session.scalar(select(SyncRun).order_by(SyncRun.id.desc()).limit(1))
    if run is None:
        return None
    return LastSync(
        id=run.id,
        started_at=run.started_at,
        finished_at=run.finished_at,
        exit_code=run.exit_code,
        state=run_state(run),
        host=run.host,
        pid=run.pid,
    )


def _sources(session: Session, store: Store) -> tuple[SourceState, ...]:
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
            SourceState(
                kind=kind,
                source=(last.source if last else label) if kind == "plans" else label,
                configured=(kind, label) in wanted or kind == "plans",
                last_attempt_at=last.started_at if last else None,
                last_error=last.error if last else None,
                interrupted=bool(last and last.finished_at is None),
                last_synced_at=ok.finished_at if ok else None,
                imported=ok.imported if ok else None,
                duplicates=ok.duplicates if ok else None,
                quarantined=ok.quarantined if ok else None,
            )
        )
    return tuple(result)


def _reconciliation(session: Session) -> tuple[FolderCount, ...]:
    from evidence.timeline.completeness import reconciliations

    return tuple(
        FolderCount(
            mailbox=mailbox,
            folder=r.folder,
            server_count=r.server_count,
            in_store=r.held,
            difference=r.difference,
            counted_at=r.counted_at,
        )
        for mailbox, r in sorted(reconciliations(session).items())
    )


def _mail_rules(rules: MailRules) -> MailState:
    return MailState(
        domains=tuple(rules.domains),
        receiving_hosts=tuple(rules.receiving_hosts),
        rules=tuple(describe_rules(rules)),
        note=unconfigured_note(rules),
    )


def _quarantine(session: Session) -> QuarantineCounts:
    rows = session.execute(
        select(QuarantineItem.kind, func.count())
        .outerjoin(QuarantineDismissal, QuarantineDismissal.quarantine_id == QuarantineItem.id)
        .where(QuarantineDismissal.id.is_(None))
        .group_by(QuarantineItem.kind)
        .order_by(QuarantineItem.kind)
    )
    by_kind = {str(kind): int(count) for kind, count in rows}
    dismissed = session.scalar(select(func.count()).select_from(QuarantineDismissal)) or 0
    return QuarantineCounts(total=sum(by_kind.values()), by_kind=by_kind, dismissed=dismissed)


def _chain(session: Session, report: Report) -> StoreChecks:
    return StoreChecks(
        ok=report.intact,
        entries=int(report.facts.get("tree_size", 0)),
        head=chain_head(session).hash,
        root=report.facts.get("root"),
        checks=tuple(report.checks),
        not_checked=tuple(report.not_checked),
        problems=tuple(Problem(f.subject, f.problem) for f in report.failures),
        notes=tuple(report.notes),
    )
