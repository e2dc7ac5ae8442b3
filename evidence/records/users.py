"""Who may use the legal desk: users with a role, API tokens, and the sign-in throttle.

Roles grow: a viewer reads timelines, cases and dossiers; an agent also logs incidents;
legal also opens, attaches, claims, closes, exports and places holds; admin also manages
users and erasure. Passwords are hashed with argon2id; an API token is 32 random bytes,
printed once, and only its SHA-256 is stored (a token is not a password a person chose:
a fast hash of it cannot be guessed back). Failed sign-ins are rows in the database, so
every server process throttles the same way.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from evidence.errors import InvalidInput, NotFound
from evidence.store.db import Store
from evidence.store.models import ApiToken, DeskUser, SigninFailure
from evidence.store.rows import from_row
from evidence.timeutil import iso_utc, utcnow

ROLES = ("viewer", "agent", "legal", "admin")
LANGUAGES = ("fi", "sv", "en")
TOKEN_PREFIX = "evd_"
# Sign-in throttle: this many failures for one user name within the window refuse the
# next attempts until the window has passed since the latest failure.
THROTTLE_FAILURES = 5
THROTTLE_WINDOW = dt.timedelta(minutes=15)
NAME_LENGTH = 100

_hasher = PasswordHasher()


class Forbidden(InvalidInput):
    """The user's role does not allow this."""


class SigninThrottled(InvalidInput):
    """Too many failed sign-ins for this user name: wait."""


def role_allows(role: str, needed: str) -> bool:
    """Whether ``role`` may do what ``needed`` may (roles grow: admin may do everything)."""
    return ROLES.index(role) >= ROLES.index(needed)


@dataclass(frozen=True)
class UserInfo:
    id: int
    name: str
    role: str
    language: str
    disabled: bool
    has_password: bool
    created_at: dt.datetime

    @classmethod
    def of(cls, user: DeskUser) -> UserInfo:
        return from_row(cls, user, has_password=user.password_hash is not None)

    def may(self, needed: str) -> bool:
        return not self.disabled and role_allows(self.role, needed)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "language": self.language,
            "disabled": self.disabled,
            "password": self.has_password,
            "created_at": iso_utc(self.created_at),
        }


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}: one of {', '.join(ROLES)}")


def _check_language(language: str) -> None:
    if language not in LANGUAGES:
        raise InvalidInput(f"unknown language {language!r}: one of {', '.join(LANGUAGES)}")


def _load(session: Session, name: str) -> DeskUser:
    user = session.scalar(select(DeskUser).where(DeskUser.name == name))
    if user is None:
        raise NotFound(f"no desk user {name!r}: add one with `evidence user add {name} --role ...`")
    return user


def add_user(
    store: Store, name: str, *, role: str, password: str | None, language: str = "fi"
) -> UserInfo:
    """Add a user; without a password the user signs in only through the trusted proxy."""
    name = name.strip()
    if not name or len(name) > NAME_LENGTH or any(c.isspace() for c in name):
        raise InvalidInput(f"a user name is 1 to {NAME_LENGTH} characters without spaces")
    _check_role(role)
    _check_language(language)
    if password is not None and len(password) < 10:
        raise InvalidInput("a password needs at least 10 characters")
    with store.writing() as session:
        if session.scalar(select(DeskUser.id).where(DeskUser.name == name)) is not None:
            raise InvalidInput(f"user {name} exists already: see `evidence user list`")
        user = DeskUser(
            name=name,
            role=role,
            password_hash=_hasher.hash(password) if password is not None else None,
            language=language,
            disabled=False,
            created_at=utcnow(),
        )
        session.add(user)
        session.flush()
        return UserInfo.of(user)


def list_users(store: Store) -> list[UserInfo]:
    with store.session() as session:
        return [UserInfo.of(u) for u in session.scalars(select(DeskUser).order_by(DeskUser.name))]


def disable_user(store: Store, name: str) -> UserInfo:
    """Disable a user: no sign-in, and every API token of theirs stops working."""
    with store.writing() as session:
        user = _load(session, name)
        user.disabled = True
        session.execute(delete(ApiToken).where(ApiToken.user_id == user.id))
        session.flush()
        return UserInfo.of(user)


def set_language(store: Store, user_id: int, language: str) -> None:
    _check_language(language)
    with store.writing() as session:
        user = session.get(DeskUser, user_id)
        if user is None:
            raise NotFound("no such user")
        user.language = language


def get_user(store: Store, user_id: int) -> UserInfo | None:
    """The user, or None when gone or disabled (a session of theirs ends at once)."""
    with store.session() as session:
        user = session.get(DeskUser, user_id)
        return UserInfo.of(user) if user is not None and not user.disabled else None


def user_by_name(store: Store, name: str) -> UserInfo | None:
    """An enabled user by name (the trusted proxy's header), or None."""
    with store.session() as session:
        user = session.scalar(select(DeskUser).where(DeskUser.name == name))
        return UserInfo.of(user) if user is not None and not user.disabled else None


@dataclass(frozen=True)
class NewToken:
    token: str
    user: str
    expires_at: dt.datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "token": self.token,
            "user": self.user,
            "expires_at": iso_utc(self.expires_at) if self.expires_at else None,
        }


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(store: Store, name: str, *, expires_days: int | None = None) -> NewToken:
    """Make an API token for a user; the token itself is returned once and never stored."""
    if expires_days is not None and expires_days < 1:
        raise InvalidInput("--expires is a number of days, 1 or more")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    expires = now + dt.timedelta(days=expires_days) if expires_days else None
    with store.writing() as session:
        user = _load(session, name)
        if user.disabled:
            raise InvalidInput(f"user {name} is disabled")
        session.add(
            ApiToken(
                user_id=user.id,
                token_sha256=_token_digest(token),
                created_at=now,
                expires_at=expires,
            )
        )
    return NewToken(token, name, expires)


def user_for_token(store: Store, token: str) -> UserInfo | None:
    """The enabled user an unexpired token belongs to, else None."""
    with store.session() as session:
        row = session.scalar(select(ApiToken).where(ApiToken.token_sha256 == _token_digest(token)))
        if row is None or (row.expires_at is not None and row.expires_at <= utcnow()):
            return None
        user = row.user
        return UserInfo.of(user) if not user.disabled else None


def sign_in(
    store: Store, name: str, password: str, address: str, *, reader: Store | None = None
) -> UserInfo | None:
    """Check a password; None when wrong (a failure is recorded). Raises
    :class:`SigninThrottled` after too many recent failures for this name, even with the
    right password, so guessing gains nothing. ``reader``: a store to read with (the desk's,
    which does not wait for the writer lock); a right password writes nothing unless
    earlier failures are to be forgotten."""
    now = utcnow()
    since = now - THROTTLE_WINDOW
    name = name.strip()[:NAME_LENGTH]
    with (reader or store).session() as session:
        failures = session.scalar(
            select(func.count(SigninFailure.id)).where(
                SigninFailure.username == name, SigninFailure.at > since
            )
        )
        if (failures or 0) >= THROTTLE_FAILURES:
            raise SigninThrottled("too many failed sign-ins for this user: try again in 15 minutes")
        user = session.scalar(select(DeskUser).where(DeskUser.name == name))
    ok = False
    if user is not None and user.password_hash and not user.disabled:
        try:
            ok = _hasher.verify(user.password_hash, password)
        except (VerificationError, InvalidHashError):
            ok = False
    else:
        # Same work whether or not the user exists: timing tells nothing.
        _hasher.hash(password)
    if not ok or user is None:
        with store.writing() as writing:
            writing.add(SigninFailure(username=name, address=address[:64], at=now))
        return None
    if failures:
        with store.writing() as writing:
            writing.execute(delete(SigninFailure).where(SigninFailure.username == name))
    return UserInfo.of(user)
