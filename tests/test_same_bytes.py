"""The same evidence gives the same bytes: in any process (whatever Python's hash seed),
with any number of render workers, from a cold, a warm or another export's page cache,
and after other exports of the same store; as a PDF and as a ZIP.

Every export here runs as a user runs it, in a process of its own, on a store made with
the defaults (no evidence.toml) from the project's sample dispute.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import zipfile
from pathlib import Path

import pytest

from evidence.cases import attach_document, open_case
from evidence.store.db import Store
from tests.conftest import Env, run_evidence
from tests.samples import AINO, SAMPLE, load_sample

CASE = "KKV/1234/2026"
PINNED = "2026-03-25T12:00+02:00"


@pytest.fixture
def case_store(store: Store) -> Store:
    load_sample(store)
    open_case(
        store,
        CASE,
        customer_ref=AINO,
        authority="kkv",
        received=dt.date(2026, 3, 20),
        deadline=dt.date(2026, 4, 3),
    )
    attach_document(
        store,
        CASE,
        SAMPLE / "letters/kkv-selvityspyynto.pdf",
        title="Selvityspyyntö",
        document_date=None,
    )
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
