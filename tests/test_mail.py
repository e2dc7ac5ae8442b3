"""Mail import: dedupe across sources, times, decoding, and bad input quarantined."""

from __future__ import annotations

import hashlib
from pathlib import Path

from sqlalchemy import func, select

from evidence.ingest.mail import content_key, import_mail
from evidence.render.mailbody import extract_body
from evidence.store.blobs import read_blob
from evidence.store.db import Store
from evidence.store.models import Email, QuarantineItem, ReceivedSource

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
    junk = tmp_path / "photo.jpg"
    junk.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)))
    report = import_mail(company_store, [box, junk])
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
