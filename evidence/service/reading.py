"""Reading the store: a customer's timeline, agents' availability and the service report.

The figures are built inside the operation's transaction; a timeline holds stored rows
(the emails' bytes are read as it is laid out), so it is handed over inside one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from evidence.service.result import opened

if TYPE_CHECKING:
    from evidence.config import Config
    from evidence.render.mailbody import Body
    from evidence.store.db import Store
    from evidence.timeline.calls import Availability
    from evidence.timeline.history import Timeline
    from evidence.timeline.reports import ServiceReport


@contextmanager
def customer_timeline(
    source: Config | Store,
    ref: str,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
) -> Iterator[Timeline]:
    """A customer's emails, calls, incidents and agents' pauses of the local days
    ``date_from``..``date_to`` (inclusive), in time order; readable until the block ends."""
    from evidence.timeline.history import customer_timeline as build

    with opened(source) as store, store.session() as session:
        yield build(session, store.config, ref, date_from, date_to)


def evidence_version(source: Config | Store) -> int | None:
    """The ledger's last entry of evidence (audit events aside): a new record (mail, call,
    incident, correction, erasure...) gives a new number, a page view does not."""
    from sqlalchemy import select

    from evidence.store.models import AuditEvent, LedgerEntry

    with opened(source) as store, store.session() as session:
        return session.scalar(
            select(LedgerEntry.seq)
            .where(LedgerEntry.record_type != AuditEvent.__tablename__)
            .order_by(LedgerEntry.seq.desc())
            .limit(1)
        )


def email_body(source: Config | Store, raw_sha256: str) -> Body | str:
    """A stored email as the dossier shows it (sanitised text or HTML: nothing remote), or,
    once its content is erased, what its tombstone says."""
    from evidence.errors import EvidenceError
    from evidence.render.mailbody import extract_body
    from evidence.store.blobs import read_blob

    with opened(source) as store, store.session() as session:
        try:
            return extract_body(read_blob(session, raw_sha256))
        except EvidenceError as exc:
            return str(exc)


def agent_availability(
    config: Config, date_from: dt.date, date_to: dt.date | None = None
) -> list[Availability]:
    """Who was logged in to the queues and who was paused, and why: the state at the start
    of the local days ``date_from``..``date_to`` (default: that one day), then each change."""
    from evidence.timeline.calls import agent_availability as replay
    from evidence.timeline.history import period_bounds

    start, end = period_bounds(date_from, date_to or date_from, config.zone)
    with opened(config) as store, store.session() as session:
        return replay(session, start, end)


def service_report(
    config: Config,
    date_from: dt.date,
    date_to: dt.date | None = None,
    *,
    baseline_from: dt.date | None = None,
    baseline_to: dt.date | None = None,
    threshold: int | None = None,
    by: str | None = None,
) -> ServiceReport:
    """Service figures of the local days ``date_from``..``date_to`` and of a baseline, by
    service state; ``threshold`` defaults to ``[reports] service_level_threshold``."""
    from evidence.timeline.hours import opening_hours
    from evidence.timeline.mailfacts import MailRules
    from evidence.timeline.reports import service_report as build
    from evidence.timeline.reports import threshold_from_config

    with opened(config) as store, store.session() as session:
        return build(
            session,
            config.zone,
            date_from,
            date_to or date_from,
            hours=opening_hours(config),
            threshold=threshold if threshold is not None else threshold_from_config(config),
            baseline_from=baseline_from,
            baseline_to=baseline_to,
            by=by,
            rules=MailRules.of(config),
        )
