"""Database-side guards that make evidence tables append-only. Used by the migrations.

Every migration that adds an evidence table calls ``install_append_only`` for it,
so the database itself refuses UPDATE and DELETE (and TRUNCATE on PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

PG_FUNCTION = """
CREATE OR REPLACE FUNCTION evidence_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'evidence is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql
"""


def trigger_names(dialect: str, table: str) -> list[str]:
    if dialect == "sqlite":
        return [f"evidence_append_only_{table}_update", f"evidence_append_only_{table}_delete"]
    return [f"evidence_append_only_{table}_row", f"evidence_append_only_{table}_truncate"]


def install_append_only(op: Any, tables: Iterable[str]) -> None:
    """Create the refusing triggers on ``tables`` (``op`` is alembic's ``op``)."""
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(PG_FUNCTION)
    for table in tables:
        if dialect == "sqlite":
            for action in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER evidence_append_only_{table}_{action.lower()} "
                    f"BEFORE {action} ON {table} BEGIN "
                    f"SELECT RAISE(ABORT, 'evidence is append-only: {action} on {table} refused'); "
                    "END"
                )
        elif dialect == "postgresql":
            op.execute(
                f"CREATE TRIGGER evidence_append_only_{table}_row BEFORE UPDATE OR DELETE "
                f"ON {table} FOR EACH ROW EXECUTE FUNCTION evidence_append_only()"
            )
            op.execute(
                f"CREATE TRIGGER evidence_append_only_{table}_truncate BEFORE TRUNCATE "
                f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION evidence_append_only()"
            )
        else:
            raise RuntimeError(f"evidence supports SQLite and PostgreSQL, not {dialect}")


def drop_append_only(op: Any, tables: Iterable[str]) -> None:
    dialect = op.get_bind().dialect.name
    for table in tables:
        for name in trigger_names(dialect, table):
            if dialect == "sqlite":
                op.execute(f"DROP TRIGGER IF EXISTS {name}")
            else:
                op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")


# --- the one controlled exception: erasure (GDPR Art. 17) ---------------------------------
#
# An erasure may blank personal content, and nothing else, of rows that a chained
# tombstone names. For each table below the UPDATE trigger lets a row change only
# when (a) every "kept" column is unchanged, (b) every "erased" column takes its
# erased value, and (c) the tombstone row the condition names already exists:
# ``erased_blobs`` for a blob, ``erased_entries`` for a ledger entry and for the
# record (and child rows) that entry chained. DELETE and TRUNCATE stay refused.
# Frozen: a migration that changes these columns must change this and say so.

EMPTY_BYTES = b""


class ErasurePath:
    def __init__(
        self, kept: tuple[str, ...], erased: dict[str, str | bytes | None], tombstone: str
    ) -> None:
        self.kept = kept
        self.erased = erased
        self.tombstone = tombstone  # SQL condition on OLD, true when the tombstone exists


def _entry_of(record_type: str, id_column: str) -> str:
    return (
        "EXISTS (SELECT 1 FROM erased_entries e JOIN ledger l ON l.seq = e.seq "
        f"WHERE l.record_type = '{record_type}' AND l.record_id = CAST(OLD.{id_column} AS TEXT))"
    )


ERASURE_PATHS: dict[str, ErasurePath] = {
    "blobs": ErasurePath(
        kept=("sha256", "size", "stored_at"),
        erased={"data": EMPTY_BYTES},
        tombstone="EXISTS (SELECT 1 FROM erased_blobs e WHERE e.sha256 = OLD.sha256)",
    ),
    "ledger": ErasurePath(
        kept=("seq", "record_type", "record_id", "prev_hash", "entry_hash", "appended_at"),
        erased={},  # the payload becomes the redacted record; erased_entries pins its hash
        tombstone="EXISTS (SELECT 1 FROM erased_entries e WHERE e.seq = OLD.seq)",
    ),
    "emails": ErasurePath(
        kept=(
            "id",
            "raw_sha256",
            "content_key",
            "message_id_reused",
            "date_header",
            "date_header_offset",
            "date_header_raw",
            "received_at",
            "received_source",
            "direction",
            "parse_defects",
            "imported_at",
            "import_run_id",
        ),
        erased={
            "message_id": None,
            "in_reply_to": None,
            "references": None,
            "from_addr": None,
            "from_display": None,
            "to_display": None,
            "cc_display": None,
            "subject": None,
            "source": "",
        },
        tombstone=_entry_of("emails", "id"),
    ),
    "email_addresses": ErasurePath(
        kept=("id", "email_id", "role"),
        erased={"address": ""},
        tombstone=_entry_of("emails", "email_id"),
    ),
    "email_attachments": ErasurePath(
        kept=("id", "email_id", "part", "content_type", "size", "sha256"),
        erased={"filename": None},
        tombstone=_entry_of("emails", "email_id"),
    ),
    # A message's SMTP envelope (migration 0015): the sender's and recipients' addresses.
    "smtp_deliveries": ErasurePath(
        kept=(
            "id",
            "email_id",
            "quarantine_id",
            "received_at",
            "helo",
            "peer",
            "peer_port",
            "tls",
            "listener",
            "size",
            "import_run_id",
        ),
        erased={"mail_from": "", "rcpt_to": ""},
        tombstone=_entry_of("smtp_deliveries", "id"),
    ),
    "recordings": ErasurePath(
        kept=("id", "uniqueid", "content_type", "size", "duration", "sha256", "imported_at"),
        erased={"filename": ""},
        tombstone=_entry_of("recordings", "id"),
    ),
    # A phone-system line: its bytes, and the numbers and names parsed from it.
    "source_lines": ErasurePath(
        kept=(
            "id",
            "format",
            "line_sha256",
            "source",
            "line_number",
            "imported_at",
            "import_run_id",
        ),
        erased={"raw": EMPTY_BYTES},
        tombstone=_entry_of("source_lines", "id"),
    ),
    "cdr_records": ErasurePath(
        kept=(
            "id",
            "source_line_id",
            "uniqueid",
            "linkedid",
            "dcontext",
            "channel",
            "dstchannel",
            "lastapp",
            "start_local",
            "started_at",
            "answered_at",
            "ended_at",
            "time_flag",
            "duration",
            "billsec",
            "disposition",
        ),
        erased={
            "src": "",
            "dst": "",
            "src_e164": None,
            "dst_e164": None,
            "clid": "",
            "lastdata": "",
            "userfield": None,
        },
        tombstone=_entry_of("source_lines", "source_line_id"),
    ),
    "queue_events": ErasurePath(
        kept=("id", "source_line_id", "at", "uniqueid", "queue", "agent", "event"),
        erased={"data": "", "caller_e164": None},
        tombstone=_entry_of("source_lines", "source_line_id"),
    ),
    "call_records": ErasurePath(
        kept=(
            "id",
            "source_line_id",
            "header_line_id",
            "format",
            "mapping_sha256",
            "call_id",
            "linked_id",
            "direction",
            "direction_recorded",
            "context",
            "start_local",
            "started_at",
            "answered_at",
            "ended_at",
            "time_flag",
            "queue",
            "agent",
            "queue_wait",
            "ring_time",
            "talk_time",
            "duration",
            "outcome",
            "outcome_recorded",
        ),
        erased={
            "caller": "",
            "caller_e164": None,
            "caller_name": None,
            "callee": "",
            "callee_e164": None,
        },
        tombstone=_entry_of("source_lines", "source_line_id"),
    ),
    # A customer as added and its identifiers (migration 0013): the name, addresses, numbers.
    "customers": ErasurePath(
        kept=("id", "ref", "created_at"),
        erased={"name": ""},
        tombstone=_entry_of("customers", "id"),
    ),
    "customer_identifiers": ErasurePath(
        kept=("id", "customer_id", "kind"),
        erased={"value": "", "raw": ""},
        tombstone=_entry_of("customer_identifiers", "id"),
    ),
    # A customer's versions (migration 0011): the names, reasons and identifiers they hold.
    "customer_changes": ErasurePath(
        kept=("id", "customer_id", "valid_from", "changed_by", "recorded_at"),
        erased={"name": None, "reason": ""},
        tombstone=_entry_of("customer_changes", "id"),
    ),
    "customer_change_identifiers": ErasurePath(
        kept=("id", "change_id", "action", "kind"),
        erased={"value": "", "raw": ""},
        tombstone=_entry_of("customer_changes", "change_id"),
    ),
}


def _erasure_condition(dialect: str, path: ErasurePath) -> str:
    same = "IS" if dialect == "sqlite" else "IS NOT DISTINCT FROM"
    parts = [f'NEW."{c}" {same} OLD."{c}"' for c in path.kept]
    for column, value in path.erased.items():
        if value is None:
            parts.append(f'NEW."{column}" IS NULL')
        elif isinstance(value, bytes):
            length = "length" if dialect == "sqlite" else "octet_length"
            parts.append(f'{length}(NEW."{column}") = 0')
        else:
            parts.append(f"NEW.\"{column}\" = '{value}'")
    parts.append(path.tombstone)
    return " AND ".join(parts)


def erasure_trigger_sql(table: str) -> str:
    """SQLite: the UPDATE trigger of ``table`` with its erasure exception."""
    condition = _erasure_condition("sqlite", ERASURE_PATHS[table])
    return (
        f"CREATE TRIGGER evidence_append_only_{table}_update BEFORE UPDATE ON {table} "
        f"WHEN NOT ({condition}) BEGIN "
        f"SELECT RAISE(ABORT, 'evidence is append-only: UPDATE on {table} refused'); END"
    )


def erasure_function_name(table: str) -> str:
    return f"evidence_erasure_{table}"


def erasure_function_body(table: str) -> str:
    """PostgreSQL: the body of the row trigger function of ``table``."""
    condition = _erasure_condition("postgresql", ERASURE_PATHS[table])
    return (
        f"\nBEGIN\n    IF TG_OP = 'UPDATE' AND {condition} THEN\n        RETURN NEW;\n    END IF;\n"
        "    RAISE EXCEPTION 'evidence is append-only: % on % refused', TG_OP, TG_TABLE_NAME\n"
        "        USING ERRCODE = 'insufficient_privilege';\nEND;\n"
    )


def same_sql(a: str, b: str) -> bool:
    return " ".join(a.split()) == " ".join(b.split())


def install_erasure_paths(op: Any, tables: Iterable[str]) -> None:
    """Replace the refusing UPDATE triggers of ``tables`` by ones with the erasure exception."""
    dialect = op.get_bind().dialect.name
    for table in tables:
        if dialect == "sqlite":
            op.execute(f"DROP TRIGGER evidence_append_only_{table}_update")
            op.execute(erasure_trigger_sql(table))
        else:
            function = erasure_function_name(table)
            op.execute(
                f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger AS "
                f"$${erasure_function_body(table)}$$ LANGUAGE plpgsql"
            )
            op.execute(f"DROP TRIGGER evidence_append_only_{table}_row ON {table}")
            op.execute(
                f"CREATE TRIGGER evidence_append_only_{table}_row BEFORE UPDATE OR DELETE "
                f"ON {table} FOR EACH ROW EXECUTE FUNCTION {function}()"
            )


def drop_erasure_paths(op: Any, tables: Iterable[str]) -> None:
    """Back to the plain refusing triggers (the downgrade of ``install_erasure_paths``)."""
    dialect = op.get_bind().dialect.name
    tables = list(tables)
    drop_append_only(op, tables)
    install_append_only(op, tables)
    if dialect == "postgresql":
        for table in tables:
            op.execute(f"DROP FUNCTION IF EXISTS {erasure_function_name(table)}()")
