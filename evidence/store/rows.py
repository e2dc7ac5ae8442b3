"""Stored rows as the frozen dataclasses the library hands out (a job, a user, a document)."""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

D = TypeVar("D", bound="DataclassInstance")


def from_row(cls: type[D], row: object, **given: Any) -> D:
    """``cls`` made of ``row``: each field is the row's attribute of the same name, unless
    ``given`` names it (a renamed column, a derived value)."""
    return cls(
        **{f.name: given[f.name] if f.name in given else getattr(row, f.name) for f in fields(cls)}
    )
