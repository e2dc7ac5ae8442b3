"""The package installs as a wheel that works with no source tree: templates, migrations and
message catalogs travel inside it (issue #20)."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import SCENARIO, _pg_admin, pdf_text, pg_url

ROOT = Path(__file__).resolve().parents[1]
# One worker builds the wheel (in the checkout: setuptools writes evidence.egg-info there) and
# its venv, once, for every test here (`make test` runs with --dist loadgroup).
pytestmark = pytest.mark.xdist_group("packaging")


def _pyproject() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as fh:
        return tomllib.load(fh)["tool"]["setuptools"]  # type: ignore[no-any-return]


def test_every_package_of_the_source_tree_is_in_the_wheel_list() -> None:
    """pyproject.toml lists the packages (it maps templates/ and migrations/ into the
    package): a package added under evidence/ and not listed there would be left out."""
    listed = set(_pyproject()["packages"])  # type: ignore[call-overload]
    in_tree = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "evidence").rglob("__init__.py")
    }
    assert in_tree - listed == set(), "add these packages to pyproject.toml [tool.setuptools]"
    mapped = _pyproject()["package-dir"]
    assert mapped == {"evidence._templates": "templates", "evidence._migrations": "migrations"}
    assert listed - in_tree == set(mapped)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel `make dist` builds (from the sdist it builds first)."""
    out = tmp_path_factory.mktemp("dist")
    made = subprocess.run(
        [sys.executable, str(ROOT / "scripts/dist"), str(out)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout.split()
    assert [Path(p).name for p in made] == [
        "evidence-0.1.0.tar.gz",
        "evidence-0.1.0-py3-none-any.whl",
    ]
    return Path(made[1])


@dataclass
class Installed:
    venv: Path
    empty: Path  # a folder with nothing in it: the commands run here

    @property
    def evidence(self) -> str:
        return str(self.venv / "bin" / "evidence")

    def environ(self, **more: str) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("EVIDENCE_", "PYTHON"))}
        return {**keep, "EVIDENCE_TIMEZONE": "Europe/Helsinki", **more}


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The wheel in a fresh venv; its dependencies are this venv's (a .pth file puts its
    site-packages after the new venv's own), and the source tree is on no path."""
    base = tmp_path_factory.mktemp("installed")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    subprocess.run(
        [str(venv / "bin/pip"), "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
        check=True,
        timeout=300,
    )
    site = Path(
        subprocess.run(
            [
                str(venv / "bin/python"),
                "-c",
                "import sysconfig; print(sysconfig.get_path('purelib'))",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    # A path in a .pth file is added, but the .pth files in it (the editable install's
    # finder that maps `evidence` to this checkout) are not run.
    (site / "zz-deps-of-the-test-venv.pth").write_text(sysconfig.get_path("purelib") + "\n")
    empty = base / "empty"
    empty.mkdir()
    return Installed(venv, empty)


def test_the_wheel_carries_templates_migrations_and_catalogs(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in (
        "evidence/_templates/cover.html.j2",
        "evidence/_templates/dossier.css",
        "evidence/_templates/partials/verifying.fi.html.j2",
        "evidence/_migrations/env.py",
        "evidence/_migrations/script.py.mako",
        "evidence/_migrations/versions/0001_initial_evidence_store.py",
        "evidence/locale/fi/LC_MESSAGES/evidence.po",
        "evidence/locale/sv/LC_MESSAGES/evidence.po",
        # the legal desk's templates and its static files (htmx vendored, no build step)
        "evidence/_templates/web/case.html.j2",
        "evidence/web/static/htmx.min.js",
        "evidence/web/static/desk.js",
        "evidence/web/static/desk.css",
    ):
        assert name in names
    versions = {p.name for p in (ROOT / "migrations/versions").glob("*.py")}
    assert versions == {
        n.rsplit("/", 1)[1] for n in names if n.startswith("evidence/_migrations/versions/")
    }


@dataclass
class Mail:
    """What to import, and what the dossier must then say."""

    ref: str
    name: str
    email: str
    paths: list[Path]
    says: list[str]


def _mail() -> Mail:
    if SCENARIO.is_dir():
        return Mail(
            "100234",
            "Matti Virtanen",
            "matti.virtanen@example.net",
            sorted((SCENARIO / "mail").glob("*.eml")),
            ["Matti Virtanen", "VASTATKAA NYT SAATANA!!!", "Mikä helvetti teillä on?", "4,90 €"],
        )
    return Mail(
        "200517",
        "Aino Laaksonen",
        "aino.laaksonen@example.com",
        sorted((ROOT / "sample/mail").glob("*.eml")),
        ["Aino Laaksonen", "aino.laaksonen@example.com"],
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with nothing in it: `evidence init` runs every migration from the wheel."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'home' / 'evidence.db'}"
        return
    name = f"evidence_wheel_{os.getpid()}"
    _pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    _pg_admin(f"CREATE DATABASE {name}")
    yield pg_url(name)
    _pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.mark.slow
def test_installed_wheel_inits_imports_and_exports_from_an_empty_folder(
    installed: Installed, database: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    environ = installed.environ(EVIDENCE_HOME=str(home), EVIDENCE_DATABASE_URL=database)

    def run(*args: str) -> str:
        proc = subprocess.run(
            args, cwd=installed.empty, env=environ, capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
        return proc.stdout

    where = run(
        str(installed.venv / "bin/python"),
        "-c",
        "import evidence, evidence.resources as r; "
        "print(evidence.__file__); print(r.templates_dir()); print(r.migrations_dir())",
    ).split()
    assert all(Path(p).is_relative_to(installed.venv) for p in where), where
    assert not any(Path(p).is_relative_to(ROOT) for p in where), where

    mail = _mail()
    run(installed.evidence, "init")
    run(installed.evidence, "customer", "add", mail.ref, "--name", mail.name, "--email", mail.email)
    run(installed.evidence, "import", "mail", *map(str, mail.paths))
    pdf = tmp_path / "dossier.pdf"
    run(installed.evidence, "export", mail.ref, "-o", str(pdf))

    text = pdf_text(pdf)
    assert "Asiakkaan yhteydenottohistoria" in text  # the Finnish catalog, from the wheel
    for expected in mail.says:
        assert expected in text
    assert list(installed.empty.iterdir()) == []  # nothing written where the user stood
