"""The same evidence gives the same bytes: in any process (whatever Python's hash seed),
with any number of render workers, from a cold, a warm or another export's page cache,
and after other exports of the same store; as a PDF and as a ZIP. And the dossier names
the software (and versions) that made it.

The store is made with the defaults (no evidence.toml) from the project's sample dispute;
the exports that compare bytes run as a user runs them, each in a process of its own.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import json
import platform
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pikepdf
import pytest

from evidence.render import software
from evidence.render.dossier import export_dossier
from evidence.store.db import Store
from tests.conftest import RENDER_ONLY, Cli, Env, pdf_text, run_evidence
from tests.samples import AINO, load_sample, open_sample_case
from tests.samples import SAMPLE_CASE as CASE

PINNED = "2026-03-25T12:00+02:00"


@pytest.fixture
def case_store(store: Store) -> Store:
    load_sample(store)
    open_sample_case(store)
    return store


def _export(env: Env, out: Path, *args: str, seed: int) -> str:
    """``evidence export --case CASE --generated-at PINNED -o out ARGS`` in a process of its
    own with the hash seed ``seed``; the SHA-256 of what it wrote."""
    _run_export(env, out, "--case", CASE, "--generated-at", PINNED, *args, seed=seed)
    return hashlib.sha256(out.read_bytes()).hexdigest()


def _run_export(env: Env, out: Path, *args: str, seed: int) -> int:
    """``evidence export -o out ARGS``; the checkpoint the dossier is proved against."""
    proc = run_evidence(
        env, "export", "-o", str(out), *args, extra_env={"PYTHONHASHSEED": str(seed)}
    )
    [line] = [line for line in proc.stdout.splitlines() if line.startswith("proved against")]
    return int(line.split("#")[1].split()[0])


@pytest.mark.slow
def test_the_same_evidence_gives_the_same_bytes_in_any_process(
    env: Env, case_store: Store, tmp_path: Path
) -> None:
    cold = _export(env, tmp_path / "cold.pdf", "--no-cache", seed=1)
    # Another hash seed, one worker, every page from the cache the first export left.
    warm = _export(env, tmp_path / "warm.pdf", "--jobs", "1", seed=2)
    assert warm == cold
    # The ZIP, from a cold and a warm cache: the same bytes, and the same PDF inside.
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = _export(env, tmp_path / "a/kkv.zip", "--format", "zip", "--no-cache", seed=3)
    second = _export(env, tmp_path / "b/kkv.zip", "--format", "zip", "--jobs", "2", seed=4)
    assert second == first
    with zipfile.ZipFile(tmp_path / "a/kkv.zip") as archive:
        inside = archive.read("kkv/data/kkv.pdf")
    assert hashlib.sha256(inside).hexdigest() == cold


@pytest.mark.slow
def test_another_export_in_between_changes_no_later_dossier(
    env: Env, case_store: Store, tmp_path: Path
) -> None:
    """Exports are logged in the ledger, but the dossier of the same evidence stays the
    same after another export: here one in another language, of the customer without the
    case (so without the case's letter: proved against an older checkpoint)."""
    args = ("--case", CASE, "--generated-at", PINNED)
    case_checkpoint = _run_export(env, tmp_path / "before.pdf", *args, seed=1)
    older = _run_export(env, tmp_path / "other.pdf", AINO, "--lang", "sv", seed=1)
    assert older < case_checkpoint
    assert _run_export(env, tmp_path / "after.pdf", *args, seed=1) == case_checkpoint
    assert (tmp_path / "after.pdf").read_bytes() == (tmp_path / "before.pdf").read_bytes()


def _installed_software() -> dict[str, str]:
    """The versions of what renders the dossier, read here from each package itself and
    from the libraries WeasyPrint has loaded (HarfBuzz tells its version only by
    comparison)."""
    import zlib

    import fontTools
    import pydyf
    import weasyprint
    from weasyprint.text.ffi import harfbuzz, pango

    pango_version = pango.pango_version()
    major = max(n for n in range(100) if harfbuzz.hb_version_atleast(n, 0, 0))
    minor = max(n for n in range(100) if harfbuzz.hb_version_atleast(major, n, 0))
    micro = max(n for n in range(100) if harfbuzz.hb_version_atleast(major, minor, n))
    return {
        "evidence": importlib.metadata.version("evidence"),
        "WeasyPrint": weasyprint.__version__,
        "pydyf": pydyf.__version__,
        "fontTools": fontTools.version,
        "pikepdf": pikepdf.__version__,
        "libqpdf": pikepdf.__libqpdf_version__,
        "Pango": f"{pango_version // 10000}.{pango_version // 100 % 100}.{pango_version % 100}",
        "HarfBuzz": f"{major}.{minor}.{micro}",
        "Python": platform.python_version(),
        "zlib": zlib.ZLIB_RUNTIME_VERSION,
    }


def _manifest(path: Path) -> dict:
    with pikepdf.open(path) as pdf:
        return json.loads(pdf.attachments["manifest.json"].get_file().read_bytes())


@RENDER_ONLY
@pytest.mark.parametrize(
    ("language", "heading"),
    [
        ("fi", "Ohjelmistot, joilla tämä asiakirja on tehty"),
        ("sv", "Programvara som har framställt detta dokument"),
        ("en", "Software that made this document"),
    ],
)
def test_the_dossier_names_its_software(
    case_store: Store, cli: Cli, tmp_path: Path, language: str, heading: str
) -> None:
    out = tmp_path / "d.pdf"
    cli("export", "--case", CASE, "--lang", language, "-o", str(out))
    installed = _installed_software()
    flat = " ".join(pdf_text(out).split())
    named = flat[flat.index(heading) :]
    for name, version in installed.items():
        assert f" {name} {version} " in named, (name, version)
    assert _manifest(out)["software"] == installed


@pytest.fixture
def versions_read_again() -> Iterator[None]:
    """The software's versions are read once a process: read them again in this test,
    and after it."""
    software.dossier_software.cache_clear()
    software.render_fingerprint.cache_clear()
    yield
    software.dossier_software.cache_clear()
    software.render_fingerprint.cache_clear()


@RENDER_ONLY
def test_pages_cached_by_other_rendering_software_are_rendered_again(
    case_store: Store,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    versions_read_again: None,
) -> None:
    """pydyf writes WeasyPrint's PDFs: the same HTML under another pydyf is other bytes,
    so a page cached before an upgrade of pydyf is not taken from the cache after it."""
    pinned = dt.datetime(2026, 3, 25, 10, 0, tzinfo=dt.UTC)

    def export(name: str) -> object:
        return export_dossier(
            case_store, customer_ref=None, case_ref=CASE, output=tmp_path / name,
            generated_at=pinned,
        )  # fmt: skip

    export("a.pdf")
    assert export("b.pdf").parts_rendered == 0  # type: ignore[attr-defined]
    real = importlib.metadata.version
    monkeypatch.setattr(
        importlib.metadata, "version", lambda dist: "99.0" if dist == "pydyf" else real(dist)
    )
    software.dossier_software.cache_clear()
    software.render_fingerprint.cache_clear()
    upgraded = export("c.pdf")
    assert upgraded.parts_cached == 0  # type: ignore[attr-defined]
    assert " pydyf 99.0 " in " ".join(pdf_text(tmp_path / "c.pdf").split())
