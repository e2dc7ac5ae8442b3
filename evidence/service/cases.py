"""Cases: open, close, attach a document, add a claim, list them by deadline, show one.

One result per question for both faces: ``as_dict()`` is what ``case list/show --json``
prints; the desk reads the same results (its ids are fields ``--json`` does not print) and
its API maps them to its own keys (``evidence.web.api``).

The desk passes ``by`` (its signed-in user): the operation then also keeps the event in the
audit log under that name; the CLI's commands record what they recorded before.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from evidence.records import cases
from evidence.records.authorities import authority_name
from evidence.service.result import NOT_IN_JSON, Result, opened
from evidence.store.audit import log_event
from evidence.store.rows import from_row

if TYPE_CHECKING:
    from pathlib import Path

    from evidence.config import Config
    from evidence.store.db import Store
    from evidence.store.models import Case, CaseDocument, Claim


def _overdue(days_left: int | None) -> bool:
    return days_left is not None and days_left < 0


@dataclass(frozen=True)
class _CaseHead(Result):
    id: int = field(metadata=NOT_IN_JSON)  # the desk's id of the case (its URLs, its API)
    reference: str
    customer: str
    authority: str  # a known key (lvv, kkv, ...) or a name as given
    authority_name: str  # in English; the desk names it in the reader's language
    received: dt.date | None
    deadline: dt.date | None


def _head_fields(case: Case) -> dict[str, Any]:
    return {
        "id": case.id,
        "reference": case.reference,
        "customer": case.customer.ref,
        "authority": case.authority,
        "authority_name": authority_name(case.authority, "en"),
        "received": case.received,
        "deadline": case.deadline,
    }


@dataclass(frozen=True)
class CaseRow(_CaseHead):
    """One line of `case list` (and of the desk's list of cases): the case, the days left to
    its deadline and what it holds."""

    days_left: int | None  # negative: overdue by that many days; None: no deadline
    overdue: bool
    period_from: dt.date | None
    period_to: dt.date | None
    documents: int
    claims: int
    closed_at: dt.datetime | None

    @property
    def status(self) -> str:
        return "closed" if self.closed_at else "open"

    @classmethod
    def of(cls, due: cases.CaseDue) -> CaseRow:
        case = due.case
        return cls(
            **_head_fields(case),
            days_left=due.days_left,
            overdue=due.overdue,
            period_from=case.period_from,
            period_to=case.period_to,
            documents=len(case.documents),
            claims=len(cases.current_claims(case)),
            closed_at=case.closure.closed_at if case.closure else None,
        )


@dataclass(frozen=True)
class Document(Result):
    id: int = field(metadata=NOT_IN_JSON)
    title: str
    filename: str
    size: int
    sha256: str
    date: dt.date | None

    @classmethod
    def of(cls, document: CaseDocument) -> Document:
        return from_row(cls, document, date=document.document_date)


@dataclass(frozen=True)
class ClaimRecord(Result):
    id: int
    text: str
    evidence: tuple[str, ...]  # timeline item ids (email:12, call:..., incident:1)
    recorded_at: dt.datetime
    corrects: int | None

    @classmethod
    def of(cls, claim: Claim) -> ClaimRecord:
        return from_row(cls, claim, evidence=tuple(claim.item_ids), corrects=claim.corrects_id)


@dataclass(frozen=True)
class CaseView(_CaseHead):
    """`case show` (and the desk's page of a case): the case, its documents and the
    customer's current claims."""

    period_from: dt.date | None
    period_to: dt.date | None
    documents: tuple[Document, ...]
    claims: tuple[ClaimRecord, ...]
    days_left: int | None = field(default=None, metadata=NOT_IN_JSON)
    closed_at: dt.datetime | None = field(default=None, metadata=NOT_IN_JSON)

    @property
    def overdue(self) -> bool:
        return _overdue(self.days_left)

    @property
    def status(self) -> str:
        return "closed" if self.closed_at else "open"


def _today(store: Store, today: dt.date | None) -> dt.date:
    return today or dt.datetime.now(store.config.zone).date()


def _days_left(case: Case, today: dt.date) -> int | None:
    return (case.deadline - today).days if case.deadline else None


def _audit(store: Store, by: str | None, action: str, subject: str, **event: Any) -> None:
    if by is not None:
        log_event(store, action=action, subject=subject, actor=by, **event)


def open_case(
    source: Config | Store,
    reference: str,
    *,
    customer_ref: str,
    authority: str,
    received: dt.date | None = None,
    deadline: dt.date | None = None,
    period_from: dt.date | None = None,
    period_to: dt.date | None = None,
    by: str | None = None,
) -> CaseRow:
    """Open a case for a customer (chained, with a checkpoint); the case as listed."""
    with opened(source) as store:
        cases.open_case(
            store,
            reference,
            customer_ref=customer_ref,
            authority=authority,
            received=received,
            deadline=deadline,
            period_from=period_from,
            period_to=period_to,
        )
        _audit(store, by, "case-open", f"case {reference}")
        case = cases.get_case(store, reference)
        return CaseRow.of(cases.CaseDue(case, _days_left(case, _today(store, None))))


def case_reference(source: Config | Store, case_id: int) -> str:
    """The reference of the case the desk knows by ``case_id``, or :class:`NotFound`."""
    with opened(source) as store:
        return cases.case_by_id(store, case_id)


def close_case(
    source: Config | Store, reference: str, *, reason: str, by: str | None = None
) -> str:
    """Close a case (a record of its own, in the audit log with ``by``); its reference."""
    with opened(source) as store:
        return cases.close_case(store, reference, reason=reason, by=by).reference


def attach_document(
    source: Config | Store,
    reference: str,
    path: Path,
    *,
    title: str,
    document_date: dt.date | None,
) -> Document:
    """Attach a PDF file to a case, byte-exact, with its SHA-256."""
    with opened(source) as store:
        return Document.of(
            cases.attach_document(store, reference, path, title=title, document_date=document_date)
        )


def attach_upload(
    source: Config | Store,
    reference: str,
    data: bytes,
    filename: str,
    *,
    title: str,
    document_date: dt.date | None,
    by: str | None = None,
) -> Document:
    """Attach an uploaded PDF (its bytes; ``filename`` is only recorded) to a case."""
    with opened(source) as store:
        document = Document.of(
            cases.attach_bytes(
                store, reference, data, filename, title=title, document_date=document_date
            )
        )
        _audit(
            store,
            by,
            "document-upload",
            f"case {reference}",
            output_sha256=document.sha256,
            details={"title": document.title, "size": document.size},
        )
        return document


def add_claim(
    source: Config | Store,
    reference: str,
    text: str,
    item_ids: list[str],
    *,
    corrects: int | None = None,
    by: str | None = None,
) -> ClaimRecord:
    """Record a claim of the customer, tied to items of their timeline; never edited."""
    with opened(source) as store:
        claim = ClaimRecord.of(cases.add_claim(store, reference, text, item_ids, corrects=corrects))
        _audit(
            store,
            by,
            "claim",
            f"case {reference}",
            details={"claim": claim.id, "evidence": list(claim.evidence)},
        )
        return claim


def list_cases(source: Config | Store, *, today: dt.date | None = None) -> tuple[CaseRow, ...]:
    """Every case with the days left to its deadline (counted in the store's zone from
    ``today``, default today), overdue first."""
    with opened(source) as store:
        return tuple(CaseRow.of(d) for d in cases.list_cases(store, _today(store, today)))


def show_case(
    source: Config | Store, reference: str, *, today: dt.date | None = None
) -> CaseView:
    """A case, its documents and the customer's current claims."""
    with opened(source) as store:
        case = cases.get_case(store, reference)
        return CaseView(
            **_head_fields(case),
            period_from=case.period_from,
            period_to=case.period_to,
            documents=tuple(Document.of(d) for d in case.documents),
            claims=tuple(ClaimRecord.of(c) for c in cases.current_claims(case)),
            days_left=_days_left(case, _today(store, today)),
            closed_at=case.closure.closed_at if case.closure else None,
        )
