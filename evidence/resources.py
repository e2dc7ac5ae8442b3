"""The files the package carries besides its code, found with ``importlib.resources``.

``templates/`` and ``migrations/`` live at the top of the repository and are installed as
``evidence._templates`` and ``evidence._migrations`` (pyproject.toml maps them), the message
catalogs as ``evidence/locale``. The same lookups work from a wheel and from the editable
install the Makefile makes; nothing is found through the source tree.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from evidence.errors import EvidenceError


def _on_disk(package: str, *parts: str) -> Path:
    found = files(package).joinpath(*parts)
    if not isinstance(found, Path) or not found.is_dir():
        raise EvidenceError(
            f"{package} is not installed as folders on disk ({found}): "
            "reinstall evidence with pip (zip imports are not supported)"
        )
    return found


def templates_dir() -> Path:
    """The dossier's Jinja2 templates and stylesheet."""
    return _on_disk("evidence._templates")


def migrations_dir() -> Path:
    """Alembic's script location: env.py, script.py.mako and versions/."""
    return _on_disk("evidence._migrations")


def locale_dir() -> Path:
    """``<lang>/LC_MESSAGES/evidence.po`` for each translated dossier language."""
    return _on_disk("evidence", "locale")
