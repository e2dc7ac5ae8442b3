"""exports: the checkpoint each dossier was proved against

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 21:00:00.000000

The record of an export kept only the ledger's head when the export was recorded;
the dossier is proved against another point, the first signed checkpoint that
covers its records (printed on its cover and in its manifest.json). The record
now names that checkpoint: its id, tree size and root.

``exports`` is append-only and chained: the columns are nullable without a
default, so every export recorded before keeps its canonical encoding (and says
nothing about its checkpoint). On SQLite they are added with a plain ``ALTER
TABLE ... ADD COLUMN``: batch mode would rebuild the table and lose its
append-only triggers.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from evidence.store.guards import drop_append_only, install_append_only

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (column, type, referenced table or None); frozen here, as migrations are.
_COLUMNS = (
    ("checkpoint_id", sa.Integer(), "checkpoints"),
    ("checkpoint_tree_size", sa.BigInteger(), None),
    ("checkpoint_root", sa.String(length=64), None),
)
_FOREIGN_KEY = "exports_checkpoint_id_fkey"


def upgrade() -> None:
    bind = op.get_bind()
    for name, type_, target in _COLUMNS:
        if bind.dialect.name == "sqlite":
            ddl = type_.compile(dialect=bind.dialect)
            ref = f" REFERENCES {target} (id)" if target else ""
            op.execute(f"ALTER TABLE exports ADD COLUMN {name} {ddl}{ref}")
        else:
            op.add_column("exports", sa.Column(name, type_, nullable=True))
            if target:
                op.create_foreign_key(_FOREIGN_KEY, "exports", target, [name], ["id"])


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # Batch mode rebuilds the table: put its guards back afterwards.
        drop_append_only(op, ["exports"])
        with op.batch_alter_table("exports", recreate="always") as batch_op:
            for name, _type, _target in reversed(_COLUMNS):
                batch_op.drop_column(name)
        install_append_only(op, ["exports"])
    else:
        op.drop_constraint(_FOREIGN_KEY, "exports", type_="foreignkey")
        for name, _type, _target in reversed(_COLUMNS):
            op.drop_column("exports", name)
