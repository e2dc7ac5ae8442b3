"""What a file is, from its first bytes, so that an importer given the wrong file can say
what it looks like (and what to do with it) instead of storing it as something it is not.

Shared by the call-log import (a file not in the given format is refused) and the mail
import (a file named on the command line that is recognisably not mail is refused).
"""

from __future__ import annotations

import csv
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from evidence.domain import CallLogFormat

HEAD_BYTES = 64 * 1024  # read this much of a file to tell what it is

FORMAT_CDR = CallLogFormat.CDR
FORMAT_QUEUE_LOG = CallLogFormat.QUEUE_LOG
FORMAT_FREESWITCH = CallLogFormat.FREESWITCH
FORMAT_CSV = CallLogFormat.CSV

_QUEUE_LOG_LINE = re.compile(rb"^\d{9,11}(\.\d+)?\|[^|]*\|[^|]*\|[^|]*\|[A-Z][A-Z_]*(\||$)")
_STAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
_MAIL_HEADER = re.compile(rb"^(Return-Path|Received|Message-ID|From|Date|Subject):", re.I)
_HTML = re.compile(rb"^<(!doctype html|html)\b", re.I)

_RECORDINGS = "import recordings with `evidence import recordings {folder}`"
_CALLS = "import it with `evidence import calls {file} --format {format}`"
_CSV_CALLS = (
    "if it is a call log, import it with "
    "`evidence import calls {file} --format csv --mapping MAPPING.toml`"
)
_MAIL = "import it with `evidence import mail {file}`"
_UNPACK = "unpack it first"


@dataclass(frozen=True)
class Sniffed:
    """What a file looks like. ``what`` is empty when nothing was recognised."""

    format: str | None  # a call-log format (see ``evidence.ingest.phonelog.FORMATS``), or None
    what: str  # "a PDF document"
    hint: str = ""  # what to do with it instead; {file} and {folder} name the file's place

    def advice(self, path: Path | str) -> str:
        """``looks like a PDF document``, with what to do instead when there is something."""
        text = f"looks like {self.what}"
        return f"{text}: {self.hint_for(path)}" if self.hint else text

    def hint_for(self, path: Path | str) -> str:
        place = Path(path)
        return self.hint.format(
            file=shlex.quote(str(place)),
            folder=shlex.quote(str(place.parent)),
            format=self.format or "",
        )


# Leading bytes of formats that are never mail and never a call log.
_MAGIC: tuple[tuple[bytes, str, str], ...] = (
    (b"\x1f\x8b", "gzip-compressed data", f"{_UNPACK}, e.g. with gunzip"),
    (b"%PDF", "a PDF document", ""),
    (b"PK\x03\x04", "a ZIP archive or an Office document", f"{_UNPACK}, or export a sheet as CSV"),
    (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
        "an Outlook .msg file or an old Office document",
        "save a message as .eml, or export a sheet as CSV",
    ),
    (b"OggS", "an Ogg audio recording", _RECORDINGS),
    (b"ID3", "an MP3 audio recording", _RECORDINGS),
    (b"\x89PNG\r\n\x1a\n", "a PNG image", ""),
    (b"\xff\xd8\xff", "a JPEG image", ""),
    (b"GIF87a", "a GIF image", ""),
    (b"GIF89a", "a GIF image", ""),
)
# MPEG audio layer III frame headers (MPEG 1, 2 and 2.5, with and without CRC). Not every
# 0xFFEx: 0xFF 0xFE is the byte-order mark of UTF-16 text.
_MP3_FRAME = (b"\xff\xfb", b"\xff\xfa", b"\xff\xf3", b"\xff\xf2", b"\xff\xe3", b"\xff\xe2")
_GSM_FRAME = 33  # raw GSM 06.10: 33-byte frames, each starting with the nibble 0xD
_FORMATS: dict[str, str] = {
    FORMAT_CDR: "an Asterisk CDR (Master.csv)",
    FORMAT_QUEUE_LOG: "an Asterisk queue_log",
    FORMAT_FREESWITCH: "a FreeSWITCH CDR (mod_cdr_csv)",
    FORMAT_CSV: "a CSV export with a header row",
}


def by_content(head: bytes) -> Sniffed | None:
    """Formats told by their first bytes: documents, archives, audio, images, markup."""
    for magic, what, hint in _MAGIC:
        if head.startswith(magic):
            return Sniffed(None, what, hint)
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return Sniffed(None, "a WAV audio recording", _RECORDINGS)
    if head.startswith(b"RIFF"):
        return Sniffed(None, "a RIFF file (audio or video)", "")
    if head[:2] in _MP3_FRAME:
        return Sniffed(None, "an MP3 audio recording", _RECORDINGS)
    if _is_gsm(head):
        return Sniffed(None, "a GSM audio recording", _RECORDINGS)
    start = head.lstrip()
    if _HTML.match(start):
        return Sniffed(None, "an HTML page", "")
    if start.startswith(b"<"):
        return Sniffed(None, "XML", "no XML format is read (FreeSWITCH: use mod_cdr_csv)")
    if start[:1] in (b"{", b"["):
        return Sniffed(None, "JSON", "no JSON format is read (FreeSWITCH: use mod_cdr_csv)")
    return None


def _is_gsm(head: bytes) -> bool:
    frames = len(head) // _GSM_FRAME
    if frames < 10:
        return False
    if any(head[i * _GSM_FRAME] >> 4 != 0xD for i in range(min(frames, 100))):
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False  # text that happens to fit the pattern


def _classify(line: bytes, first: bool) -> str | None:
    if _QUEUE_LOG_LINE.match(line):
        return FORMAT_QUEUE_LOG
    text = line.decode("utf-8", "replace")
    for delimiter in (",", ";", "\t"):
        try:
            row = next(csv.reader([text], delimiter=delimiter))
        except (csv.Error, StopIteration):
            continue
        if delimiter == ",":
            if len(row) in (16, 18, 21) and _STAMP.fullmatch(row[9].strip()):
                return FORMAT_CDR
            if len(row) in (13, 15) and _STAMP.fullmatch(row[4].strip()):
                return FORMAT_FREESWITCH
        if first and len(row) >= 3:
            words = [c.strip() for c in row]
            if all(w and not any(ch.isdigit() for ch in w[:1]) for w in words) and not any(
                _STAMP.search(w) for w in words
            ):
                return FORMAT_CSV
    return None


def is_log_line(line: bytes) -> bool:
    """A line of a phone system's log (never the first line of a mail message)."""
    if b"|" not in line and line.count(b",") < 12:  # the usual case, cheaply
        return False
    return _classify(line, False) in (FORMAT_CDR, FORMAT_QUEUE_LOG, FORMAT_FREESWITCH)


def by_lines(head: bytes, *, table: bool = False) -> Sniffed | None:
    """A call-log format, by a vote of the first non-blank lines. ``table``: call a file a
    CSV export only when its first lines are a table (see :func:`_is_table`), not on the
    strength of a header-like first line alone."""
    lines = [line for line in head.splitlines() if line.strip()][:20]
    if len(head) == HEAD_BYTES and len(lines) > 1:
        lines = lines[:-1]  # possibly cut
    votes: dict[str, int] = {}
    for index, line in enumerate(lines):
        kind = _classify(line, index == 0)
        if kind is not None:
            votes[kind] = votes.get(kind, 0) + 1
    if not votes:
        return None
    best = max(votes, key=lambda k: (votes[k], k != FORMAT_CSV))
    if best == FORMAT_CSV and len(lines) > 1 and max(votes.values()) > 1:
        best = max((k for k in votes if k != FORMAT_CSV), key=lambda k: votes[k])
    if best == FORMAT_CSV and table and not _is_table(head, lines):
        return None
    return Sniffed(best, _FORMATS[best], _CSV_CALLS if best == FORMAT_CSV else _CALLS)


def _is_table(head: bytes, lines: list[bytes]) -> bool:
    """Text whose first (up to 5) lines split into the same number of fields, 3 or more,
    by one delimiter: a header row and at least one row under it."""
    if b"\x00" in head or len(lines) < 2:
        return False
    sample = [line.decode("utf-8", "replace") for line in lines[:5]]
    for delimiter in (",", ";", "\t"):
        try:
            widths = {len(row) for row in csv.reader(sample, delimiter=delimiter)}
        except csv.Error:
            continue
        if len(widths) == 1 and widths.pop() >= 3:
            return True
    return False


def sniff(head: bytes) -> Sniffed:
    """What the first bytes of a file (``HEAD_BYTES`` of them, or all) look like."""
    found = by_content(head)
    if found is not None:
        return found
    start = head.lstrip()
    if start.startswith(b"From "):
        return Sniffed(None, "an mbox mail file", _MAIL)
    if _MAIL_HEADER.match(start):
        return Sniffed(None, "an email message", _MAIL)
    return by_lines(head) or Sniffed(None, "")


def sniff_file(path: Path) -> Sniffed:
    with path.open("rb") as fh:
        return sniff(fh.read(HEAD_BYTES))
