"""Bulk inserts without the ORM: rows go to the driver as tuples, converted once.

Importers write thousands of rows per transaction. SQLAlchemy's ``insert()``
with a list of dicts compiles and converts every row through the generic type
machinery; here each table gets one generated function that turns a row's
values into the tuple the driver binds, converting only the columns whose type
needs it, exactly as SQLAlchemy would (``tests/test_store.py`` checks the rows
read back). The caller holds the writer lock (``Store.writing``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Dialect, text
from sqlalchemy.orm import Session

from evidence.store.models import Base
from evidence.store.types import UTCDateTime

RowFunction = Callable[[Mapping[str, Any]], tuple[Any, ...]]

_dialects: dict[str, Dialect] = {}
_ROW_FUNCTIONS: dict[tuple[str, str, int], RowFunction] = {}


def dialect(name: str) -> Dialect:
    """A dialect object for converting values where no connection is at hand (workers)."""
    if name not in _dialects:
        if name == "sqlite":
            from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite

            _dialects[name] = SQLiteDialect_pysqlite()
        else:
            from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg

            _dialects[name] = PGDialect_psycopg()  # type: ignore[no-untyped-call]
    return _dialects[name]


def insert_columns(model: type[Base]) -> list[str]:
    """Column order of a bulk insert: id, then source_line_id when there is one, then the rest."""
    names = [c.key for c in model.__table__.columns]
    first = [n for n in ("id", "source_line_id") if n in names]
    return first + [n for n in names if n not in first]


def _utc_for_sqlite(value: dt.datetime) -> str:
    """What ``UTCDateTime`` binds on SQLite (naive UTC, as SQLAlchemy's DATETIME formats it)."""
    if value.tzinfo is not dt.UTC:  # most values already are: no conversion for them
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"refusing naive datetime {value!r}: evidence times carry a zone")
        value = value.astimezone(dt.UTC)
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


def row_function(model: type[Base], dialect_name: str, skip: int = 0) -> RowFunction:
    """Values in ``insert_columns`` order, converted for the driver, minus the first ``skip``.

    A key missing from the values takes the column's scalar default, as with
    ``insert()``; a column with any other kind of default must be given.
    """
    key = (model.__tablename__, dialect_name, skip)
    known = _ROW_FUNCTIONS.get(key)
    if known is not None:
        return known
    to_driver = dialect(dialect_name)
    table = model.__table__
    namespace: dict[str, Any] = {"_utc_for_sqlite": _utc_for_sqlite}
    items = []
    for index, name in enumerate(insert_columns(model)[skip:]):
        column = table.columns[name]
        value = f"get({name!r})"
        if column.default is not None:
            if not column.default.is_scalar:
                where = f"{model.__tablename__}.{name}"
                raise NotImplementedError(f"{where}: a bulk insert needs its value")
            namespace[f"_d{index}"] = column.default.arg
            value = f"get({name!r}, _d{index})"
        if dialect_name == "sqlite" and isinstance(column.type, UTCDateTime):
            items.append(f"(None if (_x := {value}) is None else _utc_for_sqlite(_x))")
            continue
        process = column.type.dialect_impl(to_driver).bind_processor(to_driver)
        if process is None:
            items.append(value)
        else:
            namespace[f"_p{index}"] = process
            items.append(f"(None if (_x := {value}) is None else _p{index}(_x))")
    source = "def row(values):\n    get = values.get\n    return (" + ", ".join(items) + ",)\n"
    exec(compile(source, f"<row {key}>", "exec"), namespace)  # our own text
    function: RowFunction = namespace["row"]
    _ROW_FUNCTIONS[key] = function
    return function


def insert_sql(session: Session, model: type[Base]) -> str:
    bound = session.get_bind().dialect
    quote = bound.identifier_preparer.quote  # e.g. emails."references"
    names = [quote(name) for name in insert_columns(model)]
    mark = "?" if bound.paramstyle == "qmark" else "%s"
    return (
        f"INSERT INTO {model.__tablename__} ({', '.join(names)}) "
        f"VALUES ({', '.join([mark] * len(names))})"
    )


def insert_rows(session: Session, model: type[Base], rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` (dicts with every key the table needs, ids included) with one executemany."""
    if not rows:
        return
    session.flush()  # rows added through the ORM first
    row = row_function(model, session.get_bind().dialect.name)
    session.connection().exec_driver_sql(insert_sql(session, model), [row(r) for r in rows])


def reserve_ids(session: Session, table: str, count: int) -> list[int]:
    """``count`` fresh primary keys for ``table``, so a bulk insert needs no RETURNING.

    On SQLite no one else can insert until the caller commits (the writer lock is
    held, and evidence rows are never deleted); on PostgreSQL the ids come from
    the table's own sequence, as an ordinary insert's would.
    """
    if count == 0:
        return []
    if session.get_bind().dialect.name == "postgresql":
        return list(
            session.scalars(
                text(
                    "SELECT nextval(pg_get_serial_sequence(:t, 'id')) "
                    "FROM generate_series(1, :n) ORDER BY 1"
                ),
                {"t": table, "n": count},
            )
        )
    top = session.scalar(text(f"SELECT coalesce(max(id), 0) FROM {table}"))
    return list(range(int(top or 0) + 1, int(top or 0) + 1 + count))
