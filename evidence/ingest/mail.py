"""Mail import: ``.eml`` files, directories of them, and mbox files (detected by content).

The raw message is stored first, exactly as found (for an mbox: the bytes
between its ``From `` separator lines). Indexed fields are derived from it and
never replace it. A message already stored, whatever file it came from, is
recognised by the SHA-256 of the raw bytes normalised for line ends and mbox
``From `` escaping, and stored once.
"""

from __future__ import annotations

import datetime as dt
import email
import email.header
import email.message
import email.utils
import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from evidence.config import Config
from evidence.ingest import ImportReport, quarantine, start_run
from evidence.store import ledger
from evidence.store.blobs import put_blob
from evidence.store.checkpoints import write_checkpoint
from evidence.store.db import Store
from evidence.store.models import (
    Direction,
    Email,
    EmailAddress,
    EmailAttachment,
    ImportRun,
    ReceivedSource,
)
from evidence.timeutil import UTC, utcnow

KIND = "mail"
CHUNK = 200  # messages per transaction

_HEADER_LINE = re.compile(rb"^[!-9;-~]+[ \t]*:")
_FROM_LINE = re.compile(rb"^From \S*.*\d{4}\s*$")
_ESCAPED_FROM = re.compile(rb"^>(>*From )", re.MULTILINE)
_BY_HOST = re.compile(r"\bby\s+([^\s;()]+)", re.IGNORECASE)


@dataclass
class RawMessage:
    source: str
    locator: str | None  # message number inside an mbox
    raw: bytes
    problem: str | None = None  # set when the input is known bad before parsing


# --- finding messages ---------------------------------------------------------


def iter_raw_messages(paths: list[Path]) -> Iterator[RawMessage]:
    for path in paths:
        if path.is_dir():
            for child in sorted(p for p in path.rglob("*") if p.is_file()):
                yield from _iter_file(child)
        else:
            yield from _iter_file(path)


def _iter_file(path: Path) -> Iterator[RawMessage]:
    with path.open("rb") as fh:
        head = fh.read(4096)
    start = head.lstrip(b"\r\n")
    if _FROM_LINE.match(start.split(b"\n", 1)[0].rstrip(b"\r")):
        yield from _iter_mbox(path)
        return
    data = path.read_bytes()
    if not _looks_like_message(data):
        yield RawMessage(
            str(path),
            None,
            data,
            problem="not an email or mbox: the file does not start with mail headers",
        )
        return
    yield RawMessage(str(path), None, data)


def _looks_like_message(data: bytes) -> bool:
    first = data.lstrip(b"\r\n").split(b"\n", 1)[0]
    return bool(_HEADER_LINE.match(first)) and b"\x00" not in data[:4096]


def _iter_mbox(path: Path) -> Iterator[RawMessage]:
    """Split an mbox line by line (never the whole file in memory)."""
    number = 0
    lines: list[bytes] = []
    previous_blank = True
    with path.open("rb") as fh:
        for line in fh:
            bare = line.rstrip(b"\r\n")
            if previous_blank and _FROM_LINE.match(bare):
                if lines:
                    number += 1
                    yield _mbox_message(path, number, lines, last=False)
                lines = []
                previous_blank = False
                continue
            lines.append(line)
            previous_blank = bare == b""
    if lines:
        number += 1
        yield _mbox_message(path, number, lines, last=True)


def _mbox_message(path: Path, number: int, lines: list[bytes], *, last: bool) -> RawMessage:
    raw = b"".join(lines)
    problem = None
    if last and not raw.endswith(b"\n"):
        problem = "truncated: the mbox ends in the middle of this message"
    elif last and b"\n\n" not in raw.replace(b"\r\n", b"\n"):
        problem = "truncated: the mbox ends inside this message's headers"
    # The blank line before the next "From " belongs to the mbox, not the message.
    if raw.endswith(b"\n\n"):
        raw = raw[:-1]
    elif raw.endswith(b"\r\n\r\n"):
        raw = raw[:-2]
    return RawMessage(str(path), f"message {number}", raw, problem)


def content_key(raw: bytes) -> str:
    """SHA-256 of the message normalised for CRLF/LF and mbox ``>From`` escaping."""
    text = raw.replace(b"\r\n", b"\n")
    text = _ESCAPED_FROM.sub(rb"\1", text)
    return hashlib.sha256(text.rstrip(b"\n")).hexdigest()


# --- reading headers ------------------------------------------------------------


def decode_header_value(value: object) -> str:
    """Decode RFC 2047 words and raw 8-bit UTF-8; never let CR/LF through."""
    if value is None:
        return ""
    if isinstance(value, email.header.Header):
        text = str(value)
    else:
        text = str(value)
    # compat32 hands raw 8-bit bytes over as surrogates: read them as UTF-8.
    try:
        text = text.encode("ascii", "surrogateescape").decode("utf-8")
    except UnicodeError:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    try:
        parts = email.header.decode_header(text)
        decoded = str(email.header.make_header(parts))
    except (LookupError, UnicodeError, ValueError, email.errors.HeaderParseError):
        decoded = text
    return re.sub(r"[\r\n\t]+", " ", decoded).strip()


def _addresses(values: list[str]) -> list[tuple[str, str]]:
    pairs = email.utils.getaddresses([decode_header_value(v) for v in values])
    return [(name, addr.strip().lower()) for name, addr in pairs if "@" in addr]


def parse_date(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:  # "-0000": the offset is unknown; the instant is UTC
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def our_received_time(received: list[str], config: Config) -> dt.datetime | None:
    """The time on the newest ``Received:`` added by our own server.

    With company mail domains configured, that is the topmost header whose ``by``
    host is ours; without them, the topmost header (the last hop: our server).
    """
    for value in received:
        text = decode_header_value(value)
        if config.mail_domains:
            match = _BY_HOST.search(text)
            if not match or not config.is_own_address("x@" + match.group(1)):
                continue
        when = parse_date(text.rpartition(";")[2]) if ";" in text else None
        if when is not None:
            return when.astimezone(UTC)
        if not config.mail_domains:
            return None
    return None


@dataclass
class ParsedMail:
    message_id: str | None
    in_reply_to: str | None
    references: str | None
    from_addr: str | None
    from_display: str | None
    to_display: str | None
    cc_display: str | None
    subject: str | None
    date_header: dt.datetime | None
    date_header_raw: str | None
    received: dt.datetime | None
    addresses: list[tuple[str, str]]  # (role, address)
    attachments: list[tuple[str, str | None, str, bytes]]  # part, filename, type, bytes
    defects: list[str] = field(default_factory=list)


def parse_message(raw: bytes, config: Config) -> ParsedMail:
    msg = email.message_from_bytes(raw)
    get = msg.get_all

    def one(name: str) -> str | None:
        values = get(name)
        if not values:
            return None
        return decode_header_value(values[0]) or None

    from_pairs = _addresses(get("From") or [])
    to_pairs = _addresses(get("To") or [])
    cc_pairs = _addresses(get("Cc") or [])
    addresses = (
        [("from", a) for _, a in from_pairs]
        + [("to", a) for _, a in to_pairs]
        + [("cc", a) for _, a in cc_pairs]
    )
    date_raw = one("Date")
    message_id = one("Message-ID")
    if message_id:
        message_id = message_id.strip()
    defects = sorted({type(d).__name__ for part in msg.walk() for d in part.defects})
    return ParsedMail(
        message_id=message_id,
        in_reply_to=one("In-Reply-To"),
        references=one("References"),
        from_addr=from_pairs[0][1] if from_pairs else None,
        from_display=one("From"),
        to_display=one("To"),
        cc_display=one("Cc"),
        subject=one("Subject"),
        date_header=parse_date(date_raw),
        date_header_raw=date_raw,
        received=our_received_time(get("Received") or [], config),
        addresses=addresses,
        attachments=list(iter_attachments(msg)),
        defects=defects,
    )


def part_filename(part: email.message.Message) -> str | None:
    try:
        name = part.get_filename()
    except (LookupError, UnicodeError, ValueError):
        name = None
    if name is None:
        return None
    return decode_header_value(name) or None


def is_attachment(part: email.message.Message) -> bool:
    if part.is_multipart():
        return False
    disposition = (part.get("Content-Disposition") or "").split(";")[0].strip().lower()
    if disposition == "attachment" or part_filename(part):
        return True
    return part.get_content_maintype() not in ("text", "multipart", "message")


def iter_attachments(
    msg: email.message.Message, prefix: str = ""
) -> Iterator[tuple[str, str | None, str, bytes]]:
    """Leaf parts that are files, at any depth, with their MIME part path."""
    stack: list[tuple[email.message.Message, str]] = [(msg, prefix)]
    while stack:
        part, path = stack.pop()
        payload = part.get_payload()
        if part.is_multipart() and isinstance(payload, list):
            for index, child in reversed(list(enumerate(payload, start=1))):
                stack.append((child, f"{path}.{index}" if path else str(index)))
            continue
        if not is_attachment(part):
            continue
        data = part.get_payload(decode=True)
        if not isinstance(data, bytes):
            data = b""
        yield (path or "1", part_filename(part), part.get_content_type(), data)


# --- storing --------------------------------------------------------------------


def import_mail(
    store: Store,
    paths: list[Path],
    *,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import every message under ``paths``; bad input is quarantined, never fatal."""
    config = store.config
    report = ImportReport()
    batch: list[RawMessage] = []
    source_label = ", ".join(str(p) for p in paths)
    with store.writing() as session:
        run_id = start_run(session, KIND, source_label).id
    for item in iter_raw_messages(paths):
        batch.append(item)
        if len(batch) >= CHUNK:
            _store_batch(store, batch, config, report, run_id)
            if progress:
                progress(len(batch))
            batch = []
    if batch:
        _store_batch(store, batch, config, report, run_id)
        if progress:
            progress(len(batch))
    with store.writing() as session:
        run = session.get(ImportRun, run_id)
        assert run is not None
        run.finished_at = utcnow()
        run.imported, run.duplicates, run.quarantined = (
            report.imported,
            report.duplicates,
            report.quarantined,
        )
        write_checkpoint(session, config, "import mail")
    return report


def _store_batch(
    store: Store, batch: list[RawMessage], config: Config, report: ImportReport, run_id: int
) -> None:
    with store.writing() as session:
        run = session.get(ImportRun, run_id)
        seen: set[str] = set()
        for item in batch:
            _store_one(session, item, config, report, run, seen)


def _store_one(
    session: Session,
    item: RawMessage,
    config: Config,
    report: ImportReport,
    run: ImportRun | None,
    seen: set[str],
) -> None:
    def bad(reason: str) -> None:
        quarantine(
            session,
            report,
            kind=KIND,
            source=item.source,
            locator=item.locator,
            reason=reason,
            raw=item.raw,
            run=run,
        )

    if item.problem:
        bad(item.problem)
        return
    if not item.raw.strip():
        bad("empty message")
        return
    key = content_key(item.raw)
    if key in seen or session.scalar(select(Email.id).where(Email.content_key == key)):
        report.duplicates += 1
        return
    try:
        parsed = parse_message(item.raw, config)
    except Exception as exc:  # hostile input: anything the parser raises is a reason
        bad(f"cannot parse the message: {type(exc).__name__}: {exc}")
        return
    seen.add(key)
    now = utcnow()
    direction = (
        Direction.OUTBOUND
        if parsed.from_addr and config.is_own_address(parsed.from_addr)
        else Direction.INBOUND
    )
    if parsed.received is not None:
        received_at, received_source = parsed.received, ReceivedSource.RECEIVED_HEADER
    elif direction is Direction.OUTBOUND and parsed.date_header is not None:
        received_at, received_source = parsed.date_header, ReceivedSource.OWN_DATE
    else:
        received_at, received_source = now, ReceivedSource.IMPORT_TIME
    reused = False
    if parsed.message_id:
        reused = (
            session.scalar(
                select(Email.id).where(
                    Email.message_id == parsed.message_id, Email.content_key != key
                )
            )
            is not None
        )
    offset = parsed.date_header.utcoffset() if parsed.date_header else None
    record = Email(
        raw_sha256=put_blob(session, item.raw),
        content_key=key,
        message_id=parsed.message_id,
        message_id_reused=reused,
        in_reply_to=parsed.in_reply_to,
        references=parsed.references,
        from_addr=parsed.from_addr,
        from_display=parsed.from_display,
        to_display=parsed.to_display,
        cc_display=parsed.cc_display,
        subject=parsed.subject,
        date_header=parsed.date_header,
        date_header_offset=int(offset.total_seconds() // 60) if offset is not None else None,
        date_header_raw=parsed.date_header_raw,
        received_at=received_at,
        received_source=received_source,
        direction=direction,
        parse_defects=",".join(parsed.defects) or None,
        imported_at=now,
        import_run_id=run.id if run else None,
        source=item.source + (f" ({item.locator})" if item.locator else ""),
    )
    session.add(record)
    session.flush()
    children: list[EmailAddress | EmailAttachment] = []
    for role, address in parsed.addresses:
        children.append(EmailAddress(email_id=record.id, role=role, address=address))
    for part, filename, content_type, data in parsed.attachments:
        children.append(
            EmailAttachment(
                email_id=record.id,
                part=part,
                filename=filename,
                content_type=content_type,
                size=len(data),
                sha256=put_blob(session, data),
            )
        )
    session.add_all(children)
    session.flush()
    ledger.append(session, record, children)
    report.imported += 1
