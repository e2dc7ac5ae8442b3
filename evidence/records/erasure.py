"""Erasure of a customer's personal content (GDPR Art. 17), leaving a chained tombstone.

Evidence is append-only; erasure is the one controlled exception (the database
allows it only through ``evidence.store.guards.ERASURE_PATHS``):

- refused while the customer has an open case or an active legal hold: data
  needed for legal claims is kept (Art. 17(3)(e));
- the customer's records are their emails (matched as the timeline matches them)
  and the recordings of their calls, except those that are also another
  customer's (kept whole); a blob goes only when nothing else cites it;
- first a checkpoint signs the log as it is; then the tombstone (``erasures``,
  with ``erased_blobs`` and ``erased_entries``) is written, and only then are the
  blobs' bytes removed, the records' personal fields blanked and their ledger
  payloads replaced by the redacted record. Each redacted entry keeps its
  original Merkle leaf hash in the tombstone, so every checkpoint and the chain
  still verify; ``evidence verify`` reports the erasure;
- the tombstone is chained and a new checkpoint signs it;
- the customer as added, its identifiers and its versions (``customer update``:
  names, reasons, identifiers) are blanked like the records, their entries
  redacted: the row stays (append-only), its personal fields go;
- the render cache of this machine is emptied.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from evidence.errors import ContentErased, ErasureRefused, InvalidInput
from evidence.records.customers import Identity, identity_of, load_customer
from evidence.records.holds import active_holds
from evidence.store import ledger, merkle
from evidence.store.checkpoints import actor as current_actor
from evidence.store.checkpoints import write_checkpoint
from evidence.store.db import Store, is_sqlite
from evidence.store.guards import ERASURE_PATHS
from evidence.store.models import (
    Base,
    Blob,
    CallRecord,
    Case,
    CaseClosure,
    CaseDocument,
    CdrRecord,
    Customer,
    CustomerChange,
    CustomerChangeIdentifier,
    CustomerIdentifier,
    Email,
    EmailAddress,
    EmailAttachment,
    ErasedBlob,
    ErasedEntry,
    Erasure,
    IdentifierKind,
    IncidentAttachment,
    LedgerEntry,
    QuarantineItem,
    QueueEvent,
    Recording,
    SmtpDelivery,
    SourceLine,
)
from evidence.timeline.calls import Call
from evidence.timeline.history import customer_calls, customer_emails
from evidence.timeline.mailfacts import MailRules
from evidence.timeutil import utcnow

LEGAL_BASIS = "GDPR Art. 17(3)(e)"


@dataclass
class ErasurePlan:
    """What an erasure of one customer removes, and what it keeps because it is shared."""

    customer_ref: str
    emails: list[int] = field(default_factory=list)
    deliveries: list[int] = field(default_factory=list)  # the SMTP envelopes of those emails
    recordings: list[int] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # phone-system lines of the customer's calls
    changes: list[int] = field(default_factory=list)  # the customer's versions (names, identifiers)
    customers: list[int] = field(default_factory=list)  # the customer as added
    identifiers: list[int] = field(default_factory=list)  # their identifiers as added
    blobs: dict[str, int] = field(default_factory=dict)  # sha256 -> size
    shared_emails: list[int] = field(default_factory=list)
    shared_recordings: list[int] = field(default_factory=list)
    shared_lines: list[int] = field(default_factory=list)
    shared_blobs: list[str] = field(default_factory=list)

    @property
    def records(self) -> list[str]:
        return (
            [f"emails/{i}" for i in self.emails]
            + [f"smtp_deliveries/{i}" for i in self.deliveries]
            + [f"recordings/{i}" for i in self.recordings]
            + [f"source_lines/{i}" for i in self.lines]
            + [f"customer_changes/{i}" for i in self.changes]
            + [f"customers/{i}" for i in self.customers]
            + [f"customer_identifiers/{i}" for i in self.identifiers]
        )


def _refuse_if_held(session: Session, ref: str, customer_id: int) -> None:
    open_cases = list(
        session.scalars(
            select(Case.reference)
            .where(
                Case.customer_id == customer_id,
                ~select(CaseClosure.id).where(CaseClosure.case_id == Case.id).exists(),
            )
            .order_by(Case.reference)
        )
    )
    if open_cases:
        raise ErasureRefused(
            f"customer {ref} has an open case ({', '.join(open_cases)}): its data is kept for "
            f"the establishment, exercise or defence of legal claims ({LEGAL_BASIS}); close "
            f"the case when it is settled (`evidence case close {open_cases[0]} --reason ...`)"
        )
    holds = active_holds(session, ref)
    if holds:
        named = ", ".join(f"#{h.id} on {h.case_ref or h.customer_ref}: {h.reason}" for h in holds)
        raise ErasureRefused(
            f"customer {ref} is under legal hold ({named}): its data is kept ({LEGAL_BASIS}); "
            f"release the hold first (`evidence hold release {holds[0].case_ref or ref} "
            "--reason ...`)"
        )
    done = session.scalar(select(Erasure).where(Erasure.customer_ref == ref).limit(1))
    if done is not None:
        raise InvalidInput(
            f"customer {ref}'s content was already erased on {done.erased_at:%Y-%m-%d} "
            f"(erasure #{done.id})"
        )


def _sharing(
    session: Session, customer_id: int, kind: IdentifierKind, values: set[str]
) -> list[Identity]:
    """The other customers who ever held one of ``values``."""
    if not values:
        return []
    ids: set[int] = set()
    wanted = sorted(values)
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        ids.update(
            session.scalars(
                select(CustomerIdentifier.customer_id).where(
                    CustomerIdentifier.kind == kind, CustomerIdentifier.value.in_(chunk)
                )
            )
        )
        ids.update(
            session.scalars(
                select(CustomerChange.customer_id)
                .join(
                    CustomerChangeIdentifier,
                    CustomerChangeIdentifier.change_id == CustomerChange.id,
                )
                .where(
                    CustomerChangeIdentifier.kind == kind, CustomerChangeIdentifier.value.in_(chunk)
                )
            )
        )
    ids.discard(customer_id)
    refs = session.scalars(
        select(Customer.ref).where(Customer.id.in_(sorted(ids))).order_by(Customer.ref)
    )
    return [identity_of(load_customer(session, ref)) for ref in refs]


# Every column that cites a blob, and the record that owns the citing row.
_CITERS: tuple[tuple[Any, Any], ...] = (
    (Email.raw_sha256, Email.id),
    (EmailAttachment.sha256, EmailAttachment.email_id),
    (Recording.sha256, Recording.id),
    (IncidentAttachment.sha256, None),
    (CaseDocument.sha256, None),
    (QuarantineItem.raw_sha256, None),
)


def plan_erasure(session: Session, ref: str, rules: MailRules) -> ErasurePlan:
    """The customer's records and blobs, shared ones set apart; refuses as ``erase`` does."""
    customer = load_customer(session, ref)
    _refuse_if_held(session, ref, customer.id)
    identity = identity_of(customer)
    # The customer's records as the timeline selects them; a record that is also
    # another customer's (by the same rule) is shared and kept whole.
    emails, shared_emails = _split_emails(session, customer.id, identity, rules)
    my_calls = customer_calls(session, identity)
    my_recordings = {r.id: r for call in my_calls for r in call.recordings}
    my_lines = {line for call in my_calls for line in _lines_of(call)}
    their_recordings, their_lines = _calls_of_others(session, customer.id, my_calls)
    plan = ErasurePlan(
        customer_ref=ref,
        emails=emails,
        deliveries=_deliveries_of(session, emails),
        recordings=sorted(set(my_recordings) - their_recordings),
        lines=sorted(my_lines - their_lines),
        changes=sorted(change.id for change in identity.changes),
        customers=[customer.id],
        identifiers=sorted(i.id for i in customer.identifiers),
        shared_emails=shared_emails,
        shared_recordings=sorted(set(my_recordings) & their_recordings),
        shared_lines=sorted(my_lines & their_lines),
    )
    candidates = _blobs_of(session, plan.emails, [my_recordings[i] for i in plan.recordings])
    owned = {
        "emails": set(plan.emails),
        "email_attachments": set(plan.emails),
        "recordings": set(plan.recordings),
    }
    shared = _cited_elsewhere(session, list(candidates), owned)
    plan.shared_blobs = sorted(shared)
    plan.blobs = {d: s for d, s in sorted(candidates.items()) if d not in shared}
    return plan


def _split_emails(
    session: Session, customer_id: int, identity: Identity, rules: MailRules
) -> tuple[list[int], list[int]]:
    """The customer's emails: those that are theirs alone, and those another customer shares."""
    mine = {found.email.id for found in customer_emails(session, identity, rules)}
    theirs: set[int] = set()
    for other in _sharing(session, customer_id, IdentifierKind.EMAIL, _addresses_in(session, mine)):
        theirs.update(
            found.email.id for found in customer_emails(session, other, rules, with_addresses=False)
        )
    return sorted(mine - theirs), sorted(mine & theirs)


def _deliveries_of(session: Session, emails: list[int]) -> list[int]:
    """The SMTP envelopes of the emails."""
    deliveries: list[int] = []
    for start in range(0, len(emails), 500):
        deliveries.extend(
            session.scalars(
                select(SmtpDelivery.id).where(
                    SmtpDelivery.email_id.in_(emails[start : start + 500])
                )
            )
        )
    return sorted(deliveries)


def _calls_of_others(
    session: Session, customer_id: int, my_calls: list[Call]
) -> tuple[set[int], set[int]]:
    """The recordings and phone-system lines of the calls of every other customer who ever
    held one of the numbers of ``my_calls``."""
    their_recordings: set[int] = set()
    their_lines: set[int] = set()
    if my_calls:
        numbers = {n for call in my_calls for n in _numbers_of(call)}
        for other in _sharing(session, customer_id, IdentifierKind.PHONE, numbers):
            for call in customer_calls(session, other):
                their_recordings.update(r.id for r in call.recordings)
                their_lines.update(_lines_of(call))
    return their_recordings, their_lines


def _blobs_of(session: Session, emails: list[int], recordings: list[Recording]) -> dict[str, int]:
    """The blobs (sha256 -> size) the emails, their attachments and the recordings cite."""
    candidates: dict[str, int] = {}
    for start in range(0, len(emails), 500):
        chunk = emails[start : start + 500]
        for digest, size in session.execute(
            select(Blob.sha256, Blob.size).where(
                Blob.sha256.in_(
                    select(Email.raw_sha256)
                    .where(Email.id.in_(chunk))
                    .union(
                        select(EmailAttachment.sha256).where(EmailAttachment.email_id.in_(chunk))
                    )
                )
            )
        ):
            candidates[str(digest)] = int(size)
    for recording in recordings:
        candidates[recording.sha256] = recording.size
    return candidates


def _addresses_in(session: Session, emails: set[int]) -> set[str]:
    found: set[str] = set()
    wanted = sorted(emails)
    for start in range(0, len(wanted), 500):
        found.update(
            session.scalars(
                select(EmailAddress.address).where(
                    EmailAddress.email_id.in_(wanted[start : start + 500])
                )
            )
        )
    return found


def _numbers_of(call: Call) -> set[str]:
    """Every number (E.164) in the phone-system records a call was derived from."""
    numbers = {n for r in call.cdr_rows for n in (r.src_e164, r.dst_e164)}
    numbers |= {e.caller_e164 for e in call.queue_events}
    numbers |= {n for r in call.call_records for n in (r.caller_e164, r.callee_e164)}
    return {n for n in numbers if n}


def _lines_of(call: Call) -> set[int]:
    """The phone-system lines a call was derived from (CDR rows, queue_log lines, CSV rows)."""
    return (
        {r.source_line_id for r in call.cdr_rows}
        | {e.source_line_id for e in call.queue_events}
        | {r.source_line_id for r in call.call_records}
    )


def _cited_elsewhere(session: Session, digests: list[str], owned: dict[str, set[int]]) -> set[str]:
    """The digests cited by any row that is not one of the erased records."""
    shared: set[str] = set()
    for start in range(0, len(digests), 500):
        chunk = digests[start : start + 500]
        for column, owner in _CITERS:
            table = column.table.name
            query = select(column, owner) if owner is not None else select(column, column)
            for digest, owner_id in session.execute(query.where(column.in_(chunk))):
                if owner is None or owner_id not in owned.get(table, set()):
                    shared.add(str(digest))
    return shared


def _redact(fields: dict[str, Any]) -> dict[str, Any]:
    """A chained record (and its child rows) with its personal fields blanked."""
    path = ERASURE_PATHS.get(str(fields.get("_table")))
    out = dict(fields)
    if path is not None:
        for column, value in path.erased.items():
            if column in out:
                # Encoded as the ledger encodes a row (bytes as base64).
                out[column] = {"base64": ""} if isinstance(value, bytes) else value
    if "_children" in out:
        out["_children"] = [_redact(child) for child in out["_children"]]
    return out


def _canonical(fields: dict[str, Any]) -> str:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _blank(session: Session, model: type[Base], key: Any, ids: Iterable[int]) -> None:
    table = model.__table__
    path = ERASURE_PATHS[table.name]  # type: ignore[attr-defined]
    values = {column: value for column, value in path.erased.items()}
    wanted = list(ids)
    for start in range(0, len(wanted), 500):
        session.execute(
            update(table).where(key.in_(wanted[start : start + 500])).values(**values)  # type: ignore[arg-type]
        )


@dataclass
class _Tombstone:
    """The erasure's record and its rows, written before anything is removed."""

    erasure: Erasure
    blobs: list[ErasedBlob]
    entries: list[ErasedEntry]
    redacted: dict[int, str]  # ledger seq -> the redacted payload that replaces its own


def erase_customer(
    store: Store, ref: str, *, reason: str, by: str | None = None
) -> tuple[Erasure, ErasurePlan]:
    """Erase the customer's personal content; return the tombstone and what it covered."""
    if not reason.strip():
        raise InvalidInput("say why: --reason 'request of 2026-11-20, no claims pending'")
    with store.writing() as session:
        plan = plan_erasure(session, ref, MailRules.of(store.config))
        # The log as it is now, signed: every leaf hash the tombstone keeps is checked
        # against this checkpoint by `evidence verify`.
        write_checkpoint(session, store.config, "before erasure")
        entries = _ledger_entries_of(session, plan)
        tombstone = _write_tombstone(session, ref, plan, entries, reason=reason, by=by)
        if is_sqlite(session):
            # Freed pages are overwritten with zeros, not left in the file.
            session.execute(text("PRAGMA secure_delete = ON"))
        _empty_blobs(session, list(plan.blobs))
        _blank_records(session, plan)
        _redact_entries(session, tombstone.redacted)
        ledger.append(session, tombstone.erasure, [*tombstone.blobs, *tombstone.entries])
        write_checkpoint(session, store.config, "erasure")
    _forget_local_copies(store, ref)
    return tombstone.erasure, plan


def _ledger_entries_of(session: Session, plan: ErasurePlan) -> list[tuple[int, str]]:
    """The ledger entries (seq, payload) of the plan's records, in log order."""
    entries: list[tuple[int, str]] = []
    for record_type, ids in (
        ("emails", plan.emails),
        ("smtp_deliveries", plan.deliveries),
        ("recordings", plan.recordings),
        ("source_lines", plan.lines),
        ("customer_changes", plan.changes),
        ("customers", plan.customers),
        ("customer_identifiers", plan.identifiers),
    ):
        keys = [str(i) for i in ids]
        for first in range(0, len(keys), 500):
            entries.extend(
                (int(seq), str(payload))
                for seq, payload in session.execute(
                    select(LedgerEntry.seq, LedgerEntry.payload).where(
                        LedgerEntry.record_type == record_type,
                        LedgerEntry.record_id.in_(keys[first : first + 500]),
                    )
                )
            )
    entries.sort()
    return entries


def _write_tombstone(
    session: Session,
    ref: str,
    plan: ErasurePlan,
    entries: list[tuple[int, str]],
    *,
    reason: str,
    by: str | None,
) -> _Tombstone:
    """The erasure, its blobs and its redacted entries (each keeping its original leaf hash)."""
    erasure = Erasure(
        customer_ref=ref,
        erased_at=utcnow(),
        erased_by=current_actor(by),
        reason=reason.strip(),
        records=json.dumps(plan.records),
    )
    session.add(erasure)
    session.flush()
    blobs = [
        ErasedBlob(erasure_id=erasure.id, sha256=digest, size=size)
        for digest, size in plan.blobs.items()
    ]
    redacted: dict[int, str] = {}
    erased_entries = []
    for seq, payload in entries:
        new_payload = _canonical(_redact(json.loads(payload)))
        redacted[seq] = new_payload
        erased_entries.append(
            ErasedEntry(
                erasure_id=erasure.id,
                seq=seq,
                leaf_hash=merkle.leaf_hash(payload.encode("utf-8")).hex(),
                redacted_sha256=hashlib.sha256(new_payload.encode("utf-8")).hexdigest(),
            )
        )
    session.add_all(blobs)
    session.add_all(erased_entries)
    session.flush()  # the tombstone first: the triggers allow nothing without it
    return _Tombstone(erasure, blobs, erased_entries, redacted)


def _empty_blobs(session: Session, digests: list[str]) -> None:
    for start in range(0, len(digests), 500):
        session.execute(
            update(Blob.__table__)  # type: ignore[arg-type]
            .where(Blob.__table__.c.sha256.in_(digests[start : start + 500]))
            .values(data=b"")
        )


def _blank_records(session: Session, plan: ErasurePlan) -> None:
    """The personal fields of every record in the plan, and of the rows parsed from them."""
    _blank(session, Email, Email.__table__.c.id, plan.emails)
    _blank(session, EmailAddress, EmailAddress.__table__.c.email_id, plan.emails)
    _blank(session, EmailAttachment, EmailAttachment.__table__.c.email_id, plan.emails)
    _blank(session, SmtpDelivery, SmtpDelivery.__table__.c.id, plan.deliveries)
    _blank(session, Recording, Recording.__table__.c.id, plan.recordings)
    _blank(session, SourceLine, SourceLine.__table__.c.id, plan.lines)
    for parsed in (CdrRecord, QueueEvent, CallRecord):
        _blank(session, parsed, parsed.__table__.c.source_line_id, plan.lines)
    _blank(session, CustomerChange, CustomerChange.__table__.c.id, plan.changes)
    _blank(session, Customer, Customer.__table__.c.id, plan.customers)
    _blank(session, CustomerIdentifier, CustomerIdentifier.__table__.c.id, plan.identifiers)
    _blank(
        session,
        CustomerChangeIdentifier,
        CustomerChangeIdentifier.__table__.c.change_id,
        plan.changes,
    )


def _redact_entries(session: Session, redacted: dict[int, str]) -> None:
    for seq, payload in redacted.items():
        session.execute(
            update(LedgerEntry.__table__)  # type: ignore[arg-type]
            .where(LedgerEntry.__table__.c.seq == seq)
            .values(payload=payload)
        )


def _forget_local_copies(store: Store, ref: str) -> None:
    """What this machine kept outside the store: rendered pages, dossiers, the SQLite WAL."""
    # Rendered pages are cached by the SHA-256 of their HTML, so which ones showed this
    # customer is not known: the whole cache goes (it is rebuilt by the next export).
    shutil.rmtree(store.config.home / "cache" / "render", ignore_errors=True)
    # The legal desk's dossiers of the customer go too.
    from evidence.jobs import forget_exports

    forget_exports(store, ref)
    if is_sqlite(store.engine):
        # Old page images of the erased rows may sit in the WAL until a checkpoint.
        # Outside any transaction (the engine's "begin" would take the write lock).
        raw = store.engine.raw_connection()
        try:
            raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            raw.close()


def erasures_of(session: Session, customer_ref: str) -> list[Erasure]:
    return list(
        session.scalars(
            select(Erasure).where(Erasure.customer_ref == customer_ref).order_by(Erasure.id)
        )
    )


def refuse_if_erased(session: Session, customer_ref: str) -> None:
    """Exports of an erased customer say so instead of rendering what is gone."""
    for erasure in erasures_of(session, customer_ref):
        raise ContentErased(
            f"customer {customer_ref}'s personal content was erased on "
            f"{erasure.erased_at:%Y-%m-%d %H:%M} UTC by {erasure.erased_by} "
            f"(erasure #{erasure.id}: {erasure.reason}); there is no dossier to make. "
            f"`evidence timeline {customer_ref}` shows the erasure"
        )
