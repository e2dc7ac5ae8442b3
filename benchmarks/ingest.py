"""Mail import speed and memory: ``python benchmarks/ingest.py [-n 10000] [--pg URL]``.

Generates N realistic messages (mixed charsets, HTML alternatives, attachments,
Received chains) into an mbox and a Maildir, then imports them in fresh
processes and prints messages/s and peak RSS for each phase:

- first import of the mbox into an empty SQLite store,
- the same mbox again (all duplicates), and the Maildir (all duplicates),
- first import of the Maildir into an empty PostgreSQL database, and again.

Each phase runs in its own process so its peak RSS is its own. CPU time per
message (the importer and its worker processes together) is printed too: on a
machine busy with other work, the rate falls but the CPU time does not.
"""

from __future__ import annotations

import argparse
import base64
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
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"

NAMES = ["Matti Virtanen", "Liisa Korhonen", "Jörg Müller", "Åsa Lindqvist", "Иван Петров"]
LINES = [
    "Hyvä asiakaspalvelu, laskuni 4471203 eräpäivä on huomenna.",
    "Voisinko saada kolme päivää lisäaikaa maksulle? Kiitos.",
    "Mikä helvetti teillä on? Kukaan ei vastaa puhelimeen!",
    "Summa oli 4,90 € liikaa, pyydän hyvitystä.",
    "Grüße aus Köln, die Rechnung ist falsch.",
    "Здравствуйте, прошу перезвонить мне.",
]
CHARSETS = ["utf-8", "iso-8859-1", "windows-1252", "iso-8859-15", "koi8-r"]


def _encodable(text: str, charset: str) -> str:
    return text.encode(charset, "replace").decode(charset)


def make_message(i: int, rng: random.Random) -> bytes:
    name = rng.choice(NAMES)
    sender = f"customer{i % 997}@example.net"
    inbound = rng.random() < 0.8
    frm = f'"{name}" <{sender}>' if inbound else "Asiakaspalvelu <cs@aurora-energia.example>"
    to = "asiakaspalvelu@aurora-energia.example" if inbound else sender
    charset = rng.choice(CHARSETS)
    lines = [_encodable(rng.choice(LINES), charset) for _ in range(rng.randint(3, 40))]
    if rng.random() < 0.03:  # a body line an mbox must quote
        lines.insert(rng.randint(1, len(lines)), "From the start I have called you five times.")
    text = "\n".join(lines) + "\n"
    day = 1 + i % 28
    hour, minute = rng.randint(7, 20), rng.randint(0, 59)
    date = f"Mon, {day:02d} Sep 2026 {hour:02d}:{minute:02d}:{i % 60:02d} +0300"
    subject = "=?utf-8?q?Lasku_4471203_=E2=80=93_lis=C3=A4aikaa?=" if i % 3 else f"Re: asia {i}"
    headers = [
        "Received: from mail.example.net (mail.example.net [192.0.2.7])\n"
        "\tby mx1.aurora-energia.example (Postfix) with ESMTPS id 4F2A\n"
        f"\tfor <asiakaspalvelu@aurora-energia.example>; {date}",
        f"Received: from laptop by mail.example.net; {date}",
        f"Date: {date}",
        f"From: {frm}",
        f"To: {to}",
        f"Subject: {subject}",
        f"Message-ID: <{i}.{rng.getrandbits(40):x}@example.net>",
        "MIME-Version: 1.0",
    ]
    body_bytes = text.encode(charset)
    kind = rng.random()
    if kind < 0.5:
        headers += [
            f"Content-Type: text/plain; charset={charset}",
            "Content-Transfer-Encoding: 8bit",
        ]
        body = body_bytes
    else:
        boundary = f"b{i}x"
        html = "<html><body>" + "".join(f"<p>{line}</p>" for line in lines) + "</body></html>"
        parts = [
            f"--{boundary}\nContent-Type: text/plain; charset={charset}\n"
            "Content-Transfer-Encoding: quoted-printable\n\n".encode()
            + _qp(body_bytes),
            f"--{boundary}\nContent-Type: text/html; charset={charset}\n"
            "Content-Transfer-Encoding: quoted-printable\n\n".encode()
            + _qp(html.encode(charset)),
        ]
        if kind > 0.75:
            blob = rng.randbytes(rng.choice([2_000, 8_000, 30_000]))
            parts.append(
                f"--{boundary}\nContent-Type: application/pdf\n"
                "Content-Transfer-Encoding: base64\n"
                f'Content-Disposition: attachment; filename="lasku-{i}.pdf"\n\n'.encode()
                + _b64(blob)
            )
        sub = "mixed" if kind > 0.75 else "alternative"
        headers.append(f'Content-Type: multipart/{sub}; boundary="{boundary}"')
        body = b"\n".join(parts) + f"\n--{boundary}--\n".encode()
    return "\n".join(headers).encode() + b"\n\n" + body


def _qp(data: bytes) -> bytes:
    import quopri

    return quopri.encodestring(data)


def _b64(data: bytes) -> bytes:
    return base64.encodebytes(data)


def generate(n: int, where: Path) -> tuple[Path, Path]:
    rng = random.Random(20260928)
    mbox = where / "export.mbox"
    maildir = where / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    with mbox.open("wb") as box:
        for i in range(n):
            msg = make_message(i, rng)
            escaped = b"\n".join(
                b">" + line if line.lstrip(b">").startswith(b"From ") else line
                for line in msg.split(b"\n")
            )
            box.write(b"From MAILER-DAEMON Tue Sep 29 06:00:00 2026\n" + escaped + b"\n")
            sub = "cur" if i % 4 else "new"
            suffix = ":2,S" if sub == "cur" else ""
            (maildir / sub / f"1790{i:06d}.M{i}P1.bench{suffix}").write_bytes(msg)
    return mbox, maildir


def phase(url: str, home: str, paths: list[str]) -> None:
    """Run one import in this process and print its figures as JSON."""
    sys.path.insert(0, str(ROOT))
    from evidence.config import load_config
    from evidence.ingest.mail import import_mail
    from evidence.store.db import open_store

    config = load_config({"EVIDENCE_HOME": home, "EVIDENCE_DATABASE_URL": url})
    store = open_store(config)
    cpu_before = _cpu()
    start = time.perf_counter()
    report = import_mail(store, [Path(p) for p in paths])
    elapsed = time.perf_counter() - start
    cpu = _cpu() - cpu_before
    store.close()
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(
        json.dumps(
            {
                "imported": report.imported,
                "duplicates": report.duplicates,
                "quarantined": report.quarantined,
                "seconds": elapsed,
                "cpu_seconds": cpu,
                "peak_rss_mb": max(own, children) / 1024,
            }
        )
    )


def _cpu() -> float:
    """CPU seconds of this process and its finished children (the parse workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _run_phase(label: str, n: int, url: str, home: str, paths: list[Path]) -> None:
    out = subprocess.run(
        [sys.executable, __file__, "--phase", url, home, *map(str, paths)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    ).stdout
    r = json.loads(out.strip().splitlines()[-1])
    rate = n / r["seconds"]
    print(
        f"{label:<42} {rate:>9,.0f} msg/s  {r['seconds']:7.2f} s  "
        f"CPU {r['cpu_seconds'] / n * 1e6:5.0f} µs/msg  "
        f"peak RSS {r['peak_rss_mb']:6.1f} MB  "
        f"(imported {r['imported']:,}, duplicates {r['duplicates']:,}, "
        f"quarantined {r['quarantined']:,})",
        flush=True,
    )


def _init(url: str, home: str) -> None:
    sys.path.insert(0, str(ROOT))
    from evidence.config import load_config
    from evidence.store.db import upgrade

    upgrade(load_config({"EVIDENCE_HOME": home, "EVIDENCE_DATABASE_URL": url}))


def hostile() -> None:
    """How long rejecting a 400 KB header and a 3,000-level MIME nesting takes."""
    sys.path.insert(0, str(ROOT))
    from evidence.ingest.mime import LimitExceeded, parse

    header = b"From: a@example.net\nX-Junk: " + b"a" * 400_000 + b"\n\nbody\n"
    folded = b"From: a@example.net\nX-Junk: x\n" + b" folded\n" * 60_000 + b"\nbody\n"
    nested = (
        b"From: a@example.net\n"
        + b"".join(
            b'Content-Type: multipart/mixed; boundary="b%d"\n\n--b%d\n' % (i, i)
            for i in range(3_000)
        )
        + b"Content-Type: text/plain\n\nx\n"
        + b"".join(b"\n--b%d--\n" % i for i in reversed(range(3_000)))
    )
    for label, raw in (
        ("400 KB header line", header),
        ("400 KB folded header", folded),
        ("3,000-level nesting", nested),
    ):
        start = time.perf_counter()
        try:
            parse(raw)
            outcome = "accepted (!)"
        except LimitExceeded as exc:
            outcome = f"rejected: {exc}"
        print(f"{label:<42} {(time.perf_counter() - start) * 1000:9.1f} ms  {outcome}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--phase":
        phase(sys.argv[2], sys.argv[3], sys.argv[4:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=10_000, help="number of messages")
    parser.add_argument("--pg", default=DEFAULT_PG, help="PostgreSQL admin URL ('' to skip)")
    args = parser.parse_args()
    hostile()
    with tempfile.TemporaryDirectory(prefix="evidence-bench-") as tmp:
        where = Path(tmp)
        start = time.perf_counter()
        mbox, maildir = generate(args.n, where)
        size = mbox.stat().st_size
        print(
            f"{args.n:,} messages, mbox {size / 1e6:.1f} MB "
            f"(generated in {time.perf_counter() - start:.1f} s), {os.cpu_count()} cores"
        )
        home = str(where / "home")
        url = f"sqlite:///{where / 'home' / 'evidence.db'}"
        _init(url, home)
        _run_phase("SQLite, first import (mbox)", args.n, url, home, [mbox])
        _run_phase("SQLite, again: all duplicates (mbox)", args.n, url, home, [mbox])
        _run_phase("SQLite, again: all duplicates (Maildir)", args.n, url, home, [maildir])
        if args.pg:
            from sqlalchemy import create_engine, text
            from sqlalchemy.engine import make_url

            name = f"evidence_bench_{os.getpid()}"
            admin = create_engine(args.pg, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f"CREATE DATABASE {name}"))
            pg_url = make_url(args.pg).set(database=name).render_as_string(hide_password=False)
            try:
                _init(pg_url, home)
                _run_phase("PostgreSQL, first import (Maildir)", args.n, pg_url, home, [maildir])
                _run_phase("PostgreSQL, again: all duplicates (mbox)", args.n, pg_url, home, [mbox])
            finally:
                with admin.connect() as conn:
                    conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                admin.dispose()


if __name__ == "__main__":
    main()
