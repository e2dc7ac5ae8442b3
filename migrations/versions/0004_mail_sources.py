"""mail sources: IMAP folder state (UIDVALIDITY and highest UID per account and folder)

Revision ID: 0004
Revises: 0001
Create Date: 2026-11-26 07:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from evidence.store.types import UTCDateTime

revision: str = "0004"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Bookkeeping, not evidence: updated in place, so no append-only triggers.
    op.create_table(
        "imap_folder_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account", sa.String(length=500), nullable=False),
        sa.Column("folder", sa.String(length=1000), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=False),
        sa.Column("last_uid", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account", "folder"),
    )


def downgrade() -> None:
    op.drop_table("imap_folder_state")
