"""The desk's settings: ``[desk]`` in evidence.toml (read by evidence.config with every
other section: ``max_upload_mb``, ``trusted_proxies``, ``user_header``, ``secure_cookies``,
``workers``), and its secret key.
The secret key that signs sessions is EVIDENCE_SECRET_KEY, else ``desk-secret.key`` in
EVIDENCE_HOME, made by ``evidence init`` (owner-only, mode 0600).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from evidence.config import Config, DeskSettings
from evidence.errors import EvidenceError
from evidence.files import private_dir, write_atomic

SECRET_FILE = "desk-secret.key"


def desk_settings(config: Config) -> DeskSettings:
    """``[desk]`` of evidence.toml, read (and checked) with the rest of the settings."""
    return config.desk


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
