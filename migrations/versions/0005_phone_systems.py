"""phone systems: call records of FreeSWITCH and mapped CSV exports

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from evidence.store.guards import drop_append_only, install_append_only
from evidence.store.types import UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here on purpose: a migration must not change when the models do.
APPEND_ONLY_TABLES = ("call_records",)


def upgrade() -> None:
    op.create_table(
        "call_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source_line_id", sa.Integer(), nullable=False),
        sa.Column("header_line_id", sa.Integer(), nullable=True),
        sa.Column("format", sa.String(length=40), nullable=False),
        sa.Column("mapping_sha256", sa.String(length=64), nullable=True),
        sa.Column("call_id", sa.String(length=150), nullable=True),
        sa.Column("linked_id", sa.String(length=150), nullable=True),
        sa.Column("caller", sa.String(length=160), nullable=False),
        sa.Column("caller_e164", sa.String(length=32), nullable=True),
        sa.Column("caller_name", sa.Text(), nullable=True),
        sa.Column("callee", sa.String(length=160), nullable=False),
        sa.Column("callee_e164", sa.String(length=32), nullable=True),
        sa.Column("direction", sa.String(length=16), nullable=True),
        sa.Column("direction_recorded", sa.String(length=80), nullable=True),
        sa.Column("context", sa.String(length=80), nullable=True),
        sa.Column("start_local", sa.String(length=40), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("answered_at", UTCDateTime(), nullable=True),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("time_flag", sa.String(length=40), nullable=True),
        sa.Column("queue", sa.String(length=80), nullable=True),
        sa.Column("agent", sa.String(length=160), nullable=True),
        sa.Column("queue_wait", sa.Integer(), nullable=True),
        sa.Column("ring_time", sa.Integer(), nullable=True),
        sa.Column("talk_time", sa.Integer(), nullable=True),
        sa.Column("duration", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.Column("outcome_recorded", sa.String(length=80), nullable=True),
        sa.ForeignKeyConstraint(["header_line_id"], ["source_lines.id"]),
        sa.ForeignKeyConstraint(["mapping_sha256"], ["blobs.sha256"]),
        sa.ForeignKeyConstraint(["source_line_id"], ["source_lines.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source_line_id"),
    )
    with op.batch_alter_table("call_records", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_call_records_call_id"), ["call_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_call_records_linked_id"), ["linked_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_call_records_caller_e164"), ["caller_e164"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_call_records_callee_e164"), ["callee_e164"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_call_records_started_at"), ["started_at"], unique=False
        )
    # Legs of one Asterisk call are found by linkedid.
    # (plain CREATE INDEX: a batch operation could copy the table and lose its guards)
    op.create_index(op.f("ix_cdr_records_linkedid"), "cdr_records", ["linkedid"], unique=False)
    install_append_only(op, APPEND_ONLY_TABLES)


def downgrade() -> None:
    drop_append_only(op, APPEND_ONLY_TABLES)
    op.drop_index(op.f("ix_cdr_records_linkedid"), table_name="cdr_records")
    with op.batch_alter_table("call_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_call_records_started_at"))
        batch_op.drop_index(batch_op.f("ix_call_records_callee_e164"))
        batch_op.drop_index(batch_op.f("ix_call_records_caller_e164"))
        batch_op.drop_index(batch_op.f("ix_call_records_linked_id"))
        batch_op.drop_index(batch_op.f("ix_call_records_call_id"))
    op.drop_table("call_records")
