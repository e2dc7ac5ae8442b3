"""Completeness: what each source covers, when it was imported, its gaps and quarantine."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select

from evidence.ingest.asterisk import import_calls
from evidence.ingest.mail import import_mail
from evidence.store.db import Store
from evidence.store.models import ImportRun
from evidence.timeline.completeness import Gap, completeness, mail_source
from evidence.timeline.history import period_bounds
from evidence.timeline.mailfacts import MailRules

HELSINKI = ZoneInfo("Europe/Helsinki")
RULES = MailRules(domains=("aurora-energia.example",))
EEST = dt.timezone(dt.timedelta(hours=3))


def _at(day: int, hour: int = 12) -> dt.datetime:
    return dt.datetime(2026, 9, day, hour, 0, tzinfo=EEST)


def _eml(day: int, n: int) -> bytes:
    received = _at(day).strftime("%a, %d %b %Y %H:%M:%S +0300")
    return (
        "Received: from mx.example.net by mx1.aurora-energia.example; "
        f"{received}\nFrom: a@example.net\nTo: asiakaspalvelu@aurora-energia.example\n"
        f"Subject: viesti {n}\nMessage-ID: <{n}@example.net>\nDate: {received}\n\nhei {n}\n"
    ).encode()


def _queue_line(day: int, hour: int = 9) -> str:
    return f"{int(_at(day, hour).timestamp())}|NONE|asiakaspalvelu|PJSIP/1001|ADDMEMBER|"


def test_sources_cover_gaps_and_quarantine(company_store: Store, tmp_path: Path) -> None:
    inbox = tmp_path / "saapuneet"
    inbox.mkdir()
    (inbox / "1.eml").write_bytes(_eml(1, 1))
    (inbox / "2.eml").write_bytes(_eml(4, 2))
    (inbox / "kuva.bin").write_bytes(b"\x00\x01 not mail")
    mbox = tmp_path / "vienti.mbox"
    mbox.write_bytes(
        b"From a@example.net Tue Sep  1 09:00:00 2026\n"
        + _eml(2, 3)
        + b"\nFrom a@example.net Tue Sep  1 09:00:00 2026\nSubject: katkennut"
    )
    log = tmp_path / "queue_log"
    lines = [_queue_line(1), _queue_line(2), "tämä ei ole rivi", _queue_line(5, 23)]
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")

    copy = tmp_path / "kopio.mbox"  # only a message already stored from the folder
    copy.write_bytes(b"From a@example.net Tue Sep  1 09:00:00 2026\n" + _eml(1, 1))
    import_mail(company_store, [inbox])
    import_mail(company_store, [mbox])
    import_mail(company_store, [copy])
    import_calls(company_store, log, "asterisk-queue-log")
    # The log grows by a line and is imported again: the later run counts.
    log.write_text("\n".join([*lines, _queue_line(6)]) + "\n", encoding="utf-8")
    import_calls(company_store, log, "asterisk-queue-log")

    start, end = period_bounds(dt.date(2026, 9, 1), dt.date(2026, 9, 5), HELSINKI)
    with company_store.session() as session:
        report = completeness(session, HELSINKI, start, end, rules=RULES)
        runs = list(session.scalars(select(ImportRun).order_by(ImportRun.id)))
    by_source = {(s.kind, s.source): s for s in report.sources}
    assert list(by_source) == [
        ("mail", str(copy)),
        ("mail", str(inbox)),
        ("mail", str(mbox)),
        ("asterisk-queue-log", str(log)),
    ]

    folder = by_source[("mail", str(inbox))]
    assert (folder.items, folder.items_in_period) == (2, 2)
    assert (folder.first, folder.last) == (_at(1), _at(4))
    assert folder.gaps == [Gap(dt.date(2026, 9, 2), dt.date(2026, 9, 3))]
    assert [q.reason for q in folder.quarantined] == [
        "not an email or mbox: the file does not start with mail headers"
    ]
    assert folder.last_imported == runs[0].finished_at
    assert folder.covers(start, end) is False

    box = by_source[("mail", str(mbox))]
    assert (box.items, box.first, box.gaps) == (1, _at(2), [])
    [truncated] = box.quarantined
    assert truncated.locator == "message 2" and truncated.reason.startswith("truncated")
    assert box.quarantine_reasons == {truncated.reason: 1}
    assert box.last_imported == runs[1].finished_at

    nothing_new = by_source[("mail", str(copy))]
    assert (nothing_new.items, nothing_new.first, nothing_new.quarantined) == (0, None, [])
    assert nothing_new.last_imported == runs[2].finished_at

    phone = by_source[("asterisk-queue-log", str(log))]
    assert (phone.items, phone.items_in_period) == (4, 3)  # the 6th is after the period
    assert (phone.first, phone.last) == (_at(1, 9), _at(6, 9))
    # Days 3 and 4 are empty, with lines before and after: a gap. Day 5 has a line.
    assert phone.gaps == [Gap(dt.date(2026, 9, 3), dt.date(2026, 9, 4))]
    assert phone.gaps[0].days == 2
    # Quarantined by both imports of the log, listed once.
    assert [(q.locator, q.reason) for q in phone.quarantined] == [
        ("line 3", "1 fields; a queue_log line has at least 5")
    ]
    assert phone.last_imported == runs[4].finished_at
    assert phone.last_imported is not None and phone.last_imported > runs[3].finished_at
    assert phone.covers(start, end) is False  # its first line is 09.00 on the first day

    # Without a period, gaps are looked for over each source's own span.
    with company_store.session() as session:
        found = completeness(session, HELSINKI, rules=RULES)
        whole = {(s.kind, s.source): s for s in found.sources}
    assert whole[("asterisk-queue-log", str(log))].gaps == [
        Gap(dt.date(2026, 9, 3), dt.date(2026, 9, 4))
    ]
    assert whole[("asterisk-queue-log", str(log))].items_in_period == 4


def test_mail_source_names_the_mailbox() -> None:
    assert mail_source("/srv/export.mbox (message 12)") == "/srv/export.mbox"
    assert mail_source("/srv/saved/m01.eml") == "/srv/saved"
    assert mail_source("/srv/Maildir/.Sent/cur/1700000000.M1P2.host:2,S") == "/srv/Maildir/.Sent"
    assert mail_source("/srv/Maildir/new/1700000001.M2P2.host") == "/srv/Maildir"
    assert mail_source("/srv/export.mbox", "message 3") == "/srv/export.mbox"
    assert mail_source("imap://user@mail.example/INBOX") == "imap://user@mail.example/INBOX"
