"""Cases: a regulator's request about one customer, and the legal PDFs that belong to it."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pikepdf
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from evidence.customers import load_customer
from evidence.errors import InvalidInput, NotFound
from evidence.store import ledger
from evidence.store.blobs import put_blob
from evidence.store.checkpoints import write_checkpoint
from evidence.store.db import Store
from evidence.store.models import Case, CaseDocument
from evidence.timeutil import utcnow


def open_case(
    store: Store,
    reference: str,
    *,
    customer_ref: str,
    authority: str,
    received: dt.date | None,
    deadline: dt.date | None,
) -> Case:
    with store.writing() as session:
        customer = load_customer(session, customer_ref)
        if session.scalar(select(Case.id).where(Case.reference == reference)):
            raise InvalidInput(f"case {reference} is already open: see `evidence case show`")
        case = Case(
            reference=reference,
            customer_id=customer.id,
            authority=authority,
            received=received,
            deadline=deadline,
            opened_at=utcnow(),
        )
        session.add(case)
        session.flush()
    return case


def load_case(session: Session, reference: str) -> Case:
    case = session.scalar(
        select(Case)
        .where(Case.reference == reference)
        .options(selectinload(Case.documents), selectinload(Case.customer))
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
    data = path.read_bytes()
    check_pdf(data, path.name)
    with store.writing() as session:
        case = load_case(session, reference)
        document = CaseDocument(
            case_id=case.id,
            title=title,
            filename=path.name,
            size=len(data),
            sha256=put_blob(session, data),
            document_date=document_date,
            attached_at=utcnow(),
        )
        session.add(document)
        session.flush()
        ledger.append(session, document)
        write_checkpoint(session, store.config, "case attach")
    return document


def get_case(store: Store, reference: str) -> Case:
    with store.session() as session:
        return load_case(session, reference)
