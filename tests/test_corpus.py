"""Every file of the third-party MIME corpus (../shared/corpus, MANIFEST.tsv) is imported or
quarantined with a reason: no crash, no hang, and sane decoded text."""

from __future__ import annotations

import csv
import hashlib
import re

import pytest
from sqlalchemy import select

from evidence.ingest.mail import import_mail
from evidence.render.mailbody import Body, extract_body
from evidence.store.blobs import read_blob
from evidence.store.db import Store
from evidence.store.models import Email, QuarantineItem
from tests.conftest import CORPUS

# Text decoded with the wrong charset, or a byte that fitted none.
MOJIBAKE = re.compile("Ã[\u0080-\u00bf]|â€|Â[\u00a0-\u00bf]|\ufffd")
MBOX_MESSAGES = {
    "mimekit/mbox/content-length.mbox.txt": 29,
    "mimekit/mbox/issue1189.mbox.txt": 4,
    "mimekit/mbox/simple.mbox.txt": 3,
    "mimekit/mbox/unmunged.mbox.txt": 2,  # the unquoted "From Russia" lines split nothing
    "james-mime4j/mbox-test-1/mbox.rlug": 5,
}


def _manifest() -> list[dict[str, str]]:
    if not (CORPUS / "MANIFEST.tsv").is_file():
        pytest.skip("../shared/corpus is not beside this checkout (CI has it)")
    with (CORPUS / "MANIFEST.tsv").open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def _texts(body: Body) -> list[tuple[str, str | None]]:
    found = [(body.text or body.html or "", body.charset_note)]
    for nested in body.nested:
        found += _texts(nested.body)
    return found


@pytest.mark.slow
def test_whole_corpus_imports_or_is_quarantined_with_a_reason(store: Store) -> None:
    rows = _manifest()
    assert len(rows) == 240
    outcomes: dict[str, tuple[int, int, int]] = {}
    # The mbox first: mime4j's split-out copies of its messages must then be duplicates.
    rows.sort(key=lambda r: (r["kind"] != "mbox", r["file"]))
    for row in rows:
        path = CORPUS / row["file"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == row["sha256"], row["file"]
        report = import_mail(store, [path])
        outcomes[row["file"]] = (report.imported, report.duplicates, report.quarantined)
        total = sum(outcomes[row["file"]])
        if row["kind"] == "mbox":
            assert total == MBOX_MESSAGES[row["file"]], (row["file"], report.messages)
        else:
            assert total == 1, (row["file"], report.messages)
    for n in range(5):
        assert outcomes[f"james-mime4j/mbox-test-1/mbox.rlug-{n}"] == (0, 1, 0)

    with store.session() as session:
        reasons = list(session.scalars(select(QuarantineItem)))
        emails = list(session.scalars(select(Email)))
        assert all(q.reason.strip() and q.kind == "mail" for q in reasons)
        insane = []
        for mail in emails:
            for value in (mail.subject, mail.from_display, mail.to_display):
                if value and re.search(r"[\x00-\x1f\x7f]", value):
                    insane.append((mail.source, "control character in a header", value))
            body = extract_body(read_blob(session, mail.raw_sha256))
            for text, note in _texts(body):
                if note is None and MOJIBAKE.search(text):
                    where = MOJIBAKE.search(text)
                    assert where is not None
                    context = text[max(0, where.start() - 30) : where.end() + 30]
                    insane.append((mail.source, "mojibake in a declared charset", context))
        assert insane == []
    imported = sum(o[0] for o in outcomes.values())
    quarantined = sum(o[2] for o in outcomes.values())
    # Most of it is mail a person can read; the rest says why not.
    assert imported >= 230 and quarantined == len(reasons)


@pytest.mark.parametrize(
    ("name", "subject", "sender", "text"),
    [
        (
            "mimetools-testmsgs/german-qp.msg",
            "Testnachricht",
            "Jörn Reder <joern@zyn.de>",
            "8 Bit Sönderzäichen",
        ),
        (
            "mikel-mail/multi_charset/japanese_iso_2022.eml",
            "まみむめも",
            "Mikel Lindsaar <raasdnil@gmail.com>",
            "すみません。\n",
        ),
        ("mimekit/tnef/ukr.eml", "rr test 7", "RR Tester 1 <rrtest1@xink.io>", "шостий"),
        (
            "mikel-mail/rfc6532/utf8_headers.eml",
            "Säying Hello",
            '"Jöhn Doe" <jdöe@mächine.example>',
            "body\n",
        ),
        (
            "mimekit/messages/japanese.txt",
            "日本語メールテスト (testing Japanese emails)",
            "Atsushi Eno <x@x.com>",
            "日本語が\n正常に",
        ),
    ],
)
def test_corpus_text_decoded_word_for_word(
    store: Store, name: str, subject: str, sender: str, text: str
) -> None:
    """Declared charsets (ISO-2022-JP, KOI8-R in QP, Latin-1 in QP, raw UTF-8 headers)."""
    _manifest()
    report = import_mail(store, [CORPUS / name])
    assert report.imported == 1
    with store.session() as session:
        mail = session.scalars(select(Email)).one()
        assert (mail.subject, mail.from_display) == (subject, sender)
        body = extract_body(read_blob(session, mail.raw_sha256))
    assert body.text is not None and text in body.text and body.charset_note is None
