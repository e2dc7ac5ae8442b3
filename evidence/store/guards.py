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
