"""customer versions: identifiers added or removed from a time on, with the reason

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 20:30:00.000000

A customer's addresses and numbers change (a number moves to someone else, an
address is added after a complaint). ``evidence customer update`` records each
change as a new version, valid from a time, never an overwrite: both tables are
append-only and each change is chained in the ledger. An erasure may blank the
names, reasons and identifiers they hold (``evidence.store.guards.ERASURE_PATHS``).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from evidence.store.guards import (
    drop_append_only,
    drop_erasure_paths,
    install_append_only,
    install_erasure_paths,
)
from evidence.store.types import UTCDateTime

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here on purpose: a migration must not change when the models do.
APPEND_ONLY_TABLES = ("customer_changes", "customer_change_identifiers")


def upgrade() -> None:
    op.create_table(
        "customer_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("valid_from", UTCDateTime(), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("changed_by", sa.String(length=300), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("customer_changes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_customer_changes_customer_id"), ["customer_id"])
    op.create_table(
        "customer_change_identifiers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("change_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("email", "phone", name="identifier_kind", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("value", sa.String(length=320), nullable=False),
        sa.Column("raw", sa.String(length=320), nullable=False),
        sa.ForeignKeyConstraint(["change_id"], ["customer_changes.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("customer_change_identifiers", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_customer_change_identifiers_change_id"), ["change_id"]
        )
        batch_op.create_index(batch_op.f("ix_customer_change_identifiers_value"), ["value"])
    install_append_only(op, APPEND_ONLY_TABLES)
    install_erasure_paths(op, APPEND_ONLY_TABLES)


def downgrade() -> None:
    drop_erasure_paths(op, APPEND_ONLY_TABLES)
    drop_append_only(op, APPEND_ONLY_TABLES)
    op.drop_table("customer_change_identifiers")
    op.drop_table("customer_changes")
