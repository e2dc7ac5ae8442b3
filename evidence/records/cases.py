"""Cases: a regulator's request about one customer, the legal PDFs that belong to it,
and the customer's claims, each tied to the timeline items that bear on it."""

from __future__ import annotations

import datetime as dt
import io
import re
from dataclasses import dataclass
from pathlib import Path

import pikepdf
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from evidence.errors import Conflict, InvalidInput, NotFound
from evidence.records.authorities import authority_value, keys_help
from evidence.records.customers import check_reference, load_customer
from evidence.store import ledger
from evidence.store.blobs import put_blob
from evidence.store.checkpoints import write_checkpoint
from evidence.store.db import Store
from evidence.store.models import (
    Case,
    CaseClosure,
    CaseDocument,
    Claim,
    ClaimEvidence,
    Incident,
)
from evidence.timeline.mailfacts import MailRules
from evidence.timeutil import require_in_range, require_order, utcnow

REFERENCE_LENGTH: int = Case.__table__.c.reference.type.length  # type: ignore[attr-defined]

# Timeline item ids as `timeline --json` prints them: email:12, call:1790579705.312, incident:1.
_ITEM_ID = re.compile(r"^(email|call|incident|agent_pause):(\S+)$")


def open_case(
    store: Store,
    reference: str,
    *,
    customer_ref: str,
    authority: str,
    received: dt.date | None,
    deadline: dt.date | None,
    period_from: dt.date | None = None,
    period_to: dt.date | None = None,
) -> Case:
    require_in_range(received, deadline, period_from, period_to)
    require_order(period_from, period_to, "the period's start", "the period's end")
    require_order(received, deadline, "--received", "--deadline")
    check_reference(reference, "case reference", REFERENCE_LENGTH)
    if not authority.strip():
        raise InvalidInput(f"give the case's --authority: a name, or one of {keys_help()}")
    with store.writing() as session:
        customer = load_customer(session, customer_ref)
        if session.scalar(select(Case.id).where(Case.reference == reference)):
            raise Conflict(f"case {reference} is already open: see `evidence case show`")
        case = Case(
            reference=reference,
            customer_id=customer.id,
            # A known key (lvv, kkv, ...) is kept as the key: the dossier names the
            # authority in its own language.
            authority=authority_value(authority),
            received=received,
            deadline=deadline,
            opened_at=utcnow(),
            period_from=period_from,
            period_to=period_to,
        )
        # The case decides a dossier's period and its claims: it is evidence too.
        ledger.add(session, case)
        write_checkpoint(session, store.config, "case open")
    return case


def load_case(session: Session, reference: str) -> Case:
    case = session.scalar(
        select(Case)
        .where(Case.reference == reference)
        .options(
            selectinload(Case.documents),
            selectinload(Case.customer),
            selectinload(Case.claims).selectinload(Claim.evidence),
            selectinload(Case.closures),
        )
    )
    if case is None:
        raise NotFound(f"no case {reference!r}: open it with `evidence case open {reference} ...`")
    return case


def check_pdf(data: bytes, name: str) -> None:
    """Refuse what is not a readable PDF, with a reason a person understands."""
    if not data.startswith(b"%PDF-"):
        raise InvalidInput(f"{name} is not a PDF file (it does not start with %PDF-)")
    try:
        with pikepdf.open(io.BytesIO(data)) as pdf:
            if len(pdf.pages) == 0:
                raise InvalidInput(f"{name} is a PDF without pages")
    except pikepdf.PasswordError as exc:
        raise InvalidInput(
            f"{name} is encrypted with a password: attach a copy without the password"
        ) from exc
    except pikepdf.PdfError as exc:
        raise InvalidInput(f"{name} is a damaged PDF ({exc}): attach a readable copy") from exc


def attach_document(
    store: Store, reference: str, path: Path, *, title: str, document_date: dt.date | None
) -> CaseDocument:
    if not path.is_file():
        raise InvalidInput(f"{path} is not a file")
    return attach_bytes(
        store, reference, path.read_bytes(), path.name, title=title, document_date=document_date
    )


def attach_bytes(
    store: Store,
    reference: str,
    data: bytes,
    filename: str,
    *,
    title: str,
    document_date: dt.date | None,
) -> CaseDocument:
    """Attach a PDF given as bytes (an upload); ``filename`` is only recorded, its last
    component, never used as a path."""
    filename = filename.replace("\\", "/").rsplit("/", 1)[-1].strip()[:255] or "document.pdf"
    if not title.strip():
        raise InvalidInput("a document needs its title, e.g. the regulator's letter")
    check_pdf(data, filename)
    with store.writing() as session:
        case = load_case(session, reference)
        document = CaseDocument(
            case_id=case.id,
            title=title,
            filename=filename,
            size=len(data),
            sha256=put_blob(session, data),
            document_date=document_date,
            attached_at=utcnow(),
        )
        ledger.add(session, document)
        write_checkpoint(session, store.config, "case attach")
    return document


def close_case(store: Store, reference: str, *, reason: str, by: str | None = None) -> Case:
    """Close a case: its customer's data is no longer held for it (``evidence.records.erasure``).

    The closing is a record of its own (cases are never updated), chained, and it is also
    in the audit log.
    """
    from evidence.store import audit
    from evidence.store.checkpoints import actor

    if not reason.strip():
        raise InvalidInput("say why the case is closed: --reason 'decision received 2026-12-01'")
    with store.writing() as session:
        case = load_case(session, reference)
        if case.closure is not None:
            raise InvalidInput(
                f"case {reference} was already closed on {case.closure.closed_at:%Y-%m-%d}"
            )
        closure = CaseClosure(
            case_id=case.id,
            closed_at=utcnow(),
            closed_by=actor(by),
            reason=reason.strip(),
        )
        ledger.add(session, closure)
        audit.record(
            session,
            action="case-close",
            subject=f"case {reference}",
            details={"customer": case.customer.ref, "reason": closure.reason},
            actor=closure.closed_by,
        )
        session.refresh(case, ["closures"])
        write_checkpoint(session, store.config, "case close")
    return case


def get_case(store: Store, reference: str) -> Case:
    with store.session() as session:
        return load_case(session, reference)


def current_claims(case: Case) -> list[Claim]:
    """The case's claims in their latest versions (a correction replaces what it corrects)."""
    corrected = {c.corrects_id for c in case.claims if c.corrects_id is not None}
    return [c for c in case.claims if c.id not in corrected]


def parse_item_id(item_id: str) -> tuple[str, str]:
    match = _ITEM_ID.match(item_id.strip())
    if match is None:
        raise InvalidInput(
            f"{item_id!r} is not a timeline item id: use the `id` printed by "
            "`evidence timeline REF --json`, e.g. email:12, call:1790579705.312 or incident:1"
        )
    return match.group(1), match.group(2)


def add_claim(
    store: Store,
    reference: str,
    text: str,
    item_ids: list[str],
    *,
    corrects: int | None = None,
) -> Claim:
    """Record one of the customer's claims, tied to the items of their timeline it concerns.

    Each item must be in the case customer's timeline (incidents: any logged incident).
    """
    from evidence.timeline.history import build_timeline

    if not text.strip():
        raise InvalidInput("a claim needs its --text, e.g. --text 'queued at least half an hour'")
    wanted = list(dict.fromkeys(i.strip() for i in item_ids))
    parsed = [parse_item_id(i) for i in wanted]
    with store.writing() as session:
        case = load_case(session, reference)
        if corrects is not None:
            old = next((c for c in case.claims if c.id == corrects), None)
            if old is None:
                raise NotFound(f"case {reference} has no claim #{corrects}")
            newer = next((c for c in case.claims if c.corrects_id == corrects), None)
            if newer is not None:
                raise InvalidInput(
                    f"claim #{corrects} was already corrected by #{newer.id}: correct #{newer.id}"
                )
        if wanted:
            timeline = build_timeline(
                session, case.customer.ref, store.config.zone, rules=MailRules.of(store.config)
            )
            known = {item.id for item in timeline.items}
            for item_id, (kind, key) in zip(wanted, parsed, strict=True):
                if item_id in known:
                    continue
                if kind == "incident" and key.isdigit():
                    if session.get(Incident, int(key)) is not None:
                        continue
                raise InvalidInput(
                    f"{item_id} is not in customer {case.customer.ref}'s timeline: use an id "
                    f"printed by `evidence timeline {case.customer.ref} --json`"
                )
        claim = Claim(
            case_id=case.id, text=text.strip(), recorded_at=utcnow(), corrects_id=corrects
        )
        session.add(claim)
        session.flush()
        evidence = [ClaimEvidence(claim_id=claim.id, item_id=i) for i in wanted]
        session.add_all(evidence)
        session.flush()
        ledger.append(session, claim, evidence)
        session.refresh(claim, ["evidence"])
    return claim


@dataclass(frozen=True)
class CaseDue:
    """A case with the days left to its deadline, counted from ``today``."""

    case: Case
    days_left: int | None  # negative: overdue by that many days; None: no deadline

    @property
    def overdue(self) -> bool:
        return self.days_left is not None and self.days_left < 0


def list_cases(store: Store, today: dt.date) -> list[CaseDue]:
    """Every case, overdue first, then by days left; cases without a deadline last."""
    with store.session() as session:
        cases = list(
            session.scalars(
                select(Case).options(
                    selectinload(Case.customer),
                    selectinload(Case.documents),
                    selectinload(Case.claims).selectinload(Claim.evidence),
                    selectinload(Case.closures),
                )
            )
        )
    due = [CaseDue(c, (c.deadline - today).days if c.deadline else None) for c in cases]
    return sorted(
        due,
        key=lambda d: (d.days_left is None, d.days_left or 0, d.case.reference),
    )


def case_by_id(store: Store, case_id: int) -> str:
    """The reference of case ``case_id`` (the API's ids), or :class:`NotFound`."""
    with store.session() as session:
        reference = session.scalar(select(Case.reference).where(Case.id == case_id))
    if reference is None:
        raise NotFound(f"no case {case_id}")
    return reference
