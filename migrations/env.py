"""Alembic environment: one transaction per migration, types and defaults compared."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import engine_from_config, pool

from evidence.store.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    return os.environ.get("EVIDENCE_DATABASE_URL") or config.get_main_option("sqlalchemy.url") or ""


def _ours(name: str | None, type_: str, _parent: object) -> bool:
    """Autogenerate leaves procrastinate's tables alone (the desk's job engine, migration 0017)."""
    return not (type_ == "table" and (name or "").startswith("procrastinate_"))


def _configure(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        compare_type=True,
        compare_server_default=True,
        transaction_per_migration=True,
        render_as_batch=True,
        include_name=_ours,
    )


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = engine_from_config(
        {"sqlalchemy.url": _url()}, prefix="sqlalchemy.", poolclass=pool.NullPool
    )
    with engine.connect() as conn:
        _configure(conn)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
