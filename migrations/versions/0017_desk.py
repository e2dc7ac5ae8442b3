"""the legal desk: users, API tokens, failed sign-ins and queued exports

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 23:00:00.000000

Bookkeeping of the web desk (``evidence serve``), updated in place: who may sign in
(argon2 password hashes), API tokens (their SHA-256 only), failed sign-ins (the
throttle, shared by every server process) and the exports it queued. What users do is
kept in the audit log, which is evidence. On PostgreSQL, the job engine's own schema
(procrastinate) is applied too.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from evidence.store.types import UTCDateTime

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "desk_users",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=True),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "desk_api_tokens",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("desk_users.id"), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_desk_api_tokens_user_id", "desk_api_tokens", ["user_id"])
    op.create_table(
        "desk_signin_failures",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("username", sa.String(100), nullable=False),
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_desk_signin_failures_username", "desk_signin_failures", ["username"])
    op.create_table(
        "desk_export_jobs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("customer_ref", sa.String(100), nullable=False),
        sa.Column("case_ref", sa.String(200), nullable=True),
        sa.Column("language", sa.String(8), nullable=True),
        sa.Column("date_from", sa.Date(), nullable=True),
        sa.Column("date_to", sa.Date(), nullable=True),
        sa.Column("requested_by", sa.String(100), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("progress", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("heartbeat_at", UTCDateTime(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("pages", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
    )
    op.create_index("ix_desk_export_jobs_status", "desk_export_jobs", ["status"])
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        if bind.exec_driver_sql("SELECT to_regclass('procrastinate_jobs')").scalar() is None:
            from procrastinate.schema import SchemaManager

            # The driver's own connection: the schema's SQL goes as it is (no parameters).
            bind.connection.driver_connection.execute(SchemaManager.get_schema())


def downgrade() -> None:
    op.drop_index("ix_desk_export_jobs_status", "desk_export_jobs")
    op.drop_table("desk_export_jobs")
    op.drop_index("ix_desk_signin_failures_username", "desk_signin_failures")
    op.drop_table("desk_signin_failures")
    op.drop_index("ix_desk_api_tokens_user_id", "desk_api_tokens")
    op.drop_table("desk_api_tokens")
    op.drop_table("desk_users")
