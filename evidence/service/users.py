"""The legal desk's users and API tokens: add, list and disable users, make a token.

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


def add_user(
    config: Config, name: str, *, role: str, password: str | None, language: str = "fi"
) -> UserInfo:
    """Add a user (the password hashed with argon2; without one, the user signs in only
    through the trusted proxy)."""
    with opened(config) as store:
        return users.add_user(store, name, role=role, password=password, language=language)


def list_users(config: Config) -> tuple[UserInfo, ...]:
    """Every user of the desk, by name."""
    with opened(config) as store:
        return tuple(users.list_users(store))


def disable_user(config: Config, name: str) -> UserInfo:
    """No more sign-in for the user, and their API tokens stop working."""
    with opened(config) as store:
        return users.disable_user(store, name)


def create_token(config: Config, name: str, *, expires_days: int | None = None) -> NewToken:
    """An API token for the user, returned once (only its hash is kept)."""
    with opened(config) as store:
        return users.create_token(store, name, expires_days=expires_days)
