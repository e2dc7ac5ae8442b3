"""Large, seeded inputs for the reliability tests, and checks of a whole store after them.

The generators write realistic mail (plain, alternative, attachments, a body line
starting with ``From ``) and Asterisk logs (cdr_csv rows and their queue_log
lines), with a few inputs that must be quarantined, and return what a complete
import must contain. ``check_store`` asserts that every expected item is stored
exactly once, that no blob is orphaned or altered, and that the store verifies.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, func, select

from evidence.config import load_config
from evidence.ingest.mail import content_key
from evidence.store.db import open_store
from evidence.store.models import (
    Base,
    Blob,
    CdrRecord,
    Email,
    LedgerEntry,
    QuarantineItem,
    QueueEvent,
    SourceLine,
)
from evidence.timeutil import UTC
from evidence.verify.store import verify_store
from tests.conftest import Env, _pg_admin, create_database, pg_url

BASE = dt.datetime(2026, 9, 1, 5, 0, tzinfo=UTC)
# Mail limits for the runs: a message of more parts than this is quarantined.
MAIL_LIMITS_TOML = "[mail.limits]\nmax_parts = 40\n"


@dataclass
class Expected:
    """What a complete import of the generated input holds."""

    mail_keys: set[str] = field(default_factory=set)  # content keys of importable messages
    mail_bad: int = 0  # messages that must be quarantined
    cdr_lines: set[bytes] = field(default_factory=set)
    queue_lines: set[bytes] = field(default_factory=set)
    bad_lines: set[bytes] = field(default_factory=set)  # call-log lines to quarantine

    @property
    def quarantined(self) -> int:
        return self.mail_bad + len(self.bad_lines)


def _message(rng: random.Random, n: int, *, parts: int = 0) -> bytes:
    at = BASE + dt.timedelta(minutes=7 * n)
    date = at.strftime("%a, %d %b %Y %H:%M:%S +0000")
    head = (
        f"Received: from mail.example.net by mx.aurora-energia.example; {date}\n"
        f"From: Asiakas {n} <asiakas{n % 97}@example.net>\n"
        "To: asiakaspalvelu@aurora-energia.example\n"
        f"Subject: =?utf-8?q?Lasku_{n}_=C3=A4=C3=B6?=\n"
        f"Date: {date}\n"
        f"Message-ID: <{n}.{rng.getrandbits(48):x}@example.net>\n"
        "MIME-Version: 1.0\n"
    )
    words = " ".join(rng.choice(["sähkö", "lasku", "hei", "kiitos", "sopimus"]) for _ in range(80))
    text = f"Viesti {n}.\n{words}\n"
    if n % 11 == 0:
        text += "From here on the mbox must quote this line.\n"
    if parts:
        body = "".join(f"--b{n}\nContent-Type: text/plain\n\nosa {i}\n" for i in range(parts))
        return (
            head + f'Content-Type: multipart/mixed; boundary="b{n}"\n\n{body}--b{n}--\n'
        ).encode()
    kind = n % 3
    if kind == 0:
        return (head + "Content-Type: text/plain; charset=utf-8\n\n" + text).encode()
    if kind == 1:
        return (
            head
            + f'Content-Type: multipart/alternative; boundary="a{n}"\n\n'
            + f"--a{n}\nContent-Type: text/plain; charset=utf-8\n\n{text}"
            + f"--a{n}\nContent-Type: text/html; charset=utf-8\n\n<p>{text}</p>\n--a{n}--\n"
        ).encode()
    blob = base64.encodebytes(rng.randbytes(rng.randrange(1000, 6000))).decode()
    return (
        head
        + f'Content-Type: multipart/mixed; boundary="m{n}"\n\n'
        + f"--m{n}\nContent-Type: text/plain; charset=utf-8\n\n{text}"
        + f"--m{n}\nContent-Type: application/pdf\nContent-Transfer-Encoding: base64\n"
        + f'Content-Disposition: attachment; filename="lasku-{n}.pdf"\n\n{blob}--m{n}--\n'
    ).encode()


def mail_messages(count: int, seed: int, *, bad_every: int = 0) -> list[tuple[bytes, bool]]:
    """``count`` messages as delivered; True for those past a limit (to be quarantined)."""
    rng = random.Random(seed)
    out = []
    for n in range(count):
        bad = bool(bad_every) and n % bad_every == bad_every - 1
        out.append((_message(rng, n, parts=60 if bad else 0), bad))
    return out


def write_mbox(path: Path, messages: Sequence[tuple[bytes, bool]]) -> Path:
    """An mboxrd file of ``messages`` (``From `` body lines quoted)."""
    with path.open("wb") as fh:
        for raw, _bad in messages:
            fh.write(b"From asiakas@example.net Tue Sep  1 05:00:00 2026\n")
            fh.write(raw.replace(b"\nFrom ", b"\n>From "))
            fh.write(b"\n")
    return path


def expect_mail(messages: Sequence[tuple[bytes, bool]], expected: Expected) -> None:
    for raw, bad in messages:
        if bad:
            expected.mail_bad += 1
        else:
            expected.mail_keys.add(content_key(raw))


def call_logs(count: int, seed: int, *, bad_every: int = 0) -> tuple[list[bytes], list[bytes]]:
    """CDR rows (18 columns) and queue_log lines of ``count`` inbound queue calls."""
    rng = random.Random(seed)
    cdr: list[bytes] = []
    queue: list[bytes] = []
    for n in range(count):
        at = BASE + dt.timedelta(seconds=37 * n)
        epoch = int(at.timestamp())
        uniqueid = f"{epoch}.{n}"
        wait, talk = rng.randrange(0, 600), rng.randrange(0, 900)
        answered = rng.random() < 0.8
        caller = f"+35840{rng.randrange(10**6, 10**7)}"
        local = at.astimezone(dt.timezone(dt.timedelta(hours=3)))
        start = local.strftime("%Y-%m-%d %H:%M:%S")
        answer = (local + dt.timedelta(seconds=wait)).strftime("%Y-%m-%d %H:%M:%S")
        end = (local + dt.timedelta(seconds=wait + talk)).strftime("%Y-%m-%d %H:%M:%S")
        cdr.append(
            (
                f'"","{caller}","100","from-pstn","""Asiakas"" <{caller}>",'
                f'"PJSIP/trunk-{n:08x}","PJSIP/agent{n % 9}-{n:08x}","Queue","asiakaspalvelu",'
                f'"{start}","{answer if answered else ""}","{end}",'
                f"{wait + talk},{talk if answered else 0},"
                f'"{"ANSWERED" if answered else "NO ANSWER"}","DOCUMENTATION","{uniqueid}",""'
            ).encode()
        )
        queue.append(f"{epoch}|{uniqueid}|asiakaspalvelu|NONE|ENTERQUEUE||{caller}|1".encode())
        if answered:
            queue.append(
                f"{epoch + wait}|{uniqueid}|asiakaspalvelu|PJSIP/agent{n % 9}|CONNECT|{wait}|"
                f"{uniqueid}|2".encode()
            )
            queue.append(
                f"{epoch + wait + talk}|{uniqueid}|asiakaspalvelu|PJSIP/agent{n % 9}|"
                f"COMPLETECALLER|{wait}|{talk}|1".encode()
            )
        else:
            queue.append(
                f"{epoch + wait}|{uniqueid}|asiakaspalvelu|NONE|ABANDON|1|1|{wait}".encode()
            )
        if bad_every and n % bad_every == bad_every - 1:
            cdr.append(f'"broken row {n}","not","a","cdr"'.encode())
            queue.append(f"{epoch}|{uniqueid}|asiakaspalvelu|NONE|lower-case event {n}".encode())
    return cdr, queue


def write_lines(path: Path, lines: Sequence[bytes]) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def expect_calls(cdr: Sequence[bytes], queue: Sequence[bytes], expected: Expected) -> None:
    for line in cdr:
        (expected.bad_lines if line.startswith(b'"broken') else expected.cdr_lines).add(line)
    for line in queue:
        (expected.bad_lines if b"lower-case" in line else expected.queue_lines).add(line)


# --- checking a store ---------------------------------------------------------------


def blob_references(engine: Engine) -> set[str]:
    """Every SHA-256 that some row cites (every foreign key to ``blobs``)."""
    cited: set[str] = set()
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            for fk in table.foreign_keys:
                if fk.column.table.name == "blobs":
                    column = fk.parent
                    cited.update(
                        v for v in conn.execute(select(column).where(column.is_not(None))).scalars()
                    )
    return cited


def check_blobs(engine: Engine) -> int:
    """No orphaned blob, none altered or half-written; returns how many there are."""
    cited = blob_references(engine)
    stored: set[str] = set()
    with engine.connect() as conn:
        for digest, size, data in conn.execute(select(Blob.sha256, Blob.size, Blob.data)):
            data = bytes(data)
            assert hashlib.sha256(data).hexdigest() == digest, f"blob {digest} altered"
            assert len(data) == size, f"blob {digest}: size {size}, holds {len(data)}"
            stored.add(digest)
    assert stored == cited, (
        f"orphaned blobs: {sorted(stored - cited)[:5]}; missing: {sorted(cited - stored)[:5]}"
    )
    return len(stored)


def count(engine: Engine, model: type[Base]) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(model)).scalar_one())


def check_verifies(env_vars: dict[str, str]) -> None:
    """What `evidence verify` checks (the library call the command makes): all intact."""
    store = open_store(load_config(env_vars))
    try:
        report = verify_store(store)
    finally:
        store.close()
    assert report.intact, "\n".join(report.lines())


def check_complete(database_url: str, env_vars: dict[str, str], expected: Expected) -> None:
    """Everything expected is stored exactly once, nothing else; blobs and chain intact."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            keys = list(conn.execute(select(Email.content_key)).scalars())
            lines = [bytes(r) for r in conn.execute(select(SourceLine.raw)).scalars()]
            bad = list(conn.execute(select(QuarantineItem.raw_sha256)).scalars())
        assert len(keys) == len(set(keys)), "a message is stored twice"
        assert set(keys) == expected.mail_keys
        assert len(lines) == len(set(lines)), "a call-log line is stored twice"
        assert set(lines) == expected.cdr_lines | expected.queue_lines
        assert count(engine, CdrRecord) == len(expected.cdr_lines)
        assert count(engine, QueueEvent) == len(expected.queue_lines)
        assert len(bad) == expected.quarantined, "quarantined twice or not at all"
        assert {d for d in bad} >= {hashlib.sha256(b).hexdigest() for b in expected.bad_lines}
        assert count(engine, LedgerEntry) == len(keys) + len(lines) + len(bad)
        check_blobs(engine)
    finally:
        engine.dispose()
    check_verifies(env_vars)


KILLED = -signal.SIGKILL


class Stores:
    """Fresh stores on one backend, each built by the migrations (from the test templates)."""

    def __init__(self, request: pytest.FixtureRequest, backend: str, root: Path) -> None:
        self.request = request
        self.backend = backend
        self.root = root
        self.databases: list[str] = []
        self.count = 0

    def new(self, config_toml: str = "") -> Env:
        self.count += 1
        home = self.root / f"home-{self.count}"
        home.mkdir(mode=0o700)
        if self.backend == "sqlite":
            template: Path = self.request.getfixturevalue("sqlite_template")
            shutil.copy2(template, home / "evidence.db")
            env = Env("sqlite", home, f"sqlite:///{home / 'evidence.db'}")
        else:
            template_db: str = self.request.getfixturevalue("pg_template")
            name = f"evidence_crash_{os.getpid()}_{self.count}"
            _pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            create_database(name, template_db)
            self.databases.append(name)
            env = Env("postgresql", home, pg_url(name))
        env.write_config(config_toml)
        return env

    def drop_all(self) -> None:
        for name in self.databases:
            _pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        self.databases.clear()


def spawn(env: Env, args: list[str]) -> subprocess.Popen[bytes]:
    # A session of its own: the importer and its workers form one process group.
    return subprocess.Popen(
        [sys.executable, "-m", "evidence", *args],
        env={**os.environ, **env.vars},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def finish(proc: subprocess.Popen[bytes], timeout: float = 600) -> tuple[int, str]:
    """Wait for ``proc`` (reading its stderr, so it never blocks on a full pipe)."""
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err.decode()
