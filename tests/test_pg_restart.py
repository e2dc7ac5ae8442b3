"""PostgreSQL restarted in the middle of an import.

The shared server other tests use is never touched: the test makes a private
cluster (initdb into a temporary folder, its own port, trust auth), builds an
evidence store in it, starts a large call-log import and restarts the cluster
(``pg_ctl restart -m fast``, then ``-m immediate``, which is a crash of the
server) once some chunks are committed. The import either fails at once with
one clear line and exit code 7, or carries on over a new connection (the pool
checks a connection before using it); either way nothing half-written remains,
the store verifies, and running the import again completes it exactly once.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from evidence.store.models import CdrRecord, LedgerEntry, SourceLine
from tests import bulk
from tests.bulk import spawn
from tests.conftest import Env

CALLS = 20_000  # ~5 MB: several chunks, parsed by worker processes


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        pytest.fail(f"PostgreSQL server binaries ({name}) are not installed")
    return found[-1]


def _as_postgres(args: list[str]) -> list[str]:
    # initdb refuses to run as root; the cluster belongs to the postgres user then.
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Cluster:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="evidence-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")

    def pg_ctl(self, *args: str) -> None:
        # The server's output goes to the log: a server started by `restart` keeps any
        # pipe it is given open, and reading one to its end would never return.
        subprocess.run(
            _as_postgres(
                [
                    _bin("pg_ctl"),
                    "-D",
                    str(self.data),
                    "-w",
                    "-t",
                    "120",
                    "-l",
                    str(self.root / "log"),
                    *args,
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def start(self) -> None:
        subprocess.run(
            _as_postgres([_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres"]),
            check=True,
            capture_output=True,
        )
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        self.pg_ctl("-o", options, "start")

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.pg_ctl("-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    made = Cluster()
    try:
        made.start()
        engine = create_engine(made.url("postgres"), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text("CREATE DATABASE evidence"))
        engine.dispose()
        yield made
    finally:
        made.stop()


def _lines(url: str) -> int:
    engine = create_engine(url)
    try:
        return bulk.count(engine, SourceLine)
    finally:
        engine.dispose()


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_import_survives_a_database_restart(cluster: Cluster, tmp_path: Path, mode: str) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    env = Env("postgresql", home, cluster.url("evidence"))
    code, err = bulk.finish(spawn(env, ["init"]))
    assert code == 0, err
    cdr, queue = bulk.call_logs(CALLS, seed=31)
    master = bulk.write_lines(tmp_path / "Master.csv", cdr)
    expected = bulk.Expected()
    bulk.expect_calls(cdr, [], expected)
    job = ["import", "calls", str(master), "--format", "asterisk-cdr"]

    proc = spawn(env, job)
    deadline = time.monotonic() + 600
    while _lines(env.database_url) == 0:  # the first chunk is committed
        assert proc.poll() is None, proc.communicate()[1].decode()
        assert time.monotonic() < deadline
        time.sleep(0.1)
    cluster.pg_ctl("-m", mode, "restart")
    code, err = bulk.finish(proc)
    assert "Traceback" not in err, err
    if code == 7:  # failed cleanly: one line saying what happened and what to do
        assert err.startswith("evidence: the connection to the database was lost"), err
        assert err.endswith("run the command again when this is fixed\n"), err
        assert err.count("\n") == 1, err
    else:  # carried on over a new connection
        assert code == 0, err

    # Nothing half-written: every stored line has its parsed row and its chain entry.
    engine = create_engine(env.database_url)
    try:
        partial = bulk.count(engine, SourceLine)
        assert bulk.count(engine, CdrRecord) == partial
        assert bulk.count(engine, LedgerEntry) == partial
        bulk.check_blobs(engine)
    finally:
        engine.dispose()
    bulk.check_verifies(env.vars)
    assert 0 < partial <= CALLS and (code == 7) == (partial < CALLS)
    print(f"restart -m {mode}: exit {code}, {partial:,} of {CALLS:,} lines stored")

    code, err = bulk.finish(spawn(env, job))
    assert code == 0, err
    bulk.check_complete(env.database_url, env.vars, expected)
