"""Bad input at scale (hypothesis): malformed MIME, CDR rows and queue_log lines.

Every generated input goes through the real importers into a real store (SQLite
and PostgreSQL) and must end imported, quarantined or a duplicate of something
already stored: never an unhandled exception. Afterwards the store verifies.
Examples per property: 40 in the default run, 400 under ``-m slow``
(``HYPOTHESIS_EXAMPLES`` overrides both). Inputs that once failed are kept
below as regression tests.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from evidence.ingest.mail import import_mail
from evidence.ingest.phonelog import iter_records
from evidence.store.db import Store
from tests import bulk
from tests.conftest import Env

DEFAULT_EXAMPLES = 40
SLOW_EXAMPLES = 400

# A few valid lines first, so the file is recognised as the format and each bad
# line is judged on its own (a whole file in another format is refused as such).
GOOD_CDR, GOOD_QUEUE = bulk.call_logs(2, seed=51)


def _settings(examples: int) -> Callable[[Any], Any]:
    return settings(
        max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", examples)),
        deadline=None,
        database=None,  # the same examples every run (derandomized below)
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# --- strategies -------------------------------------------------------------------

_CHARSETS = ["utf-8", "iso-8859-1", "windows-1252", "ks_c_5601-1987", "utf-7", "bogus", "", "x"]
_HEADER_NAMES = [
    "From", "To", "Cc", "Subject", "Date", "Message-ID", "In-Reply-To", "References",
    "Received", "Content-Type", "Content-Transfer-Encoding", "Content-Disposition",
    "MIME-Version", "X-Weird",
]  # fmt: skip
_TYPES = [
    "text/plain", "text/html", "multipart/mixed", "multipart/alternative", "multipart/related",
    "multipart/digest", "message/rfc822", "application/ms-tnef", "application/octet-stream",
    "image/png", "text/calendar", "multipart/", "/", "",
]  # fmt: skip
_CTES = ["7bit", "8bit", "binary", "base64", "quoted-printable", "x-uuencode", "bogus", ""]

_junk = st.binary(max_size=60)
_text = st.text(max_size=40)


@st.composite
def header_value(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return draw(_junk)
    if kind == 1:
        charset = draw(st.sampled_from(_CHARSETS))
        enc = draw(st.sampled_from(["B", "Q", "b", "q", "X", ""]))
        payload = draw(st.binary(max_size=30)).replace(b"?=", b"")
        end = draw(st.sampled_from([b"?=", b"", b"?"]))
        return b"=?" + charset.encode() + b"?" + enc.encode() + b"?" + payload + end
    if kind == 2:
        name = draw(_text).encode("utf-8", "surrogatepass")
        return b'"' + name + b'" <' + draw(_junk) + b"@" + draw(_junk) + b">"
    if kind == 3:  # a date, or something like one
        return draw(
            st.sampled_from(
                [
                    b"Tue, 29 Sep 2026 10:21:37 +0300",
                    b"29 Sep 2026 10:21:37 -0000",
                    b"Mon, 32 Foo 99999 25:61:61 +9999",
                    b"Thu, 01 Jan 0001 00:00:00 -2359",
                    b"Fri, 31 Dec 9999 23:59:59 -2359",
                    b"",
                ]
            )
        )
    if kind == 4:  # folded, with control characters
        return draw(_junk) + b"\n\t" + draw(_junk) + b"\r\n " + draw(_junk)
    return draw(_text).encode("utf-8", "surrogatepass")


def _content_type(draw: st.DrawFn, boundary: bytes) -> bytes:
    ctype = draw(st.sampled_from(_TYPES)).encode()
    params = b""
    if draw(st.booleans()):
        params += b'; boundary="' + boundary + b'"'
    if draw(st.booleans()):
        params += b"; charset=" + draw(st.sampled_from(_CHARSETS)).encode()
    if draw(st.booleans()):
        params += b"; name*=" + draw(st.sampled_from([b"utf-8''", b"x'", b""])) + draw(_junk)
    return ctype + params


@st.composite
def mime_entity(draw: st.DrawFn, depth: int = 0) -> bytes:
    boundary = draw(st.sampled_from([b"b", b"==x==", b"", b"a b", b"-"])) + str(depth).encode()
    ctype = _content_type(draw, boundary)
    lines = [b"Content-Type: " + ctype]
    if draw(st.booleans()):
        lines.append(b"Content-Transfer-Encoding: " + draw(st.sampled_from(_CTES)).encode())
    if draw(st.booleans()):
        lines.append(b"Content-Disposition: attachment; filename=" + draw(header_value()))
    for _ in range(draw(st.integers(0, 3))):
        lines.append(draw(st.sampled_from(_HEADER_NAMES)).encode() + b": " + draw(header_value()))
    head = b"\n".join(lines) + b"\n\n"
    if ctype.startswith(b"multipart") and depth < 4:
        parts = draw(st.lists(mime_entity(depth + 1), max_size=3))
        body = b"".join(b"--" + boundary + b"\n" + part + b"\n" for part in parts)
        if draw(st.booleans()):
            body += b"--" + boundary + b"--\n"
        return head + draw(_junk) + b"\n" + body
    if ctype.startswith(b"message/") and depth < 4:
        return head + draw(mime_message(depth + 1))
    body = draw(
        st.one_of(
            st.binary(max_size=300),
            st.sampled_from([b"begin 644 x.txt\n#86)C\n`\nend\n", b"QUJD\n====\n", b"=ZZ=\n="]),
        )
    )
    return head + body


@st.composite
def mime_message(draw: st.DrawFn, depth: int = 0) -> bytes:
    headers = []
    for _ in range(draw(st.integers(0, 6))):
        name = draw(st.one_of(st.sampled_from(_HEADER_NAMES), _text.map(str.strip)))
        headers.append(name.encode("utf-8", "surrogatepass") + b": " + draw(header_value()))
    raw = b"\n".join(headers) + b"\n" + draw(mime_entity(depth))
    mangle = draw(st.integers(0, 4))
    if mangle == 1:
        raw = raw.replace(b"\n", b"\r\n")
    elif mangle == 2 and raw:
        raw = raw[: draw(st.integers(0, len(raw)))]
    elif mangle == 3:
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.binary(min_size=1, max_size=20)) + raw[at:]
    return raw


def _field(draw: st.DrawFn) -> str:
    return draw(
        st.one_of(
            st.text(max_size=12),
            st.text(alphabet="x9", min_size=30, max_size=300),  # past a column's width
            st.integers(-(2**70), 2**70).map(str),
            st.sampled_from(
                [
                    "2026-09-29 10:21:37",
                    "2026-10-25 03:30:00",  # the repeated autumn hour in Helsinki
                    "2026-03-29 03:30:00",  # the skipped spring hour
                    "9999-12-31 23:59:59",
                    "0001-01-01 00:00:00",
                    "2026-02-30 10:00:00",
                    "",
                    "-1",
                    "99999999999999999999",
                    "1790579705.312",
                    "+358 40 123 4567",
                    "ANSWERED",
                ]
            ),
        )
    )


@st.composite
def cdr_row(draw: st.DrawFn) -> bytes:
    width = draw(st.sampled_from([16, 18, 21, 16, 18, 21, 15, 17, 22, 0, 1]))
    fields = [_field(draw) for _ in range(width)]
    if width >= 16:
        times = st.sampled_from(
            ["2026-09-29 10:21:37", "2026-10-25 03:30:00", "0001-01-01 00:00:00",
             "9999-12-31 23:59:59", ""]
        )  # fmt: skip
        for column in (9, 10, 11):  # start, answer, end
            if draw(st.booleans()):
                fields[column] = draw(times)
        if draw(st.booleans()):
            fields[9] = "2026-09-29 10:21:37"  # a start that parses, so the rest is read
    quote = draw(st.booleans())
    text = ",".join('"' + f.replace('"', '""') + '"' if quote else f for f in fields)
    raw = text.encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 5)) == 0:
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.binary(min_size=1, max_size=8)) + raw[at:]
    return raw


@st.composite
def queue_line(draw: st.DrawFn) -> bytes:
    epoch = draw(
        st.one_of(
            st.sampled_from(["1790579705", "1790579705.5", "99999999999", "0", "", "abc"]),
            st.integers(-(10**12), 10**12).map(str),
        )
    )
    event = draw(
        st.one_of(
            st.sampled_from(
                ["ENTERQUEUE", "CONNECT", "ABANDON", "PAUSE", "ADDMEMBER", "TRANSFER", "x", ""]
            ),
            st.text(max_size=10),
        )
    )
    data = [_field(draw) for _ in range(draw(st.integers(0, 6)))]
    fields = [epoch, _field(draw), _field(draw), _field(draw), event, *data]
    raw = "|".join(fields[: draw(st.integers(0, len(fields)))]).encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 5)) == 0:
        raw += draw(st.binary(min_size=1, max_size=8))
    return raw


# --- the properties -----------------------------------------------------------------


def check_mail(store: Store, env: Env, tmp_path: Path, examples: int) -> int:
    tried = 0

    @_settings(examples)
    @given(messages=st.lists(mime_message(), min_size=1, max_size=4))
    def one(messages: list[bytes]) -> None:
        nonlocal tried
        tried += 1
        folder = tmp_path / f"mail-{tried}"
        folder.mkdir()
        for n, raw in enumerate(messages):
            (folder / f"{n}.eml").write_bytes(raw)
        report = import_mail(store, [folder], workers=1)
        assert report.imported + report.quarantined + report.duplicates == len(messages)

    one()
    bulk.check_verifies(env.vars)
    return tried


def check_calls(
    store: Store, env: Env, tmp_path: Path, examples: int, fmt: str, good: list[bytes], row: Any
) -> int:
    from evidence.ingest.phonelog import import_calls

    tried = 0

    @_settings(examples)
    @given(rows=st.lists(row, min_size=1, max_size=8))
    def one(rows: list[bytes]) -> None:
        nonlocal tried
        tried += 1
        path = bulk.write_lines(tmp_path / f"{fmt}-{tried}", [*good, *rows])
        records = len(list(iter_records(path, multiline=fmt == "asterisk-cdr")))
        report = import_calls(store, path, fmt)
        assert report.imported + report.quarantined + report.duplicates == records

    one()
    bulk.check_verifies(env.vars)
    return tried


def test_malformed_mime(store: Store, env: Env, tmp_path: Path) -> None:
    assert check_mail(store, env, tmp_path, DEFAULT_EXAMPLES) > 0


def test_malformed_cdr_rows(store: Store, env: Env, tmp_path: Path) -> None:
    examples = DEFAULT_EXAMPLES
    assert check_calls(store, env, tmp_path, examples, "asterisk-cdr", GOOD_CDR, cdr_row()) > 0


def test_malformed_queue_log_lines(store: Store, env: Env, tmp_path: Path) -> None:
    fmt = "asterisk-queue-log"
    tried = check_calls(store, env, tmp_path, DEFAULT_EXAMPLES, fmt, GOOD_QUEUE, queue_line())
    assert tried > 0


@pytest.mark.slow
def test_malformed_input_at_scale(store: Store, env: Env, tmp_path: Path) -> None:
    """Ten times the default examples for each of the three."""
    for sub in "mcq":
        (tmp_path / sub).mkdir()
    mail = check_mail(store, env, tmp_path / "m", SLOW_EXAMPLES)
    cdr = check_calls(
        store, env, tmp_path / "c", SLOW_EXAMPLES, "asterisk-cdr", GOOD_CDR, cdr_row()
    )
    queue = check_calls(
        store, env, tmp_path / "q", SLOW_EXAMPLES, "asterisk-queue-log", GOOD_QUEUE, queue_line()
    )
    print(f"{env.backend}: {mail} mail, {cdr} CDR and {queue} queue_log examples")


# --- inputs the properties found, kept as regression tests ------------------------------


def _cdr(**changes: str) -> bytes:
    """The first good CDR row with some fields changed."""
    [fields] = csv.reader([GOOD_CDR[0].decode()])
    names = {"src": 1, "start": 9, "answer": 10, "end": 11, "duration": 12}
    for name, value in changes.items():
        fields[names[name]] = value
    out = io.StringIO()
    csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="").writerow(fields)
    return out.getvalue().encode()


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        # Found by hypothesis: OverflowError from the time zone arithmetic stopped the import.
        (_cdr(start="0001-01-01 00:00:00", end="0001-01-01 00:01:00"), "a value is out of range"),
        (_cdr(answer="0001-01-01 00:00:00"), "a value is out of range"),
        # Found by hypothesis: "Python int too large to convert to SQLite INTEGER".
        (_cdr(duration="99999999999999999999"), "duration 99999999999999999999 is out of range"),
        # Fits SQLite's 64 bits but not PostgreSQL's INTEGER: refused alike on both.
        (_cdr(duration="99999999999"), "duration 99999999999 is out of range"),
        # PostgreSQL refuses a VARCHAR(80) value of 81 characters (SQLite stored it).
        (_cdr(src="4" * 81), "src is longer than 80 characters"),
    ],
)
def test_cdr_rows_found_bad(store: Store, tmp_path: Path, row: bytes, reason: str) -> None:
    from evidence.ingest.phonelog import import_calls

    path = bulk.write_lines(tmp_path / "Master.csv", [*GOOD_CDR, row])
    report = import_calls(store, path, "asterisk-cdr")
    assert (report.imported, report.quarantined) == (len(GOOD_CDR), 1)
    [message] = report.messages
    assert message.startswith(f"{path}:line 3: {reason}"), message
    with store.session() as session:
        [(raw,)] = session.execute(
            text("SELECT data FROM blobs WHERE sha256 IN (SELECT raw_sha256 FROM quarantine)")
        ).all()
    assert bytes(raw) == row


def test_queue_log_event_name_too_long(store: Store, tmp_path: Path) -> None:
    """An event name of 41 letters fits the format but not PostgreSQL's VARCHAR(40)."""
    from evidence.ingest.phonelog import import_calls

    line = b"1790579705|1790579705.1|q|NONE|" + b"E" * 41 + b"|x"
    path = bulk.write_lines(tmp_path / "queue_log", [*GOOD_QUEUE, line])
    report = import_calls(store, path, "asterisk-queue-log")
    assert (report.imported, report.quarantined) == (len(GOOD_QUEUE), 1)
    assert "event is longer than 40 characters" in report.messages[0]
