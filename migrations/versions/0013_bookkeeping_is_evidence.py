"""what decides what a dossier holds is evidence too: customers, identifiers and cases
append-only and chained; a case's closing is a record

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 22:00:00.000000

Until now ``customers``, ``customer_identifiers`` and ``cases`` were bookkeeping:
updated in place and outside the hash chain, so one ``DELETE FROM
customer_identifiers`` changed what every dossier of the customer held and
``evidence verify`` saw nothing. From this revision the three tables are
append-only (the database refuses UPDATE and DELETE; an erasure may only blank a
customer's name and identifiers, as ``evidence.store.guards.ERASURE_PATHS`` says)
and every row is chained in the ledger: the rows already stored are chained here,
as they are. Closing a case no longer updates it: ``case_closures`` holds the
closing (one row is made here for every case closed before).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.orm import Session

from evidence.store import bulk, ledger
from evidence.store.guards import (
    drop_append_only,
    drop_erasure_paths,
    install_append_only,
    install_erasure_paths,
)
from evidence.store.models import Case, CaseClosure, Customer, CustomerIdentifier
from evidence.store.types import UTCDateTime

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here on purpose: a migration must not change when the models do.
APPEND_ONLY_TABLES = ("customers", "customer_identifiers", "cases", "case_closures")
ERASABLE_TABLES = ("customers", "customer_identifiers")


def upgrade() -> None:
    op.create_table(
        "case_closures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("closed_at", UTCDateTime(), nullable=False),
        sa.Column("closed_by", sa.String(length=300), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("case_id"),
    )
    # An erasure blanks every identifier of the customer: two blank addresses of one
    # customer must not collide (`customer add` itself adds each identifier once).
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        with op.batch_alter_table(
            "customer_identifiers",
            naming_convention={"uq": "uq_%(table_name)s_%(column_0_name)s"},
        ) as batch_op:
            batch_op.drop_constraint("uq_customer_identifiers_customer_id", type_="unique")
    else:
        op.drop_constraint(
            "customer_identifiers_customer_id_kind_value_key", "customer_identifiers", "unique"
        )
    _chain_what_is_stored(bind)
    install_append_only(op, APPEND_ONLY_TABLES)
    install_erasure_paths(op, ERASABLE_TABLES)


def _chain_what_is_stored(connection: sa.Connection) -> None:
    """Chain every customer, identifier and case as it is now, and record the closing of
    every case closed before (in id order, each a ledger entry of its own)."""
    session = Session(bind=connection)
    for model in (Customer, CustomerIdentifier, Case):
        table = model.__table__
        rows = [dict(r._mapping) for r in connection.execute(sa.select(table).order_by(table.c.id))]
        ledger.append_payloads(
            session,
            [
                (table.name, str(row["id"]), ledger.payload_for_rows(model, row))
                for row in rows
            ],
        )
    cases = sa.table(
        "cases",
        sa.column("id", sa.Integer),
        sa.column("closed_at", UTCDateTime()),
        sa.column("closed_by", sa.String),
        sa.column("close_reason", sa.Text),
    )
    closed = list(
        connection.execute(
            sa.select(cases).where(cases.c.closed_at.is_not(None)).order_by(cases.c.id)
        )
    )
    rows = [
        {
            "case_id": case_id,
            "closed_at": at,
            "closed_by": by or "",
            "reason": reason or "",
        }
        for case_id, at, by, reason in closed
    ]
    ids = bulk.reserve_ids(session, "case_closures", len(rows))
    for row, row_id in zip(rows, ids, strict=True):
        row["id"] = row_id
    bulk.insert_rows(session, CaseClosure, rows)
    ledger.append_payloads(
        session,
        [
            ("case_closures", str(row["id"]), ledger.payload_for_rows(CaseClosure, row))
            for row in rows
        ],
    )
    session.flush()


def downgrade() -> None:
    # The ledger is append-only: the entries chaining these rows stay (a downgrade is for
    # an empty or scratch store).
    drop_erasure_paths(op, ERASABLE_TABLES)
    drop_append_only(op, APPEND_ONLY_TABLES)
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("customer_identifiers") as batch_op:
            batch_op.create_unique_constraint(
                "uq_customer_identifiers_customer_id", ["customer_id", "kind", "value"]
            )
    else:
        op.create_unique_constraint(
            "customer_identifiers_customer_id_kind_value_key",
            "customer_identifiers",
            ["customer_id", "kind", "value"],
        )
    op.drop_table("case_closures")
