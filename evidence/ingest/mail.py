"""Mail import: ``.eml`` files, directories of them, mbox files and Maildirs (detected).

What is stored for each message is the message as the mail system delivered it:

- an ``.eml`` file or a Maildir file: its bytes, unchanged;
- an IMAP message: the bytes of ``BODY[]``, unchanged;
- a message in an mbox: the bytes between its ``From `` separator line and the
  blank line before the next one, with the mbox's own quoting undone: one
  ``>`` is removed from every line that starts with ``>``s and ``From `` (the
  mboxrd rule). The separator line and the quoting belong to the mbox file,
  not to the message. For an mboxrd file this gives the message back exactly;
  an mboxo file cannot say whether a ``>From `` line was written so by the
  sender or escaped by the mbox, and such a line is shown without its ``>``.

A message already stored, whatever source it came from, is recognised by its
content key (SHA-256 of the message with LF line ends and every ``>``-quoting
of ``From `` lines removed) and stored once. Bad input, or input past the limits
in ``[mail.limits]``, is quarantined with its bytes and the reason.

Speed: the bytes are hashed and looked up first (a duplicate costs no parsing),
only the indexed headers and the MIME structure are read at import (bodies are
decoded when a dossier is made), and each chunk of messages is written with
bulk inserts and chained into the ledger in one transaction.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import multiprocessing
import os
import re
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from evidence.config import Config
from evidence.errors import InvalidInput
from evidence.ingest import ImportReport, quarantine, start_run
from evidence.ingest.mime import (
    BOM,
    Attachment,
    Headers,
    LimitExceeded,
    MailLimits,
    addresses,
    attachments,
    decode_header,
    header_text,
    parse,
    parse_headers,
    top_charset,
)
from evidence.ingest.sniff import HEAD_BYTES, Sniffed, by_content, by_lines, is_log_line
from evidence.store import bulk, ledger
from evidence.store.blobs import put_blobs, sha256_hex
from evidence.store.checkpoints import write_checkpoint
from evidence.store.db import Store
from evidence.store.models import (
    Direction,
    Email,
    EmailAddress,
    EmailAttachment,
    EmailReceived,
    ImportRun,
)
from evidence.timeline.mailfacts import Hop, MailRules, choose, unconfigured_note
from evidence.timeutil import UTC, utcnow
from evidence.workers import die_with_parent

KIND = "mail"
CHUNK = 500  # messages per transaction
QUARANTINE_HEAD = 64 * 1024  # bytes kept of a message too large to import
READ_BLOCK = 1024 * 1024

_HEADER_START = re.compile(rb"[!-9;-~]+[ \t]*:")
_POSTMARK = re.compile(rb"From (\S+)(?:[ \t]+([^\r\n]*))?\r?\n?\Z")
_POSTMARK_TIME = re.compile(rb"\d:\d\d|\b(?:19|20)\d\d\b")
# Written with a leading "\n" (not "^" and MULTILINE): a literal prefix is far faster to find.
_QUOTED_FROM = re.compile(rb"\n>(?=>*From )")
_ANY_QUOTED_FROM = re.compile(rb"\n>+(?=From )")
_BY_HOST = re.compile(r"\bby\s+([^\s;()]+)", re.IGNORECASE)
# Files a mail server keeps beside the messages in a Maildir: not mail.
_MAILDIR_META = re.compile(
    r"^(dovecot[.-].*|subscriptions|maildirfolder|maildirsize|courier.*|\.uidvalidity|"
    r"\.mh_sequences|\.DS_Store)$"
)


@dataclass
class RawMessage:
    source: str
    locator: str | None  # message number in an mbox, UID on IMAP
    raw: bytes
    problem: str | None = None  # set when the input is known bad before parsing
    consumed: int = 0  # bytes of the source this covers (for progress)
    checkpoint: tuple[str, int, int] | None = None  # IMAP: folder, UIDVALIDITY, UID
    quoted: bool | None = None  # holds a ">From " line (None: not looked at yet)
    captured_at: dt.datetime | None = None  # when our own SMTP receiver took it
    quarantined: bool = False  # set when written: True if it went to quarantine
    # Microsoft Graph: folder state id, message id, and on a page's last message the link
    # the next run starts from (and whether it is the delta link).
    page: tuple[int, str, str | None, bool] | None = None


def mail_limits(config: Config) -> MailLimits:
    """The limits from ``[mail.limits]`` in evidence.toml, or the defaults."""
    return config.mail.limits


# --- finding messages ---------------------------------------------------------


def iter_raw_messages(
    paths: Iterable[Path], limits: MailLimits | None = None
) -> Iterator[RawMessage]:
    limits = limits or MailLimits()
    for path in paths:
        if path.is_dir():
            yield from _iter_dir(path, limits)
        else:
            yield from _iter_file(path, limits)


def is_maildir(path: Path) -> bool:
    return (path / "cur").is_dir() and (path / "new").is_dir()


def _iter_dir(top: Path, limits: MailLimits) -> Iterator[RawMessage]:
    """Every file below ``top``; a Maildir's messages come from its cur/ and new/ only."""
    pending = [top]
    while pending:
        folder = pending.pop()
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
        maildir = is_maildir(folder)
        subdirs = []
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                if maildir and entry.name in ("cur", "new"):
                    yield from _iter_maildir_folder(Path(entry.path), limits)
                elif maildir and entry.name == "tmp":
                    continue  # messages still being delivered
                else:
                    subdirs.append(Path(entry.path))
            elif entry.is_file():
                if maildir and _MAILDIR_META.match(entry.name):
                    continue
                yield from _iter_file(Path(entry.path), limits)
        pending.extend(reversed(subdirs))


def _iter_maildir_folder(folder: Path, limits: MailLimits) -> Iterator[RawMessage]:
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.is_file() and not entry.name.startswith("."):
            yield from _iter_file(entry.path, limits, entry.stat().st_size)


def _too_large(size: int, limits: MailLimits) -> str:
    return (
        f"message of {size:,} bytes is over the limit of {limits.max_message_bytes:,} "
        f"(max_message_bytes); its first {QUARANTINE_HEAD // 1024} KiB are kept"
    )


def _mail_kind(head: bytes) -> str | None:
    """From a file's first bytes: an mbox, a message (it starts with mail headers), or None."""
    start = head[3:] if head.startswith(BOM) else head
    lines = start.lstrip(b"\r\n").split(b"\n", 2)
    first = lines[0] + b"\n"
    second = lines[1] if len(lines) > 1 else b""
    if _is_postmark(first) and _HEADER_START.match(second):
        return "mbox"
    if _HEADER_START.match(first) and b"\x00" not in head[:4096] and not is_log_line(first):
        return "message"
    return None


def what_else(head: bytes) -> Sniffed | None:
    """What a file is when it is recognisably not mail (a call log, a PDF, a recording, an
    image, an archive...), from its first ``sniff.HEAD_BYTES``; None when it may be mail."""
    looks = by_content(head)
    if looks is None and _mail_kind(head) is None:
        looks = by_lines(head, table=True)
    return looks


def refuse_what_is_not_mail(paths: Iterable[Path]) -> None:
    """Refuse, before anything is stored, files named for import that are recognisably not
    mail, naming what each looks like. Quarantined, such a file would stand for good as a
    mailbox in every dossier's completeness. Files met inside a directory are not judged so:
    a folder may hold anything, and what in it is not mail is quarantined and listed."""
    wanted = list(paths)
    refused = []
    for path in wanted:
        if path.is_file():
            with path.open("rb") as fh:
                looks = what_else(fh.read(HEAD_BYTES))
            if looks is not None:
                refused.append(f"{path} {looks.advice(path)}")
    if refused:
        nothing = "; nothing was imported" if len(wanted) > 1 else ""
        raise InvalidInput("; ".join(refused) + nothing)


def _iter_file(
    path: str | Path, limits: MailLimits, size: int | None = None
) -> Iterator[RawMessage]:
    """One file, opened once: an mbox (streamed), a message, or not mail."""
    name = os.fspath(path)
    size = os.stat(name).st_size if size is None else size
    with open(name, "rb") as fh:
        head = fh.read(8192)
        kind = _mail_kind(head)
        if kind != "mbox":
            if size > limits.max_message_bytes:
                data = head + fh.read(QUARANTINE_HEAD - len(head))
            else:
                data = head + fh.read() if len(head) == 8192 else head
    if kind == "mbox":
        yield from iter_mbox(Path(name), limits)
    elif kind is None:
        looks = what_else(data[:HEAD_BYTES])
        what = looks.advice(name) if looks else "does not start with mail headers"
        yield RawMessage(name, None, data, f"not an email or mbox: the file {what}", size)
    elif size > limits.max_message_bytes:
        yield RawMessage(name, None, data, _too_large(size, limits), size)
    else:
        yield RawMessage(name, None, data, None, len(data))


def _is_postmark(line: bytes | bytearray) -> bool:
    """An mbox ``From `` separator: ``From sender [date]``, not ``From Russia with love``."""
    match = _POSTMARK.match(line)
    if not match or match.group(1).endswith(b":"):
        return False
    rest = (match.group(2) or b"").strip()
    return not rest or bool(_POSTMARK_TIME.search(rest))


def iter_mbox(path: Path, limits: MailLimits | None = None) -> Iterator[RawMessage]:
    """Split an mbox in blocks, never holding more than one message in memory.

    A separator is a ``From `` postmark line (``From sender``, ``From -``, with
    or without a date) followed by a header line. A blank line before it is
    usual but not required (old writers that relied on Content-Length left it
    out); an unquoted ``From Russia with love`` in a body is not a postmark.
    """
    limits = limits or MailLimits()
    with path.open("rb") as fh:
        number = 0
        for data, problem, consumed, quoted in _mbox_segments(fh, limits):
            number += 1
            yield RawMessage(str(path), f"message {number}", data, problem, consumed, quoted=quoted)


def _mbox_segments(
    fh: IO[bytes], limits: MailLimits
) -> Iterator[tuple[bytes, str | None, int, bool | None]]:
    buf = bytearray(fh.read(READ_BLOCK))
    eof = len(buf) < READ_BLOCK
    start = 3 if buf.startswith(BOM) else 0
    while start < len(buf) and buf[start] in (10, 13):
        start += 1
    first_end = buf.find(b"\n", start)
    cur = first_end + 1 if first_end >= 0 else len(buf)  # past the first From line
    scan = cur - 1
    dropped = 0  # bytes of a message too large to import that were let go
    head = b""
    while True:
        i = buf.find(b"\nFrom ", max(scan, cur - 1))
        waiting = -1  # a candidate whose two lines are not all read yet
        if i >= 0:
            j = buf.find(b"\n", i + 1)
            k = buf.find(b"\n", j + 1) if j >= 0 else -1
            if (j < 0 or k < 0) and not eof:
                waiting = i
            else:
                j = j if j >= 0 else len(buf)
                k = k if k >= 0 else len(buf)
                if _is_postmark(buf[i + 1 : j + 1]) and _HEADER_START.match(buf, j + 1, k):
                    yield _finish_segment(buf, cur, i + 1, dropped, head, limits, last=False)
                    cur, scan, dropped, head = j + 1, j, 0, b""
                    continue
                scan = i + 1
                continue
        if eof:
            break
        # Before reading on, let go of what is done, and of the middle of a
        # message too large to import (its head is kept for the quarantine).
        keep_from = waiting if waiting >= 0 else max(cur, len(buf) - 8)
        if len(buf) - cur > limits.max_message_bytes:
            if not head:
                head = bytes(buf[cur : cur + QUARANTINE_HEAD])
            let_go = max(keep_from - 2, cur) - cur  # keep the line end before a candidate
            dropped += let_go
            cur += let_go
        del buf[:cur]
        keep_from -= cur
        cur = 0
        scan = keep_from
        block = fh.read(READ_BLOCK)
        eof = len(block) < READ_BLOCK
        buf += block
    if len(buf) > cur or dropped:
        yield _finish_segment(buf, cur, len(buf), dropped, head, limits, last=True)


def _finish_segment(
    buf: bytearray,
    start: int,
    end: int,
    dropped: int,
    head: bytes,
    limits: MailLimits,
    *,
    last: bool,
) -> tuple[bytes, str | None, int, bool | None]:
    size = end - start + dropped
    if dropped:
        return _unquote_from(head), _too_large(size, limits), size, None
    problem = None
    if last:
        tail = bytes(buf[start:end])
        if not tail.endswith(b"\n"):
            problem = "truncated: the mbox ends in the middle of this message"
        elif b"\n\n" not in tail.replace(b"\r\n", b"\n"):
            problem = "truncated: the mbox ends inside this message's headers"
    # The blank line before the next "From " belongs to the mbox, not the message.
    if buf.endswith(b"\r\n\r\n", start, end):
        end -= 2
    elif buf.endswith(b"\n\n", start, end):
        end -= 1
    # One copy out of the buffer (a bytearray slice would be a second one).
    with memoryview(buf) as view:
        raw = bytes(view[start:end])
    quoted = b">From " in raw  # looked at once, for _unquote_from and content_key
    return (_unquote_from(raw) if quoted else raw), problem, size, quoted


def _unquote_from(raw: bytes) -> bytes:
    """Undo the mbox's quoting of ``From `` lines (mboxrd: one ``>`` less)."""
    if b">From " not in raw:
        return raw
    return _QUOTED_FROM.sub(b"\n", b"\n" + raw)[1:]


def content_key(raw: bytes, quoted: bool | None = None) -> str:
    """SHA-256 of the message with LF line ends and no ``>``-quoting of ``From `` lines.

    ``quoted=False``: the caller knows ``raw`` (or what it was unquoted from) holds no
    ``>From `` line, which saves a pass over the message.
    """
    text = raw.replace(b"\r\n", b"\n") if b"\r" in raw else raw
    if quoted is not False and b">From " in text:
        text = _ANY_QUOTED_FROM.sub(b"\n", b"\n" + text)[1:]
    end = len(text)
    while end and text[end - 1] == 10:  # rstrip(b"\n") without copying the message
        end -= 1
    if end == len(text):
        return hashlib.sha256(text).hexdigest()
    with memoryview(text) as view:
        return hashlib.sha256(view[:end]).hexdigest()


# --- reading the indexed fields --------------------------------------------------


def parse_date(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:  # "-0000": the offset is unknown; the instant is UTC
        parsed = parsed.replace(tzinfo=UTC)
    try:
        parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        return None
    return parsed


def received_hops(headers: Headers, fallback_charset: str | None) -> list[Hop]:
    """Each ``Received:`` line, topmost first: its ``by`` host (lower-cased) and its
    date (after the last ``;``), None where either is missing or does not parse."""
    hops: list[Hop] = []
    for value in headers.get_all("received"):
        line = decode_header(value, fallback_charset)
        match = _BY_HOST.search(line)
        host = match.group(1).lower().rstrip(".")[:255] if match else None
        when = parse_date(line.rpartition(";")[2]) if ";" in line else None
        hops.append((host or None, when.astimezone(UTC) if when is not None else None))
    return hops


def hops_of(raw: bytes) -> list[Hop]:
    """The ``Received:`` lines of a stored message, read as its import reads them."""
    headers, _, _ = parse_headers(raw, 0, len(raw), MailLimits())
    return received_hops(headers, top_charset(headers))


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
    received: list[Hop]  # the Received: lines, topmost first
    addresses: list[tuple[str, str]]  # (role, address)
    attachments: list[tuple[Attachment, str]]  # with its SHA-256
    defects: list[str] = field(default_factory=list)
    raw_sha256: str = ""  # hashed where it is parsed (a worker), not in the writer


def parse_message(raw: bytes, config: Config, limits: MailLimits | None = None) -> ParsedMail:
    """The fields indexed at import and the attachments; ``LimitExceeded`` past a limit."""
    parsed = parse(raw, limits)
    headers = parsed.root.headers
    fallback = parsed.fallback_charset

    def one(name: str) -> str | None:
        return header_text(headers.get(name), fallback)

    from_pairs = addresses(headers.get_all("from"), fallback)
    to_pairs = addresses(headers.get_all("to"), fallback)
    cc_pairs = addresses(headers.get_all("cc"), fallback)
    bcc_pairs = addresses(headers.get_all("bcc"), fallback)  # a sent copy may keep its Bcc
    found = (
        [("from", a) for _, a in from_pairs]
        + [("to", a) for _, a in to_pairs]
        + [("cc", a) for _, a in cc_pairs]
        + [("bcc", a) for _, a in bcc_pairs]
    )
    date_raw = one("date")
    message_id = one("message-id")
    defects = list(parsed.defects)
    if message_id and len(message_id) > 998:
        defects.append("message-id-too-long")
        message_id = None
    return ParsedMail(
        message_id=message_id,
        in_reply_to=one("in-reply-to"),
        references=one("references"),
        from_addr=from_pairs[0][1] if from_pairs else None,
        from_display=one("from"),
        to_display=one("to"),
        cc_display=one("cc"),
        subject=one("subject"),
        date_header=parse_date(date_raw),
        date_header_raw=date_raw,
        received=received_hops(headers, fallback),
        addresses=_unique(found),
        attachments=[(att, att.sha256) for att in attachments(parsed)],
        defects=defects,
        raw_sha256=sha256_hex(raw),
    )


def _unique(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    seen: set[tuple[str, str]] = set()
    out = []
    for pair in pairs:
        if pair not in seen:
            seen.add(pair)
            out.append(pair)
    return out


# --- a time limit per message ------------------------------------------------------


class MessageTimeout(LimitExceeded):
    pass


class _Deadline:
    """Interrupts reading one message after ``seconds`` (SIGALRM; main thread only).

    Elsewhere (a worker thread) the structural limits still bound the work.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.active = (
            seconds > 0
            and hasattr(signal, "setitimer")
            and threading.current_thread() is threading.main_thread()
        )

    @contextmanager
    def installed(self) -> Iterator[_Deadline]:
        if not self.active:
            yield self
            return

        def on_alarm(_signum: int, _frame: Any) -> None:
            raise MessageTimeout(
                f"reading the message took longer than the limit of {self.seconds:g} s "
                "(max_seconds)"
            )

        previous = signal.signal(signal.SIGALRM, on_alarm)
        try:
            yield self
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)

    @contextmanager
    def armed(self) -> Iterator[None]:
        if not self.active:
            yield
            return
        signal.setitimer(signal.ITIMER_REAL, self.seconds)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)


# --- storing --------------------------------------------------------------------


Progress = Callable[[int, ImportReport], None]


def import_mail(
    store: Store,
    paths: list[Path],
    *,
    progress: Progress | None = None,
    limits: MailLimits | None = None,
    workers: int | None = None,
) -> ImportReport:
    """Import every message under ``paths``; bad input is quarantined, never fatal.

    A file named in ``paths`` that is recognisably not mail is refused first
    (``InvalidInput``, nothing stored): see :func:`refuse_what_is_not_mail`.

    ``progress(bytes_read, report)`` is called after each chunk.
    """
    refuse_what_is_not_mail(paths)
    limits = limits or mail_limits(store.config)
    importer = MailImporter(
        store, ", ".join(str(p) for p in paths), limits, progress, workers=workers
    )
    return importer.run(iter_raw_messages(paths, limits))


def _notes(config: Config) -> list[str]:
    note = unconfigured_note(MailRules.of(config))
    return [note] if note else []


class MailImporter:
    """Stores a stream of raw messages chunk by chunk (one transaction per chunk).

    Each chunk is hashed and looked up first; only new messages are parsed.
    With ``workers`` > 1 the parsing of big chunks runs in that many worker
    processes while this one writes the previous chunk, so both cores work.
    """

    def __init__(
        self,
        store: Store,
        source_label: str,
        limits: MailLimits,
        progress: Progress | None = None,
        *,
        workers: int | None = None,
        on_chunk: Callable[[Session, list[RawMessage]], None] | None = None,
    ) -> None:
        self.store = store
        self.config = store.config
        self.limits = limits
        self.progress = progress
        self.on_chunk = on_chunk
        self.report = ImportReport(notes=_notes(self.config))
        self.source_label = source_label
        self.run_id: int | None = None
        self.workers = workers if workers is not None else min(os.cpu_count() or 1, 4)
        self._pool: Any = None

    def run(self, messages: Iterable[RawMessage]) -> ImportReport:
        self.start()
        deadline = _Deadline(self.limits.max_seconds)
        pending: list[tuple[list[RawMessage], _Prepared]] = []
        try:
            with deadline.installed():
                for chunk in _chunks(messages):
                    pending.append((chunk, self._prepare(chunk, deadline)))
                    if len(pending) > 1:  # write one chunk while the next is parsed
                        self._write(*pending.pop(0), deadline)
                for entry in pending:
                    self._write(*entry, deadline)
        finally:
            if self._pool is not None:
                # After a failure (a full disk, ^C) a chunk may still be with the
                # workers. Pool.terminate() while its task thread is still sending
                # can hang for good (seen under load); once the chunk is back, it
                # cannot. A worker that does not answer in time is terminated anyway.
                for _, prepared in pending:
                    if prepared.pending is not None:
                        prepared.pending.wait(TERMINATE_WAIT)
                self._pool.terminate()
                self._pool.join()
        self.finish()
        return self.report

    def start(self) -> None:
        """Record the run (``run`` does this; a long-running receiver calls it once)."""
        with self.store.writing() as session:
            self.run_id = start_run(session, KIND, self.source_label).id

    def store_now(self, chunk: list[RawMessage]) -> None:
        """Store ``chunk`` in one transaction, parsed in this process, and return once it
        is committed (the SMTP receiver answers 250 only then). Raises what the database
        raises; then nothing of the chunk is stored. Messages already stored are found by
        the look-up inside the transaction (a few, small chunks: parsing them is cheaper
        than another round trip to the database)."""
        deadline = _Deadline(self.limits.max_seconds)
        self._write(chunk, self._prepare(chunk, deadline, in_bulk=False), deadline)

    def finish(self, reason: str = "import mail") -> None:
        """Close the run with its counts and sign a checkpoint over what it stored."""
        with self.store.writing() as session:
            run = session.get(ImportRun, self.run_id)
            assert run is not None
            run.finished_at = utcnow()
            run.imported, run.duplicates, run.quarantined = (
                self.report.imported,
                self.report.duplicates,
                self.report.quarantined,
            )
            write_checkpoint(session, self.config, reason)

    def _prepare(
        self, chunk: list[RawMessage], deadline: _Deadline, *, in_bulk: bool = True
    ) -> _Prepared:
        prepared = _Prepared()
        keyed: list[tuple[RawMessage, str]] = []
        for item in chunk:
            if item.problem:
                prepared.bad.append((item, item.problem))
            elif not item.raw or item.raw.isspace():  # (strip() would copy every message)
                prepared.bad.append((item, "empty message"))
            else:
                keyed.append((item, content_key(item.raw, item.quoted)))
        known: set[str] = set()
        if in_bulk:  # (store_now: the write's own look-up finds them, one round trip less)
            with self.store.session() as session:
                known = _known_keys(session, [key for _, key in keyed])
        seen: set[str] = set()
        for item, key in keyed:
            if key in known or key in seen:
                prepared.duplicates += 1
            else:
                seen.add(key)
                prepared.new.append((item, key))
        raws = [item.raw for item, _ in prepared.new]
        if in_bulk and self.workers > 1 and len(raws) >= PARALLEL_FROM:
            if self._pool is None:
                self._pool = _start_pool(self.workers, self.config, self.limits)
            prepared.pending = self._pool.map_async(
                _parse_in_worker, raws, chunksize=max(1, len(raws) // (2 * self.workers))
            )
        else:
            with _worker_context(self.config, self.limits, deadline):
                prepared.results = [_parse_in_worker(raw) for raw in raws]
        return prepared

    def _write(self, chunk: list[RawMessage], prepared: _Prepared, deadline: _Deadline) -> None:
        report = self.report
        results = prepared.results
        if prepared.pending is not None:
            # Every message has its time limit; a worker that died never answers.
            wait = self.limits.max_seconds * len(prepared.new) / self.workers + 60
            try:
                results = prepared.pending.get(timeout=wait)
            except multiprocessing.TimeoutError:
                with _worker_context(self.config, self.limits, deadline):
                    results = [_parse_in_worker(item.raw) for item, _ in prepared.new]
        bad = list(prepared.bad)
        fresh: list[tuple[RawMessage, str, ParsedMail]] = []
        for (item, key), result in zip(prepared.new, results, strict=True):
            if isinstance(result, str):
                bad.append((item, result))
            else:
                fresh.append((item, key, result))
        report.duplicates += prepared.duplicates
        with self.store.writing() as session:
            # Another importer may have stored some of these since the look-up.
            late = _known_keys(session, [key for _, key, _ in fresh])
            if late:
                report.duplicates += sum(1 for _, key, _ in fresh if key in late)
                fresh = [entry for entry in fresh if entry[1] not in late]
            run = session.get(ImportRun, self.run_id)
            for item, reason in bad:
                item.quarantined = True
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
            if fresh:
                _insert_emails(session, fresh, self.config, self.run_id)
                report.imported += len(fresh)
            if self.on_chunk is not None:
                self.on_chunk(session, chunk)
        if self.progress is not None:
            self.progress(sum(item.consumed for item in chunk), report)


PARALLEL_FROM = 100  # new messages in a chunk worth sending to worker processes
TERMINATE_WAIT = 30.0  # seconds to let a chunk in flight come back after a failure


@dataclass
class _Prepared:
    bad: list[tuple[RawMessage, str]] = field(default_factory=list)
    new: list[tuple[RawMessage, str]] = field(default_factory=list)
    duplicates: int = 0
    results: list[ParsedMail | str] = field(default_factory=list)
    pending: Any = None  # multiprocessing AsyncResult


def _chunks(messages: Iterable[RawMessage]) -> Iterator[list[RawMessage]]:
    chunk: list[RawMessage] = []
    size = 0
    for item in messages:
        chunk.append(item)
        size += len(item.raw)
        if len(chunk) >= CHUNK or size >= 64 * 1024 * 1024:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


# What a parsing process needs; set once per process (a worker's initializer).
_WORKER: dict[str, Any] = {}


@contextmanager
def _worker_context(config: Config, limits: MailLimits, deadline: _Deadline) -> Iterator[None]:
    previous = dict(_WORKER)
    _WORKER.update(config=config, limits=limits, deadline=deadline)
    try:
        yield
    finally:
        _WORKER.clear()
        _WORKER.update(previous)


def _init_worker(config: Config, limits: MailLimits) -> None:
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles ^C
    deadline = _Deadline(limits.max_seconds)
    _WORKER.update(config=config, limits=limits, deadline=deadline)
    if deadline.active:
        deadline.installed().__enter__()  # for the life of this worker process


def _parse_in_worker(raw: bytes) -> ParsedMail | str:
    """Parse one message; a message that cannot be read gives the quarantine reason."""
    deadline: _Deadline = _WORKER["deadline"]
    try:
        with deadline.armed():
            return parse_message(raw, _WORKER["config"], _WORKER["limits"])
    except LimitExceeded as exc:
        return str(exc)
    except RecursionError:
        return "cannot parse the message: nested too deeply"
    except Exception as exc:  # hostile input: anything raised is a reason
        return f"cannot parse the message: {type(exc).__name__}: {exc}"


def _start_pool(workers: int, config: Config, limits: MailLimits) -> Any:
    # "fork" starts at once; the workers never touch the database connections they
    # inherit. Where forking is unsafe (other threads) or missing, "spawn".
    method = "fork" if threading.active_count() == 1 and os.name == "posix" else "spawn"
    context = multiprocessing.get_context(method)
    return context.Pool(workers, initializer=_init_worker, initargs=(config, limits))


def _known_keys(session: Session, keys: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(keys), 900):
        batch = keys[start : start + 900]
        found.update(session.scalars(select(Email.content_key).where(Email.content_key.in_(batch))))
    return found


def _insert_emails(
    session: Session,
    fresh: list[tuple[RawMessage, str, ParsedMail]],
    config: Config,
    run_id: int | None,
) -> None:
    """Bulk-insert a chunk of new messages and chain them, as ``ledger.append`` would."""
    now = utcnow()
    blobs: dict[str, bytes] = {}
    ids_in_store = _message_ids_in_store(session, fresh)
    rules = MailRules.of(config)
    rows: list[dict[str, Any]] = []
    for item, key, parsed in fresh:
        blobs[parsed.raw_sha256] = item.raw
        rows.append(_email_row(item, key, parsed, rules, now, run_id, ids_in_store))
    attachment_rows = [_attachment_rows(parsed, blobs) for _, _, parsed in fresh]
    put_blobs(session, blobs)
    ids = bulk.reserve_ids(session, "emails", len(rows))
    for row, email_id in zip(rows, ids, strict=True):
        row["id"] = email_id
    bulk.insert_rows(session, Email, rows)
    children = _email_children(ids, fresh, attachment_rows)
    for model, child_rows in children:
        _insert_children(session, model, child_rows)
    _chain_emails(session, rows, children)


def _message_ids_in_store(
    session: Session, fresh: list[tuple[RawMessage, str, ParsedMail]]
) -> set[str]:
    """The chunk's Message-IDs that the store already holds (queried 900 at a time)."""
    ids_in_store: set[str] = set()
    message_ids = [p.message_id for _, _, p in fresh if p.message_id]
    for start in range(0, len(message_ids), 900):
        ids_in_store.update(
            session.scalars(
                select(Email.message_id).where(
                    Email.message_id.in_(message_ids[start : start + 900])
                )
            )
        )
    return ids_in_store


def _email_row(
    item: RawMessage,
    key: str,
    parsed: ParsedMail,
    rules: MailRules,
    now: dt.datetime,
    run_id: int | None,
    ids_in_store: set[str],
) -> dict[str, Any]:
    """The ``emails`` row of one message; adds its Message-ID to ``ids_in_store``."""
    # Both as derived now, kept as a record of the import; readers derive them
    # again under the configuration in force (evidence.timeline.mailfacts).
    direction = Direction.OUTBOUND if rules.is_own(parsed.from_addr) else Direction.INBOUND
    placed = choose(
        parsed.received,
        parsed.date_header,
        parsed.from_addr,
        now,
        rules,
        captured=item.captured_at,
    )
    received_at, received_source = placed.at, placed.source
    reused = bool(parsed.message_id and parsed.message_id in ids_in_store)
    if parsed.message_id:
        ids_in_store.add(parsed.message_id)
    offset = parsed.date_header.utcoffset() if parsed.date_header else None
    return {
        "raw_sha256": parsed.raw_sha256,
        "content_key": key,
        "message_id": parsed.message_id,
        "message_id_reused": reused,
        "in_reply_to": parsed.in_reply_to,
        "references": parsed.references,
        "from_addr": parsed.from_addr,
        "from_display": parsed.from_display,
        "to_display": parsed.to_display,
        "cc_display": parsed.cc_display,
        "subject": parsed.subject,
        "date_header": parsed.date_header,
        "date_header_offset": (int(offset.total_seconds() // 60) if offset is not None else None),
        "date_header_raw": parsed.date_header_raw,
        "received_at": received_at,
        "received_source": received_source,
        "direction": direction,
        "parse_defects": ",".join(parsed.defects) or None,
        "imported_at": now,
        "import_run_id": run_id,
        "source": item.source + (f" ({item.locator})" if item.locator else ""),
    }


def _attachment_rows(parsed: ParsedMail, blobs: dict[str, bytes]) -> list[dict[str, Any]]:
    """One message's ``email_attachments`` rows (without ``email_id``); adds their blobs."""
    files = []
    for att, digest in parsed.attachments:
        blobs.setdefault(digest, att.data)
        files.append(
            {
                "part": att.part,
                "filename": att.filename,
                "content_type": att.content_type,
                "size": len(att.data),
                "sha256": digest,
            }
        )
    return files


def _email_children(
    ids: list[int],
    fresh: list[tuple[RawMessage, str, ParsedMail]],
    attachment_rows: list[list[dict[str, Any]]],
) -> list[tuple[type[Any], list[dict[str, Any]]]]:
    """The address, attachment and Received-hop rows of the chunk, keyed to their emails."""
    address_rows: list[dict[str, Any]] = []
    flat_attachments: list[dict[str, Any]] = []
    hop_rows: list[dict[str, Any]] = []
    for email_id, (_, _, parsed), files in zip(ids, fresh, attachment_rows, strict=True):
        for role, address in parsed.addresses:
            address_rows.append({"email_id": email_id, "role": role, "address": address})
        for file in files:
            file["email_id"] = email_id
            flat_attachments.append(file)
        for position, (host, at) in enumerate(parsed.received):
            hop_rows.append(
                {"email_id": email_id, "position": position, "by_host": host, "received_at": at}
            )
    return [
        (EmailAddress, address_rows),
        (EmailAttachment, flat_attachments),
        (EmailReceived, hop_rows),
    ]


def _chain_emails(
    session: Session,
    rows: list[dict[str, Any]],
    children: list[tuple[type[Any], list[dict[str, Any]]]],
) -> None:
    """Append each inserted email, with its child rows, to the ledger."""
    by_email: dict[int, list[tuple[type[Any], dict[str, Any]]]] = {}
    for model, child_rows in children:
        for child in child_rows:
            by_email.setdefault(child["email_id"], []).append((model, child))
    ledger.append_payloads(
        session,
        [
            (
                "emails",
                str(row["id"]),
                ledger.payload_for_rows(Email, row, by_email.get(row["id"], [])),
            )
            for row in rows
        ],
    )


def _insert_children(session: Session, model: type[Any], rows: list[dict[str, Any]]) -> None:
    ids = bulk.reserve_ids(session, model.__tablename__, len(rows))
    for row, row_id in zip(rows, ids, strict=True):
        row["id"] = row_id
    bulk.insert_rows(session, model, rows)
