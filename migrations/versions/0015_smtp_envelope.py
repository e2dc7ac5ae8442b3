"""smtp_deliveries: the SMTP envelope and our receive time of mail taken by
``evidence receive smtp``

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 23:00:00.000000

A message the company's mail server journals (or BCCs) to our SMTP receiver is
stored as any email is (its raw bytes, content-addressed); beside it this table
keeps each delivery: when our receiver took it, MAIL FROM, the RCPT TO list, the
peer's address and what it said in HELO/EHLO, whether STARTTLS was in effect.
The table is append-only and chained in the ledger like every evidence record;
an erasure may blank only the addresses (MAIL FROM, RCPT TO).
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

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here on purpose: a migration must not change when the models do.
TABLE = "smtp_deliveries"
APPEND_ONLY_TABLES = (TABLE,)


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email_id", sa.Integer(), nullable=True),
        sa.Column("quarantine_id", sa.Integer(), nullable=True),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("mail_from", sa.Text(), nullable=False),
        sa.Column("rcpt_to", sa.Text(), nullable=False),
        sa.Column("helo", sa.Text(), nullable=False),
        sa.Column("peer", sa.String(length=64), nullable=False),
        sa.Column("peer_port", sa.Integer(), nullable=False),
        sa.Column("tls", sa.Boolean(), nullable=False),
        sa.Column("listener", sa.String(length=300), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("import_run_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["email_id"], ["emails.id"]),
        sa.ForeignKeyConstraint(["quarantine_id"], ["quarantine.id"]),
        sa.ForeignKeyConstraint(["import_run_id"], ["import_runs.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_smtp_deliveries_email_id", TABLE, ["email_id"])
    op.create_index("ix_smtp_deliveries_quarantine_id", TABLE, ["quarantine_id"])
    op.create_index("ix_smtp_deliveries_received_at", TABLE, ["received_at"])
    install_append_only(op, APPEND_ONLY_TABLES)
    install_erasure_paths(op, [TABLE])


def downgrade() -> None:
    drop_erasure_paths(op, [TABLE])
    drop_append_only(op, [TABLE])
    op.drop_table(TABLE)
