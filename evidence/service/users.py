"""The legal desk's users and API tokens: add, list and disable users, make a token; a
user signs in and chooses a language.

A ``UserInfo`` and a ``NewToken`` (``evidence.records.users``) are the results; their
``as_dict()`` is what ``--json`` prints (never a password hash; a token only once).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from evidence.records import users
from evidence.service.result import opened

if TYPE_CHECKING:
    from evidence.config import Config
    from evidence.records.users import NewToken, UserInfo
    from evidence.store.db import Store


def add_user(
    source: Config | Store, name: str, *, role: str, password: str | None, language: str = "fi"
) -> UserInfo:
    """Add a user (the password hashed with argon2; without one, the user signs in only
    through the trusted proxy)."""
    with opened(source) as store:
        return users.add_user(store, name, role=role, password=password, language=language)


def list_users(source: Config | Store) -> tuple[UserInfo, ...]:
    """Every user of the desk, by name."""
    with opened(source) as store:
        return tuple(users.list_users(store))


def disable_user(source: Config | Store, name: str) -> UserInfo:
    """No more sign-in for the user, and their API tokens stop working."""
    with opened(source) as store:
        return users.disable_user(store, name)


def create_token(
    source: Config | Store, name: str, *, expires_days: int | None = None
) -> NewToken:
    """An API token for the user, returned once (only its hash is kept)."""
    with opened(source) as store:
        return users.create_token(store, name, expires_days=expires_days)


def sign_in(
    source: Config | Store, name: str, password: str, address: str, *, reader: Store | None = None
) -> UserInfo | None:
    """The user when the password is theirs, else None (the failure is recorded); raises
    :class:`~evidence.records.users.SigninThrottled` after too many recent failures."""
    with opened(source) as store:
        return users.sign_in(store, name, password, address, reader=reader)


def set_language(source: Config | Store, user_id: int, language: str) -> None:
    """The language (fi, sv, en) the desk speaks to the user."""
    with opened(source) as store:
        users.set_language(store, user_id, language)


def signed_in_user(
    source: Config | Store,
    *,
    user_id: int | None = None,
    name: str | None = None,
    token: str | None = None,
) -> UserInfo | None:
    """Who calls the desk: the enabled user of a session (``user_id``), of the trusted proxy's
    header (``name``) or of an unexpired API token (``token``); None when there is none."""
    with opened(source) as store:
        if token is not None:
            return users.user_for_token(store, token)
        if name is not None:
            return users.user_by_name(store, name)
        return users.get_user(store, user_id) if user_id is not None else None
