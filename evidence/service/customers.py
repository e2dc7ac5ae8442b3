"""Customers: add one, list them with their identifiers now, show one's history, erase one."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from evidence.records import customers
from evidence.records import erasure as erasing
from evidence.service.result import Result, opened
from evidence.store.models import IdentifierKind
from evidence.timeline.mailfacts import MailRules

if TYPE_CHECKING:
    from evidence.config import Config
    from evidence.records.customers import CustomerMatch
    from evidence.store.db import Store


@dataclass(frozen=True)
class CustomerRow(Result):
    """A customer with the addresses and numbers that are theirs now."""

    ref: str
    name: str | None
    identifiers: tuple[str, ...]


@dataclass(frozen=True)
class ErasureCounts(Result):
    """What erasing a customer removes, and what it keeps because another customer shares it."""

    customer: str
    emails: int
    recordings: int
    lines: int  # phone-system lines of the customer's calls
    blobs: int
    shared_emails: int
    shared_recordings: int
    shared_lines: int
    shared_blobs: int
    erasure: int | None = None  # the tombstone's number, once erased
    erased_at: dt.datetime | None = None

    @classmethod
    def of(cls, plan: erasing.ErasurePlan, **done: Any) -> ErasureCounts:
        return cls(
            customer=plan.customer_ref,
            emails=len(plan.emails),
            recordings=len(plan.recordings),
            lines=len(plan.lines),
            blobs=len(plan.blobs),
            shared_emails=len(plan.shared_emails),
            shared_recordings=len(plan.shared_recordings),
            shared_lines=len(plan.shared_lines),
            shared_blobs=len(plan.shared_blobs),
            **done,
        )


def add_customer(
    config: Config, ref: str, *, name: str | None, emails: list[str], phones: list[str]
) -> CustomerRow:
    """Create a customer, or add addresses and numbers to one (never removes any)."""
    with opened(config) as store:
        added = customers.add_customer(store, ref, name, emails, phones)
        return CustomerRow(
            ref=added.ref, name=added.name, identifiers=tuple(i.value for i in added.identifiers)
        )


def list_customers(config: Config) -> tuple[CustomerRow, ...]:
    """Every customer with the addresses and numbers that are theirs now."""
    with opened(config) as store:
        rows = []
        for c in customers.list_customers(store):
            identity = customers.identity_of(c)
            now = [
                *identity.current(IdentifierKind.EMAIL),
                *identity.current(IdentifierKind.PHONE),
            ]
            rows.append(CustomerRow(ref=c.ref, name=identity.name, identifiers=tuple(now)))
    return tuple(rows)


def search_customers(source: Config | Store, query: str) -> tuple[CustomerMatch, ...]:
    """Customers whose reference, name, address or number (ever held, a number however it
    is spelt) contains ``query``; none for an empty query."""
    if not query.strip():
        return ()
    with opened(source) as store:
        return tuple(customers.search_customers(store, query))


def show_customer(config: Config, ref: str) -> dict[str, Any]:
    """A customer's identifiers, the periods each was theirs, and every change (as JSON)."""
    with opened(config) as store:
        return customers.identity_json(customers.get_identity(store, ref))


def plan_erasure(config: Config, ref: str) -> ErasureCounts:
    """What `erase_customer` would remove now; refused (ErasureRefused) while the customer
    has an open case or an active legal hold, as the erasure itself is."""
    with opened(config) as store, store.session() as session:
        return ErasureCounts.of(erasing.plan_erasure(session, ref, MailRules.of(store.config)))


def erase_customer(
    config: Config, ref: str, *, reason: str, by: str | None = None
) -> ErasureCounts:
    """Erase the customer's personal content (GDPR Art. 17), leaving a chained tombstone."""
    with opened(config) as store:
        tombstone, plan = erasing.erase_customer(store, ref, reason=reason, by=by)
    return ErasureCounts.of(plan, erasure=tombstone.id, erased_at=tombstone.erased_at)


@dataclass(frozen=True)
class IdentifierChange(Result):
    action: str  # add, remove
    value: str


@dataclass(frozen=True)
class CustomerChange(Result):
    """A new version of a customer, valid from a moment, with why and by whom."""

    id: int
    valid_from: dt.datetime
    name: str | None
    identifiers: tuple[IdentifierChange, ...]


def update_customer(
    config: Config,
    ref: str,
    *,
    valid_from: dt.datetime,
    reason: str,
    name: str | None = None,
    add_emails: tuple[str, ...] = (),
    add_phones: tuple[str, ...] = (),
    remove_emails: tuple[str, ...] = (),
    remove_phones: tuple[str, ...] = (),
    by: str | None = None,
) -> CustomerChange:
    """Record a change of name, addresses or numbers from ``valid_from`` (kept, chained)."""
    with opened(config) as store:
        change = customers.update_customer(
            store,
            ref,
            valid_from=valid_from,
            reason=reason,
            name=name,
            add_emails=list(add_emails),
            add_phones=list(add_phones),
            remove_emails=list(remove_emails),
            remove_phones=list(remove_phones),
            by=by,
        )
        return CustomerChange(
            id=change.id,
            valid_from=change.valid_from,
            name=change.name,
            identifiers=tuple(IdentifierChange(i.action, i.value) for i in change.identifiers),
        )
