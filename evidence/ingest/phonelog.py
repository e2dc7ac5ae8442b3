"""Phone-system logs, imported in bulk: every raw line kept, parsed, and chained.

Each format has a line parser (``evidence.ingest.asterisk``, ``.freeswitch``,
``.csvmap``) that turns one raw line into the values of one parsed record. This
module does the rest, fast enough for call-centre logs of millions of lines:

* the file is read in chunks; worker processes parse the next chunks (decoding,
  parsing, hashing, and the canonical ledger encoding) while this process writes
  the previous one, in file order, so both cores work;
* a line already stored (same SHA-256) is skipped, so importing a file twice, or
  a log that has grown, adds only what is new;
* each chunk is one transaction: ids are reserved up front, then the raw lines,
  the parsed records and their ledger entries are inserted with one executemany
  each. The ledger payload is exactly ``ledger.payload_for_rows`` of the stored
  row (the encoding the ORM path uses); ``tests/test_phone_systems.py`` checks
  it against the rows read back;
* a line that cannot be read is quarantined with its file, line number and
  reason, and the import goes on.
"""

from __future__ import annotations

import concurrent.futures
import concurrent.futures.process
import csv
import hashlib
import json
import multiprocessing
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import BigInteger, Integer, String, select, text
from sqlalchemy.orm import Session

from evidence.config import Config
from evidence.domain import CallLogFormat
from evidence.errors import InvalidInput
from evidence.ingest import ImportReport, quarantine, start_run
from evidence.ingest.sniff import (
    FORMAT_CDR,
    FORMAT_CSV,
    FORMAT_QUEUE_LOG,
    sniff_file,
)
from evidence.store import bulk, ledger
from evidence.store.checkpoints import write_checkpoint
from evidence.store.db import Store
from evidence.store.models import Base, ImportRun, SourceLine
from evidence.timeutil import utcnow
from evidence.workers import die_with_parent

CHUNK_LINES = 10_000
# ...or fewer, when the lines are long: a chunk's parsed form (rows and ledger
# payloads) is ~10x its raw size, and a few chunks are in flight at once.
CHUNK_BYTES = 2 * 1024 * 1024
# Files smaller than this are parsed in this process: starting a worker costs
# more than it saves.
WORKER_MIN_BYTES = 4 * 1024 * 1024
MAX_RECORD_LINES = 50  # a quoted CSV field may hold line breaks, but not without end
# Placeholders for the ids in a payload built before the ids exist. A JSON key
# followed by a bare number cannot occur inside a JSON string (its quote would
# be escaped), so replacing them is exact.
_LINE_ID = -9_000_000_000_000_001
_RECORD_ID = -9_000_000_000_000_002


class LineError(ValueError):
    """A line that cannot be read: its message is the quarantine reason."""


def csv_row(text: str, delimiter: str = ",") -> list[str]:
    """Exactly one strict CSV row (a record may span lines inside quotes)."""
    try:
        rows = list(csv.reader([text], delimiter=delimiter, strict=True))
    except csv.Error as exc:
        raise LineError(f"not a CSV row ({exc})") from exc
    if len(rows) != 1:
        raise LineError("not one CSV row")
    return rows[0]


class LineParser(Protocol):
    """Turns one raw line (decoded) into the model and column values of one record."""

    format: str
    encoding: str
    multiline: bool  # records may continue over line breaks inside quotes (CSV)

    def parse(self, text: str) -> tuple[type[Base], dict[str, Any]]:
        """The values are a new dict: the caller adds the ids to it."""
        ...


@dataclass(frozen=True)
class ChunkSpec:
    """What a worker needs to prepare a chunk; picklable."""

    parser: LineParser
    source: str
    run_id: int
    dialect: str  # "sqlite" or "postgresql"


# One prepared line: (line number, raw bytes, sha256, error or None, table name or None,
#                     record row, source-line row, payload template (see payload_template))
Prepared = tuple[
    int,
    bytes,
    str,
    str | None,
    str | None,
    tuple[Any, ...],
    tuple[Any, ...],
    tuple[str, str, str, str] | None,
]


class Records:
    """(first line number, raw bytes without the final line end) of every non-blank record.

    ``consumed`` is how many bytes of the file have been read (for progress: at the
    end, the file's size), ``given`` how many records were handed out.
    """

    def __init__(self, path: Path, multiline: bool) -> None:
        self.consumed = 0
        self.given = 0
        self._records = self._read(path, multiline)

    def __iter__(self) -> Records:
        return self

    def __next__(self) -> tuple[int, bytes]:
        record = next(self._records)
        self.given += 1
        return record

    def _read(self, path: Path, multiline: bool) -> Iterator[tuple[int, bytes]]:
        with path.open("rb") as fh:
            pending: list[bytes] = []
            start = 0
            for number, line in enumerate(fh, start=1):
                self.consumed += len(line)
                if pending:
                    pending.append(line)
                    joined = b"".join(pending)
                    if joined.count(b'"') % 2 == 0 or len(pending) >= MAX_RECORD_LINES:
                        if joined.count(b'"') % 2 == 0:
                            yield start, joined.rstrip(b"\r\n")
                            pending = []
                            continue
                        # Never closed: give the first line back alone (it will not parse)
                        # and read on from the next one.
                        first, rest = pending[0], pending[1:]
                        pending = []
                        yield start, first.rstrip(b"\r\n")
                        for offset, again in enumerate(rest, start=start + 1):
                            if again.strip():
                                yield offset, again.rstrip(b"\r\n")
                    continue
                if not line.strip():
                    continue
                if multiline and line.count(b'"') % 2 == 1:
                    pending, start = [line], number
                    continue
                yield number, line.rstrip(b"\r\n")
            if pending:
                for offset, again in enumerate(pending, start=start):
                    if again.strip():
                        yield offset, again.rstrip(b"\r\n")


def iter_records(path: Path, multiline: bool) -> Records:
    """Every non-blank record of ``path`` (see ``Records``)."""
    return Records(path, multiline)


# --- preparing a chunk (in the worker) -------------------------------------------


_RECORD_KEY = f'"id":{_RECORD_ID}'
_LINE_KEYS = (f'"source_line_id":{_LINE_ID}', f'"id":{_LINE_ID}')


def payload_template(payload: str) -> tuple[str, str, str, str]:
    """Split a payload built with the placeholder ids around them: ``(a, b, c, d)``.

    The payload with real ids is ``a + record_id + b + line_id + c + line_id + d``
    (sorted keys put the record, inside ``_children``, before the line). The
    writer only joins, instead of searching the text for each placeholder.
    """
    a, rest = payload.split(_RECORD_KEY)
    b, rest = rest.split(_LINE_KEYS[0])
    c, d = rest.split(_LINE_KEYS[1])
    return a + '"id":', b + '"source_line_id":', c + '"id":', d


def prepare_chunk(spec: ChunkSpec, lines: Sequence[tuple[int, bytes]]) -> list[Prepared]:
    """Decode, parse, hash and encode one chunk. Pure: no database."""
    parser = spec.parser
    parse = parser.parse
    encoding = parser.encoding
    imported_at = utcnow()
    line_row = bulk.row_function(SourceLine, spec.dialect, 1)
    sha256 = hashlib.sha256
    # One source line's values; the per-line ones are set in the loop.
    line_values = {
        "id": _LINE_ID,
        "format": parser.format,
        "line_sha256": "",
        "raw": b"",
        "source": spec.source,
        "line_number": 0,
        "imported_at": imported_at,
        "import_run_id": spec.run_id,
    }
    prepared: list[Prepared] = []
    for number, raw in lines:
        digest = sha256(raw).hexdigest()
        line_values["line_sha256"] = digest
        line_values["raw"] = raw
        line_values["line_number"] = number
        try:
            model, values = _parse_line(raw, encoding, parse)
        except LineError as exc:
            prepared.append((number, raw, digest, str(exc), None, (), line_row(line_values), None))
            continue
        values["id"] = _RECORD_ID
        values["source_line_id"] = _LINE_ID
        template = payload_template(
            ledger.payload_for_rows(SourceLine, line_values, [(model, values)])
        )
        record_row = bulk.row_function(model, spec.dialect, 2)(values)
        prepared.append(
            (
                number,
                raw,
                digest,
                None,
                model.__tablename__,
                record_row,
                line_row(line_values),
                template,
            )
        )
    return prepared


def _parse_line(
    raw: bytes, encoding: str, parse: Callable[[str], tuple[type[Base], dict[str, Any]]]
) -> tuple[type[Base], dict[str, Any]]:
    """The model and values of one raw line; ``LineError`` (the quarantine reason) if none."""
    try:
        decoded = raw.decode(encoding)
    except UnicodeDecodeError:
        name = "UTF-8" if encoding.lower().replace("_", "-") == "utf-8" else encoding
        raise LineError(f"not {name} text") from None
    if "\x00" in decoded:
        raise LineError("binary data (NUL bytes) in the line")
    try:
        model, values = parse(decoded)
    except LineError:
        raise
    except (OverflowError, ValueError) as exc:
        # Hostile values a parser did not foresee (a year 0 time, a 30-digit
        # duration) are a reason to quarantine the line, not to stop the import.
        raise LineError(f"a value is out of range ({exc})") from exc
    check_fits(model, values)
    return model, values


_BOUNDS: dict[type[Base], tuple[list[tuple[str, int]], list[tuple[str, int]]]] = {}


def check_fits(model: type[Base], values: dict[str, Any]) -> None:
    """``LineError`` when a value does not fit its column on every database.

    SQLite stores any length and integers up to 64 bits; PostgreSQL refuses a
    ``VARCHAR(n)`` value longer than n and an ``INTEGER`` past 32 bits, which
    would fail the whole chunk. The raw line is kept either way (quarantined).
    """
    bounds = _BOUNDS.get(model)
    if bounds is None:
        strings, ints = [], []
        for column in model.__table__.columns:
            length = getattr(column.type, "length", None)
            if isinstance(column.type, String) and length:
                strings.append((column.key, int(length)))
            elif isinstance(column.type, Integer):
                ints.append((column.key, 63 if isinstance(column.type, BigInteger) else 31))
        bounds = _BOUNDS[model] = (strings, ints)
    strings, ints = bounds
    for key, length in strings:
        text_ = values.get(key)
        if isinstance(text_, str) and len(text_) > length:
            raise LineError(f"{key} is longer than {length} characters")
    for key, bits in ints:
        number = values.get(key)
        if isinstance(number, int) and not -(2**bits) <= number < 2**bits:
            raise LineError(f"{key} {number} is out of range")


# --- writing a chunk (in this process) -------------------------------------------


MODELS: dict[str, type[Base]] = {}


def _model(table: str) -> type[Base]:
    if not MODELS:
        for mapper in Base.registry.mappers:
            cls = mapper.class_
            MODELS[cls.__tablename__] = cls
    return MODELS[table]


def reserve_ids(session: Session, table: str, count: int) -> list[int]:
    """``count`` fresh primary keys for ``table``; the caller holds the writer lock."""
    return bulk.reserve_ids(session, table, count)


def _known(session: Session, fmt: str, digests: list[str]) -> tuple[set[str], set[str]]:
    """Which of ``digests`` are stored lines, and which were quarantined before.

    The digests go as one parameter (a JSON array on SQLite, an array on
    PostgreSQL): thousands of bound parameters per query cost more than the lookups.
    """
    if not digests:
        return set(), set()
    if session.get_bind().dialect.name == "postgresql":
        wanted: Any = digests
        among = "= ANY(:digests)"
    else:
        wanted = json.dumps(digests)
        among = "IN (SELECT value FROM json_each(:digests))"
    lines = set(
        session.scalars(
            text(f"SELECT line_sha256 FROM source_lines WHERE line_sha256 {among}"),
            {"digests": wanted},
        )
    )
    held = set(
        session.scalars(
            text(f"SELECT raw_sha256 FROM quarantine WHERE kind = :kind AND raw_sha256 {among}"),
            {"digests": wanted, "kind": fmt},
        )
    )
    return lines, held


def write_chunk(
    session: Session,
    prepared: list[Prepared],
    report: ImportReport,
    *,
    fmt: str,
    source: str,
    run: ImportRun | None,
) -> None:
    """Store one prepared chunk; the caller holds the writer lock (``Store.writing``)."""
    fresh = _new_lines(session, prepared, report, fmt=fmt, source=source, run=run)
    if not fresh:
        return
    line_ids = reserve_ids(session, SourceLine.__tablename__, len(fresh))
    by_table: dict[str, list[int]] = {}
    for index, item in enumerate(fresh):
        by_table.setdefault(item[4] or "", []).append(index)
    record_ids: dict[int, int] = {}
    for table, indexes in by_table.items():
        for index, rid in zip(indexes, reserve_ids(session, table, len(indexes)), strict=True):
            record_ids[index] = rid
    conn = session.connection()
    conn.exec_driver_sql(
        bulk.insert_sql(session, SourceLine),
        [(line_ids[i], *item[6]) for i, item in enumerate(fresh)],
    )
    for table, indexes in by_table.items():
        conn.exec_driver_sql(
            bulk.insert_sql(session, _model(table)),
            [(record_ids[i], line_ids[i], *fresh[i][5]) for i in indexes],
        )
    _chain_lines(session, fresh, line_ids, record_ids)
    report.imported += len(fresh)


def _new_lines(
    session: Session,
    prepared: list[Prepared],
    report: ImportReport,
    *,
    fmt: str,
    source: str,
    run: ImportRun | None,
) -> list[Prepared]:
    """The chunk's lines to store: known lines are counted as duplicates, bad ones quarantined."""
    lines, held = _known(session, fmt, [p[2] for p in prepared])
    fresh: list[Prepared] = []
    seen: set[str] = set()
    for item in prepared:
        number, raw, digest, error = item[0], item[1], item[2], item[3]
        if digest in lines or digest in held or digest in seen:
            report.duplicates += 1
            continue
        seen.add(digest)
        if error is not None:
            quarantine(
                session,
                report,
                kind=fmt,
                source=source,
                locator=f"line {number}",
                reason=error,
                raw=raw,
                run=run,
            )
            continue
        fresh.append(item)
    return fresh


def _chain_lines(
    session: Session, fresh: list[Prepared], line_ids: list[int], record_ids: dict[int, int]
) -> None:
    """Append each stored line, with its record, to the ledger (filling in the payload ids)."""
    entries = []
    for i, item in enumerate(fresh):
        line_id, record_id = str(line_ids[i]), record_ids[i]
        a, b, c, d = item[7] or ("", "", "", "")
        entries.append(
            (SourceLine.__tablename__, line_id, f"{a}{record_id}{b}{line_id}{c}{line_id}{d}")
        )
    ledger.append_payloads(session, entries)


@dataclass
class BulkOptions:
    chunk_lines: int = CHUNK_LINES
    chunk_bytes: int = CHUNK_BYTES
    worker_min_bytes: int = WORKER_MIN_BYTES
    workers: int = 2  # parsing processes beside this one, which writes


def import_lines(
    store: Store,
    path: Path,
    parser: LineParser,
    run_id: int,
    report: ImportReport,
    *,
    progress: Callable[[int], None] | None = None,
    options: BulkOptions | None = None,
    records: Records | None = None,
) -> None:
    """Parse ``path`` with ``parser`` and store every line, one transaction per chunk.

    ``progress(n)`` is called with the bytes of the file each stored chunk covers
    (read from ``records`` when given: a CSV's header row is read before); the
    calls add up to the file's size.
    """
    opts = options or BulkOptions()
    dialect = store.engine.dialect.name
    spec = ChunkSpec(parser=parser, source=str(path), run_id=run_id, dialect=dialect)
    source = iter_records(path, parser.multiline) if records is None else records
    chunks = _Chunks(source, opts.chunk_lines, opts.chunk_bytes)
    fresh_chunks = _without_known_lines(store, parser.format, chunks, report)
    writer = _ChunkWriter(store, path, parser.format, run_id, report, progress)
    if path.stat().st_size < opts.worker_min_bytes:
        for fresh, size in fresh_chunks:
            writer.store_chunk(prepare_chunk(spec, fresh), size)
    else:
        _prepare_in_workers(spec, fresh_chunks, writer, max(1, opts.workers))
    # Blank lines after the last record (and all of an empty file's bytes).
    if progress and source.consumed > chunks.counted:
        progress(source.consumed - chunks.counted)


@dataclass
class _Chunks:
    """The records of a file in chunks, each with the bytes of the file it covers."""

    records: Records
    max_lines: int
    max_bytes: int
    counted: int = 0  # bytes of the file handed to chunks

    def __iter__(self) -> Iterator[tuple[list[tuple[int, bytes]], int]]:
        batch: list[tuple[int, bytes]] = []
        size = 0
        for record in self.records:
            batch.append(record)
            size += len(record[1])
            if len(batch) >= self.max_lines or size >= self.max_bytes:
                yield batch, self.records.consumed - self.counted
                self.counted = self.records.consumed
                batch, size = [], 0
        if batch:
            yield batch, self.records.consumed - self.counted
            self.counted = self.records.consumed


def _without_known_lines(
    store: Store, fmt: str, chunks: _Chunks, report: ImportReport
) -> Iterator[tuple[list[tuple[int, bytes]], int]]:
    """The chunks without the lines already stored or quarantined (counted as duplicates).

    They are dropped before parsing: a grown log costs only its growth.
    """
    for batch, read in chunks:
        hashed = [(number, raw, hashlib.sha256(raw).hexdigest()) for number, raw in batch]
        with store.session() as session:
            lines, held = _known(session, fmt, [h[2] for h in hashed])
        fresh: list[tuple[int, bytes]] = []
        seen: set[str] = set()
        for number, raw, digest in hashed:
            if digest in lines or digest in held or digest in seen:
                report.duplicates += 1
                continue
            seen.add(digest)
            fresh.append((number, raw))
        yield fresh, read


@dataclass
class _ChunkWriter:
    """Stores prepared chunks of one file, each in its own transaction, and reports progress."""

    store: Store
    path: Path
    fmt: str
    run_id: int
    report: ImportReport
    progress: Callable[[int], None] | None

    def store_chunk(self, prepared: list[Prepared], size: int) -> None:
        if prepared:
            with self.store.writing() as session:
                run = session.get(ImportRun, self.run_id)
                write_chunk(
                    session, prepared, self.report, fmt=self.fmt, source=str(self.path), run=run
                )
        if self.progress:
            self.progress(size)


# A chunk handed to a worker: (its future, None if parsed here; its lines; its bytes of the file)
_PendingChunk = tuple[
    concurrent.futures.Future[list[Prepared]] | None, list[tuple[int, bytes]], int
]


def _prepare_in_workers(
    spec: ChunkSpec,
    fresh_chunks: Iterator[tuple[list[tuple[int, bytes]], int]],
    writer: _ChunkWriter,
    workers: int,
) -> None:
    """Parse ahead in worker processes while this process writes, in file order.

    At most a few chunks wait, so memory stays flat however large the file is. If
    the workers cannot run (e.g. a calling script without a __main__ guard), the
    chunks are parsed here instead: the same rows, only slower.
    """
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=die_with_parent
    ) as pool:
        pending: deque[_PendingChunk] = deque()
        broken = False
        for fresh, size in fresh_chunks:
            future = None if broken else pool.submit(prepare_chunk, spec, fresh)
            pending.append((future, fresh, size))
            if len(pending) > workers + 1:
                broken = _store_oldest(spec, pending, writer, broken)
        while pending:
            broken = _store_oldest(spec, pending, writer, broken)


def _store_oldest(
    spec: ChunkSpec, pending: deque[_PendingChunk], writer: _ChunkWriter, broken: bool
) -> bool:
    """Store the oldest pending chunk; whether the worker pool is (now) broken."""
    future, fresh, size = pending.popleft()
    prepared = None
    if future is not None and not broken:
        try:
            prepared = future.result()
        except concurrent.futures.process.BrokenProcessPool:
            broken = True
    writer.store_chunk(prepared if prepared is not None else prepare_chunk(spec, fresh), size)
    return broken


# --- formats, sniffing and the import itself -------------------------------------


FORMATS = tuple(CallLogFormat)
HEADER_FORMAT = "csv-header"


def _refuse_wrong_format(path: Path, fmt: str) -> None:
    looks = sniff_file(path)
    if looks.format is None and looks.what:
        hint = f": {looks.hint_for(path)}" if looks.hint else ""
        raise InvalidInput(f"{path} looks like {looks.what}, not a {fmt} call log{hint}")
    if looks.format is not None and looks.format != fmt:
        again = (
            "--format csv --mapping MAPPING.toml"
            if looks.format == FORMAT_CSV
            else f"--format {looks.format}"
        )
        raise InvalidInput(f"{path} looks like {looks.what}, not {fmt}: run again with {again}")


def import_calls(
    store: Store,
    path: Path,
    fmt: str,
    *,
    utc: bool = False,
    mapping: Path | None = None,
    progress: Callable[[int], None] | None = None,
    options: BulkOptions | None = None,
) -> CallImportReport:
    """Import one phone-system log; broken lines are quarantined, the rest imported.

    ``progress(n)`` is told the bytes of the file read since its last call (they add
    up to the file's size). A file with no call in it (no bytes, blank lines, a
    CSV's header row alone) imports nothing and says so in ``report.empty``.
    """
    _check_call_log(path, fmt, mapping)
    config = store.config
    report = CallImportReport()
    parser: LineParser | None
    csv_input = _read_csv_start(path, mapping) if mapping is not None else None
    with store.writing() as session:
        run_id = start_run(session, fmt, str(path)).id
    if csv_input is not None:
        records = csv_input.records
        missing_header = csv_input.mapping.header and csv_input.header is None
        # A file without even its header row: nothing to store, not the mapping either.
        parser = None if missing_header else _csv_parser(store, path, csv_input, run_id, utc)
    else:
        parser = _log_parser(config, fmt, utc)
        records = iter_records(path, parser.multiline)
    if parser is not None:
        import_lines(
            store, path, parser, run_id, report, progress=progress, options=options, records=records
        )
    header_rows = int(csv_input is not None and csv_input.header is not None)
    if records.given == header_rows:
        report.empty = _empty_reason(path, csv_input)
    _finish_run(store, run_id, fmt, report)
    return report


def _check_call_log(path: Path, fmt: str, mapping: Path | None) -> None:
    """``InvalidInput`` unless ``path`` is a file that looks like ``fmt``, mapped if CSV."""
    if fmt not in FORMATS:
        raise InvalidInput(f"unknown call-log format {fmt!r}: use one of {', '.join(FORMATS)}")
    if not path.is_file():
        raise InvalidInput(f"{path} is not a file")
    if (mapping is not None) != (fmt == FORMAT_CSV):
        raise InvalidInput(
            "--format csv needs --mapping MAPPING.toml"
            if mapping is None
            else f"--mapping is for --format csv only, not {fmt}"
        )
    _refuse_wrong_format(path, fmt)


def _log_parser(config: Config, fmt: str, utc: bool) -> LineParser:
    """The parser of a phone system's own log format (CDR, queue_log or FreeSWITCH)."""
    from evidence.ingest.asterisk import CdrParser, QueueLogParser
    from evidence.ingest.freeswitch import FreeswitchParser

    if fmt == FORMAT_CDR:
        return CdrParser(zone_key=config.timezone, utc=utc, region=config.phone_region)
    if fmt == FORMAT_QUEUE_LOG:
        return QueueLogParser(region=config.phone_region)
    return FreeswitchParser(zone_key=config.timezone, utc=utc, region=config.phone_region)


def _finish_run(store: Store, run_id: int, fmt: str, report: ImportReport) -> None:
    """Record the run's counts and end time, and write a checkpoint."""
    with store.writing() as session:
        run = session.get(ImportRun, run_id)
        assert run is not None
        run.finished_at = utcnow()
        run.imported, run.duplicates, run.quarantined = (
            report.imported,
            report.duplicates,
            report.quarantined,
        )
        write_checkpoint(session, store.config, f"import {fmt}")


@dataclass
class CallImportReport(ImportReport):
    """A call log's import; ``empty`` says why the file held no call at all (else None)."""

    empty: str | None = None

    def as_dict(self, *, unmatched: bool = False) -> dict[str, object]:
        return {**super().as_dict(unmatched=unmatched), "empty": self.empty is not None}


def _empty_reason(path: Path, csv_input: _CsvStart | None) -> str:
    if csv_input is not None and csv_input.header is not None:
        return f"{path} holds only its header row: no calls in it, nothing imported"
    if path.stat().st_size:
        return f"{path} holds only blank lines: no calls in it, nothing imported"
    return f"{path} is empty (0 bytes): no calls in it, nothing imported"


@dataclass
class _CsvStart:
    """A mapped CSV's mapping and header row, read and checked before anything is stored."""

    mapping: Any  # csvmap.Mapping
    mapping_bytes: bytes
    indexes: dict[str, int]
    header: tuple[int, bytes] | None  # None: the mapping says there is none, or the file is empty
    records: Records


def _read_csv_start(path: Path, mapping_path: Path) -> _CsvStart:
    from evidence.ingest.csvmap import column_indexes, parse_mapping

    if not mapping_path.is_file():
        raise InvalidInput(f"the mapping {mapping_path} is not a file")
    mapping_bytes = mapping_path.read_bytes()
    mapping = parse_mapping(mapping_bytes, str(mapping_path))
    records = iter_records(path, True)
    if not mapping.header:
        return _CsvStart(mapping, mapping_bytes, column_indexes(mapping, None), None, records)
    first = next(records, None)
    if first is None:
        return _CsvStart(mapping, mapping_bytes, {}, None, records)
    try:
        text_ = first[1].decode(mapping.encoding)
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"{path}: the header row is not {mapping.encoding} text: set file.encoding "
            "in the mapping"
        ) from exc
    try:
        header = csv_row(text_.lstrip("\ufeff"), mapping.delimiter)
    except LineError as exc:
        raise InvalidInput(f"{path}: the header row is not CSV ({exc})") from exc
    return _CsvStart(mapping, mapping_bytes, column_indexes(mapping, header), first, records)


def _csv_parser(store: Store, path: Path, start: _CsvStart, run_id: int, utc: bool) -> LineParser:
    """The mapping (stored as a blob) and the header row (stored as a line) come first."""
    from evidence.ingest.csvmap import CsvParser
    from evidence.store.blobs import put_blob

    header_line_id: int | None = None
    with store.writing() as session:
        mapping_sha256 = put_blob(session, start.mapping_bytes)
        if start.header is not None:
            number, raw = start.header
            digest = hashlib.sha256(raw).hexdigest()
            header_line_id = session.scalar(
                select(SourceLine.id).where(SourceLine.line_sha256 == digest)
            )
            if header_line_id is None:
                line = SourceLine(
                    format=HEADER_FORMAT,
                    line_sha256=digest,
                    raw=raw,
                    source=str(path),
                    line_number=number,
                    imported_at=utcnow(),
                    import_run_id=run_id,
                )
                ledger.add(session, line)
                header_line_id = line.id
    parser = CsvParser(
        mapping=start.mapping,
        indexes=start.indexes,
        mapping_sha256=mapping_sha256,
        header_line_id=header_line_id,
        zone_key=store.config.timezone,
        utc=utc,
        region=store.config.phone_region,
    )
    return parser
