"""Legal holds: a customer's data kept whatever else is asked (GDPR Art. 17(3)(e)).

A hold is placed on a customer (or on a case, which holds the case's customer)
and released by a new record that points at it: holds are evidence, append-only
and chained, so the store shows when data was held, by whom and why.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from evidence.errors import InvalidInput, NotFound
from evidence.store import ledger
from evidence.store.checkpoints import actor as current_actor
from evidence.store.checkpoints import write_checkpoint
from evidence.store.db import Store
from evidence.store.models import Case, Customer, LegalHold
from evidence.timeutil import utcnow

HOLD = "hold"
RELEASE = "release"


@dataclass(frozen=True)
class HoldState:
    hold: LegalHold
    release: LegalHold | None

    @property
    def active(self) -> bool:
        return self.release is None

    @property
    def ref(self) -> str:
        return self.hold.case_ref or self.hold.customer_ref


def _resolve(session: Session, ref: str) -> tuple[str, str | None]:
    """(customer ref, case ref or None): a customer reference first, else a case reference."""
    if session.scalar(select(Customer.id).where(Customer.ref == ref)) is not None:
        return ref, None
    case = session.scalar(select(Case).where(Case.reference == ref))
    if case is not None:
        customer_ref = session.scalar(select(Customer.ref).where(Customer.id == case.customer_id))
        assert customer_ref is not None
        return customer_ref, case.reference
    raise NotFound(
        f"no customer or case {ref!r}: see `evidence customer list`, `evidence case list`"
    )


def _reason(reason: str) -> str:
    if not reason.strip():
        raise InvalidInput("say why: --reason 'litigation notice 2026-11-20'")
    return reason.strip()


def add_hold(store: Store, ref: str, *, reason: str, by: str | None = None) -> LegalHold:
    """Place a hold on a customer, or on a case (which holds its customer)."""
    why = _reason(reason)
    with store.writing() as session:
        customer_ref, case_ref = _resolve(session, ref)
        hold = LegalHold(
            action=HOLD,
            customer_ref=customer_ref,
            case_ref=case_ref,
            reason=why,
            actor=current_actor(by),
            at=utcnow(),
        )
        ledger.add(session, hold)
        write_checkpoint(session, store.config, "legal hold")
    return hold


def release_hold(store: Store, ref: str, *, reason: str, by: str | None = None) -> list[LegalHold]:
    """Release every active hold placed on ``ref`` (as given when it was placed)."""
    why = _reason(reason)
    with store.writing() as session:
        held = [state.hold for state in hold_states(session) if state.active and state.ref == ref]
        if not held:
            raise NotFound(f"no active legal hold on {ref!r}: see `evidence hold list`")
        releases = []
        for hold in held:
            release = LegalHold(
                action=RELEASE,
                customer_ref=hold.customer_ref,
                case_ref=hold.case_ref,
                reason=why,
                actor=current_actor(by),
                at=utcnow(),
                releases_id=hold.id,
            )
            ledger.add(session, release)
            releases.append(release)
        write_checkpoint(session, store.config, "legal hold release")
    return releases


def hold_states(session: Session) -> list[HoldState]:
    """Every hold, oldest first, with its release when it has one."""
    release = aliased(LegalHold)
    rows = session.execute(
        select(LegalHold, release)
        .outerjoin(release, release.releases_id == LegalHold.id)
        .where(LegalHold.action == HOLD)
        .order_by(LegalHold.id)
    )
    return [HoldState(hold, rel) for hold, rel in rows]


def active_holds(session: Session, customer_ref: str) -> list[LegalHold]:
    """Holds in force on the customer, placed on it or on one of its cases."""
    return [
        s.hold for s in hold_states(session) if s.active and s.hold.customer_ref == customer_ref
    ]


def list_holds(store: Store) -> list[HoldState]:
    with store.session() as session:
        return hold_states(session)
