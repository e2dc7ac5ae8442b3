"""Small factories for contacts at exact instants: an .eml, a CDR row, a config."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path
from zoneinfo import ZoneInfo

HELSINKI = ZoneInfo("Europe/Helsinki")
CUSTOMER_EMAIL = "aino.asiakas@example.net"
CUSTOMER_PHONE = "040 765 4321"
_numbers = itertools.count(1)


def eml(directory: Path, at: dt.datetime, subject: str = "Hei") -> Path:
    """An inbound message from the customer that our server received at ``at``."""
    n = next(_numbers)
    received = at.astimezone(HELSINKI).strftime("%a, %d %b %Y %H:%M:%S %z")
    path = directory / f"m{n:04d}.eml"
    path.write_bytes(
        (
            f"Received: from mail.example.net by mx.aurora-energia.example; {received}\n"
            f"From: Aino Asiakas <{CUSTOMER_EMAIL}>\n"
            "To: asiakaspalvelu@aurora-energia.example\n"
            f"Subject: {subject} {n}\n"
            f"Date: {received}\n"
            f"Message-ID: <{n}.{at.timestamp():.0f}@example.net>\n"
            "\n"
            f"Viesti {n}.\n"
        ).encode()
    )
    return path


def cdr_row(at: dt.datetime, *, seconds: int = 60, number: str = CUSTOMER_PHONE) -> str:
    """An 18-column Asterisk CDR row for an unanswered inbound call starting at ``at``."""
    start = at.astimezone(HELSINKI)
    end = start + dt.timedelta(seconds=seconds)
    uniqueid = f"{int(at.timestamp())}.{next(_numbers)}"
    caller = number.replace(" ", "")
    fields = [
        "",
        caller,
        "100",
        "from-pstn",
        f'"Asiakas" <{caller}>',
        "PJSIP/trunk-00000001",
        "",
        "Queue",
        "asiakaspalvelu",
        f"{start:%Y-%m-%d %H:%M:%S}",
        "",
        f"{end:%Y-%m-%d %H:%M:%S}",
        str(seconds),
        "0",
        "NO ANSWER",
        "DOCUMENTATION",
        uniqueid,
        "",
    ]
    # Quoted as Asterisk's cdr_csv writes it: every text field, inner quotes doubled.
    return ",".join(f.isdigit() and f or '"' + f.replace('"', '""') + '"' for f in fields)


def write_cdr(path: Path, instants: list[dt.datetime]) -> Path:
    path.write_text("".join(cdr_row(at) + "\n" for at in instants), encoding="utf-8")
    return path


def at_local(text: str) -> dt.datetime:
    """``"2026-10-23 15:30"`` in Helsinki, as aware UTC (never an ambiguous time here)."""
    naive = dt.datetime.fromisoformat(text)
    return naive.replace(tzinfo=HELSINKI).astimezone(dt.UTC)


HOURS_TOML = """
[opening_hours]
holidays = "FI"

[opening_hours.phone]
mon-fri = "08:00-16:00"

[opening_hours.phone.exceptions]
"2026-12-23" = "08:00-12:00"
"2026-12-31" = "closed"

[opening_hours.email]
mon-fri = "08:00-16:00"
"""
