"""The hash chain over every evidence record.

Entry n's hash is SHA-256(hash of entry n-1 || canonical encoding of the record).
The canonical encoding is the record's columns as compact, key-sorted UTF-8 JSON,
including the SHA-256 of every blob it cites, so changing, removing or
reordering anything after the fact breaks the chain from that point on.

A column whose SHA-256 is another column of the same row (``DIGESTED``: a phone
log's raw line and its ``line_sha256``) is not repeated in the encoding: the
digest is, and verification checks that the bytes still hash to it. Entries
written before this rule (they carry the bytes as ``{"base64": ...}``) are
checked as they were written.

Checking the chain is ``evidence.verify.store``'s alone (``evidence verify`` and
``evidence status`` run it); this module only writes it.
"""

from __future__ import annotations

import base64
import datetime as dt
import enum
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from evidence.store.models import Base, LedgerEntry
from evidence.timeutil import iso_utc, utcnow

GENESIS = "0" * 64
# The canonical JSON; one encoder, built once (json.dumps with options builds one per call).
_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)

B = TypeVar("B", bound=Base)


@dataclass(frozen=True)
class ChainHead:
    seq: int  # number of entries; 0 for an empty chain
    hash: str


_PLAIN = (str, int, float, bool, type(None))


def _encode(value: Any) -> Any:
    if type(value) in _PLAIN:
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


_COLUMN_KEYS: dict[type[Base], tuple[str, tuple[str, ...]]] = {}

# table -> (bytes column left out of the encoding, the column holding its SHA-256)
DIGESTED: dict[str, tuple[str, str]] = {"source_lines": ("raw", "line_sha256")}


def _column_keys(model: type[Base]) -> tuple[str, tuple[str, ...]]:
    # Mappers do not change once configured; bulk imports call this per row.
    known = _COLUMN_KEYS.get(model)
    if known is None:
        mapper = inspect(model)
        table: str = mapper.local_table.name  # type: ignore[attr-defined]
        known = _COLUMN_KEYS[model] = (table, tuple(c.key for c in mapper.columns))
    return known


def row_fields(
    model: type[Base], values: Mapping[str, Any], *, legacy: bool = False, erased: bool = False
) -> dict[str, Any]:
    """The canonical fields of a row given as a mapping (as for a bulk insert).

    A ``DIGESTED`` column is left out; its digest column is kept when the bytes
    hash to it, and otherwise replaced by what they do hash to, so a changed
    byte shows as a changed digest. ``legacy`` encodes such a row as entries
    written before that rule did (the bytes in base64). ``erased``: the row's entry
    was redacted by an erasure (``evidence.records.erasure``), which empties the bytes but
    keeps their digest, so empty bytes stand for the digest as recorded.
    """
    table, keys = _column_keys(model)
    digested = DIGESTED.get(table)
    if legacy and digested is not None:
        fields: dict[str, Any] = {"_table": table}
        for key in keys:
            value = values.get(key)
            fields[key] = value if type(value) in _PLAIN else _encode(value)
        return fields
    fields = _fields_function(model)(values)
    if digested is not None:
        data_key, digest_key = digested
        data = values.get(data_key)
        actual = hashlib.sha256(data).hexdigest() if data is not None else None
        if erased and data is not None and len(data) == 0:
            actual = fields[digest_key]
        if actual != fields[digest_key]:
            fields[digest_key] = {"sha256 of the bytes": actual}
    return fields


_FIELDS: dict[type[Base], Callable[[Mapping[str, Any]], dict[str, Any]]] = {}


def _python_type(column_type: Any) -> type | None:
    try:
        return column_type.python_type  # type: ignore[no-any-return]
    except NotImplementedError:
        return None


def _fields_function(model: type[Base]) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """``row_fields`` for one model as one generated function: one dict display, no loop.

    Bulk imports encode every row; the generic loop cost more than parsing the
    line. The output is the same dict the loop would build.
    """
    known = _FIELDS.get(model)
    if known is not None:
        return known
    table, keys = _column_keys(model)
    digested = DIGESTED.get(table)
    columns = inspect(model).columns
    items = [f'"_table": {table!r}']
    for key in keys:
        if digested is not None and key == digested[0]:
            continue
        python_type = _python_type(columns[key].type)
        if python_type is dt.datetime:
            # The usual case first; anything else (None, or a value of another type)
            # goes through _encode like every other column.
            items.append(
                f"{key!r}: (_iso_utc(_x) if type(_x := get({key!r})) is _datetime "
                "else _x if _x is None else _encode(_x))"
            )
        else:
            items.append(f"{key!r}: (_x if type(_x := get({key!r})) in _PLAIN else _encode(_x))")
    source = "def fields(values):\n    get = values.get\n    return {" + ", ".join(items) + "}\n"
    namespace: dict[str, Any] = {
        "_PLAIN": frozenset(_PLAIN),
        "_encode": _encode,
        "_iso_utc": iso_utc,
        "_datetime": dt.datetime,
    }
    exec(compile(source, f"<row_fields {table}>", "exec"), namespace)  # our own text
    function: Callable[[Mapping[str, Any]], dict[str, Any]] = namespace["fields"]
    _FIELDS[model] = function
    return function


def is_legacy_payload(table: str, fields: Mapping[str, Any]) -> bool:
    """Whether a stored payload of ``table`` still carries a ``DIGESTED`` column's bytes."""
    digested = DIGESTED.get(table)
    return digested is not None and digested[0] in fields


def payload_for_rows(
    model: type[Base],
    values: Mapping[str, Any],
    children: Sequence[tuple[type[Base], Mapping[str, Any]]] = (),
) -> str:
    """Same encoding as ``canonical_payload`` for rows inserted without the ORM."""
    fields = row_fields(model, values)
    if children:
        fields["_children"] = [row_fields(m, v) for m, v in children]
    return _JSON.encode(fields)


def canonical_payload(obj: Base, children: Sequence[Base] = ()) -> str:
    """The record's columns (and its child rows', e.g. an email's attachments) as JSON."""
    fields = _fields(obj)
    if children:
        fields["_children"] = [_fields(child) for child in children]
    return _JSON.encode(fields)


def entry_hash(prev_hash: str, payload: str) -> str:
    return hashlib.sha256(bytes.fromhex(prev_hash) + payload.encode("utf-8")).hexdigest()


def chain_head(session: Session) -> ChainHead:
    row = session.execute(
        select(LedgerEntry.seq, LedgerEntry.entry_hash).order_by(LedgerEntry.seq.desc()).limit(1)
    ).first()
    if row is None:
        return ChainHead(0, GENESIS)
    return ChainHead(int(row[0]), str(row[1]))


def add(session: Session, obj: B) -> B:
    """Add ``obj`` to the session, flush it (for its id), append it to the chain, return it."""
    session.add(obj)
    session.flush()
    append(session, obj)
    return obj


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
    head: ChainHead | None = session.info.get("ledger_head")
    if head is None:
        head = chain_head(session)
    session.flush()  # ORM-appended entries before ours
    conn = session.connection()
    dialect = conn.dialect
    # Rows go to the driver as they are: the one value that needs converting is
    # converted here exactly as SQLAlchemy would bind it.
    stamp_type = LedgerEntry.__table__.c.appended_at.type
    process = stamp_type.dialect_impl(dialect).bind_processor(dialect)
    now = utcnow()
    stamp = process(now) if process is not None else now
    rows = []
    seq, prev = head.seq, head.hash
    for record_type, record_id, payload in entries:
        seq += 1
        new_hash = hashlib.sha256(bytes.fromhex(prev) + payload.encode("utf-8")).hexdigest()
        rows.append((seq, record_type, record_id, payload, prev, new_hash, stamp))
        prev = new_hash
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    conn.exec_driver_sql(
        "INSERT INTO ledger (seq, record_type, record_id, payload, prev_hash, entry_hash, "
        f"appended_at) VALUES ({', '.join([mark] * 7)})",
        rows,
    )
    session.info["ledger_head"] = ChainHead(seq, prev)
