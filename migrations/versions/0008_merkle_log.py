"""merkle log: signed checkpoints of the ledger's RFC 6962 tree, and the audit log

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 07:26:58.108620

The ledger itself is unchanged: its entries are the tree's leaves. A store
created before this revision gets its first checkpoint, covering every entry
so far, at its next import or export.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from evidence.store.guards import drop_append_only, install_append_only
from evidence.store.types import UTCDateTime

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here on purpose: a migration must not change when the models do.
APPEND_ONLY_TABLES = ("checkpoints", "audit_events")


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("actor", sa.String(length=300), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("output_sha256", sa.String(length=64), nullable=True),
        sa.Column("details", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_events_action"), ["action"], unique=False)

    op.create_table(
        "checkpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
        sa.Column("root_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("signature", sa.String(length=100), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("frontier", sa.Text(), nullable=False),
        sa.Column("timestamp_token", sa.LargeBinary(), nullable=True),
        sa.Column("tsa_url", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    install_append_only(op, APPEND_ONLY_TABLES)


def downgrade() -> None:
    drop_append_only(op, APPEND_ONLY_TABLES)
    op.drop_table("checkpoints")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_events_action"))
    op.drop_table("audit_events")
