"""hosted mail: reconciliation of IMAP folders, and Microsoft Graph folders

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 23:00:00.000000

``imap_folder_state`` learns how many messages of the folder the store holds
(imported, or recognised as already stored) and the server's own count at the
last run (``STATUS MESSAGES``), with the run's time: `evidence status` and the
dossier's completeness show any difference.

``graph_folder_state`` is the same for a Microsoft Graph mail folder: the delta
link that makes the next run fetch only what is new, and the page link of a run
that was interrupted (the next run resumes from it); ``graph_messages`` the ids
of the messages the store holds from each such folder.

Both are bookkeeping, not evidence: updated in place, so no append-only triggers.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from evidence.store.types import UTCDateTime

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("imap_folder_state") as batch_op:
        batch_op.add_column(
            sa.Column("held", sa.BigInteger(), nullable=False, server_default=sa.text("0"))
        )
        batch_op.add_column(sa.Column("server_count", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("counted_at", UTCDateTime(), nullable=True))
    op.create_table(
        "graph_folder_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("mailbox", sa.String(length=320), nullable=False),
        sa.Column("folder_id", sa.String(length=500), nullable=False),
        sa.Column("folder", sa.String(length=1000), nullable=False),
        sa.Column("delta_link", sa.Text(), nullable=True),
        sa.Column("next_link", sa.Text(), nullable=True),
        sa.Column("held", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
        sa.Column("server_count", sa.BigInteger(), nullable=True),
        sa.Column("counted_at", UTCDateTime(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("mailbox", "folder_id"),
    )
    op.create_table(
        "graph_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("folder_state_id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(length=500), nullable=False),
        sa.ForeignKeyConstraint(["folder_state_id"], ["graph_folder_state.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("folder_state_id", "message_id"),
    )


def downgrade() -> None:
    op.drop_table("graph_messages")
    op.drop_table("graph_folder_state")
    with op.batch_alter_table("imap_folder_state") as batch_op:
        batch_op.drop_column("counted_at")
        batch_op.drop_column("server_count")
        batch_op.drop_column("held")
