"""The first stage of an export: what the dossier shows, read from the store.

``gather`` runs in the export's writer-locked session, so that no erasure comes between
it and the pages, and that the checkpoint signed for the export (the proofs stage, in the
same session) covers exactly what was read: the case, the customer's timeline, the
opening hours, the completeness of the sources, the reachability reports, the summary of
the claims, and the ledger records the proofs are made of.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from evidence.config import Config
from evidence.errors import InvalidInput
from evidence.proofs.manifest import DossierRecords, dossier_records, selection_records
from evidence.records.cases import current_claims, load_case
from evidence.records.erasure import refuse_if_erased
from evidence.render.views import exhibit_number
from evidence.store.models import Case, Claim
from evidence.timeline.completeness import Completeness, completeness
from evidence.timeline.history import Timeline, build_timeline
from evidence.timeline.hours import OpeningHours, opening_hours
from evidence.timeline.mailfacts import MailRules
from evidence.timeline.reports import (
    CustomerReachability,
    customer_reachability,
    threshold_from_config,
)
from evidence.timeline.summary import Summary, summarize


@dataclass(frozen=True)
class Selection:
    """What to export: a customer's history, or a case's (its customer and, unless a
    period is given, the case's period)."""

    customer_ref: str | None
    case_ref: str | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None


@dataclass(frozen=True)
class Subject:
    """Whom and what period an export is of, once the case has decided them."""

    customer_ref: str
    case_ref: str | None
    date_from: dt.date | None
    date_to: dt.date | None
    items: int  # on the timeline, each an exhibit

    def describe(self) -> str:
        case = f", case {self.case_ref}" if self.case_ref is not None else ""
        return f"customer {self.customer_ref}{case}"


@dataclass(frozen=True)
class Gathered:
    """What the dossier shows, as read under the writer lock."""

    customer_ref: str
    case: Case | None
    date_from: dt.date | None
    date_to: dt.date | None
    timeline: Timeline
    claims: list[Claim]
    completeness: Completeness
    reachability: CustomerReachability | None
    summary: Summary
    records: DossierRecords  # what the proofs prove

    @property
    def subject(self) -> Subject:
        case_ref = self.case.reference if self.case is not None else None
        items = len(self.timeline.items)
        return Subject(self.customer_ref, case_ref, self.date_from, self.date_to, items)


def gather(session: Session, config: Config, selection: Selection) -> Gathered:
    """Read what the dossier of ``selection`` shows; refuses a customer whose content was
    erased (``ContentErased``) and a case about another customer than the one given."""
    case, customer_ref, date_from, date_to = _subject(session, selection)
    # Here, under the writer lock, so no erasure comes between this and the pages.
    refuse_if_erased(session, customer_ref)
    hours = opening_hours(config)
    timeline = build_timeline(
        session,
        customer_ref,
        config.zone,
        date_from,
        date_to,
        hours=hours,
        rules=MailRules.of(config),
        with_addresses=False,
    )
    claims = current_claims(case) if case is not None else []
    found = completeness(session, config.zone, timeline.start, timeline.end, rules=timeline.rules)
    reach = customer_reachability(
        session,
        timeline.items,
        config.zone,
        hours=hours,
        threshold=threshold_from_config(config),
        rules=timeline.rules,
    )
    summary = summarize(timeline, config.zone, claims, is_open=_is_open(hours))
    records = dossier_records(
        session,
        ((exhibit_number(n), item.kind, item.record) for n, item in enumerate(timeline.items, 1)),
        list(case.documents) if case is not None else [],
        selection_records(timeline.identity, case),
    )
    return Gathered(
        customer_ref, case, date_from, date_to, timeline, claims, found, reach, summary, records
    )


def _subject(
    session: Session, selection: Selection
) -> tuple[Case | None, str, dt.date | None, dt.date | None]:
    """The case (if any), the customer and the period of the export."""
    customer_ref, date_from, date_to = (
        selection.customer_ref,
        selection.date_from,
        selection.date_to,
    )
    case = load_case(session, selection.case_ref) if selection.case_ref else None
    if case is not None:
        if customer_ref is not None and customer_ref != case.customer.ref:
            raise InvalidInput(
                f"case {case.reference} is about customer {case.customer.ref}, not {customer_ref}"
            )
        customer_ref = case.customer.ref
        if date_from is None and date_to is None:
            # An export for a case covers the case's period unless told otherwise.
            date_from, date_to = case.period_from, case.period_to
    if customer_ref is None:
        raise InvalidInput("give a customer reference or --case")
    return case, customer_ref, date_from, date_to


def _is_open(hours: OpeningHours | None) -> Callable[[dt.datetime, str], bool] | None:
    """Whether a channel was open at an instant; a channel without hours is always open."""
    if hours is None:
        return None

    def is_open(at: dt.datetime, channel: str) -> bool:
        verdict = hours.check(channel, at)
        return verdict is None or verdict.open

    return is_open
