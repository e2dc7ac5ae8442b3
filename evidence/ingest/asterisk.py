"""Asterisk call logs: cdr_csv ``Master.csv`` and ``queue_log``.

Every line is kept byte-exact (``SourceLine``) with its file and line number,
and parsed into a ``CdrRecord`` or ``QueueEvent``. Calls are derived from
these when read (see ``evidence.calls``), so the order in which the two files
arrive does not matter. A line already stored (same bytes) is skipped, so
importing a file twice, or a log that has grown, adds only what is new.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import re
from collections.abc import Callable, Iterator
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from evidence.errors import InvalidInput
from evidence.ingest import ImportReport, quarantine, start_run
from evidence.phones import normalize_number
from evidence.store import ledger
from evidence.store.checkpoints import write_checkpoint
from evidence.store.db import Store
from evidence.store.models import CdrRecord, ImportRun, QueueEvent, SourceLine
from evidence.timeutil import UTC, resolve_local, utcnow

FORMAT_CDR = "asterisk-cdr"
FORMAT_QUEUE_LOG = "asterisk-queue-log"
FORMATS = (FORMAT_CDR, FORMAT_QUEUE_LOG)
CHUNK = 500

CDR_BASE = (
    "accountcode",
    "src",
    "dst",
    "dcontext",
    "clid",
    "channel",
    "dstchannel",
    "lastapp",
    "lastdata",
    "start",
    "answer",
    "end",
    "duration",
    "billsec",
    "disposition",
    "amaflags",
)
CDR_LAYOUTS = {
    16: CDR_BASE,
    18: CDR_BASE + ("uniqueid", "userfield"),
    21: CDR_BASE + ("uniqueid", "userfield", "peeraccount", "linkedid", "sequence"),
}
_UNIQUEID_EPOCH = re.compile(r"^(\d{9,11})\.\d+$")
_QUEUE_LOG_LINE = re.compile(rb"^\d{9,11}(\.\d+)?\|")


class LineError(ValueError):
    """A line that cannot be read: its message is the quarantine reason."""


def sniff_format(path: Path) -> str | None:
    """Which of our formats the file looks like, from its first non-blank line."""
    with path.open("rb") as fh:
        for line in fh:
            if line.strip():
                if _QUEUE_LOG_LINE.match(line):
                    return FORMAT_QUEUE_LOG
                if line.lstrip().startswith(b'"') and line.count(b",") >= 15:
                    return FORMAT_CDR
                return None
    return None


def uniqueid_epoch(uniqueid: str | None) -> int | None:
    match = _UNIQUEID_EPOCH.match(uniqueid or "")
    return int(match.group(1)) if match else None


def _int(value: str, name: str) -> int:
    try:
        return int(value.strip() or "0")
    except ValueError as exc:
        raise LineError(f"{name} is not a whole number: {value!r}") from exc


def _naive(value: str, name: str) -> dt.datetime | None:
    text = value.strip()
    if not text:
        return None
    try:
        return dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S")  # noqa: DTZ007 - resolved below
    except ValueError as exc:
        raise LineError(f"{name} time {text!r} is not YYYY-MM-DD HH:MM:SS") from exc


def parse_cdr_line(text: str, *, zone_key: str, utc: bool, region: str) -> CdrRecord:
    from zoneinfo import ZoneInfo

    rows = list(csv.reader([text]))
    if len(rows) != 1:
        raise LineError("not one CSV row")
    row = rows[0]
    layout = CDR_LAYOUTS.get(len(row))
    if layout is None:
        raise LineError(
            f"{len(row)} columns; an Asterisk CDR row has 16, 18 or 21 (see cdr_csv.conf)"
        )
    f = dict(zip(layout, row, strict=True))
    start_naive = _naive(f["start"], "start")
    if start_naive is None:
        raise LineError("the start time is empty")
    answer_naive = _naive(f["answer"], "answer")
    end_naive = _naive(f["end"], "end")
    uniqueid = f.get("uniqueid") or None
    flag: str | None = None
    if utc:
        started = start_naive.replace(tzinfo=UTC)

        def instant(naive: dt.datetime | None) -> dt.datetime | None:
            return naive.replace(tzinfo=UTC) if naive else None

    else:
        zone = ZoneInfo(zone_key)
        hint = uniqueid_epoch(uniqueid)
        resolved = resolve_local(start_naive, zone, hint)
        started, flag = resolved.at, resolved.flag

        def instant(naive: dt.datetime | None) -> dt.datetime | None:
            # Later times of the same call are placed relative to its resolved start,
            # so they fall on the same side of a DST change.
            if naive is None:
                return None
            return started + (naive - start_naive)

    return CdrRecord(
        uniqueid=uniqueid,
        linkedid=f.get("linkedid") or None,
        src=f["src"],
        dst=f["dst"],
        src_e164=normalize_number(f["src"], region),
        dst_e164=normalize_number(f["dst"], region),
        dcontext=f["dcontext"],
        clid=f["clid"],
        channel=f["channel"],
        dstchannel=f["dstchannel"],
        lastapp=f["lastapp"],
        lastdata=f["lastdata"],
        start_local=f["start"],
        started_at=started,
        answered_at=instant(answer_naive),
        ended_at=instant(end_naive),
        time_flag=flag,
        duration=_int(f["duration"], "duration"),
        billsec=_int(f["billsec"], "billsec"),
        disposition=f["disposition"],
        userfield=f.get("userfield") or None,
    )


def parse_queue_log_line(text: str, *, region: str) -> QueueEvent:
    fields = text.split("|")
    if len(fields) < 5:
        raise LineError(f"{len(fields)} fields; a queue_log line has at least 5")
    epoch_text, uniqueid, queue, agent, event, *data = fields
    try:
        at = dt.datetime.fromtimestamp(float(epoch_text), UTC)
    except (ValueError, OverflowError, OSError) as exc:
        raise LineError(f"the time {epoch_text!r} is not a Unix time") from exc
    if not event or not re.fullmatch(r"[A-Z_]+", event):
        raise LineError(f"unknown event {event!r}")
    caller = None
    if event == "ENTERQUEUE" and len(data) >= 2:
        caller = normalize_number(data[1], region)
    return QueueEvent(
        at=at,
        uniqueid=uniqueid,
        queue=queue,
        agent=agent,
        event=event,
        data="|".join(data),
        caller_e164=caller,
    )


def _iter_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as fh:
        for number, line in enumerate(fh, start=1):
            bare = line.rstrip(b"\r\n")
            if bare.strip():
                yield number, bare


def import_calls(
    store: Store,
    path: Path,
    fmt: str,
    *,
    utc: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import one Asterisk log file; broken lines are quarantined, the rest imported."""
    if fmt not in FORMATS:
        raise InvalidInput(f"unknown call-log format {fmt!r}: use one of {', '.join(FORMATS)}")
    if not path.is_file():
        raise InvalidInput(f"{path} is not a file")
    looks_like = sniff_format(path)
    if looks_like is not None and looks_like != fmt:
        raise InvalidInput(
            f"{path} looks like {looks_like}, not {fmt}: run again with --format {looks_like}"
        )
    config = store.config
    report = ImportReport()
    with store.writing() as session:
        run_id = start_run(session, fmt, str(path)).id
    batch: list[tuple[int, bytes]] = []
    for numbered in _iter_lines(path):
        batch.append(numbered)
        if len(batch) >= CHUNK:
            _store_batch(store, path, fmt, batch, report, run_id, utc, config.timezone)
            if progress:
                progress(len(batch))
            batch = []
    if batch:
        _store_batch(store, path, fmt, batch, report, run_id, utc, config.timezone)
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
        write_checkpoint(session, config, f"import {fmt}")
    return report


def _store_batch(
    store: Store,
    path: Path,
    fmt: str,
    batch: list[tuple[int, bytes]],
    report: ImportReport,
    run_id: int,
    utc: bool,
    zone_key: str,
) -> None:
    region = store.config.phone_region
    hashes = {hashlib.sha256(line).hexdigest(): (n, line) for n, line in batch}
    with store.writing() as session:
        run = session.get(ImportRun, run_id)
        known = set(
            session.scalars(
                select(SourceLine.line_sha256).where(SourceLine.line_sha256.in_(list(hashes)))
            )
        )
        report.duplicates += len(batch) - len(hashes)  # repeated within this chunk
        for digest, (number, line) in hashes.items():
            if digest in known:
                report.duplicates += 1
                continue
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:
                _bad(session, report, path, number, line, run, fmt, "not UTF-8 text")
                continue
            try:
                if fmt == FORMAT_CDR:
                    record: CdrRecord | QueueEvent = parse_cdr_line(
                        text, zone_key=zone_key, utc=utc, region=region
                    )
                else:
                    record = parse_queue_log_line(text, region=region)
            except LineError as exc:
                _bad(session, report, path, number, line, run, fmt, str(exc))
                continue
            _store_line(session, path, fmt, number, line, digest, record, run)
            report.imported += 1


def _bad(
    session: Session,
    report: ImportReport,
    path: Path,
    number: int,
    line: bytes,
    run: ImportRun | None,
    fmt: str,
    reason: str,
) -> None:
    quarantine(
        session,
        report,
        kind=fmt,
        source=str(path),
        locator=f"line {number}",
        reason=reason,
        raw=line,
        run=run,
    )


def _store_line(
    session: Session,
    path: Path,
    fmt: str,
    number: int,
    line: bytes,
    digest: str,
    record: CdrRecord | QueueEvent,
    run: ImportRun | None,
) -> None:
    source_line = SourceLine(
        format=fmt,
        line_sha256=digest,
        raw=line,
        source=str(path),
        line_number=number,
        imported_at=utcnow(),
        import_run_id=run.id if run else None,
    )
    session.add(source_line)
    session.flush()
    record.source_line_id = source_line.id
    session.add(record)
    session.flush()
    ledger.append(session, source_line, [record])
