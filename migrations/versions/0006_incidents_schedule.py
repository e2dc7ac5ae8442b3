"""incidents: versions, attachments, plans; sync bookkeeping

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 07:24:22.512073

The columns added to ``incidents`` are nullable and have no default, so every
incident chained before this migration keeps its canonical encoding. On SQLite
they are added with a plain ``ALTER TABLE ... ADD COLUMN ... REFERENCES`` rather
than alembic's batch mode, which would rebuild the table and lose its
append-only triggers.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from evidence.store.guards import drop_append_only, install_append_only
from evidence.store.types import UTCDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPEND_ONLY_TABLES = ("incident_attachments", "incident_plans")

# (column, type, referenced table or None)
_INCIDENT_COLUMNS = (
    ("original_id", sa.Integer(), "incidents"),
    ("version_kind", sa.String(length=16), None),
    ("corrected_by", sa.String(length=300), None),
    ("plan_id", sa.Integer(), "incident_plans"),
)


def upgrade() -> None:
    op.create_table(
        "incident_plans",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("channels", sa.String(length=100), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("start_local", sa.String(length=19), nullable=False),
        sa.Column("end_local", sa.String(length=19), nullable=False),
        sa.Column("rrule", sa.Text(), nullable=True),
        sa.Column("logged_by", sa.String(length=300), nullable=False),
        sa.Column("logged_at", UTCDateTime(), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "sync_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "sync_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sync_run_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("imported", sa.Integer(), nullable=False),
        sa.Column("duplicates", sa.Integer(), nullable=False),
        sa.Column("quarantined", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["sync_run_id"], ["sync_runs.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_sync_results_sync_run_id", "sync_results", ["sync_run_id"])
    op.create_table(
        "incident_attachments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("filename", sa.Text(), nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("attached_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"]),
        sa.ForeignKeyConstraint(["sha256"], ["blobs.sha256"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_incident_attachments_incident_id", "incident_attachments", ["incident_id"])

    sqlite = op.get_bind().dialect.name == "sqlite"
    for name, type_, target in _INCIDENT_COLUMNS:
        if sqlite:
            ddl = type_.compile(dialect=op.get_bind().dialect)
            ref = f" REFERENCES {target} (id)" if target else ""
            op.execute(f"ALTER TABLE incidents ADD COLUMN {name} {ddl}{ref}")
        else:
            op.add_column("incidents", sa.Column(name, type_, nullable=True))
            if target:
                op.create_foreign_key(f"incidents_{name}_fkey", "incidents", target, [name], ["id"])
    op.create_index("ix_incidents_original_id", "incidents", ["original_id"])
    op.create_index("ix_incidents_plan_id", "incidents", ["plan_id"])

    install_append_only(op, APPEND_ONLY_TABLES)


def downgrade() -> None:
    drop_append_only(op, APPEND_ONLY_TABLES)
    op.drop_index("ix_incident_attachments_incident_id", table_name="incident_attachments")
    op.drop_table("incident_attachments")
    op.drop_index("ix_incidents_plan_id", table_name="incidents")
    op.drop_index("ix_incidents_original_id", table_name="incidents")
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        # Batch mode rebuilds the table: put its guards back afterwards.
        drop_append_only(op, ["incidents"])
        with op.batch_alter_table("incidents", recreate="always") as batch_op:
            for name, _type, _target in reversed(_INCIDENT_COLUMNS):
                batch_op.drop_column(name)
        install_append_only(op, ["incidents"])
    else:
        for name, _type, target in reversed(_INCIDENT_COLUMNS):
            if target:
                op.drop_constraint(f"incidents_{name}_fkey", "incidents", type_="foreignkey")
            op.drop_column("incidents", name)
    op.drop_index("ix_sync_results_sync_run_id", table_name="sync_results")
    op.drop_table("sync_results")
    op.drop_table("sync_runs")
    op.drop_table("incident_plans")
