"""The desk's settings: ``[desk]`` in evidence.toml, and its secret key.

``[desk]`` keys: ``max_upload_mb`` (default 50), ``trusted_proxies`` (addresses whose
``user_header`` is believed: single sign-on through oauth2-proxy, Authelia...),
``user_header`` (default ``X-Forwarded-User``), ``secure_cookies`` (default: true when
the request came over HTTPS), ``workers`` (gunicorn processes, default 2).
The secret key that signs sessions is EVIDENCE_SECRET_KEY, else ``desk-secret.key`` in
EVIDENCE_HOME, made by ``evidence init`` (owner-only, mode 0600).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from evidence.config import Config
from evidence.errors import EvidenceError
from evidence.files import private_dir, write_atomic

SECRET_FILE = "desk-secret.key"
_KNOWN = ("max_upload_mb", "trusted_proxies", "user_header", "secure_cookies", "workers")


@dataclass(frozen=True)
class DeskSettings:
    max_upload_bytes: int = 50 * 1024 * 1024
    trusted_proxies: tuple[str, ...] = ()
    user_header: str = "X-Forwarded-User"
    secure_cookies: bool | None = None
    workers: int = 2


def desk_settings(config: Config) -> DeskSettings:
    raw = config.extra.get("desk", {})
    where = f"{config.config_path} [desk]"
    if not isinstance(raw, dict):
        raise EvidenceError(f"{where} must be a table")
    unknown = sorted(set(raw) - set(_KNOWN))
    if unknown:
        raise EvidenceError(f"{where}: unknown key {unknown[0]!r}; known: {', '.join(_KNOWN)}")
    size = raw.get("max_upload_mb", 50)
    proxies = raw.get("trusted_proxies", [])
    header = raw.get("user_header", "X-Forwarded-User")
    secure = raw.get("secure_cookies")
    workers = raw.get("workers", 2)
    if not isinstance(size, int | float) or size <= 0:
        raise EvidenceError(f"{where}: max_upload_mb is a number of megabytes, e.g. 50")
    if not isinstance(proxies, list) or not all(isinstance(p, str) for p in proxies):
        raise EvidenceError(f'{where}: trusted_proxies is a list of addresses, e.g. ["127.0.0.1"]')
    if not isinstance(header, str) or not header.strip():
        raise EvidenceError(f"{where}: user_header is a header name, e.g. X-Forwarded-User")
    if secure is not None and not isinstance(secure, bool):
        raise EvidenceError(f"{where}: secure_cookies is true or false")
    if not isinstance(workers, int) or not 1 <= workers <= 64:
        raise EvidenceError(f"{where}: workers is a number from 1 to 64")
    return DeskSettings(int(size * 1024 * 1024), tuple(proxies), header.strip(), secure, workers)


def secret_path(config: Config) -> Path:
    return config.home / SECRET_FILE


def ensure_secret_key(config: Config) -> tuple[Path, bool]:
    """Make the desk's secret key file once (mode 0600); True when it was made now."""
    path = secret_path(config)
    if path.exists():
        return path, False
    private_dir(config.home)
    write_atomic(path, secrets.token_hex(32).encode("ascii"), mode=0o600)
    return path, True


def secret_key(config: Config, environ: dict[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    given = env.get("EVIDENCE_SECRET_KEY", "").strip()
    if given:
        return given
    path = secret_path(config)
    if not path.is_file():
        raise EvidenceError(
            f"no desk secret key at {path}: run `evidence init`, or set EVIDENCE_SECRET_KEY"
        )
    return path.read_text(encoding="ascii").strip()
