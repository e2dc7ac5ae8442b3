"""Eight importers at once over overlapping inputs: no error, nothing twice, the same records.

Every message is in two importers' inputs (one as an mbox, the other as a folder
of .eml files), every call-log line in two importers' files. All eight run as
separate processes started together, on SQLite (BEGIN IMMEDIATE and a busy
timeout) and on PostgreSQL (an advisory lock per write transaction).

The chain root cannot equal a single importer's: the chain is in commit order,
and each record carries its import time, so even the same importer run twice
gives another root. What must be equal is the set of records: this is checked
against one importer given all the input, record by record (every column but
the ids, times of import and file positions), and both chains verify.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select

from evidence.store.models import CdrRecord, Email, EmailAttachment, QueueEvent, SourceLine
from tests import bulk
from tests.bulk import Stores, spawn
from tests.conftest import BACKENDS, Env

IMPORTERS = 8
SLICES = 8
MAIL_MESSAGES = 240
CALLS = 480


@pytest.fixture(params=BACKENDS)
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    made = Stores(request, request.param, tmp_path)
    yield made
    made.drop_all()


def _slices(items: list[Any], count: int) -> list[list[Any]]:
    size = -(-len(items) // count)
    return [items[i * size : (i + 1) * size] for i in range(count)]


def mail_jobs(root: Path) -> tuple[list[list[str]], list[str], bulk.Expected]:
    messages = bulk.mail_messages(MAIL_MESSAGES, seed=21)
    parts = _slices(messages, SLICES)
    jobs = []
    for i in range(IMPORTERS):
        mine = parts[i] + parts[(i + 1) % SLICES]
        if i % 2 == 0:
            path = bulk.write_mbox(root / f"importer-{i}.mbox", mine)
        else:
            path = root / f"importer-{i}"
            path.mkdir()
            for n, (raw, _) in enumerate(mine):
                (path / f"{n:04d}.eml").write_bytes(raw)
        jobs.append(["import", "mail", str(path)])
    whole = bulk.write_mbox(root / "all.mbox", messages)
    expected = bulk.Expected()
    bulk.expect_mail(messages, expected)
    return jobs, ["import", "mail", str(whole)], expected


def call_jobs(root: Path) -> tuple[list[list[str]], list[list[str]], bulk.Expected]:
    cdr, queue = bulk.call_logs(CALLS, seed=22)
    jobs = []
    half = IMPORTERS // 2
    for name, lines, fmt in (
        ("Master.csv", cdr, "asterisk-cdr"),
        ("queue_log", queue, "asterisk-queue-log"),
    ):
        parts = _slices(lines, half)
        for i in range(half):
            path = bulk.write_lines(root / f"{name}.{i}", parts[i] + parts[(i + 1) % half])
            jobs.append(["import", "calls", str(path), "--format", fmt])
    whole = [
        ["import", "calls", str(bulk.write_lines(root / "Master.csv", cdr)), "--format",
         "asterisk-cdr"],
        ["import", "calls", str(bulk.write_lines(root / "queue_log", queue)), "--format",
         "asterisk-queue-log"],
    ]  # fmt: skip
    expected = bulk.Expected()
    bulk.expect_calls(cdr, queue, expected)
    return jobs, whole, expected


def run_together(env: Env, jobs: list[list[str]]) -> float:
    start = time.monotonic()
    procs = [spawn(env, job) for job in jobs]
    results = [bulk.finish(proc, timeout=900) for proc in procs]
    assert [code for code, _ in results] == [0] * len(jobs), results
    assert [err for _, err in results] == [""] * len(jobs)
    return time.monotonic() - start


def _rows(database_url: str) -> dict[str, set[tuple[Any, ...]]]:
    """Every record as a tuple of its columns, less ids, import times and file positions."""
    volatile = {"id", "email_id", "source_line_id", "imported_at", "import_run_id", "source",
                "line_number"}  # fmt: skip
    engine = create_engine(database_url)
    out: dict[str, set[tuple[Any, ...]]] = {}
    try:
        with engine.connect() as conn:
            for model in (Email, EmailAttachment, SourceLine, CdrRecord, QueueEvent):
                columns = [c for c in model.__table__.columns if c.key not in volatile]
                rows = [tuple(r) for r in conn.execute(select(*columns))]
                out[model.__tablename__] = set(rows)
                assert len(rows) == len(out[model.__tablename__]), f"{model.__tablename__} twice"
    finally:
        engine.dispose()
    return out


@pytest.mark.parametrize("kind", ["mail", "calls"])
def test_eight_importers_at_once(stores: Stores, tmp_path: Path, kind: str) -> None:
    if kind == "mail":
        jobs, one, expected = mail_jobs(tmp_path)
        single = [one]
    else:
        jobs, single, expected = call_jobs(tmp_path)
    assert len(jobs) == IMPORTERS

    together = stores.new()
    run_together(together, jobs)
    bulk.check_complete(together.database_url, together.vars, expected)

    alone = stores.new()
    for job in single:
        run_together(alone, [job])
    bulk.check_complete(alone.database_url, alone.vars, expected)

    assert _rows(together.database_url) == _rows(alone.database_url)
