"""`evidence` never writes evidence content to logs or error output.

Mail with a canary in its subject and body, and call-log lines with a canary in a
field, are imported, quarantined and synced with every logger captured at DEBUG;
the canary may be in the store (quarantine records are evidence) but never in a
log record, on stderr, or in the --json summary a cron job keeps.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from sqlalchemy import select

from evidence.store.db import Store
from evidence.store.models import QuarantineItem
from tests.conftest import Cli, Env

CANARY = "CANARY-d41d8cd9"


def _mail_past_the_part_limit(path: Path) -> None:
    parts = "".join(f"--b\nContent-Type: text/plain\n\n{CANARY} body part {n}\n" for n in range(4))
    path.write_text(
        "From: anna@example.net\nTo: asiakaspalvelu@aurora-energia.example\n"
        f"Subject: {CANARY} subject\nDate: Tue, 10 Mar 2026 08:01:00 +0200\n"
        'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="b"\n\n' + parts + "--b--\n",
        encoding="utf-8",
    )


def _calls(directory: Path) -> tuple[Path, Path]:
    cdr = directory / "Master.csv"
    cdr.write_text(
        '"","0507654321","600","from-operaattori","""Anna"" <0507654321>",'
        '"PJSIP/operaattori-1","","Queue","laskutus,t,,,300",'
        f'"{CANARY} 09:12:30","","2026-03-10 09:14:30","120","0","NO ANSWER",'
        '"DOCUMENTATION","1773126750.1041",""\n',
        encoding="utf-8",
    )
    queue_log = directory / "queue_log"
    queue_log.write_text(
        f"1773123670|1773123670.1038|laskutus|NONE|{CANARY}||0405551234|1\n"
        f"{CANARY}|1773123670.1039|laskutus|NONE|ENTERQUEUE||0405551234|1\n",
        encoding="utf-8",
    )
    return cdr, queue_log


def test_canary_never_reaches_a_log(
    env: Env, company_store: Store, cli: Cli, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # A timestamping server that refuses: every checkpoint the runs write logs a warning,
    # so the capture below is proved to see evidence's own log lines from these runs.
    settings = (
        '[company]\nname = "Aurora"\nmail_domains = ["aurora-energia.example"]\n'
        '[mail.limits]\nmax_parts = 2\n[timestamping]\nurl = "http://127.0.0.1:9/"\n'
    )
    env.write_config(settings)
    cli("customer", "add", "100001", "--name", "Anna", "--email", "anna@example.net")
    mail = tmp_path / "canary.eml"
    _mail_past_the_part_limit(mail)
    cdr, queue_log = _calls(tmp_path)
    outputs = [
        cli("import", "mail", str(mail), code=3),
        cli("import", "calls", str(cdr), "--format", "asterisk-cdr", code=3),
        cli("import", "calls", str(queue_log), "--format", "asterisk-queue-log", "--json", code=3),
    ]
    # Asked for, the quarantine shows its full reasons: reading evidence is not logging it.
    assert "start time 'CANARY-d41d8cd9 09:12:30'" in cli("quarantine", "list").stdout
    # The same input again through `evidence sync`, as cron runs it (already quarantined).
    env.write_config(
        settings + f'[[sync.mail]]\npath = "{mail}"\n'
        f'[[sync.calls]]\npath = "{cdr}"\nformat = "asterisk-cdr"\n'
        f'[[sync.calls]]\npath = "{queue_log}"\nformat = "asterisk-queue-log"\n'
    )
    outputs.append(cli("sync", code=None))
    outputs.append(cli("status"))

    # Each input was quarantined, with its reason, in the store: that is evidence.
    with company_store.session() as session:
        reasons = {q.kind: q.reason for q in session.scalars(select(QuarantineItem))}
    assert set(reasons) == {"mail", "asterisk-cdr", "asterisk-queue-log"}
    assert "MIME parts" in reasons["mail"]
    assert CANARY in reasons["asterisk-cdr"] and CANARY in reasons["asterisk-queue-log"]

    # ... and none of it in what a terminal, a cron mail or a log file sees.
    said = [o.stdout + o.stderr for o in outputs]
    assert any("quarantine #" in text for text in said)
    assert any("is not YYYY-MM-DD HH:MM:SS" in text for text in said)
    summary = json.loads(outputs[2].stdout)
    assert summary["quarantined"] == 2 and len(summary["quarantine_reasons"]) == 2
    for text in said:
        assert CANARY not in text, text
    logged = [r.getMessage() for r in caplog.records]
    warned = [m for m in logged if "checkpoint written without a timestamp" in m]
    assert len(warned) >= 3, logged  # one per import at least: the capture was on
    for record in caplog.records:
        assert CANARY not in record.getMessage(), record
