"""The desk's export jobs (issue #21): a queued job survives a restart; a worker killed
mid-export leaves no half file, and the job is retried, or failed with the reason after
the last try. Real processes: `evidence serve` on SQLite (it runs jobs itself), `evidence
worker` (procrastinate) on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update

from evidence.config import load_config
from evidence.jobs import MAX_ATTEMPTS, get_job, job_path, queue_export, recover_stalled
from evidence.store.db import Store, open_store
from evidence.store.models import ExportJob
from evidence.timeutil import utcnow
from evidence.web.settings import ensure_secret_key
from tests.conftest import Env
from tests.samples import AINO, SAMPLE_TOML, load_sample
from tests.test_web_browser import free_port

pytestmark = pytest.mark.slow


@pytest.fixture
def jobs_store(env: Env) -> Iterator[Store]:
    env.write_config(SAMPLE_TOML)
    config = load_config()
    ensure_secret_key(config)
    store = open_store(config)
    load_sample(store)
    yield store
    store.close()


def runner(env: Env, log: Path) -> subprocess.Popen[bytes]:
    """What runs jobs on this database: the server on SQLite, a worker on PostgreSQL."""
    args = (
        ["serve", "--port", str(free_port()), "--workers", "1"]
        if env.backend == "sqlite"
        else ["worker"]
    )
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "evidence", *args],
            env={**os.environ, **env.vars},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: killed whole, render workers too
        )


def wait_for(store: Store, job_id: int, statuses: tuple[str, ...], seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status = get_job(store, job_id).status
        if status in statuses:
            return status
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {get_job(store, job_id)}")


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Signal the process (SIGKILL: its whole group, as a machine's loss would)."""
    if sig == signal.SIGKILL:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def queue(store: Store) -> int:
    return queue_export(
        store, customer=AINO, case_ref=None, language="en", date_from=None, date_to=None,
        by="tester (desk)",
    ).id  # fmt: skip


def test_a_queued_job_survives_a_restart(env: Env, jobs_store: Store, tmp_path: Path) -> None:
    first = runner(env, tmp_path / "first.log")
    time.sleep(3)
    stop(first)
    job_id = queue(jobs_store)  # queued while nothing runs jobs
    time.sleep(2)
    assert get_job(jobs_store, job_id).status == "queued"
    again = runner(env, tmp_path / "again.log")
    try:
        assert wait_for(jobs_store, job_id, ("done", "failed"), 180) == "done", (
            get_job(jobs_store, job_id),
            (tmp_path / "again.log").read_text(errors="replace"),
        )
    finally:
        stop(again)
    assert job_path(jobs_store, job_id).read_bytes().startswith(b"%PDF-")


def test_a_killed_worker_leaves_no_half_file_and_the_job_is_retried(
    env: Env, jobs_store: Store, tmp_path: Path
) -> None:
    job_id = queue(jobs_store)
    doomed = runner(env, tmp_path / "doomed.log")
    try:
        wait_for(jobs_store, job_id, ("running",), 60)
        time.sleep(1)
    finally:
        stop(doomed, signal.SIGKILL)
    final = job_path(jobs_store, job_id)
    assert not final.exists()
    assert get_job(jobs_store, job_id).status == "running"  # until its heartbeat is seen stale
    # Its heartbeat stops; a minute later it is taken up again.
    assert recover_stalled(jobs_store, now=utcnow() + dt.timedelta(minutes=1)) == [job_id]
    assert list(final.parent.glob(f".{final.name}.*")) == []  # no half file left behind
    info = get_job(jobs_store, job_id)
    assert info.status == "queued" and "stopped; retried" in (info.error or "")
    rescuer = runner(env, tmp_path / "rescuer.log")
    try:
        assert wait_for(jobs_store, job_id, ("done", "failed"), 180) == "done"
    finally:
        stop(rescuer)
    done = get_job(jobs_store, job_id)
    assert done.attempts == 2 and done.error is None
    assert final.read_bytes().startswith(b"%PDF-")


def test_after_the_last_try_the_job_fails_with_the_reason(jobs_store: Store) -> None:
    job_id = queue(jobs_store)
    with jobs_store.writing() as session:
        session.execute(
            update(ExportJob)
            .where(ExportJob.id == job_id)
            .values(status="running", attempts=MAX_ATTEMPTS, heartbeat_at=utcnow())
        )
    assert recover_stalled(jobs_store) == []  # still beating: left alone
    assert recover_stalled(jobs_store, now=utcnow() + dt.timedelta(minutes=1)) == [job_id]
    failed = get_job(jobs_store, job_id)
    assert failed.status == "failed"
    assert failed.error == (
        f"the worker running it stopped {MAX_ATTEMPTS} times (killed or lost); "
        "start the export again"
    )
