"""The one verifier of a store: ``evidence verify`` and ``evidence status`` both run it.

0. the database file itself (SQLite: ``PRAGMA integrity_check``, or ``quick_check``
   for ``status``); damage raises ``StoreDamaged`` (exit 8), it is not a finding;
1. every blob's SHA-256 and size (``status`` leaves the bytes unread and says so);
2. the ledger: no entry missing, the hash chain, every leaf, the Merkle root;
3. every evidence row against the canonical encoding its ledger entry recorded
   (changed, deleted and unlogged rows are named), and every cited blob present;
4. the append-only triggers, present and enabled, on SQLite and PostgreSQL;
5. every checkpoint: signature, trusted key, and its root equal to the root of
   the current tree's first ``tree_size`` leaves (so the log is a strict
   extension of everything ever signed).

Memory stays bounded by one digest per evidence row; bytes are streamed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from evidence.config import Config
from evidence.errors import StoreDamaged
from evidence.store import ledger, merkle
from evidence.store.checkpoints import parse_body, signature_valid, trusted_key_ids
from evidence.store.db import Store, store_place
from evidence.store.guards import (
    ERASURE_PATHS,
    erasure_function_body,
    erasure_function_name,
    erasure_trigger_sql,
    same_sql,
    trigger_names,
)
from evidence.store.models import (
    APPEND_ONLY_TABLES,
    AuditEvent,
    Base,
    Blob,
    Checkpoint,
    ErasedBlob,
    ErasedEntry,
    Erasure,
    LedgerEntry,
)
from evidence.timeutil import iso_utc
from evidence.verify.report import Report

# Tables whose every row is a ledger record (or a child row inside one).
UNLOGGED = {"blobs", "ledger", "checkpoints"}
LOGGED_TABLES = tuple(t for t in APPEND_ONLY_TABLES if t not in UNLOGGED)


def _short(digest: str) -> str:
    return digest[:16] + "…"


def _mappers() -> dict[str, Any]:
    return {str(m.local_table.name): m for m in Base.registry.mappers}  # type: ignore[attr-defined]


def _canonical(fields: dict[str, Any]) -> bytes:
    text_ = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text_.encode("utf-8")).digest()


def _pk_of(mapper: Any, values: dict[str, Any]) -> str:
    return "/".join(str(values.get(c.key)) for c in mapper.primary_key)


@dataclass
class _Logged:
    seq: int
    digest: bytes
    keys: frozenset[str]  # the columns its payload names (shared between rows: interned)
    legacy: bool = False  # written with a DIGESTED column's bytes in it (ledger.row_fields)
    erased: bool = False  # its entry was redacted by an erasure (ledger.row_fields)


_KEY_SETS: dict[frozenset[str], frozenset[str]] = {}


def _keys_of(fields: dict[str, Any]) -> frozenset[str]:
    keys = frozenset(fields)
    return _KEY_SETS.setdefault(keys, keys)


def verify_store(store: Store, *, read_blobs: bool = True) -> Report:
    """Every check of the store; ``read_blobs=False`` (``evidence status``) leaves out the
    one that reads every stored byte (and runs SQLite's quick check, not its integrity
    check) and lists what it left out in ``Report.not_checked``."""
    url = make_url(store.config.database_url).render_as_string(hide_password=True)
    report = Report("store", url)
    with store.session() as session:
        _verify_database(session, store, report, full=read_blobs)
        checkpoints = list(session.scalars(select(Checkpoint).order_by(Checkpoint.id)))
        redacted = {
            int(e.seq): e for e in session.scalars(select(ErasedEntry).order_by(ErasedEntry.seq))
        }
        index = _verify_ledger(session, checkpoints, report, redacted)
        cited = _verify_rows(session, index, report)
        if read_blobs:
            _verify_blobs(session, cited, report)
        else:
            _verify_blobs_cited(session, cited, report)
        _report_erasures(session, report)
        _verify_triggers(session, report)
        _verify_checkpoint_signatures(store.config, checkpoints, report)
        _verify_exported_checkpoints(session, checkpoints, report)
    return report


# --- 0. the database file ------------------------------------------------------------


def _verify_database(session: Session, store: Store, report: Report, *, full: bool) -> None:
    """SQLite's own check of its file; a damaged file is not a finding but damage (exit 8).

    PostgreSQL has no such check built in: a corrupted page shows when it is read,
    and reading every row below does that (``database_failure`` names it damage).
    """
    if session.get_bind().dialect.name != "sqlite":
        return
    pragma = "integrity_check" if full else "quick_check"
    problems = [str(row[0]) for row in session.execute(text(f"PRAGMA {pragma}"))]
    if problems != ["ok"]:
        # Cut before any quoted value (stored content); SQLite heads a page's problem with
        # "*** in database main ***" on a line of its own: one line, without the heading.
        first = problems[0].split("'", 1)[0].split('"', 1)[0]
        first = " ".join(first.replace("*** in database main ***", "").split())
        raise StoreDamaged(
            f"SQLite's {pragma.replace('_', ' ')} found {len(problems)} "
            f"problem{'s' if len(problems) != 1 else ''}, the first: {first}",
            store_place(store.config.database_url),
        )
    report.checks.append(f"database file: SQLite's {pragma.replace('_', ' ')} found no damage")


# --- 2. the ledger ---------------------------------------------------------------------


@dataclass
class _SignedRoots:
    """The checkpoints by the tree size they signed, compared with the log as it is replayed."""

    by_size: dict[int, list[Checkpoint]]
    matched: set[int] = field(default_factory=set)
    last_good: int = 0  # the largest size whose checkpoint still matches

    @classmethod
    def of(cls, checkpoints: list[Checkpoint]) -> _SignedRoots:
        by_size: dict[int, list[Checkpoint]] = {}
        for cp in checkpoints:
            by_size.setdefault(cp.tree_size, []).append(cp)
        return cls(by_size)

    def compare(self, frontier: merkle.Frontier, report: Report) -> None:
        """Every checkpoint that signed the log's first ``frontier.size`` entries."""
        size = frontier.size
        for cp in self.by_size.get(size, []):
            self.matched.add(cp.id)
            if frontier.root().hex() == cp.root_hash:
                self.last_good = max(self.last_good, size)
                continue
            where = (
                f"entry #{size} was"
                if self.last_good + 1 == size
                else f"one of entries #{self.last_good + 1}–#{size} was"
            )
            report.fail(
                f"checkpoint #{cp.id}",
                f"signed root {_short(cp.root_hash)} of the first {size} entries, but "
                f"they now give {_short(frontier.root().hex())}: {where} changed or "
                "replaced after it was signed",
            )


@dataclass
class _Replay:
    """Where the replay of the ledger stands after the entries read so far."""

    frontier: merkle.Frontier = field(default_factory=merkle.Frontier)
    expected_seq: int = 1
    prev_hash: str = ledger.GENESIS
    first_gap: int | None = None
    chain_breaks: int = 0


def _verify_ledger(
    session: Session,
    checkpoints: list[Checkpoint],
    report: Report,
    redacted: dict[int, ErasedEntry],
) -> dict[str, dict[str, _Logged]]:
    mappers = _mappers()
    signed = _SignedRoots.of(checkpoints)
    replay = _Replay()
    index: dict[str, dict[str, _Logged]] = {}
    signed.compare(replay.frontier, report)
    for seq, record_type, record_id, payload, stored_prev, stored_hash in _ledger_rows(session):
        seq = int(seq)
        _check_link(replay, seq, stored_prev, report)
        erased = redacted.get(seq)
        intact = _content_intact(
            seq, record_type, record_id, payload, stored_prev, stored_hash, erased, report
        )
        if not intact:
            replay.chain_breaks += 1
        replay.prev_hash = stored_hash
        replay.expected_seq = seq + 1
        replay.frontier.append(_leaf_of(payload, erased))
        if replay.first_gap is None:
            signed.compare(replay.frontier, report)
        _index_payload(
            seq, record_type, record_id, payload, mappers, index, report, erased is not None
        )
    size = replay.expected_seq - 1
    _report_ledger(replay, size, report)
    _report_unmatched_checkpoints(checkpoints, signed.matched, size, replay.first_gap, report)
    _report_checkpoints_grew(checkpoints, report)
    return index


def _ledger_rows(session: Session) -> Iterable[Any]:
    return session.execute(
        select(
            LedgerEntry.seq,
            LedgerEntry.record_type,
            LedgerEntry.record_id,
            LedgerEntry.payload,
            LedgerEntry.prev_hash,
            LedgerEntry.entry_hash,
        )
        .order_by(LedgerEntry.seq)
        .execution_options(yield_per=2000)
    )


def _check_link(replay: _Replay, seq: int, stored_prev: str, report: Report) -> None:
    """Entries missing before ``seq``, or else its link to the entry before it."""
    if seq != replay.expected_seq:
        expected = replay.expected_seq
        report.fail(
            f"ledger entries #{expected}–#{seq - 1}"
            if seq - 1 > expected
            else f"ledger entry #{expected}",
            "missing: deleted from the log",
        )
        if replay.first_gap is None:
            replay.first_gap = expected
    elif stored_prev != replay.prev_hash:
        replay.chain_breaks += 1
        report.fail(
            f"ledger entry #{seq}",
            f"its link to entry #{seq - 1} is broken (prev_hash changed)",
        )


def _content_intact(
    seq: int,
    record_type: str,
    record_id: str,
    payload: str,
    stored_prev: str,
    stored_hash: str,
    erased: ErasedEntry | None,
    report: Report,
) -> bool:
    """Whether the entry's payload is the one its hash (or its erasure) recorded."""
    if erased is not None:
        # Content erased (GDPR Art. 17): the payload is the redacted record its
        # tombstone pinned; the original leaf hash stands in the tree, so every
        # checkpoint signed before the erasure still matches.
        if hashlib.sha256(payload.encode("utf-8")).hexdigest() != erased.redacted_sha256:
            report.fail(
                f"ledger entry #{seq}",
                f"its redacted payload is not the one erasure #{erased.erasure_id} recorded",
            )
            return False
    elif ledger.entry_hash(stored_prev, payload) != stored_hash:
        report.fail(
            f"ledger entry #{seq}",
            f"its hash does not match its content ({record_type}/{record_id} was changed "
            "in the log)",
        )
        return False
    return True


def _leaf_of(payload: str, erased: ErasedEntry | None) -> bytes:
    """The entry's leaf in the Merkle tree: an erased entry keeps its original leaf."""
    if erased is not None:
        return bytes.fromhex(erased.leaf_hash)
    return merkle.leaf_hash(payload.encode("utf-8"))


def _report_ledger(replay: _Replay, size: int, report: Report) -> None:
    report.facts["tree_size"] = size
    report.facts["root"] = replay.frontier.root().hex() if replay.first_gap is None else None
    if replay.first_gap is None and replay.chain_breaks == 0:
        report.checks.append(
            f"ledger: {size} entries, none missing, hash chain intact; "
            f"Merkle root {replay.frontier.root().hex()}"
        )


def _report_unmatched_checkpoints(
    checkpoints: list[Checkpoint],
    matched: set[int],
    size: int,
    first_gap: int | None,
    report: Report,
) -> None:
    """Checkpoints the replay never reached: the log was truncated, or has a gap before them."""
    for cp in checkpoints:
        if cp.id in matched:
            continue
        if cp.tree_size > size:
            removed = (
                f"entry #{cp.tree_size} was"
                if cp.tree_size == size + 1
                else f"entries #{size + 1}–#{cp.tree_size} were"
            )
            report.fail(
                f"checkpoint #{cp.id}",
                f"signed {cp.tree_size} entries but the log now has {size}: "
                f"{removed} removed (the log was truncated)",
            )
        else:
            report.fail(
                f"checkpoint #{cp.id}",
                f"signed {cp.tree_size} entries, which cannot be recomputed: "
                f"ledger entry #{first_gap} is missing",
            )


def _report_checkpoints_grew(checkpoints: list[Checkpoint], report: Report) -> None:
    mismatched = {f.subject for f in report.failures} & {
        f"checkpoint #{cp.id}" for cp in checkpoints
    }
    if checkpoints and not mismatched:
        report.checks.append(
            f"checkpoints: the root each of the {len(checkpoints)} signed is the root of the "
            "current log's first entries: the log only grew"
        )


def _index_payload(
    seq: int,
    record_type: str,
    record_id: str,
    payload: str,
    mappers: dict[str, Any],
    index: dict[str, dict[str, _Logged]],
    report: Report,
    erased: bool = False,
) -> None:
    try:
        fields = json.loads(payload)
        if not isinstance(fields, dict):
            raise ValueError("not an object")
    except ValueError:
        report.fail(f"ledger entry #{seq}", "its payload is not the canonical JSON of a record")
        return
    children = fields.pop("_children", [])
    if fields.get("_table") != record_type or record_type not in mappers:
        report.fail(
            f"ledger entry #{seq}",
            f"names {record_type}/{record_id}, but its payload is not a row of that table",
        )
        return
    index.setdefault(record_type, {})[record_id] = _Logged(
        seq,
        _canonical(fields),
        _keys_of(fields),
        ledger.is_legacy_payload(record_type, fields),
        erased,
    )
    for child in children if isinstance(children, list) else []:
        table = child.get("_table") if isinstance(child, dict) else None
        if table not in mappers:
            report.fail(f"ledger entry #{seq}", f"holds a child row of unknown table {table!r}")
            continue
        pk = _pk_of(mappers[table], child)
        index.setdefault(table, {})[pk] = _Logged(
            seq,
            _canonical(child),
            _keys_of(child),
            ledger.is_legacy_payload(table, child),
            erased,
        )


# --- 3. the rows --------------------------------------------------------------------


def _blob_columns(mapper: Any) -> list[str]:
    return [
        column.key
        for column in mapper.columns
        if any(fk.column.table.name == "blobs" for fk in column.foreign_keys)
    ]


def _verify_rows(
    session: Session, index: dict[str, dict[str, _Logged]], report: Report
) -> dict[str, str]:
    """Compare every logged table's rows with the ledger; return cited blob -> citing row."""
    mappers = _mappers()
    cited: dict[str, str] = {}
    total = 0
    bad_before = len(report.failures)
    for table in sorted(set(LOGGED_TABLES) | set(index)):
        mapper = mappers.get(table)
        if mapper is None:
            continue
        logged = index.get(table, {})
        blob_cols = _blob_columns(mapper)
        columns = list(mapper.columns)
        # Plain rows (no ORM objects): the column types still convert values as the ORM does.
        query = select(*columns).order_by(*mapper.primary_key)
        for row in session.execute(query.execution_options(yield_per=2000)):
            values = {c.key: v for c, v in zip(columns, row, strict=True)}
            pk = _pk_of(mapper, values)
            total += 1
            for col in blob_cols:
                if values[col]:
                    cited.setdefault(values[col], f"{table}/{pk}")
            entry = logged.pop(pk, None)
            fields = ledger.row_fields(
                mapper.class_,
                values,
                legacy=entry is not None and entry.legacy,
                erased=entry is not None and entry.erased,
            )
            if entry is None:
                report.fail(
                    f"{table}/{pk}",
                    "is in no ledger entry: the row was added behind the application's back",
                )
            elif entry.digest != _canonical(_as_chained(fields, entry.keys)):
                report.fail(
                    f"{table}/{pk}",
                    f"differs from what ledger entry #{entry.seq} recorded "
                    f"({_changed_fields(session, entry.seq, table, pk, fields)}): "
                    "the row was changed",
                )
        for pk, entry in sorted(logged.items(), key=lambda kv: kv[1].seq):
            report.fail(
                f"{table}/{pk}",
                f"was recorded by ledger entry #{entry.seq} but the row is gone: it was deleted",
            )
    if len(report.failures) == bad_before:
        report.checks.append(f"records: {total} rows match what their ledger entries recorded")
    report.facts["rows"] = total
    return cited


def _as_chained(fields: dict[str, Any], keys: frozenset[str]) -> dict[str, Any]:
    """The row's fields as its entry encoded them: a column the payload does not name was
    added to the schema after the record was chained and must still be empty (NULL), so
    it is left out when it is. (Migrations add columns to evidence tables nullable and
    without a default.)"""
    if keys.issuperset(fields):
        return fields
    return {k: v for k, v in fields.items() if k in keys or v is not None}


def _changed_fields(
    session: Session, seq: int, table: str, pk: str, current: dict[str, Any]
) -> str:
    payload = session.scalar(select(LedgerEntry.payload).where(LedgerEntry.seq == seq))
    recorded: dict[str, Any] = json.loads(payload or "{}")
    if recorded.get("_table") != table:
        mappers = _mappers()
        for child in recorded.get("_children", []):
            if child.get("_table") == table and _pk_of(mappers[table], child) == pk:
                recorded = child
                break
    recorded.pop("_children", None)
    keys = sorted(k for k in set(recorded) | set(current) if recorded.get(k) != current.get(k))
    shown = []
    for key in keys:
        before, after = recorded.get(key), current.get(key)
        shown.append(f"{key}: {_clip(before)} → {_clip(after)}")
    return "; ".join(shown) or "encoding differs"


def _clip(value: Any) -> str:
    text_ = json.dumps(value, ensure_ascii=False)
    return text_ if len(text_) <= 60 else text_[:57] + "…"


# --- 1. the blobs -----------------------------------------------------------------------


def _verify_blobs(session: Session, cited: dict[str, str], report: Report) -> None:
    seen: set[str] = set()
    count = 0
    total_bytes = 0
    bad_before = len(report.failures)
    erased = {
        str(digest): int(erasure_id)
        for digest, erasure_id in session.execute(select(ErasedBlob.sha256, ErasedBlob.erasure_id))
    }
    erased_count = 0
    rows = session.execute(
        select(Blob.sha256, Blob.size, Blob.data)
        .order_by(Blob.sha256)
        .execution_options(yield_per=20)
    )
    for digest, size, data in rows:
        data = bytes(data)
        count += 1
        total_bytes += len(data)
        seen.add(digest)
        if digest in erased:
            if data:
                report.fail(
                    f"blob {_short(digest)}",
                    f"erasure #{erased[digest]} recorded its bytes erased, but they are "
                    "still stored",
                )
            erased_count += 1
            continue
        actual = hashlib.sha256(data).hexdigest()
        where = f" (cited by {cited[digest]})" if digest in cited else ""
        if actual != digest:
            report.fail(
                f"blob {_short(digest)}",
                f"its bytes now hash to {_short(actual)}{where}: the stored bytes were changed",
            )
        elif len(data) != size:
            report.fail(f"blob {_short(digest)}", f"recorded size {size} but has {len(data)} bytes")
    for digest, row in sorted(cited.items(), key=lambda kv: kv[1]):
        if digest not in seen:
            report.fail(f"blob {_short(digest)}", f"cited by {row} but missing: it was deleted")
    if len(report.failures) == bad_before:
        report.checks.append(
            f"blobs: {count} ({total_bytes:,} bytes), every SHA-256 and size match"
            + (f"; {erased_count} erased, as their erasures recorded" if erased_count else "")
        )
    report.facts["blobs"] = count


def _verify_blobs_cited(session: Session, cited: dict[str, str], report: Report) -> None:
    """Every cited blob is stored; the bytes are not read (``evidence status``)."""
    seen: set[str] = set()
    total_bytes = 0
    for digest, size in session.execute(select(Blob.sha256, Blob.size)):
        seen.add(str(digest))
        total_bytes += int(size or 0)
    bad_before = len(report.failures)
    for digest, row in sorted(cited.items(), key=lambda kv: kv[1]):
        if digest not in seen:
            report.fail(f"blob {_short(digest)}", f"cited by {row} but missing: it was deleted")
    if len(report.failures) == bad_before:
        report.checks.append(f"blobs: the {len(cited)} blobs the records cite are all stored")
    report.not_checked.append(
        f"the bytes of the {len(seen)} blobs ({total_bytes:,} bytes) against their SHA-256 and "
        "size: `evidence verify` reads and checks them"
    )
    report.facts["blobs"] = len(seen)


def _report_erasures(session: Session, report: Report) -> None:
    """Erasures are not failures: each is named, with what it removed."""
    rows = []
    for erasure in session.scalars(select(Erasure).order_by(Erasure.id)):
        blobs = session.scalars(
            select(ErasedBlob.sha256).where(ErasedBlob.erasure_id == erasure.id)
        ).all()
        entries = session.scalars(
            select(ErasedEntry.seq).where(ErasedEntry.erasure_id == erasure.id)
        ).all()
        rows.append(
            {
                "id": erasure.id,
                "customer": erasure.customer_ref,
                "erased_at": iso_utc(erasure.erased_at),
                "erased_by": erasure.erased_by,
                "reason": erasure.reason,
                "blobs": list(blobs),
                "ledger_entries": [int(s) for s in entries],
            }
        )
        report.notes.append(
            f"erasure #{erasure.id}: customer {erasure.customer_ref}'s content erased "
            f"{iso_utc(erasure.erased_at)} by {erasure.erased_by} ({erasure.reason}): "
            f"{len(blobs)} blobs removed, {len(entries)} ledger entries redacted "
            "(their original leaf hashes kept and checked)"
        )
    report.facts["erasures"] = rows


# --- 4. the triggers ----------------------------------------------------------------------


def _verify_triggers(session: Session, report: Report) -> None:
    dialect = session.get_bind().dialect.name
    bad_before = len(report.failures)
    expected = {(t, name) for t in APPEND_ONLY_TABLES for name in trigger_names(dialect, t)}
    if dialect == "sqlite":
        found = {
            (str(table), str(name)): str(sql or "")
            for name, table, sql in session.execute(
                text("SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'trigger'")
            )
        }
        for table, name in sorted(expected):
            sql = found.get((table, name))
            action = "UPDATE" if name.endswith("_update") else "DELETE"
            if sql is None:
                report.fail(f"trigger {name}", f"is missing: {table} can be changed unnoticed")
            elif f"BEFORE {action} ON {table}" not in sql or "RAISE(ABORT" not in sql:
                report.fail(f"trigger {name}", f"no longer refuses {action} on {table}")
            elif (
                action == "UPDATE"
                and table in ERASURE_PATHS
                and " WHEN " in " ".join(sql.upper().split())  # unconditional refusal is fine
                and not same_sql(sql, erasure_trigger_sql(table))
            ):
                report.fail(f"trigger {name}", f"allows more than erasure on {table}")
    else:
        rows = session.execute(
            text(
                "SELECT t.tgname, c.relname, t.tgenabled, p.proname, p.prosrc "
                "FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                "JOIN pg_proc p ON p.oid = t.tgfoid WHERE NOT t.tgisinternal"
            )
        )
        found_pg = {(str(r[1]), str(r[0])): (str(r[2]), str(r[3]), str(r[4])) for r in rows}
        for table, name in sorted(expected):
            got = found_pg.get((table, name))
            if got is None:
                report.fail(f"trigger {name}", f"is missing: {table} can be changed unnoticed")
                continue
            enabled, function, source = got
            if enabled not in ("O", "A"):
                report.fail(f"trigger {name}", f"is disabled: {table} can be changed unnoticed")
            elif (
                name.endswith("_row")
                and table in ERASURE_PATHS
                and function != "evidence_append_only"  # refusing everything is fine
            ):
                if function != erasure_function_name(table) or not same_sql(
                    source, erasure_function_body(table)
                ):
                    report.fail(f"trigger {name}", f"allows more than erasure on {table}")
            elif function != "evidence_append_only" or "RAISE EXCEPTION" not in source:
                report.fail(f"trigger {name}", f"no longer refuses changes to {table}")
    if len(report.failures) == bad_before:
        report.checks.append(
            f"triggers: {len(expected)} append-only triggers in place on {len(APPEND_ONLY_TABLES)}"
            " tables"
        )


# --- 5. the checkpoints --------------------------------------------------------------------


def _verify_checkpoint_signatures(
    config: Config, checkpoints: list[Checkpoint], report: Report
) -> None:
    trusted = trusted_key_ids(config)
    bad_before = len(report.failures)
    previous = 0
    for cp in checkpoints:
        subject = f"checkpoint #{cp.id}"
        if not signature_valid(cp.body, cp.signature, cp.public_key):
            report.fail(subject, "its signature does not match its text: it was altered")
            continue
        try:
            body = parse_body(cp.body)
        except ValueError as exc:
            report.fail(subject, str(exc))
            continue
        if body.tree_size != cp.tree_size or body.root != cp.root_hash:
            report.fail(subject, "its columns differ from the text it signed: they were altered")
        if trusted and cp.key_id not in trusted:
            report.fail(
                subject,
                f"is signed by key {_short(cp.key_id)}, which is not trusted here: add its "
                "public key to [checkpoints] trusted_keys if it is a colleague's",
            )
        if cp.tree_size < previous:
            report.fail(subject, f"covers {cp.tree_size} entries, fewer than the one before it")
        previous = max(previous, cp.tree_size)
        if cp.timestamp_token is not None:
            problem = _token_problem(cp.timestamp_token, cp.body.encode("utf-8"))
            if problem:
                report.fail(subject, problem)
    if len(report.failures) == bad_before:
        keys = sorted({_short(cp.key_id) for cp in checkpoints})
        stamped = sum(1 for cp in checkpoints if cp.timestamp_token is not None)
        report.checks.append(
            f"checkpoints: {len(checkpoints)} with valid signatures (key {', '.join(keys) or '-'})"
            f", {stamped} timestamped"
        )
    if checkpoints:
        last = checkpoints[-1]
        report.facts["last_checkpoint"] = {
            "id": last.id,
            "tree_size": last.tree_size,
            "root": last.root_hash,
        }
        unsigned = int(report.facts.get("tree_size", 0)) - last.tree_size
        if unsigned > 0:
            report.notes.append(
                f"{unsigned} ledger entries after checkpoint #{last.id} are not signed yet "
                "(the next import or export signs them)"
            )
    else:
        report.notes.append("no checkpoint has been written yet (the next import writes one)")


def token_imprint(token: bytes) -> tuple[str, bytes, str]:
    """(hash algorithm, message imprint, genTime ISO) of an RFC 3161 token."""
    from asn1crypto import cms, tsp

    info = cms.ContentInfo.load(token)["content"]["encap_content_info"]["content"].parsed
    assert isinstance(info, tsp.TSTInfo)
    imprint = info["message_imprint"]
    return (
        imprint["hash_algorithm"]["algorithm"].native,
        bytes(imprint["hashed_message"].native),
        info["gen_time"].native.isoformat(),
    )


def _token_problem(token: bytes, data: bytes) -> str | None:
    try:
        algorithm, imprint, _when = token_imprint(token)
    except Exception as exc:  # any ASN.1 damage
        return f"its timestamp token is unreadable ({type(exc).__name__})"
    if algorithm != "sha256" or imprint != hashlib.sha256(data).digest():
        return "its timestamp token is for other data than its text"
    return None


def _verify_exported_checkpoints(
    session: Session, checkpoints: Iterable[Checkpoint], report: Report
) -> None:
    """Each export names the checkpoint on its dossier's cover; it must still be here."""
    known = {cp.id: cp for cp in checkpoints}
    events = session.scalars(select(AuditEvent).where(AuditEvent.action == "export"))
    for event in events:
        details = json.loads(event.details or "{}")
        cp_id = details.get("checkpoint_id")
        if cp_id is None:
            continue
        cp = known.get(int(cp_id))
        if cp is None:
            report.fail(
                f"checkpoint #{cp_id}",
                f"printed on the dossier of export #{event.id} but missing from the store: "
                "it was deleted",
            )
        elif cp.root_hash != details.get("root"):
            report.fail(
                f"checkpoint #{cp_id}",
                f"differs from the one printed on the dossier of export #{event.id}",
            )
