"""Customers and the identifiers (email addresses, phone numbers) that tie contacts to them."""

from __future__ import annotations

import unicodedata

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from evidence.errors import InvalidInput, NotFound
from evidence.phones import normalize_number
from evidence.store.db import Store
from evidence.store.models import Customer, CustomerIdentifier, IdentifierKind
from evidence.timeutil import utcnow

REF_LENGTH: int = Customer.__table__.c.ref.type.length  # type: ignore[attr-defined]


# Unicode categories a reference must not hold: control and format characters (a newline,
# a tab, a zero-width space) and line or paragraph separators. Each would break the
# one-line listings (`customer list`) or make two references look the same.
_NOT_IN_REFERENCES = ("Cc", "Cf", "Zl", "Zp", "Cs")


def check_reference(value: str, what: str, limit: int) -> str:
    """Refuse a reference that is empty, only spaces, has spaces at its ends, holds a line
    break or another control character, or is longer than ``limit`` characters."""
    if not value.strip():
        raise InvalidInput(f"the {what} is empty or only spaces: give one")
    if value != value.strip():
        raise InvalidInput(f"the {what} {value!r} begins or ends with a space: give it without")
    bad = next((c for c in value if unicodedata.category(c) in _NOT_IN_REFERENCES), None)
    if bad is not None:
        name = unicodedata.name(bad, f"U+{ord(bad):04X}")
        raise InvalidInput(
            f"the {what} {value!r} holds a control character ({name}): give it on one line, "
            "without control characters"
        )
    if len(value) > limit:
        raise InvalidInput(f"the {what} is {len(value)} characters long: at most {limit}")
    return value


def add_customer(
    store: Store,
    ref: str,
    name: str | None,
    emails: list[str],
    phones: list[str],
) -> Customer:
    """Create a customer, or add identifiers to an existing one (never removes any)."""
    check_reference(ref, "customer reference", REF_LENGTH)
    region = store.config.phone_region
    wanted: list[tuple[IdentifierKind, str, str]] = []
    for address in emails:
        value = address.strip().lower()
        if "@" not in value or " " in value:
            raise InvalidInput(f"{address!r} is not an email address")
        wanted.append((IdentifierKind.EMAIL, value, address))
    for number in phones:
        e164 = normalize_number(number, region)
        if e164 is None:
            raise InvalidInput(
                f"{number!r} is not a phone number in region {region}: "
                "write it as e.g. 040 123 4567 or +358401234567"
            )
        wanted.append((IdentifierKind.PHONE, e164, number))
    with store.writing() as session:
        customer = session.scalar(select(Customer).where(Customer.ref == ref))
        if customer is None:
            if not name:
                raise InvalidInput(f"customer {ref} is new: give --name")
            customer = Customer(ref=ref, name=name, created_at=utcnow())
            session.add(customer)
            session.flush()
        elif name and name != customer.name:
            raise InvalidInput(
                f"customer {ref} exists as {customer.name!r}; names are not changed here"
            )
        existing = {
            (i.kind, i.value)
            for i in session.scalars(
                select(CustomerIdentifier).where(CustomerIdentifier.customer_id == customer.id)
            )
        }
        for kind, value, raw in wanted:
            if (kind, value) not in existing:
                session.add(
                    CustomerIdentifier(customer_id=customer.id, kind=kind, value=value, raw=raw)
                )
                existing.add((kind, value))
    return get_customer(store, ref)


def get_customer(store: Store, ref: str) -> Customer:
    with store.session() as session:
        return load_customer(session, ref)


def load_customer(session: Session, ref: str) -> Customer:
    customer = session.scalar(
        select(Customer).where(Customer.ref == ref).options(selectinload(Customer.identifiers))
    )
    if customer is None:
        raise NotFound(f"no customer {ref!r}: add it with `evidence customer add {ref} --name ...`")
    return customer


def identifiers(customer: Customer, kind: IdentifierKind) -> list[str]:
    return [i.value for i in customer.identifiers if i.kind is kind]


def list_customers(store: Store) -> list[Customer]:
    with store.session() as session:
        return list(
            session.scalars(
                select(Customer).options(selectinload(Customer.identifiers)).order_by(Customer.ref)
            )
        )
