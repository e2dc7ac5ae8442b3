"""data protection: legal holds, closing cases, and erasure with a chained tombstone

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26 10:30:00.000000

Evidence tables stay append-only. The one exception (see
``evidence.store.guards.ERASURE_PATHS`` and VERIFYING.md) lets an erasure blank
the personal content of rows that a chained tombstone row already names:
a blob's bytes, a redacted ledger payload, an email's headers, an attachment's
or recording's file name, a phone-system line's bytes and the numbers and names
parsed from it. Every other change is still refused.
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

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here on purpose: a migration must not change when the models do.
APPEND_ONLY_TABLES = ("legal_holds", "erasures", "erased_blobs", "erased_entries")
ERASABLE_TABLES = (
    "blobs",
    "ledger",
    "emails",
    "email_addresses",
    "email_attachments",
    "recordings",
    "source_lines",
    "cdr_records",
    "queue_events",
    "call_records",
)


def upgrade() -> None:
    # cases is bookkeeping (not append-only): nullable columns are added in place.
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("closed_at", UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("closed_by", sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column("close_reason", sa.Text(), nullable=True))

    op.create_table(
        "legal_holds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("customer_ref", sa.String(length=100), nullable=False),
        sa.Column("case_ref", sa.String(length=200), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=300), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("releases_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["releases_id"], ["legal_holds.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("legal_holds", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_legal_holds_customer_ref"), ["customer_ref"], unique=False
        )

    op.create_table(
        "erasures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_ref", sa.String(length=100), nullable=False),
        sa.Column("erased_at", UTCDateTime(), nullable=False),
        sa.Column("erased_by", sa.String(length=300), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("records", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("erasures", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_erasures_customer_ref"), ["customer_ref"], unique=False
        )

    op.create_table(
        "erased_blobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("erasure_id", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["erasure_id"], ["erasures.id"]),
        sa.ForeignKeyConstraint(["sha256"], ["blobs.sha256"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sha256"),
    )
    with op.batch_alter_table("erased_blobs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_erased_blobs_erasure_id"), ["erasure_id"], unique=False
        )

    op.create_table(
        "erased_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("erasure_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("leaf_hash", sa.String(length=64), nullable=False),
        sa.Column("redacted_sha256", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["erasure_id"], ["erasures.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("seq"),
    )
    with op.batch_alter_table("erased_entries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_erased_entries_erasure_id"), ["erasure_id"], unique=False
        )

    install_append_only(op, APPEND_ONLY_TABLES)
    install_erasure_paths(op, ERASABLE_TABLES)


def downgrade() -> None:
    drop_erasure_paths(op, ERASABLE_TABLES)
    drop_append_only(op, APPEND_ONLY_TABLES)
    for table in ("erased_entries", "erased_blobs", "erasures", "legal_holds"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            for index in {
                "erased_entries": ["ix_erased_entries_erasure_id"],
                "erased_blobs": ["ix_erased_blobs_erasure_id"],
                "erasures": ["ix_erasures_customer_ref"],
                "legal_holds": ["ix_legal_holds_customer_ref"],
            }[table]:
                batch_op.drop_index(index)
        op.drop_table(table)
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_column("close_reason")
        batch_op.drop_column("closed_by")
        batch_op.drop_column("closed_at")
