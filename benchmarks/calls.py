"""Benchmark: import a large Asterisk CDR file and its matching queue_log into SQLite.

Generates N calls (default 1,000,000) as ``Master.csv`` (21 columns) and a
``queue_log`` with the events a real queue writes for them, imports both into
a fresh store, and prints calls/s, lines/s and peak RSS. Run it with two sizes
to see that memory stays flat as the files grow:

    python benchmarks/calls.py --calls 100000
    python benchmarks/calls.py --calls 1000000

Not part of the test suite.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

HELSINKI_OFFSET = dt.timedelta(hours=3)  # the generated day is in summer time
START_EPOCH = 1790553600  # 2026-09-28 00:00 UTC
AGENTS = [f"PJSIP/{1000 + i}" for i in range(40)]


def generate(directory: Path, calls: int, seed: int = 5) -> tuple[Path, Path, int, int]:
    """Write Master.csv and queue_log for ``calls`` calls; return paths and line counts."""
    rng = random.Random(seed)
    cdr_path = directory / "Master.csv"
    log_path = directory / "queue_log"
    cdr_lines = log_lines = 0
    epoch = START_EPOCH
    # Customers call more than once: 1,000,000 calls come from 100,000 numbers.
    customers = [f"040{rng.randrange(10**7):07d}" for _ in range(max(1, calls // 10))]
    with cdr_path.open("w", encoding="utf-8") as cdr, log_path.open("w", encoding="utf-8") as log:
        for agent in AGENTS:
            log.write(f"{epoch}|NONE|asiakaspalvelu|{agent}|ADDMEMBER|\n")
            log_lines += 1
        for n in range(calls):
            epoch += rng.choice((0, 0, 1, 1, 2))
            uniqueid = f"{epoch}.{n}"
            number = rng.choice(customers)
            roll = rng.random()
            wait = rng.randrange(5, 300)
            start_local = dt.datetime.fromtimestamp(epoch, dt.UTC) + HELSINKI_OFFSET
            start = start_local.strftime("%Y-%m-%d %H:%M:%S")
            log.write(f"{epoch}|{uniqueid}|asiakaspalvelu|NONE|ENTERQUEUE||{number}|1\n")
            log_lines += 1
            if roll < 0.7:
                agent = rng.choice(AGENTS)
                talk = rng.randrange(20, 900)
                if rng.random() < 0.2:
                    other = rng.choice(AGENTS)
                    ring = epoch + wait - 15
                    log.write(f"{ring}|{uniqueid}|asiakaspalvelu|{other}|RINGNOANSWER|15000\n")
                    log_lines += 1
                log.write(
                    f"{epoch + wait}|{uniqueid}|asiakaspalvelu|{agent}|CONNECT|{wait}|"
                    f"{uniqueid}1|4\n"
                )
                log.write(
                    f"{epoch + wait + talk}|{uniqueid}|asiakaspalvelu|{agent}|COMPLETECALLER|"
                    f"{wait}|{talk}|1\n"
                )
                log_lines += 2
                answer = (start_local + dt.timedelta(seconds=wait)).strftime("%Y-%m-%d %H:%M:%S")
                end = (start_local + dt.timedelta(seconds=wait + talk)).strftime(
                    "%Y-%m-%d %H:%M:%S"
                )
                dstchannel, duration, billsec, disposition = (
                    f"{agent}-{n:08x}",
                    wait + talk,
                    talk,
                    "ANSWERED",
                )
            else:
                event = "ABANDON" if roll < 0.9 else "EXITWITHTIMEOUT"
                log.write(f"{epoch + wait}|{uniqueid}|asiakaspalvelu|NONE|{event}|1|1|{wait}\n")
                log_lines += 1
                answer = ""
                end = (start_local + dt.timedelta(seconds=wait)).strftime("%Y-%m-%d %H:%M:%S")
                dstchannel, duration, billsec, disposition = "", wait, 0, "NO ANSWER"
            cdr.write(
                f'"","{number}","500","from-pstn","""{number}"" <{number}>",'
                f'"PJSIP/trunk-{n:08x}","{dstchannel}","Queue","asiakaspalvelu,t,,,300",'
                f'"{start}","{answer}","{end}","{duration}","{billsec}","{disposition}",'
                f'"DOCUMENTATION","{uniqueid}","","","{uniqueid}","{n % 7}"\n'
            )
            cdr_lines += 1
    return cdr_path, log_path, cdr_lines, log_lines


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class ChildRss:
    """The largest resident set of any child process (the parsing workers), sampled."""

    def __init__(self) -> None:
        import threading

        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _children(self) -> list[int]:
        me = os.getpid()
        pids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == me:
                    pids.append(int(entry))
        return pids

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            for pid in self._children():
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    continue
                for line in status.splitlines():
                    if line.startswith("VmRSS:"):
                        self.peak_kb = max(self.peak_kb, int(line.split()[1]))

    def __enter__(self) -> ChildRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the generated files and store")
    parser.add_argument("--workers", type=int, default=2, help="parsing worker processes")
    args = parser.parse_args()

    from evidence.config import load_config
    from evidence.ingest.phonelog import BulkOptions, import_calls
    from evidence.store.db import open_store, upgrade

    work = Path(tempfile.mkdtemp(prefix="evidence-bench-"))
    t0 = time.perf_counter()
    cdr_path, log_path, cdr_lines, log_lines = generate(work, args.calls)
    print(
        f"generated {args.calls:,} calls: {cdr_lines:,} CDR rows "
        f"({cdr_path.stat().st_size / 1e6:.0f} MB), {log_lines:,} queue_log lines "
        f"({log_path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f} s"
    )
    rss_before = peak_rss_mb()
    config = load_config(
        {"EVIDENCE_HOME": str(work / "home"), "EVIDENCE_TIMEZONE": "Europe/Helsinki"}
    )
    upgrade(config)
    store = open_store(config)
    cpu0 = _cpu()
    with ChildRss() as workers_rss:
        t1 = time.perf_counter()
        options = BulkOptions(workers=args.workers)
        cdr_report = import_calls(store, cdr_path, "asterisk-cdr", options=options)
        t2 = time.perf_counter()
        log_report = import_calls(store, log_path, "asterisk-queue-log", options=options)
        t3 = time.perf_counter()
        again = import_calls(store, log_path, "asterisk-queue-log", options=options)
        t4 = time.perf_counter()
    store.close()
    cpu = _cpu() - cpu0
    own = peak_rss_mb()
    children = workers_rss.peak_kb / 1024
    total = t3 - t1
    db = work / "home" / "evidence.db"
    cdr_rate = cdr_lines / (t2 - t1)
    print(f"CDR:       {cdr_report.summary()} in {t2 - t1:.1f} s ({cdr_rate:,.0f} rows/s)")
    print(
        f"queue_log: {log_report.summary()} in {t3 - t2:.1f} s "
        f"({log_lines / (t3 - t2):,.0f} lines/s)"
    )
    print(f"re-import of queue_log: {again.summary()} in {t4 - t3:.1f} s")
    print(f"calls/s (both files, {args.calls:,} calls): {args.calls / total:,.0f}")
    print(
        f"CPU time of the import (all processes): {cpu:.1f} s; "
        f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    print(
        f"peak RSS: main process {own:.0f} MB (before import {rss_before:.0f} MB), "
        f"largest parsing worker {children:.0f} MB"
    )
    print(f"store size: {db.stat().st_size / 1e9:.2f} GB; cores: {os.cpu_count()}")
    if not args.keep:
        import shutil

        shutil.rmtree(work)
    else:
        print(f"kept {work}")


if __name__ == "__main__":
    main()
