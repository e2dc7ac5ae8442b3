"""The base of every result: a frozen dataclass that turns itself into JSON's types."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from evidence.store.db import Store, open_store
from evidence.timeutil import iso_utc

if TYPE_CHECKING:
    from evidence.config import Config


# The metadata of a field a face uses but ``--json`` does not print (the desk's ids):
# ``id: int = field(metadata=NOT_IN_JSON)``.
NOT_IN_JSON = {"json": False}


@dataclass(frozen=True)
class Result:
    """Fields in the order ``--json`` prints them; ``as_dict()`` gives that JSON's value."""

    def as_dict(self) -> dict[str, Any]:
        return {
            f.name: plain(getattr(self, f.name))
            for f in fields(self)
            if f.metadata.get("json", True)
        }


def plain(value: object) -> Any:
    """A value as JSON has it: a moment in UTC ISO form, a day as YYYY-MM-DD, a tuple a list."""
    if isinstance(value, Result):
        return value.as_dict()
    if isinstance(value, dt.datetime):
        return iso_utc(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    return value


def as_list(results: tuple[Result, ...]) -> list[dict[str, Any]]:
    """A listing as ``--json`` prints it: one object per row."""
    return [r.as_dict() for r in results]


@contextmanager
def opened(source: Config | Store) -> Iterator[Store]:
    """The store an operation works on: the CLI gives its ``Config`` (the store is opened and
    closed when the operation is done); the desk gives the store its process holds open."""
    if isinstance(source, Store):
        yield source
        return
    store = open_store(source)
    try:
        yield store
    finally:
        store.close()
