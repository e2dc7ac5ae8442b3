"""Crash safety: imports killed with SIGKILL at random points, then run to completion.

A large mbox and a large Asterisk CDR with its queue_log are imported by the
real command in a subprocess, which is killed (SIGKILL, no chance to clean up)
after a seeded random delay spread over the time a whole import takes. After
every kill the store must verify (the checks of `evidence verify`) and the
importer's worker processes must be gone; after the run that completes, every
message and call-log line is stored exactly once, every quarantined input once,
and every blob is cited and matches its SHA-256.

The default run kills a few imports; the slow run 200 (50 each for mail and
calls, on SQLite and on PostgreSQL).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import bulk
from tests.bulk import Stores, spawn
from tests.conftest import BACKENDS, Env

MAIL_MESSAGES = 700  # two chunks: 500 and 200
CALLS = 1200  # 1,204 CDR rows and ~3,600 queue_log lines
KILLS_PER_CYCLE = 8  # then a run that is left to finish


@dataclass
class Job:
    name: str
    args: list[str]


@dataclass
class Tally:
    kills: int = 0
    completions: int = 0
    cycles: int = 0


@pytest.fixture(params=BACKENDS)
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    made = Stores(request, request.param, tmp_path)
    yield made
    made.drop_all()


def group_gone(pgid: int, timeout: float = 15.0) -> bool:
    """Wait until no process of the group is left (workers die with their parent)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.02)
    os.killpg(pgid, signal.SIGKILL)
    return False


def timed_runs(env: Env, jobs: list[Job]) -> dict[str, float]:
    """Each job run to completion once: how long a whole import takes."""
    took = {}
    for job in jobs:
        start = time.monotonic()
        proc = spawn(env, job.args)
        _, err = proc.communicate(timeout=600)
        assert proc.returncode in (0, 3), (job.name, proc.returncode, err.decode())
        took[job.name] = time.monotonic() - start
    return took


def kill_and_finish(
    stores: Stores,
    config_toml: str,
    jobs: list[Job],
    expected: bulk.Expected,
    kills: int,
    seed: int,
) -> Tally:
    """Cycles of: fresh store, runs killed at random points, one run left to finish."""
    rng = random.Random(seed)
    took = timed_runs(stores.new(config_toml), jobs)
    tally = Tally()
    while tally.kills < kills:
        tally.cycles += 1
        env = stores.new(config_toml)
        pending = list(jobs)
        killed_here = 0
        while pending:
            job = pending[0]
            proc = spawn(env, job.args)
            killing = killed_here < KILLS_PER_CYCLE and tally.kills < kills
            if killing:
                # Spread over the whole run: start-up, every chunk, the checkpoint at the end.
                try:
                    proc.wait(timeout=rng.uniform(0.05, 1.1) * took[job.name])
                except subprocess.TimeoutExpired:
                    proc.send_signal(signal.SIGKILL)
            _, err = proc.communicate(timeout=600)
            if proc.returncode == bulk.KILLED:
                tally.kills += 1
                killed_here += 1
                assert group_gone(proc.pid), "a worker outlived its killed importer"
                bulk.check_verifies(env.vars)
                continue
            assert proc.returncode in (0, 3), (job.name, proc.returncode, err.decode())
            assert b"Traceback" not in err, err.decode()
            pending.pop(0)
        tally.completions += 1
        bulk.check_complete(env.database_url, env.vars, expected)
        stores.drop_all()
    return tally


def mail_input(tmp_path: Path) -> tuple[list[Job], bulk.Expected]:
    messages = bulk.mail_messages(MAIL_MESSAGES, seed=9, bad_every=250)
    mbox = bulk.write_mbox(tmp_path / "export.mbox", messages)
    expected = bulk.Expected()
    bulk.expect_mail(messages, expected)
    assert expected.mail_bad == 2 and mbox.stat().st_size > 1_500_000
    return [Job("mail", ["import", "mail", str(mbox)])], expected


def calls_input(tmp_path: Path) -> tuple[list[Job], bulk.Expected]:
    cdr, queue = bulk.call_logs(CALLS, seed=9, bad_every=300)
    master = bulk.write_lines(tmp_path / "Master.csv", cdr)
    queue_log = bulk.write_lines(tmp_path / "queue_log", queue)
    expected = bulk.Expected()
    bulk.expect_calls(cdr, queue, expected)
    assert len(expected.bad_lines) == 8
    return [
        Job("cdr", ["import", "calls", str(master), "--format", "asterisk-cdr"]),
        Job("queue_log", ["import", "calls", str(queue_log), "--format", "asterisk-queue-log"]),
    ], expected


INPUTS: dict[str, Callable[[Path], tuple[list[Job], bulk.Expected]]] = {
    "mail": mail_input,
    "calls": calls_input,
}


@pytest.mark.parametrize("kind", ["mail", "calls"])
def test_killed_imports_leave_a_whole_store(stores: Stores, tmp_path: Path, kind: str) -> None:
    jobs, expected = INPUTS[kind](tmp_path)
    tally = kill_and_finish(stores, bulk.MAIL_LIMITS_TOML, jobs, expected, kills=2, seed=1)
    assert tally.kills == 2 and tally.completions >= 1


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["mail", "calls"])
def test_fifty_kills_each_for_mail_and_calls(stores: Stores, tmp_path: Path, kind: str) -> None:
    """4 x 50 = 200 kills: mail and calls, on SQLite and on PostgreSQL."""
    jobs, expected = INPUTS[kind](tmp_path)
    seed = {"mail": 11, "calls": 12}[kind] + (100 if stores.backend == "postgresql" else 0)
    tally = kill_and_finish(stores, bulk.MAIL_LIMITS_TOML, jobs, expected, kills=50, seed=seed)
    assert tally.kills == 50
    assert tally.completions == tally.cycles >= 50 // KILLS_PER_CYCLE
    print(f"{kind} on {stores.backend}: {tally.kills} kills in {tally.cycles} cycles")
