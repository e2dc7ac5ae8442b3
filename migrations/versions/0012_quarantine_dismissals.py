"""quarantine dismissals: quarantined input set aside as no part of any source

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 10:00:00.000000

A dismissal is a new record (append-only, chained in the ledger) that points at a
quarantined item; the item and its bytes stay. A dismissed item is no longer listed
as a source's quarantined input in a dossier's completeness.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from evidence.store.guards import drop_append_only, install_append_only
from evidence.store.types import UTCDateTime

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here on purpose: a migration must not change when the models do.
APPEND_ONLY_TABLES = ("quarantine_dismissals",)


def upgrade() -> None:
    op.create_table(
        "quarantine_dismissals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("quarantine_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("dismissed_by", sa.String(length=300), nullable=False),
        sa.Column("dismissed_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["quarantine_id"], ["quarantine.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("quarantine_id"),
    )
    install_append_only(op, APPEND_ONLY_TABLES)


def downgrade() -> None:
    drop_append_only(op, APPEND_ONLY_TABLES)
    op.drop_table("quarantine_dismissals")
