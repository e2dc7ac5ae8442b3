"""IMAP import speed: ``python benchmarks/imap.py [-n 10000] [--pg URL]``.

Starts a Dovecot on 127.0.0.1 (as tests/test_imap.py does), puts N realistic
messages (those of benchmarks/ingest.py) in a mailbox, and runs
``evidence import imap`` in fresh processes into an empty store:

- the first import (every message fetched, parsed and stored),
- a second run with nothing new (the folder's UIDVALIDITY and highest UID say so),
- one new message, then a run that fetches just it;
- for comparison, the same messages imported from the Maildir on disk
  (`evidence import mail`) into another empty store, in the same conditions.

Prints messages/s and seconds for each, the CPU time of `evidence` and its
parse workers (Dovecot's own is not counted), and the load average before and
after: on a shared machine the wall-clock rates follow the load.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.ingest import make_message  # noqa: E402
from tests.test_imap import PASSWORD_AUTH, running_dovecot  # noqa: E402


def _cpu() -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return children.ru_utime + children.ru_stime


def _run(env: dict[str, str], args: list[str]) -> tuple[float, float, dict[str, object]]:
    began, cpu = time.monotonic(), _cpu()
    proc = subprocess.run(
        [sys.executable, "-m", "evidence", *args, "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode not in (0, 3):
        raise SystemExit(f"evidence failed: {proc.stderr}")
    return time.monotonic() - began, _cpu() - cpu, json.loads(proc.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=10_000, help="messages (default 10,000)")
    parser.add_argument("--pg", help="a PostgreSQL URL to import into instead of SQLite")
    args = parser.parse_args()
    rng = random.Random(20260928)
    with running_dovecot(PASSWORD_AUTH) as dovecot, tempfile.TemporaryDirectory() as tmp:
        home = dovecot.add_user("bench", "salasana")
        for i in range(args.n):
            (home / "cur" / f"{1790000000 + i}.M{i}P1.bench:2,S").write_bytes(make_message(i, rng))
        dovecot.own(dovecot.root / "mail")
        size = sum(p.stat().st_size for p in (home / "cur").iterdir())
        store = Path(tmp) / "home"
        store.mkdir(mode=0o700)
        env = {
            **os.environ,
            "EVIDENCE_HOME": str(store),
            "EVIDENCE_IMAP_PASSWORD": "salasana",
            "EVIDENCE_TIMEZONE": "Europe/Helsinki",
        }
        if args.pg:
            env["EVIDENCE_DATABASE_URL"] = args.pg
        subprocess.run(
            [sys.executable, "-m", "evidence", "init"], env=env, check=True, capture_output=True
        )
        base = ["import", "imap", "--host", "127.0.0.1", "--port", str(dovecot.port)]
        base += ["--user", "bench"]
        print(
            f"{args.n:,} messages, {size / 1e6:.1f} MB, in one Dovecot folder; "
            f"store: {'PostgreSQL' if args.pg else 'SQLite'}; "
            f"load average {os.getloadavg()[0]:.1f}"
        )
        seconds, cpu, report = _run(env, base)
        print(
            f"first import: {seconds:.1f} s, {args.n / seconds:,.0f} msg/s, "
            f"CPU {cpu:.1f} s; imported {report['imported']}"
        )
        seconds, cpu, report = _run(env, base)
        print(f"nothing new: {seconds:.2f} s, CPU {cpu:.2f} s; imported {report['imported']}")
        (home / "new" / "1799999999.M0P1.bench").write_bytes(make_message(args.n, rng))
        dovecot.own(dovecot.root / "mail")
        seconds, cpu, report = _run(env, base)
        print(f"one new: {seconds:.2f} s, CPU {cpu:.2f} s; imported {report['imported']}")
        other = Path(tmp) / "files"
        other.mkdir(mode=0o700)
        files = {**env, "EVIDENCE_HOME": str(other)}
        subprocess.run(
            [sys.executable, "-m", "evidence", "init"], env=files, check=True, capture_output=True
        )
        seconds, cpu, report = _run(files, ["import", "mail", str(home)])
        print(
            f"the same from the Maildir on disk: {seconds:.1f} s, "
            f"{(args.n + 1) / seconds:,.0f} msg/s, CPU {cpu:.1f} s"
        )
        print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
