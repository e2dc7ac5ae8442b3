"""email receive times and directions derived when read: every Received: line kept

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 19:30:00.000000

Until now an email's receive time was chosen at import and frozen: only a
``Received:`` line whose ``by`` host was in the company's mail domains counted,
so mail delivered by Google Workspace or Microsoft 365 (and any mail imported
before the domains were configured) was placed at its import time. From this
revision every ``Received:`` line is kept as a row of ``email_received`` (its
``by`` host and its time) and the time is chosen when the store is read
(``evidence.timeline.mailfacts``).

For the emails already stored, the lines are read again from their kept raw
bytes and each row is chained in the ledger as a record of its own. The emails
themselves are not touched (they are append-only): their recorded time and
direction stay as they were, and readers no longer use them. An email whose
bytes were erased keeps its recorded time.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.orm import Session

from evidence.errors import EvidenceError
from evidence.ingest.mail import hops_of
from evidence.ingest.mime import LimitExceeded
from evidence.store import bulk, ledger
from evidence.store.guards import drop_append_only, install_append_only
from evidence.store.models import EmailReceived
from evidence.store.types import UTCDateTime

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here on purpose: a migration must not change when the models do.
APPEND_ONLY_TABLES = ("email_received",)
BATCH = 500


def upgrade() -> None:
    op.create_table(
        "email_received",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("by_host", sa.String(length=255), nullable=True),
        sa.Column("received_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["email_id"], ["emails.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("email_received", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_email_received_email_id"), ["email_id"])
        batch_op.create_index(batch_op.f("ix_email_received_received_at"), ["received_at"])
    # Readers find the emails of a period by each candidate time (mailfacts.emails_between).
    with op.batch_alter_table("emails", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_emails_date_header"), ["date_header"])
        batch_op.create_index(batch_op.f("ix_emails_imported_at"), ["imported_at"])
    install_append_only(op, APPEND_ONLY_TABLES)
    _backfill(op.get_bind())


def _backfill(connection: sa.Connection) -> None:
    """Read the Received: lines of every stored email again and chain each as a record."""
    emails = sa.table("emails", sa.column("id", sa.Integer), sa.column("raw_sha256", sa.String))
    blobs = sa.table("blobs", sa.column("sha256", sa.String), sa.column("data", sa.LargeBinary))
    session = Session(bind=connection)
    last = 0
    while True:
        batch = list(
            connection.execute(
                sa.select(emails.c.id, blobs.c.data)
                .join(blobs, blobs.c.sha256 == emails.c.raw_sha256)
                .where(emails.c.id > last)
                .order_by(emails.c.id)
                .limit(BATCH)
            )
        )
        if not batch:
            break
        rows = []
        for email_id, data in batch:
            last = int(email_id)
            try:
                hops = hops_of(bytes(data)) if data else []  # erased bytes: nothing to read
            except (LimitExceeded, EvidenceError):
                hops = []
            rows += [
                {"email_id": email_id, "position": n, "by_host": host, "received_at": at}
                for n, (host, at) in enumerate(hops)
            ]
        ids = bulk.reserve_ids(session, "email_received", len(rows))
        for row, row_id in zip(rows, ids, strict=True):
            row["id"] = row_id
        bulk.insert_rows(session, EmailReceived, rows)
        ledger.append_payloads(
            session,
            [
                ("email_received", str(row["id"]), ledger.payload_for_rows(EmailReceived, row))
                for row in rows
            ],
        )
    session.flush()


def downgrade() -> None:
    # The ledger is append-only: the entries chaining the rows stay, and `evidence verify`
    # on the downgraded store names them (a downgrade is for an empty or scratch store).
    drop_append_only(op, APPEND_ONLY_TABLES)
    with op.batch_alter_table("emails", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_emails_imported_at"))
        batch_op.drop_index(batch_op.f("ix_emails_date_header"))
    with op.batch_alter_table("email_received", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_email_received_received_at"))
        batch_op.drop_index(batch_op.f("ix_email_received_email_id"))
    op.drop_table("email_received")
