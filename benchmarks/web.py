"""Benchmark: the legal desk under load, on a customer with 10,000 timeline items.

Builds a fresh SQLite store (or PostgreSQL with EVIDENCE_DATABASE_URL) holding one customer
with N emails (default 10,000), starts the real server (`evidence serve`, 2 workers) on a
free port of 127.0.0.1, signs users in through the sign-in form, and measures:

1. the customer's first timeline page, one user, 30 times: p50/p95 (localhost: the time is
   the server's);
2. 20 concurrent users browsing (cases, the customer's timeline pages, customer search,
   incidents) for 60 s: requests, errors, p50/p95;
3. the same while an export of that customer runs.

    python benchmarks/web.py                      # the figures in README
    python benchmarks/web.py --items 2000 --seconds 10

Not part of the test suite.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EVIDENCE = [sys.executable, "-m", "evidence"]
REF = "300100"
PASSWORD = "benchmark-password-1"


def run(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [*EVIDENCE, *args], env=env, input=stdin, capture_output=True, text=True, check=False
    )
    if done.returncode not in (0, 3):
        raise SystemExit(f"evidence {' '.join(args)} failed: {done.stderr}")
    return done.stdout


def write_mail(path: Path, count: int) -> None:
    """``count`` plain messages between the customer and the company, one every 20 minutes."""
    with path.open("w", encoding="utf-8") as fh:
        for n in range(count):
            epoch = 1767225600 + n * 1200  # 2026-01-01 00:00 UTC onwards
            date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(epoch))
            inbound = n % 3 != 2
            sender, to = (
                ("Maija Meikäläinen <maija@example.net>", "asiakaspalvelu@aurora-energia.example")
                if inbound
                else ("asiakaspalvelu@aurora-energia.example", "maija@example.net")
            )
            fh.write(
                f"From x@example.net {time.ctime(epoch)}\n"
                f"From: {sender}\nTo: {to}\nSubject: Lasku {n}\nDate: {date}\n"
                f"Message-ID: <bench-{n}@example.net>\nContent-Type: text/plain; charset=utf-8\n"
                f"\nViesti {n}: laskusta ja maksuajasta.\n\n"
            )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class User:
    """One browser: its own cookies, signed in through the form."""

    def __init__(self, base: str, name: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        page = self.get("/signin")[1]
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert token, page
        data = urllib.parse.urlencode(
            {"username": name, "password": PASSWORD, "csrf_token": token.group(1)}
        ).encode()
        self.opener.open(f"{base}/signin", data=data, timeout=60).read()

    def get(self, path: str) -> tuple[float, str]:
        started = time.perf_counter()
        with self.opener.open(f"{self.base}{path}", timeout=60) as answer:
            body = answer.read().decode("utf-8")
            if answer.status != 200:
                raise OSError(f"{path}: {answer.status}")
        return time.perf_counter() - started, body


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def browse(base: str, users: int, seconds: float, pages: int) -> tuple[list[float], int]:
    times: list[float] = []
    errors = [0]
    failures: list[str] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds
    paths = [
        "/",
        f"/customers/{REF}",
        "/customers?q=meik",
        "/incidents",
        *[f"/customers/{REF}?page={p}" for p in range(2, min(pages, 50) + 1)],
    ]

    def one(n: int) -> None:
        try:
            user = User(base, f"u{n}")
        except OSError as exc:
            with lock:
                errors[0] += 1
                failures.append(f"sign-in: {exc}")
            return
        rng = random.Random(n)
        while time.monotonic() < stop:
            try:
                took, _ = user.get(rng.choice(paths))
                with lock:
                    times.append(took)
            except OSError as exc:
                with lock:
                    errors[0] += 1
                    failures.append(str(exc))

    threads = [threading.Thread(target=one, args=(n,)) for n in range(users)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for failure in sorted(set(failures)):
        print(f"   error: {failure}")
    return times, errors[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--log", type=Path, help="Keep the server's log here.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="evidence-web-bench-") as folder:
        home = Path(folder) / "home"
        env = {**os.environ, "EVIDENCE_HOME": str(home), "EVIDENCE_TIMEZONE": "Europe/Helsinki"}
        run(env, "init", "--company", "Aurora Energia Oy", "--mail-domain",
            "aurora-energia.example")  # fmt: skip
        run(env, "customer", "add", REF, "--name", "Maija Meikäläinen",
            "--email", "maija@example.net")  # fmt: skip
        mbox = Path(folder) / "bench.mbox"
        write_mail(mbox, args.items)
        started = time.perf_counter()
        run(env, "import", "mail", str(mbox))
        print(f"store: {args.items} emails of customer {REF} imported in "
              f"{time.perf_counter() - started:.0f} s")  # fmt: skip
        run(env, "user", "add", "legal", "--role", "legal", "--password-stdin", stdin=PASSWORD)
        for n in range(args.users):
            run(env, "user", "add", f"u{n}", "--role", "viewer", "--password-stdin",
                stdin=PASSWORD)  # fmt: skip
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log = (Path(folder) / "server.log").open("wb")
        server = subprocess.Popen(
            [*EVIDENCE, "serve", "--port", str(port), "--workers", "2"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            for _ in range(200):
                try:
                    urllib.request.urlopen(f"{base}/api/healthz", timeout=1).read()
                    break
                except OSError:
                    time.sleep(0.2)
            report(base, env, args)
        finally:
            server.terminate()
            server.wait(timeout=60)
            log.close()
            if args.log:
                args.log.write_bytes((Path(folder) / "server.log").read_bytes())


def report(base: str, env: dict[str, str], args: argparse.Namespace) -> None:
    legal = User(base, "legal")
    pages = -(-args.items // 50)
    legal.get(f"/customers/{REF}")  # warm the process up
    first = [legal.get(f"/customers/{REF}")[0] for _ in range(30)]
    print(
        f"1. first timeline page ({args.items} items, 50 a page): "
        f"p50 {statistics.median(first) * 1000:.0f} ms, p95 {percentile(first, 0.95) * 1000:.0f} ms"
    )
    times, errors = browse(base, args.users, args.seconds, pages)
    print(
        f"2. {args.users} users browsing for {args.seconds:.0f} s: {len(times)} requests, "
        f"{errors} errors, p50 {statistics.median(times) * 1000:.0f} ms, "
        f"p95 {percentile(times, 0.95) * 1000:.0f} ms"
    )
    token = run(env, "token", "create", "legal").strip()
    request = urllib.request.Request(
        f"{base}/api/exports",
        data=json.dumps({"customer": REF, "lang": "en"}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    job = json.loads(urllib.request.urlopen(request, timeout=60).read())
    times, errors = browse(base, args.users, args.seconds, pages)
    status = urllib.request.Request(
        f"{base}/api/exports/{job['id']}", headers={"Authorization": f"Bearer {token}"}
    )
    state = json.loads(urllib.request.urlopen(status, timeout=60).read())
    print(
        f"3. the same with an export running (job {job['id']}, {state['status']} at the end, "
        f"{state['progress']} parts rendered): {len(times)} requests, {errors} errors, "
        f"p50 {statistics.median(times) * 1000:.0f} ms, p95 {percentile(times, 0.95) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
