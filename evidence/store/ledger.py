"""The hash chain over every evidence record.

Entry n's hash is SHA-256(hash of entry n-1 || canonical encoding of the record).
The canonical encoding is the record's columns as compact, key-sorted UTF-8 JSON,
including the SHA-256 of every blob it cites, so changing, removing or
reordering anything after the fact breaks the chain from that point on.
"""

from __future__ import annotations

import base64
import datetime as dt
import enum
import functools
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from evidence.store.models import Base, LedgerEntry
from evidence.timeutil import iso_utc, utcnow

GENESIS = "0" * 64


@dataclass(frozen=True)
class ChainHead:
    seq: int  # number of entries; 0 for an empty chain
    hash: str


_PLAIN = (str, int, float, bool, type(None))


def _encode(value: Any) -> Any:
    if type(value) in _PLAIN:  # most values: nothing to do (bulk imports call this a lot)
        return value
    if isinstance(value, dt.datetime):
        return iso_utc(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, bytes | bytearray | memoryview):
        return {"base64": base64.b64encode(bytes(value)).decode("ascii")}
    return value


def record_key(obj: Base) -> tuple[str, str]:
    mapper = inspect(obj).mapper
    pk = mapper.primary_key_from_instance(obj)
    return mapper.local_table.name, "/".join(str(v) for v in pk)  # type: ignore[attr-defined]


def _fields(obj: Base) -> dict[str, Any]:
    mapper = inspect(obj).mapper
    return row_fields(type(obj), {c.key: getattr(obj, c.key) for c in mapper.columns})


@functools.cache
def _layout(model: type[Base]) -> tuple[str, tuple[str, ...]]:
    mapper = inspect(model)
    return mapper.local_table.name, tuple(c.key for c in mapper.columns)  # type: ignore[attr-defined]


def row_fields(model: type[Base], values: Mapping[str, Any]) -> dict[str, Any]:
    """The canonical fields of a row given as a mapping (as for a bulk insert)."""
    table, keys = _layout(model)
    fields: dict[str, Any] = {"_table": table}
    for key in keys:
        fields[key] = _encode(values.get(key))
    return fields


def payload_for_rows(
    model: type[Base],
    values: Mapping[str, Any],
    children: Sequence[tuple[type[Base], Mapping[str, Any]]] = (),
) -> str:
    """Same encoding as ``canonical_payload`` for rows inserted without the ORM."""
    fields = row_fields(model, values)
    if children:
        fields["_children"] = [row_fields(m, v) for m, v in children]
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_payload(obj: Base, children: Sequence[Base] = ()) -> str:
    """The record's columns (and its child rows', e.g. an email's attachments) as JSON."""
    fields = _fields(obj)
    if children:
        fields["_children"] = [_fields(child) for child in children]
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(prev_hash: str, payload: str) -> str:
    return hashlib.sha256(bytes.fromhex(prev_hash) + payload.encode("utf-8")).hexdigest()


def chain_head(session: Session) -> ChainHead:
    row = session.execute(
        select(LedgerEntry.seq, LedgerEntry.entry_hash).order_by(LedgerEntry.seq.desc()).limit(1)
    ).first()
    if row is None:
        return ChainHead(0, GENESIS)
    return ChainHead(int(row[0]), str(row[1]))


def append(session: Session, obj: Base, children: Sequence[Base] = ()) -> LedgerEntry:
    """Append ``obj`` (already flushed, so it has its id) to the chain.

    The caller holds the writer lock (``Store.writing``), so the head read here
    is still the head when this transaction commits.
    """
    head: ChainHead | None = session.info.get("ledger_head")
    if head is None:
        head = chain_head(session)
    table, key = record_key(obj)
    payload = canonical_payload(obj, children)
    new_hash = entry_hash(head.hash, payload)
    entry = LedgerEntry(
        seq=head.seq + 1,
        record_type=table,
        record_id=key,
        payload=payload,
        prev_hash=head.hash,
        entry_hash=new_hash,
        appended_at=utcnow(),
    )
    session.add(entry)
    session.info["ledger_head"] = ChainHead(entry.seq, new_hash)
    return entry


def append_payloads(session: Session, entries: Sequence[tuple[str, str, str]]) -> None:
    """Chain many ``(record_type, record_id, payload)`` at once, in order (bulk imports).

    Writes with one executemany; the caller holds the writer lock, as for ``append``.
    """
    if not entries:
        return
    from sqlalchemy import insert

    head: ChainHead | None = session.info.get("ledger_head")
    if head is None:
        head = chain_head(session)
    now = utcnow()
    rows = []
    seq, prev = head.seq, head.hash
    for record_type, record_id, payload in entries:
        seq += 1
        new_hash = entry_hash(prev, payload)
        rows.append(
            {
                "seq": seq,
                "record_type": record_type,
                "record_id": record_id,
                "payload": payload,
                "prev_hash": prev,
                "entry_hash": new_hash,
                "appended_at": now,
            }
        )
        prev = new_hash
    session.flush()  # ORM-appended entries before ours
    session.execute(insert(LedgerEntry.__table__), rows)  # type: ignore[arg-type]
    session.info["ledger_head"] = ChainHead(seq, prev)
