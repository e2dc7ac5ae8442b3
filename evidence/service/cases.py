"""Cases: open, close, attach a document, add a claim, list them by deadline, show one."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from evidence.records import cases
from evidence.records.authorities import authority_name
from evidence.service.result import Result, opened

if TYPE_CHECKING:
    from pathlib import Path

    from evidence.config import Config
    from evidence.store.models import Case, CaseDocument, Claim


@dataclass(frozen=True)
class _CaseHead(Result):
    reference: str
    customer: str
    authority: str
    authority_name: str
    received: dt.date | None
    deadline: dt.date | None


@dataclass(frozen=True)
class CaseRecord(_CaseHead):
    """What a case is: who asks, about whom, for which days and by when."""

    period_from: dt.date | None
    period_to: dt.date | None

    @classmethod
    def of(cls, case: Case) -> CaseRecord:
        return cls(**_record_fields(case))


def _record_fields(case: Case) -> dict[str, Any]:
    return {
        "reference": case.reference,
        "customer": case.customer.ref,
        "authority": case.authority,
        "authority_name": authority_name(case.authority, "en"),
        "received": case.received,
        "deadline": case.deadline,
        "period_from": case.period_from,
        "period_to": case.period_to,
    }


@dataclass(frozen=True)
class CaseRow(_CaseHead):
    """One line of `case list`: the case, the days left to its deadline and what it holds."""

    days_left: int | None  # negative: overdue by that many days; None: no deadline
    overdue: bool
    period_from: dt.date | None
    period_to: dt.date | None
    documents: int
    claims: int
    closed_at: dt.datetime | None


@dataclass(frozen=True)
class Document(Result):
    title: str
    filename: str
    size: int
    sha256: str
    date: dt.date | None

    @classmethod
    def of(cls, document: CaseDocument) -> Document:
        return cls(
            title=document.title,
            filename=document.filename,
            size=document.size,
            sha256=document.sha256,
            date=document.document_date,
        )


@dataclass(frozen=True)
class ClaimRecord(Result):
    id: int
    text: str
    evidence: tuple[str, ...]  # timeline item ids (email:12, call:..., incident:1)
    recorded_at: dt.datetime
    corrects: int | None

    @classmethod
    def of(cls, claim: Claim) -> ClaimRecord:
        return cls(
            id=claim.id,
            text=claim.text,
            evidence=tuple(claim.item_ids),
            recorded_at=claim.recorded_at,
            corrects=claim.corrects_id,
        )


@dataclass(frozen=True)
class CaseView(CaseRecord):
    """`case show`: the case, its documents and the customer's current claims."""

    documents: tuple[Document, ...]
    claims: tuple[ClaimRecord, ...]


def open_case(
    config: Config,
    reference: str,
    *,
    customer_ref: str,
    authority: str,
    received: dt.date | None = None,
    deadline: dt.date | None = None,
    period_from: dt.date | None = None,
    period_to: dt.date | None = None,
) -> CaseRecord:
    """Open a case for a customer (chained, with a checkpoint)."""
    with opened(config) as store:
        case = cases.open_case(
            store,
            reference,
            customer_ref=customer_ref,
            authority=authority,
            received=received,
            deadline=deadline,
            period_from=period_from,
            period_to=period_to,
        )
        return CaseRecord.of(cases.get_case(store, case.reference))


def close_case(config: Config, reference: str, *, reason: str, by: str | None = None) -> str:
    """Close a case (a record of its own, in the audit log with ``by``); its reference."""
    with opened(config) as store:
        return cases.close_case(store, reference, reason=reason, by=by).reference


def attach_document(
    config: Config, reference: str, path: Path, *, title: str, document_date: dt.date | None
) -> Document:
    """Attach a PDF to a case, byte-exact, with its SHA-256."""
    with opened(config) as store:
        return Document.of(
            cases.attach_document(store, reference, path, title=title, document_date=document_date)
        )


def add_claim(
    config: Config,
    reference: str,
    text: str,
    item_ids: list[str],
    *,
    corrects: int | None = None,
) -> ClaimRecord:
    """Record a claim of the customer, tied to items of their timeline; never edited."""
    with opened(config) as store:
        claim = cases.add_claim(store, reference, text, item_ids, corrects=corrects)
        return ClaimRecord.of(claim)


def list_cases(config: Config, *, today: dt.date | None = None) -> tuple[CaseRow, ...]:
    """Every case with the days left to its deadline (counted in the store's zone from
    ``today``, default today), overdue first."""
    day = today or dt.datetime.now(config.zone).date()
    with opened(config) as store:
        return tuple(_row(d) for d in cases.list_cases(store, day))


def _row(due: cases.CaseDue) -> CaseRow:
    case = due.case
    record = _record_fields(case)
    return CaseRow(
        **{k: v for k, v in record.items() if not k.startswith("period")},
        days_left=due.days_left,
        overdue=due.overdue,
        period_from=case.period_from,
        period_to=case.period_to,
        documents=len(case.documents),
        claims=len(cases.current_claims(case)),
        closed_at=case.closure.closed_at if case.closure else None,
    )


def show_case(config: Config, reference: str) -> CaseView:
    """A case, its documents and the customer's current claims."""
    with opened(config) as store:
        case = cases.get_case(store, reference)
        return CaseView(
            **_record_fields(case),
            documents=tuple(Document.of(d) for d in case.documents),
            claims=tuple(ClaimRecord.of(c) for c in cases.current_claims(case)),
        )
