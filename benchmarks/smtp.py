"""SMTP receiver speed and memory.

``python benchmarks/smtp.py [-n N] [--clients C] [--pg URL]``.

Starts ``evidence receive smtp`` in its own process on a fresh store (SQLite,
or a fresh PostgreSQL database with ``--pg``), sends N realistic messages (the
mail benchmark's, ``benchmarks/ingest.py``) from ``--clients`` concurrent
smtplib connections, each waiting for its 250 before the next message, and
prints:

- messages/s over the whole run and for each tenth of it (sustained, not a burst);
- the receiver's resident memory after each tenth and its peak (VmHWM): flat
  means memory does not grow with the number of messages taken;
- the receiver's CPU time per message.

Then it stops the receiver with SIGTERM and checks that every message is stored
once. A benchmark prints figures; nothing here is a test.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import re
import signal
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
READY = re.compile(r"receiving SMTP on (\S+):(\d+) ")


def _messages(n: int) -> list[bytes]:
    spec = importlib.util.spec_from_file_location("ingest_bench", ROOT / "benchmarks/ingest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rng = random.Random(22)
    out = []
    for i in range(n):
        raw: bytes = module.make_message(i, rng)
        out.append(raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    return out


def _status(pid: int, field: str) -> int:
    """A /proc/PID/status figure in KiB (VmRSS, VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=10_000, help="messages to send")
    parser.add_argument("--clients", type=int, default=10, help="concurrent connections")
    parser.add_argument("--pg", help="PostgreSQL admin URL: run on a fresh database there")
    args = parser.parse_args()

    messages = _messages(args.n)
    size = sum(len(m) for m in messages)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        env = {**os.environ, "EVIDENCE_HOME": str(home)}
        database = None
        if args.pg:
            from sqlalchemy import create_engine, text
            from sqlalchemy.engine import make_url

            database = f"evidence_bench_smtp_{os.getpid()}"
            admin = create_engine(args.pg, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f"CREATE DATABASE {database}"))
            env["EVIDENCE_DATABASE_URL"] = (
                make_url(args.pg).set(database=database).render_as_string(hide_password=False)
            )
        evidence = [sys.executable, "-m", "evidence"]
        subprocess.run([*evidence, "init"], env=env, check=True, capture_output=True)
        proc = subprocess.Popen(
            [*evidence, "receive", "smtp", "--listen", "127.0.0.1:0"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stderr is not None
        port = 0
        while not port:
            line = proc.stderr.readline()
            if not line:
                raise SystemExit(f"the receiver did not start: {proc.communicate()}")
            match = READY.search(line)
            port = int(match.group(2)) if match else 0

        sent = 0
        lock = threading.Lock()
        failures: list[str] = []

        def client(numbers: range) -> None:
            nonlocal sent
            with smtplib.SMTP("127.0.0.1", port, timeout=120) as smtp:
                for i in numbers:
                    try:
                        smtp.sendmail("sender@example.net", ["journal@evidence.test"], messages[i])
                    except smtplib.SMTPException as exc:
                        failures.append(str(exc))
                        return
                    with lock:
                        sent += 1

        per = -(-args.n // args.clients)
        threads = [
            threading.Thread(target=client, args=(range(c * per, min((c + 1) * per, args.n)),))
            for c in range(args.clients)
        ]
        cpu0 = _cpu_seconds(proc.pid)
        started = time.monotonic()
        for thread in threads:
            thread.start()
        tenth = max(1, args.n // 10)
        mark, last_time, rows = tenth, started, []
        while any(t.is_alive() for t in threads):
            time.sleep(0.05)
            if sent >= mark:
                now = time.monotonic()
                rows.append((mark, tenth / (now - last_time), _status(proc.pid, "VmRSS")))
                mark, last_time = mark + tenth, now
        elapsed = time.monotonic() - started
        cpu = _cpu_seconds(proc.pid) - cpu0
        peak = _status(proc.pid, "VmHWM")
        proc.send_signal(signal.SIGTERM)
        out, _err = proc.communicate(timeout=300)

        backend = "PostgreSQL" if args.pg else "SQLite"
        print(
            f"{args.n:,} messages ({size / 1e6:.1f} MB) from {args.clients} clients "
            f"into {backend}: {args.n / elapsed:,.0f} msg/s over {elapsed:.1f} s, "
            f"{cpu / args.n * 1000:.2f} ms receiver CPU per message"
        )
        for count, rate, rss in rows:
            print(f"  up to {count:>7,}: {rate:7,.0f} msg/s   receiver RSS {rss / 1024:6.1f} MiB")
        print(f"  receiver peak RSS {peak / 1024:.1f} MiB; {out.strip()}")
        if failures:
            print(f"  {len(failures)} client(s) failed: {failures[0]}")
        if database:
            from sqlalchemy import create_engine, text

            admin = create_engine(args.pg, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"))


if __name__ == "__main__":
    main()
