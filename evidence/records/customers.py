"""Customers and the identifiers (email addresses, phone numbers) that tie contacts to them.

A customer's identifiers change: a number moves to someone else, an address is
added after a complaint. A change is a new version (``CustomerChange``), never an
overwrite: the identifiers given when the customer was added are theirs since
ever, and each change adds or removes some from its ``valid_from`` on. An email
or call belongs to the customer when one of its addresses or numbers was the
customer's at its time (``Identity.held``).
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from evidence.errors import InvalidInput, NotFound
from evidence.phones import normalize_number
from evidence.store import ledger
from evidence.store.checkpoints import actor as current_actor
from evidence.store.checkpoints import write_checkpoint
from evidence.store.db import Store
from evidence.store.models import (
    Customer,
    CustomerChange,
    CustomerChangeIdentifier,
    CustomerIdentifier,
    IdentifierKind,
)
from evidence.timeutil import iso_utc, utcnow

ADD = "add"
REMOVE = "remove"


def _email(address: str) -> tuple[IdentifierKind, str, str]:
    value = address.strip().lower()
    if "@" not in value or any(c.isspace() or unicodedata.category(c)[0] == "C" for c in value):
        raise InvalidInput(f"{address!r} is not an email address")
    return IdentifierKind.EMAIL, value, address


def _phone(number: str, region: str) -> tuple[IdentifierKind, str, str]:
    e164 = normalize_number(number, region)
    if e164 is None:
        raise InvalidInput(
            f"{number!r} is not a phone number in region {region}: "
            "write it as e.g. 040 123 4567 or +358401234567"
        )
    return IdentifierKind.PHONE, e164, number


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
    """Create a customer, or add identifiers to an existing one (never removes any).

    Identifiers added here are the customer's since ever; one that became theirs
    at a known time is added with ``update_customer`` and its ``valid_from``.
    """
    check_reference(ref, "customer reference", REF_LENGTH)
    region = store.config.phone_region
    wanted = [_email(a) for a in emails] + [_phone(n, region) for n in phones]
    with store.writing() as session:
        customer = session.scalar(select(Customer).where(Customer.ref == ref))
        added: list[Customer | CustomerIdentifier] = []
        if customer is None:
            if not name:
                raise InvalidInput(f"customer {ref} is new: give --name")
            customer = Customer(ref=ref, name=name, created_at=utcnow())
            session.add(customer)
            session.flush()
            added.append(customer)
        elif name and name != customer.name:
            raise InvalidInput(
                f"customer {ref} exists as {customer.name!r}: a new name is a new version, "
                f"`evidence customer update {ref} --name ... --from DATE --reason ...`"
            )
        existing = {
            (i.kind, i.value)
            for i in session.scalars(
                select(CustomerIdentifier).where(CustomerIdentifier.customer_id == customer.id)
            )
        }
        for kind, value, raw in wanted:
            if (kind, value) not in existing:
                identifier = CustomerIdentifier(
                    customer_id=customer.id, kind=kind, value=value, raw=raw
                )
                session.add(identifier)
                added.append(identifier)
                existing.add((kind, value))
        if added:
            # Who the customer is decides what their dossier holds: each row is chained.
            session.flush()
            for row in added:
                ledger.append(session, row)
            write_checkpoint(session, store.config, "customer add")
    return get_customer(store, ref)


def update_customer(
    store: Store,
    ref: str,
    *,
    valid_from: dt.datetime,
    reason: str,
    name: str | None = None,
    add_emails: Sequence[str] = (),
    add_phones: Sequence[str] = (),
    remove_emails: Sequence[str] = (),
    remove_phones: Sequence[str] = (),
    by: str | None = None,
) -> CustomerChange:
    """Record a new version of the customer from ``valid_from`` on (chained, never updated)."""
    if not reason.strip():
        raise InvalidInput("say why the customer changes: --reason 'number moved to ...'")
    region = store.config.phone_region
    adds = [_email(a) for a in add_emails] + [_phone(n, region) for n in add_phones]
    removes = [_email(a) for a in remove_emails] + [_phone(n, region) for n in remove_phones]
    if not (adds or removes or name):
        raise InvalidInput(
            "nothing to change: give --name, --add-email, --add-phone, --remove-email "
            "or --remove-phone"
        )
    both = {(k, v) for k, v, _ in adds} & {(k, v) for k, v, _ in removes}
    if both:
        raise InvalidInput(f"{sorted(v for _, v in both)[0]} is both added and removed")
    with store.writing() as session:
        customer = load_customer(session, ref)
        identity = identity_of(customer)
        for kind, value, raw in removes:
            if not identity.held(kind, value, valid_from):
                raise InvalidInput(
                    f"{raw} is not customer {ref}'s at {valid_from:%Y-%m-%d %H:%M} UTC: "
                    "nothing to remove (see `evidence customer show "
                    f"{ref}`)"
                )
        change = CustomerChange(
            customer_id=customer.id,
            valid_from=valid_from,
            name=name or None,
            reason=reason.strip(),
            changed_by=current_actor(by),
            recorded_at=utcnow(),
        )
        session.add(change)
        session.flush()
        rows = [
            CustomerChangeIdentifier(
                change_id=change.id, action=action, kind=kind, value=value, raw=raw
            )
            for action, items in ((ADD, adds), (REMOVE, removes))
            for kind, value, raw in items
        ]
        session.add_all(rows)
        session.flush()
        ledger.append(session, change, rows)
        write_checkpoint(session, store.config, "customer update")
        session.refresh(change, ["identifiers"])
        return change


def get_customer(store: Store, ref: str) -> Customer:
    with store.session() as session:
        return load_customer(session, ref)


def load_customer(session: Session, ref: str) -> Customer:
    customer = session.scalar(
        select(Customer)
        .where(Customer.ref == ref)
        .options(
            selectinload(Customer.identifiers),
            selectinload(Customer.changes).selectinload(CustomerChange.identifiers),
        )
    )
    if customer is None:
        raise NotFound(f"no customer {ref!r}: add it with `evidence customer add {ref} --name ...`")
    return customer


def list_customers(store: Store) -> list[Customer]:
    with store.session() as session:
        return list(
            session.scalars(
                select(Customer)
                .options(
                    selectinload(Customer.identifiers),
                    selectinload(Customer.changes).selectinload(CustomerChange.identifiers),
                )
                .order_by(Customer.ref)
            )
        )


# --- who the customer was, when ------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """[start, end) in UTC; None: since ever, or still."""

    start: dt.datetime | None
    end: dt.datetime | None

    def covers(self, at: dt.datetime) -> bool:
        return (self.start is None or at >= self.start) and (self.end is None or at < self.end)


@dataclass
class HeldIdentifier:
    """One address or number of a customer and the periods it was theirs."""

    kind: IdentifierKind
    value: str
    raw: str
    periods: list[Period] = field(default_factory=list)

    def held_at(self, at: dt.datetime) -> bool:
        return any(p.covers(at) for p in self.periods)

    @property
    def current(self) -> bool:
        return bool(self.periods) and self.periods[-1].end is None


@dataclass
class Identity:
    """A customer's identifiers over time, and the changes that made them so."""

    customer: Customer
    identifiers: list[HeldIdentifier]
    changes: list[CustomerChange]

    def values(self, kind: IdentifierKind) -> list[str]:
        """Every address or number of ``kind`` the customer ever held."""
        return [i.value for i in self.identifiers if i.kind is kind]

    def current(self, kind: IdentifierKind) -> list[str]:
        return [i.value for i in self.identifiers if i.kind is kind and i.current]

    def held(self, kind: IdentifierKind, value: str | None, at: dt.datetime) -> bool:
        return value is not None and any(
            i.kind is kind and i.value == value and i.held_at(at) for i in self.identifiers
        )

    @property
    def name(self) -> str:
        """The name now: the latest change that gave one, else the name added with."""
        names = [c.name for c in self.changes if c.name]
        return names[-1] if names else self.customer.name

    @property
    def versioned(self) -> bool:
        return bool(self.changes)


def identity_of(customer: Customer) -> Identity:
    """Replay the customer's changes in time order over the identifiers added with it."""
    events: dict[tuple[IdentifierKind, str], list[tuple[dt.datetime | None, str]]] = defaultdict(
        list
    )
    raw: dict[tuple[IdentifierKind, str], str] = {}
    for identifier in customer.identifiers:
        if not identifier.value:
            continue  # blanked by an erasure
        key = (identifier.kind, identifier.value)
        events[key].append((None, ADD))
        raw.setdefault(key, identifier.raw)
    changes = sorted(customer.changes, key=lambda c: (c.valid_from, c.id))
    for change in changes:
        for item in change.identifiers:
            if not item.value:
                continue  # blanked by an erasure
            key = (item.kind, item.value)
            events[key].append((change.valid_from, item.action))
            raw.setdefault(key, item.raw)
    held = []
    for key, steps in events.items():
        periods: list[Period] = []
        start: dt.datetime | None = None
        holding = False
        for at, action in steps:
            if action == ADD and not holding:
                start, holding = at, True
            elif action == REMOVE and holding:
                if start is None or at is None or at > start:
                    periods.append(Period(start, at))
                holding = False
        if holding:
            periods.append(Period(start, None))
        held.append(HeldIdentifier(key[0], key[1], raw[key], periods))
    held.sort(key=lambda i: (i.kind.value, i.value))
    return Identity(customer, held, changes)


def identifiers(customer: Customer, kind: IdentifierKind) -> list[str]:
    """Every address or number of ``kind`` the customer ever held."""
    return identity_of(customer).values(kind)


def get_identity(store: Store, ref: str) -> Identity:
    with store.session() as session:
        return identity_of(load_customer(session, ref))


def identity_json(identity: Identity) -> dict[str, Any]:
    """``evidence customer show --json``."""
    return {
        "ref": identity.customer.ref,
        "name": identity.name,
        "identifiers": [
            {
                "kind": i.kind.value,
                "value": i.value,
                "raw": i.raw,
                "current": i.current,
                "periods": [{"from": iso_utc(p.start), "until": iso_utc(p.end)} for p in i.periods],
            }
            for i in identity.identifiers
        ],
        "changes": [
            {
                "id": c.id,
                "valid_from": iso_utc(c.valid_from),
                "name": c.name,
                "added": [i.value for i in c.identifiers if i.action == ADD],
                "removed": [i.value for i in c.identifiers if i.action == REMOVE],
                "reason": c.reason,
                "by": c.changed_by,
                "recorded_at": iso_utc(c.recorded_at),
            }
            for c in identity.changes
        ],
    }


@dataclass(frozen=True)
class CustomerMatch:
    """A customer found by :func:`search_customers`."""

    ref: str
    name: str
    emails: tuple[str, ...]
    phones: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "name": self.name,
            "emails": list(self.emails),
            "phones": list(self.phones),
        }


def search_customers(store: Store, query: str, limit: int = 50) -> list[CustomerMatch]:
    """Customers whose reference, name, address or number (ever held) contains ``query``,
    case-insensitively; a number also matches when it is the same number spelt otherwise."""
    needle = query.strip().casefold()
    digits = "".join(c for c in needle if c.isdigit())
    e164 = normalize_number(query, store.config.phone_region) if len(digits) >= 4 else None
    found: list[CustomerMatch] = []
    for customer in list_customers(store):
        identity = identity_of(customer)
        emails = tuple(identity.values(IdentifierKind.EMAIL))
        phones = tuple(identity.values(IdentifierKind.PHONE))
        texts = [customer.ref, identity.name, *emails]
        hit = not needle or any(needle in t.casefold() for t in texts)
        if not hit and len(digits) >= 4:
            hit = any(digits in p or (e164 is not None and e164 == p) for p in phones)
        if hit:
            found.append(CustomerMatch(customer.ref, identity.name, emails, phones))
        if len(found) >= limit:
            break
    return found
