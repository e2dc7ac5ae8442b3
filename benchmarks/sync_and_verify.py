"""Figures for `evidence sync` and the store checks of `evidence status` and `verify`.

Builds a throw-away store (SQLite by default; pass a PostgreSQL URL to use one),
syncs a generated call log and mail folder into it, syncs again (nothing new),
and times the one verifier as `status` runs it (the blobs' bytes unread) and as
`verify` does. Prints one line per figure.

    python benchmarks/sync_and_verify.py [--lines 5000] [--mails 500] [--database-url URL]
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evidence.config import load_config
from evidence.ingest.sync import run_sync
from evidence.store.db import open_store, upgrade
from evidence.verify.store import verify_store
from tests.contacts import cdr_row, eml


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=5000, help="CDR lines in the call log")
    parser.add_argument("--mails", type=int, default=500, help=".eml files in the mail folder")
    parser.add_argument("--database-url", help="an empty PostgreSQL database (default: SQLite)")
    args = parser.parse_args()
    base = dt.datetime(2026, 9, 1, 5, 0, tzinfo=dt.UTC)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        cdr = Path(tmp) / "Master.csv"
        cdr.write_text(
            "".join(cdr_row(base + dt.timedelta(seconds=41 * i)) + "\n" for i in range(args.lines))
        )
        maildir = Path(tmp) / "mail"
        maildir.mkdir()
        for i in range(args.mails):
            eml(maildir, base + dt.timedelta(minutes=3 * i))
        (home / "evidence.toml").write_text(
            f'[[sync.mail]]\npath = "{maildir}"\n\n'
            f'[[sync.calls]]\npath = "{cdr}"\nformat = "asterisk-cdr"\n'
        )
        env = {"EVIDENCE_HOME": str(home)}
        if args.database_url:
            env["EVIDENCE_DATABASE_URL"] = args.database_url
        config = load_config(env)
        upgrade(config)
        store = open_store(config)
        backend = store.engine.dialect.name
        try:
            for label in ("first sync", "second sync (nothing new)"):
                began = time.perf_counter()
                run_sync(store)
                seconds = time.perf_counter() - began
                print(
                    f"{backend}: {label}: {seconds:.1f} s for {args.lines:,} CDR lines "
                    f"and {args.mails:,} messages"
                )
            for label, read_blobs in (("status checks", False), ("verify", True)):
                began = time.perf_counter()
                report = verify_store(store, read_blobs=read_blobs)
                seconds = time.perf_counter() - began
                entries = int(report.facts["tree_size"])
                print(
                    f"{backend}: {label}: {entries:,} entries in {seconds:.2f} s "
                    f"({entries / seconds:,.0f} entries/s), intact={report.intact}"
                )
        finally:
            store.close()


if __name__ == "__main__":
    main()
