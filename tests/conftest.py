"""Test fixtures: a real store on SQLite and on the real PostgreSQL, per test.

Each database is built once per run by the migrations (``alembic upgrade
head``), then copied for every test: a file copy on SQLite, ``CREATE DATABASE
... TEMPLATE`` on PostgreSQL. PostgreSQL must be reachable (EVIDENCE_TEST_PG_URL,
default postgres@127.0.0.1:5432): if it is not, the PostgreSQL tests fail
rather than skip.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from evidence.cli import main
from evidence.config import load_config
from evidence.store.db import Store, open_store, upgrade
from evidence.timeline.mailfacts import MailRules, unconfigured_note

PG_ADMIN_URL = os.environ.get(
    "EVIDENCE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
SHARED = Path(__file__).resolve().parents[2] / "shared"
SCENARIO = SHARED / "scenario"
CORPUS = SHARED / "corpus"
DATA = Path(__file__).parent / "data"
BACKENDS = ["sqlite", "postgresql"]
# For a test of what the dossier shows (its text, pages, fonts, PDF structure), not of how
# the store keeps or reads evidence: rendering is the same on either database, so such a
# test runs on SQLite only (issue #20: render-only tests run on one database). Everything
# the store does, and the bytes it hands to the renderer, stays tested on both.
RENDER_ONLY = pytest.mark.parametrize("env", ["sqlite"], indirect=True)
_counter = itertools.count()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (`make test`), the slow tests first: each worker starts on the
    long ones and the short ones fill in behind, instead of one long test running alone at
    the end. A stable sort, the same in every worker (xdist requires one order); a plain
    pytest keeps the files' order."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def pg_url(database: str) -> str:
    return make_url(PG_ADMIN_URL).set(database=database).render_as_string(hide_password=False)


def _pg_admin(sql: str) -> None:
    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(sql))
    finally:
        engine.dispose()


def create_database(name: str, template: str | None = None) -> None:
    """``CREATE DATABASE name [TEMPLATE template]``, whose commits do not wait for the disk.

    ``synchronous_commit = off`` on the test databases only: a commit returns before its WAL
    reaches the disk. Nothing a test looks at changes (a committed transaction is visible to
    every session at once, whatever becomes of the client); only a crash of the server itself
    could lose the last fraction of a second, and tests/test_pg_restart.py crashes a cluster
    of its own. A database's setting: TEMPLATE does not copy it, so each gets it here."""
    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            source = f" TEMPLATE {template}" if template else ""
            conn.execute(text(f"CREATE DATABASE {name}{source}"))
            conn.execute(text(f"ALTER DATABASE {name} SET synchronous_commit = off"))
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("sqlite-template")
    config = load_config({"EVIDENCE_HOME": str(home)})
    upgrade(config)
    return home / "evidence.db"


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    name = f"evidence_tpl_{os.getpid()}"
    _pg_admin(f"DROP DATABASE IF EXISTS {name}")
    create_database(name)
    config = load_config({"EVIDENCE_HOME": "/nonexistent", "EVIDENCE_DATABASE_URL": pg_url(name)})
    upgrade(config)
    yield name
    _pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@dataclass
class Env:
    """A store ready for a test: its home, URL and the environment that selects it."""

    backend: str
    home: Path
    database_url: str

    @property
    def vars(self) -> dict[str, str]:
        return {
            "EVIDENCE_HOME": str(self.home),
            "EVIDENCE_DATABASE_URL": self.database_url,
            "EVIDENCE_TIMEZONE": "Europe/Helsinki",
        }

    def write_config(self, text_: str) -> None:
        (self.home / "evidence.toml").write_text(text_, encoding="utf-8")


@pytest.fixture(params=BACKENDS)
def env(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Env]:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        shutil.copy2(template, home / "evidence.db")
        result = Env("sqlite", home, f"sqlite:///{home / 'evidence.db'}")
        dropper = None
    else:
        template_db: str = request.getfixturevalue("pg_template")
        name = f"evidence_t_{os.getpid()}_{next(_counter)}"
        create_database(name, template_db)
        result = Env("postgresql", home, pg_url(name))
        dropper = name
    for key, value in result.vars.items():
        monkeypatch.setenv(key, value)
    yield result
    if dropper:
        _pg_admin(f"DROP DATABASE IF EXISTS {dropper} WITH (FORCE)")


@pytest.fixture
def store(env: Env) -> Iterator[Store]:
    opened = open_store(load_config())
    yield opened
    opened.close()


COMPANY_TOML = """
[company]
name = "Aurora Energia Oy"
mail_domains = ["aurora-energia.example"]
"""


@pytest.fixture
def company_store(env: Env) -> Iterator[Store]:
    """A store whose company owns aurora-energia.example (the scenario's company)."""
    env.write_config(COMPANY_TOML)
    opened = open_store(load_config())
    yield opened
    opened.close()


@pytest.fixture
def sample_store(env: Env) -> Iterator[Store]:
    """The built-in sample's store (tests/samples.py: its settings, mail, calls, case)."""
    from tests.samples import SAMPLE_TOML, load_sample

    env.write_config(SAMPLE_TOML)
    opened = open_store(load_config())
    load_sample(opened)
    yield opened
    opened.close()


class Cli:
    """Runs the real command in-process, as a user would type it."""

    def __init__(self, env: Env) -> None:
        self.env = env
        self.runner = CliRunner()

    def __call__(self, *args: str, code: int | None = 0) -> Result:
        result = self.runner.invoke(
            main, list(args), env=self.env.vars, catch_exceptions=False, prog_name="evidence"
        )
        if code is not None:
            assert result.exit_code == code, (result.exit_code, result.output, result.stderr)
        return result


@pytest.fixture
def cli(env: Env) -> Cli:
    return Cli(env)


def run_evidence(
    env: Env, *args: str, check_code: int | None = 0, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The installed command in a subprocess: exactly what a user runs (``extra_env``:
    more environment variables, e.g. ``PYTHONHASHSEED``)."""
    proc = subprocess.run(
        [sys.executable, "-m", "evidence", *args],
        env={**os.environ, **env.vars, **(extra_env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check_code is not None:
        assert proc.returncode == check_code, (args, proc.returncode, proc.stdout, proc.stderr)
    return proc


def pdf_text(path: Path) -> str:
    return subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout


def page_texts(path: Path, pages: int, layout: bool = False) -> list[str]:
    """The text of each of the first ``pages`` pages (``layout``: as laid out)."""
    return [
        subprocess.run(
            ["pdftotext", "-f", str(n), "-l", str(n), *(["-layout"] if layout else []), str(path)]
            + ["-"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for n in range(1, pages + 1)
    ]


# What a mail import says on a store with no company mail domain (a bare `evidence init`).
NO_DOMAIN_NOTE = f"note: {unconfigured_note(MailRules())}\n"


def need_shared() -> None:
    if not SCENARIO.is_dir():
        pytest.skip("../shared is not beside this checkout (CI has it)")
