"""Mail import: dedupe across sources, times, decoding, and bad input quarantined."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import func, select

from evidence.config import load_config
from evidence.errors import EvidenceError
from evidence.ingest.mail import content_key, import_mail, mail_limits
from evidence.render.mailbody import extract_body
from evidence.store.blobs import read_blob
from evidence.store.db import Store, open_store
from evidence.store.models import Email, QuarantineItem, ReceivedSource
from tests.conftest import DATA, Env

MSG = (
    b"Received: from mail.example.net by mx1.aurora-energia.example (Postfix)\n"
    b"\tfor <asiakaspalvelu@aurora-energia.example>; Mon, 28 Sep 2026 10:21:37 +0300\n"
    b"Received: from laptop by mail.example.net; Mon, 28 Sep 2026 10:01:10 +0300\n"
    b"Date: Mon, 28 Sep 2026 10:01:09 +0300\n"
    b"From: Matti <matti@example.net>\n"
    b"To: asiakaspalvelu@aurora-energia.example\n"
    b"Subject: =?iso-8859-1?q?Miksi_ette_vastaa=3F?=\n"
    b"Message-ID: <one@example.net>\n"
    b"Content-Type: text/plain; charset=iso-8859-1\n"
    b"Content-Transfer-Encoding: 8bit\n"
    b"\n"
    b"Mik\xe4 helvetti?\n"
    b"From the start I called.\n"
)


def _mbox(*messages: bytes) -> bytes:
    out = b""
    for msg in messages:
        escaped = b"\n".join(
            b">" + line if line.lstrip(b">").startswith(b"From ") else line
            for line in msg.split(b"\n")
        )
        out += b"From MAILER-DAEMON Tue Sep 29 06:00:00 2026\n" + escaped.rstrip(b"\n") + b"\n\n"
    return out


def _count(store: Store, model: type) -> int:
    with store.session() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_same_message_from_eml_and_mbox_is_one_record(company_store: Store, tmp_path: Path) -> None:
    tmp_path = tmp_path / "mail"
    tmp_path.mkdir()
    eml = tmp_path / "a.eml"
    eml.write_bytes(MSG.replace(b"\n", b"\r\n"))  # CRLF on disk
    box = tmp_path / "export"  # no extension: detected by content
    box.write_bytes(_mbox(MSG))
    first = import_mail(company_store, [box])
    again = import_mail(company_store, [eml, box, tmp_path])
    assert (first.imported, first.duplicates) == (1, 0)
    assert (again.imported, again.duplicates, again.quarantined) == (0, 4, 0)
    assert _count(company_store, Email) == 1
    with company_store.session() as session:
        mail = session.scalars(select(Email)).one()
        # The first copy is the message as delivered: the mbox's quoting of the
        # body's "From " line is undone, so it is the sender's bytes exactly.
        raw = read_blob(session, mail.raw_sha256)
        assert raw == MSG
        assert content_key(raw) == content_key(eml.read_bytes())


def test_receive_time_from_our_server_and_date_header_kept(
    company_store: Store, tmp_path: Path
) -> None:
    (tmp_path / "a.eml").write_bytes(MSG)
    import_mail(company_store, [tmp_path / "a.eml"])
    with company_store.session() as session:
        mail = session.scalars(select(Email)).one()
        assert mail.received_at.isoformat() == "2026-09-28T07:21:37+00:00"
        assert mail.received_source is ReceivedSource.RECEIVED_HEADER
        assert mail.date_header is not None
        assert mail.date_header.isoformat() == "2026-09-28T07:01:09+00:00"
        assert mail.date_header_offset == 180
        assert mail.subject == "Miksi ette vastaa?"
        assert mail.direction.value == "inbound"
        body = extract_body(read_blob(session, mail.raw_sha256))
        assert body.text is not None and "Mikä helvetti?" in body.text


def test_no_receive_information_marks_import_time(company_store: Store, tmp_path: Path) -> None:
    bare = b"From: x@example.org\nSubject: hi\n\nbody\n"
    (tmp_path / "a.eml").write_bytes(bare)
    import_mail(company_store, [tmp_path / "a.eml"])
    with company_store.session() as session:
        mail = session.scalars(select(Email)).one()
        assert mail.received_source is ReceivedSource.IMPORT_TIME
        assert mail.message_id is None and mail.date_header is None


def test_reused_message_id_is_kept_and_flagged(company_store: Store, tmp_path: Path) -> None:
    tmp_path = tmp_path / "mail"
    tmp_path.mkdir()
    (tmp_path / "a.eml").write_bytes(MSG)
    (tmp_path / "b.eml").write_bytes(MSG.replace(b"helvetti", b"kummaa"))
    report = import_mail(company_store, [tmp_path])
    assert report.imported == 2
    with company_store.session() as session:
        flags = sorted(session.scalars(select(Email.message_id_reused)))
    assert flags == [False, True]


def test_truncated_mbox_and_non_mail_are_quarantined(company_store: Store, tmp_path: Path) -> None:
    other = MSG.replace(b"<one@", b"<two@")
    box = tmp_path / "cut.mbox"
    whole = _mbox(MSG, other)
    box.write_bytes(whole[: len(whole) - 12])  # cut in the middle of the last line
    # Inside a folder (named on its own, a photo is refused: see test_user_mistakes.py).
    junk = tmp_path / "saved" / "photo.jpg"
    junk.parent.mkdir()
    junk.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)))
    report = import_mail(company_store, [box, junk.parent])
    assert (report.imported, report.quarantined) == (1, 2)
    with company_store.session() as session:
        items = list(session.scalars(select(QuarantineItem).order_by(QuarantineItem.id)))
        assert "truncated" in items[0].reason and items[0].locator == "message 2"
        assert "not an email" in items[1].reason
        # The quarantined bytes are kept exactly.
        assert read_blob(session, items[1].raw_sha256) == junk.read_bytes()
    assert any("cut.mbox:message 2: truncated" in m for m in report.messages)


def test_header_injection_never_becomes_a_header(company_store: Store, tmp_path: Path) -> None:
    evil = (
        b"From: a@example.net\n"
        b"Subject: =?utf-8?q?hello=0D=0ABcc:_victim@example.org=0D=0A=0D=0A<b>x</b>?=\n"
        b"\nbody\n"
    )
    (tmp_path / "e.eml").write_bytes(evil)
    import_mail(company_store, [tmp_path / "e.eml"])
    with company_store.session() as session:
        mail = session.scalars(select(Email)).one()
    assert mail.subject is not None
    assert "\r" not in mail.subject and "\n" not in mail.subject
    assert mail.cc_display is None


def test_rfc2231_attachment_stored_byte_exact(company_store: Store, tmp_path: Path) -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 20
    import base64

    msg = (
        b"From: a@example.net\nSubject: liite\nMIME-Version: 1.0\n"
        b'Content-Type: multipart/mixed; boundary="b"\n\n--b\n'
        b"Content-Type: text/plain; charset=utf-8\n\nkatso liite\n--b\n"
        b"Content-Type: image/png\nContent-Transfer-Encoding: base64\n"
        b"Content-Disposition: attachment; filename*=UTF-8''kuva%20ma%2028.9.png\n\n"
        + base64.b64encode(png)
        + b"\n--b--\n"
    )
    (tmp_path / "a.eml").write_bytes(msg)
    import_mail(company_store, [tmp_path / "a.eml"])
    with company_store.session() as session:
        mail = session.scalars(select(Email)).one()
        [attachment] = mail.attachments
        assert attachment.filename == "kuva ma 28.9.png"
        assert attachment.sha256 == hashlib.sha256(png).hexdigest()
        assert read_blob(session, attachment.sha256) == png


def test_wrong_charset_is_decoded_as_a_guess() -> None:
    raw = (
        (
            b"From: a@example.net\nContent-Type: text/plain; charset=us-ascii\n"
            b"Content-Transfer-Encoding: 8bit\n\n"
        )
        + "Hyvää päivää, Äänekoski ja Öljy".encode()
        + b"\n"
    )
    body = extract_body(raw)
    assert body.text is not None and "Hyvää päivää" in body.text
    assert body.charset_note is not None and "guess" in body.charset_note


# --- sources --------------------------------------------------------------------


def test_maildir_is_detected_and_its_meta_files_skipped(
    company_store: Store, tmp_path: Path
) -> None:
    maildir = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp", ".Sent/cur", ".Sent/new", ".Sent/tmp"):
        (maildir / sub).mkdir(parents=True)
    (maildir / "cur" / "1790.M1P1.host:2,S").write_bytes(MSG)
    (maildir / "new" / "1790.M2P1.host").write_bytes(MSG.replace(b"<one@", b"<two@"))
    (maildir / "tmp" / "1790.M3P1.host").write_bytes(b"half a messa")  # being delivered
    (maildir / ".Sent" / "cur" / "1790.M4P1.host:2,S").write_bytes(
        MSG.replace(b"<one@", b"<three@")
    )
    for meta in ("dovecot.index", "dovecot-uidlist", "subscriptions", "maildirfolder"):
        (maildir / meta).write_bytes(b"\x00\x01 not mail")
    (maildir / ".Sent" / "dovecot-uidlist").write_bytes(b"3 V1 N2\n")
    report = import_mail(company_store, [maildir])
    assert (report.imported, report.duplicates, report.quarantined) == (3, 0, 0)
    # The same message from an mbox is a duplicate.
    box = tmp_path / "box"
    box.write_bytes(_mbox(MSG))
    again = import_mail(company_store, [box])
    assert (again.imported, again.duplicates) == (0, 1)


def test_mbox_separators_and_quoting(company_store: Store, tmp_path: Path) -> None:
    """Postmarks of every usual shape split; an unquoted "From Russia" line does not."""
    one = b"From: a@example.net\nSubject: one\n\nFrom Russia with love\nYear: 1963\n"
    two = b"From: b@example.net\nSubject: two\n\n>From quoted by the sender\nend\n"
    three = b"From: c@example.net\nSubject: three\n\nplain\n"
    box = tmp_path / "mixed.mbox"
    box.write_bytes(
        b"\xef\xbb\xbfFrom -\n"
        + one
        + b"\nFrom 1844347792267117879@xxx\n"
        + two.replace(b">From quoted", b">>From quoted")  # mboxrd quoting of ">From"
        + b"\nFrom - \n"
        + three
        + b"\n"
    )
    report = import_mail(company_store, [box])
    assert (report.imported, report.quarantined) == (3, 0)
    with company_store.session() as session:
        stored = {
            m.subject: read_blob(session, m.raw_sha256) for m in session.scalars(select(Email))
        }
    assert stored == {"one": one, "two": two, "three": three}


def test_mbox_read_in_blocks_finds_every_message(company_store: Store, tmp_path: Path) -> None:
    """Messages cross the reader's block boundaries; none is lost or merged."""
    from evidence.ingest import mail

    filler = b"x" * 997 + b"\n"
    messages = [
        MSG.replace(b"<one@", b"<%d@" % i).replace(b"From the start", filler * (i % 7) + b"From")
        for i in range(60)
    ]
    box = tmp_path / "big.mbox"
    box.write_bytes(_mbox(*messages))
    original = mail.READ_BLOCK
    mail.READ_BLOCK = 4096
    try:
        found = list(mail.iter_raw_messages([box]))
    finally:
        mail.READ_BLOCK = original
    assert [m.raw for m in found] == messages
    assert all(m.problem is None for m in found)


# --- decoding -------------------------------------------------------------------


def test_headers_decoded_from_every_spelling(company_store: Store, tmp_path: Path) -> None:
    msg = (
        b"From: =?utf-8?q?Virtanen=2C_Matti?= <Matti.Virtanen@Example.NET>\n"
        b"To: =?iso-8859-1?q?J=F6rg?= <jorg@example.de>,\n"
        b'  "Liisa" <liisa@aurora-energia.example>\n'
        # a character split between two encoded words, one word broken (no ?=)
        b"Subject: =?utf-8?b?SHl2w6Q=?= =?utf-8?q?=C3?= =?utf-8?q?=A4_p=C3=A4iv=C3=A4=C3=A4?=\n"
        b"  =?utf-8?q?broken\n"
        b"Message-ID: <x@example.net>\n"
        b"Content-Type: text/plain; charset=utf-8\n\nhei\n"
    )
    raw_8bit = "From: Åsa <asa@example.se>\nSubject: Hyvää päivää €\n\nhei\n".encode()
    latin1 = (
        b"From: x@example.org\nSubject: Mik\xe4 t\xe4m\xe4 on\n"
        b"Content-Type: text/plain; charset=iso-8859-1\n\nMik\xe4\n"
    )
    for name, data in (("a.eml", msg), ("b.eml", raw_8bit), ("c.eml", latin1)):
        (tmp_path / name).write_bytes(data)
    import_mail(company_store, [tmp_path / n for n in ("a.eml", "b.eml", "c.eml")])
    with company_store.session() as session:
        by_from = {m.from_addr: m for m in session.scalars(select(Email))}
        first = by_from["matti.virtanen@example.net"]
        assert first.from_display == "Virtanen, Matti <Matti.Virtanen@Example.NET>"
        assert first.subject == "Hyvää päivää =?utf-8?q?broken"
        assert first.to_display == 'Jörg <jorg@example.de>, "Liisa" <liisa@aurora-energia.example>'
        assert sorted(a.address for a in first.addresses) == [
            "jorg@example.de",
            "liisa@aurora-energia.example",
            "matti.virtanen@example.net",
        ]
        assert by_from["asa@example.se"].subject == "Hyvää päivää €"
        assert by_from["asa@example.se"].from_display == "Åsa <asa@example.se>"
        assert by_from["x@example.org"].subject == "Mikä tämä on"


def test_body_charsets_declared_wrong_and_missing() -> None:
    def body(declared: bytes, payload: bytes) -> tuple[str | None, str | None]:
        head = b"From: a@example.net\n"
        if declared:
            head += b"Content-Type: text/plain; charset=" + declared + b"\n"
        extracted = extract_body(head + b"\n" + payload)
        return extracted.text, extracted.charset_note

    text = "Hyvää päivää, 4,90 € ja Äänekoski\n"
    for charset in ("utf-8", "iso-8859-15", "windows-1252"):
        assert body(charset.encode(), text.encode(charset)) == (text, None)
    assert body(b"koi8-r", "Прошу перезвонить\n".encode("koi8-r")) == (
        "Прошу перезвонить\n",
        None,
    )
    decoded, note = body(b"iso-8859-1", text.encode("utf-8"))  # mislabelled UTF-8
    assert decoded == text and note is not None and "a guess" in note
    decoded, note = body(b"", text.encode("utf-8"))  # none declared
    assert decoded == text and note is not None and "no charset declared" in note
    decoded, note = body(b"x-unknown", text.encode("utf-8"))
    assert decoded == text and note is not None and "unknown charset" in note


def test_attachments_at_any_depth_tnef_and_uuencode(company_store: Store, tmp_path: Path) -> None:
    import base64
    import struct

    def tnef_attr(level: int, name: int, kind: int, data: bytes) -> bytes:
        head = struct.pack("<BHHI", level, name, kind, len(data))
        return head + data + struct.pack("<H", sum(data) & 0xFFFF)

    inner_pdf = b"%PDF-1.4 inside winmail.dat"
    tnef = (
        struct.pack("<IH", 0x223E9F78, 1)
        + tnef_attr(1, 0x9006, 8, b"\x00\x00\x01\x00")
        + tnef_attr(2, 0x9002, 6, b"\x01\x00" + b"\xff" * 4 + b"\x00" * 6)
        + tnef_attr(2, 0x8010, 1, b"lasku.pdf\x00")
        + tnef_attr(2, 0x800F, 6, inner_pdf)
    )
    gif = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"
    import binascii

    uu = b"begin 644 kuva.gif\n" + binascii.b2a_uu(gif) + b"`\nend\n"
    msg = (
        b"From: a@example.net\nSubject: liitteet\nMIME-Version: 1.0\n"
        b'Content-Type: multipart/mixed; boundary="outer"\n\n'
        b"--outer\nContent-Type: text/plain\n\nsee below\n" + uu + b"--outer\n"
        b"Content-Type: application/ms-tnef\nContent-Transfer-Encoding: base64\n"
        b'Content-Disposition: attachment; filename="winmail.dat"\n\n'
        + base64.encodebytes(tnef)
        + b"--outer\nContent-Type: message/rfc822\n\n"
        b"From: b@example.net\nSubject: forwarded\n"
        b'Content-Type: multipart/mixed; boundary="inner"\n\n'
        b"--inner\nContent-Type: text/plain\n\ninner text\n--inner\n"
        b"Content-Type: application/octet-stream\n"
        b"Content-Disposition: attachment; filename*=UTF-8''sy%C3%B6te.bin\n\n"
        b"deep bytes\n--inner--\n--outer--\n"
    )
    (tmp_path / "a.eml").write_bytes(msg)
    import_mail(company_store, [tmp_path / "a.eml"])
    with company_store.session() as session:
        mail = session.scalars(select(Email)).one()
        found = {(a.part, a.filename, a.content_type): a for a in mail.attachments}
        assert set(found) == {
            ("1.uu-1", "kuva.gif", "image/gif"),
            ("2", "winmail.dat", "application/ms-tnef"),
            ("2.tnef-1", "lasku.pdf", "application/pdf"),
            ("3", None, "message/rfc822"),
            ("3.2", "syöte.bin", "application/octet-stream"),
        }
        assert read_blob(session, found[("1.uu-1", "kuva.gif", "image/gif")].sha256) == gif
        pdf = found[("2.tnef-1", "lasku.pdf", "application/pdf")]
        assert read_blob(session, pdf.sha256) == inner_pdf and pdf.size == len(inner_pdf)
        deep = found[("3.2", "syöte.bin", "application/octet-stream")]
        assert read_blob(session, deep.sha256) == b"deep bytes"
        raw = read_blob(session, mail.raw_sha256)
    body = extract_body(raw)
    assert body.text is not None
    assert "see below" in body.text and "[uuencoded file kuva.gif, 14 bytes" in body.text
    assert "begin 644" not in body.text
    [nested] = body.nested
    assert (nested.sender, nested.subject) == ("b@example.net", "forwarded")
    assert nested.body.text == "inner text\n"
    assert [(a.filename, a.size) for a in nested.attachments] == [("syöte.bin", 10)]


# --- hostile input ----------------------------------------------------------------


def _nested_multiparts(depth: int) -> bytes:
    head = b"From: a@example.net\nSubject: deep\n"
    opening = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\n\n--b%d\n' % (i, i) for i in range(depth)
    )
    closing = b"".join(b"\n--b%d--\n" % i for i in reversed(range(depth)))
    return head + opening + b"Content-Type: text/plain\n\ndeep down\n" + closing


def test_hostile_messages_are_quarantined_with_the_reason(
    company_store: Store, tmp_path: Path
) -> None:
    from evidence.ingest.mail import MailLimits

    huge_header = b"From: a@example.net\nX-Junk: " + b"a" * 400_000 + b"\nSubject: x\n\nbody\n"
    folded_header = (
        b"From: a@example.net\nX-Junk: start\n" + b" more folded text\n" * 25_000 + b"\nbody\n"
    )
    many_parts = (
        b'From: a@example.net\nContent-Type: multipart/mixed; boundary="p"\n\n'
        + b"--p\nContent-Type: text/plain\n\nx\n" * 1_500
        + b"--p--\n"
    )
    files = {
        "header.eml": huge_header,
        "folded.eml": folded_header,
        "deep.eml": _nested_multiparts(3_000),
        "parts.eml": many_parts,
        "fine.eml": _nested_multiparts(20),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    report = import_mail(company_store, [tmp_path / n for n in files])
    assert (report.imported, report.quarantined) == (1, 4)
    with company_store.session() as session:
        reasons = {Path(q.source).name: q.reason for q in session.scalars(select(QuarantineItem))}
        fine = session.scalars(select(Email)).one()
        assert fine.subject == "deep"
        # The quarantined bytes are the input's, exactly.
        for item in session.scalars(select(QuarantineItem)):
            assert read_blob(session, item.raw_sha256) == files[Path(item.source).name]
    assert "max_header_line" in reasons["header.eml"]
    assert "max_header_bytes" in reasons["folded.eml"]
    assert "nesting deeper than the limit of 50" in reasons["deep.eml"]
    assert "more than 1,000 MIME parts" in reasons["parts.eml"]
    # The deep message is also fine to read for the dossier (no recursion).
    assert extract_body(files["fine.eml"]).text == "deep down\n"
    deep_body = extract_body(files["deep.eml"])
    assert deep_body.problem is not None and "max_depth" in deep_body.problem
    assert (
        extract_body(files["deep.eml"], MailLimits(max_depth=5_000, max_parts=9_000)).text
        == "deep down\n"
    )


def test_limits_come_from_the_settings(env: Env, tmp_path: Path) -> None:
    env.write_config("[mail.limits]\nmax_message_bytes = 2000\n")
    big = MSG + b"x" * 70_000 + b"\n"
    (tmp_path / "big.eml").write_bytes(big)
    box = tmp_path / "big.mbox"
    box.write_bytes(_mbox(MSG.replace(b"<one@", b"<2@") + b"y" * 3_000_000 + b"\n", MSG))
    with _opened() as store:
        report = import_mail(store, [tmp_path / "big.eml", box])
        assert (report.imported, report.quarantined) == (1, 2), report.messages
        with store.session() as session:
            items = {
                (Path(q.source).name, q.locator): (q.reason, read_blob(session, q.raw_sha256))
                for q in session.scalars(select(QuarantineItem))
            }
    reason, kept = items[("big.eml", None)]
    assert "over the limit of 2,000 (max_message_bytes); its first 64 KiB are kept" in reason
    assert kept == big[: 64 * 1024]
    reason, kept = items[("big.mbox", "message 1")]
    assert reason.startswith("message of 3,000,") and "max_message_bytes" in reason
    # The head of the message, its mbox quoting undone (one ">" fewer than found).
    assert kept == (MSG.replace(b"<one@", b"<2@") + b"y" * 3_000_000)[: 64 * 1024 - 1]

    env.write_config("[mail.limits]\nmax_seconds = 0.000001\n")
    (tmp_path / "slow.eml").write_bytes(MSG.replace(b"<one@", b"<3@"))
    with _opened() as store:
        report = import_mail(store, [tmp_path / "slow.eml"])
    assert report.quarantined == 1
    assert "took longer than the limit of 1e-06 s (max_seconds)" in report.messages[0]

    env.write_config("[mail.limits]\nmax_parts = -1\n")
    with pytest.raises(EvidenceError, match="max_parts must be a positive number"):
        mail_limits(load_config())


@contextmanager
def _opened() -> Iterator[Store]:
    store = open_store(load_config())
    try:
        yield store
    finally:
        store.close()


# --- storing ---------------------------------------------------------------------


def test_bulk_path_chains_the_same_payload_as_the_orm(company_store: Store, tmp_path: Path) -> None:
    """Parsed in worker processes, inserted in bulk, chained like ledger.append would."""
    from evidence.store import ledger
    from evidence.store.models import LedgerEntry

    messages = [
        MSG.replace(b"<one@", b"<%d@" % i).replace(b"helvetti", b"asia %d" % i) for i in range(240)
    ]
    box = tmp_path / "many.mbox"
    box.write_bytes(_mbox(*messages))
    report = import_mail(company_store, [box], workers=2)
    assert (report.imported, report.quarantined) == (240, 0)
    with company_store.session() as session:
        entries = list(session.scalars(select(LedgerEntry).order_by(LedgerEntry.seq)))
        emails = {str(e.id): e for e in session.scalars(select(Email))}
        chained = [e for e in entries if e.record_type == "emails"]
        assert len(chained) == 240
        previous = ledger.GENESIS
        for entry in entries:
            assert entry.prev_hash == previous
            assert entry.entry_hash == ledger.entry_hash(previous, entry.payload)
            previous = entry.entry_hash
        for entry in chained:
            mail = emails[entry.record_id]
            children = [*mail.addresses, *mail.attachments, *mail.hops]
            assert entry.payload == ledger.canonical_payload(mail, children)


def test_messages_that_once_broke_the_importer(company_store: Store) -> None:
    files = ["address-recursion.eml", "no-blank-before-postmark.mbox", "related-root-by-type.eml"]
    report = import_mail(company_store, [DATA / name for name in files])
    assert (report.imported, report.quarantined) == (4, 0), report.messages
    with company_store.session() as session:
        mails = {m.subject: m for m in session.scalars(select(Email))}
        assert set(mails) == {"address parser recursion", "first", "second", "mhtml"}
        recursion = mails["address parser recursion"]
        assert [(a.role, a.address) for a in recursion.addresses] == [
            ("from", "matti@example.net"),
            ("to", "asiakaspalvelu@aurora-energia.example"),
        ]
        first = read_blob(session, mails["first"].raw_sha256)
        assert first == b"From: a@example.net\nSubject: first\n\nno blank line after me\n--end--\n"
        related = extract_body(read_blob(session, mails["mhtml"].raw_sha256))
    assert related.html is not None and "The root is the HTML part" in related.html
    assert "data:image/png;base64," in related.html
    assert [i.content_id for i in related.inline_images] == ["img1"]


_DIRECTION_MAILS = {
    # Ours, to someone else with the customer in Cc (upper case).
    "a.eml": b"From: Liisa <liisa@Aurora-Energia.Example>\nTo: x@example.org\n"
    b"Cc: MATTI@EXAMPLE.NET\nSubject: ours\nDate: Mon, 28 Sep 2026 14:37:15 +0300\n\nhei\n",
    # From a subdomain of ours.
    "b.eml": b"From: noreply@mail.aurora-energia.example\nTo: Matti@Example.Net\n"
    b"Subject: notice\nDate: Mon, 28 Sep 2026 15:00:00 +0300\n\nhei\n",
    # His, sent to us.
    "c.eml": b"From: MATTI@example.NET\nTo: asiakaspalvelu@aurora-energia.example\n"
    b"Subject: his\n\nhei\n",
    # Someone else writing to us with him in Cc: his history too.
    "d.eml": b"From: other@example.org\nTo: asiakaspalvelu@aurora-energia.example\n"
    b"Cc: matti@example.net\nSubject: cc him\n\nhei\n",
    # Our sent copy with him in Bcc only.
    "e.eml": b"From: liisa@aurora-energia.example\nTo: x@example.org\n"
    b"Bcc: matti@example.net\nSubject: bcc him\n\nhei\n",
    # Nothing of his.
    "f.eml": b"From: other@example.org\nTo: asiakaspalvelu@aurora-energia.example\n"
    b"Subject: not his\n\nhei\n",
}


def _directions(store: Store, tmp_path: Path) -> dict[str, str]:
    from zoneinfo import ZoneInfo

    from evidence.records.customers import add_customer
    from evidence.timeline.history import build_timeline
    from evidence.timeline.mailfacts import MailRules

    add_customer(store, "7", "Matti", ["matti@example.net"], [])
    for name, data in _DIRECTION_MAILS.items():
        (tmp_path / name).write_bytes(data)
    import_mail(store, [tmp_path / name for name in _DIRECTION_MAILS])
    with store.session() as session:
        timeline = build_timeline(
            session, "7", ZoneInfo("Europe/Helsinki"), rules=MailRules.of(store.config)
        )
        return {
            item.record.subject: item.direction.value  # type: ignore[union-attr]
            for item in timeline.items
            if item.direction is not None
        }


def test_direction_from_company_domains_and_customer_matching(
    company_store: Store, tmp_path: Path
) -> None:
    # Mail from the company's domains (or a subdomain) is ours, anything else to us; an
    # email is the customer's when his address is in From, To, Cc or Bcc.
    assert _directions(company_store, tmp_path) == {
        "ours": "outbound",
        "notice": "outbound",
        "his": "inbound",
        "cc him": "inbound",
        "bcc him": "outbound",
    }


def test_without_company_domains_direction_is_relative_to_the_customer(
    store: Store, tmp_path: Path
) -> None:
    # A bare `init`: nothing is lost; what he sent is inbound, what was sent to him outbound.
    assert _directions(store, tmp_path) == {
        "ours": "outbound",
        "notice": "outbound",
        "his": "inbound",
        "cc him": "outbound",
        "bcc him": "outbound",
    }


def test_alternative_shows_the_text_and_html_only_shows_sanitised_html() -> None:
    alternative = (
        b'From: a@example.net\nContent-Type: multipart/alternative; boundary="a"\n\n'
        b"--a\nContent-Type: text/html; charset=utf-8\n\n<p>HTML versio</p>\n"
        b"--a\nContent-Type: text/plain; charset=utf-8\n\nTekstiversio\n--a--\n"
    )
    body = extract_body(alternative)
    assert (body.text, body.html, body.from_html) == ("Tekstiversio\n", None, False)
    html_only = (
        b'From: a@example.net\nContent-Type: multipart/alternative; boundary="a"\n\n'
        b"--a\nContent-Type: text/html; charset=utf-8\n\n"
        b'<p onclick="x()">Vain HTML</p><script>alert(1)</script>\n--a--\n'
    )
    body = extract_body(html_only)
    assert body.text is None and body.from_html
    assert body.html == "<p>Vain HTML</p>"


def test_mbox_split_keys_as_the_eml_would(tmp_path: Path) -> None:
    """The mbox reader's one look for ">From " gives the same content key as the full look."""
    from evidence.ingest.mail import iter_mbox

    plain = b"From: a@example.net\r\nSubject: crlf\r\n\r\nbody\r\n\r\n"
    quoted = b"From: b@example.net\nSubject: q\n\n>>From the sender\n"
    box = tmp_path / "k.mbox"
    box.write_bytes(b"From -\n" + plain + b"From -\n" + quoted + b"\n")
    first, second = iter_mbox(box)
    assert (first.quoted, second.quoted) == (False, True)
    assert first.raw == plain[:-2]  # the blank line before the next postmark is the mbox's
    assert second.raw == b"From: b@example.net\nSubject: q\n\n>From the sender\n"
    for item in (first, second):
        assert content_key(item.raw, item.quoted) == content_key(item.raw)
    assert content_key(second.raw) == content_key(quoted.replace(b">>From", b"From"))
