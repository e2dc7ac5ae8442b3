"""Any other phone system's CSV export, read through a mapping file (TOML).

The mapping says which column holds what, how times and durations are
written, and what the system's words for direction and outcome mean. Its bytes
are stored with the rows it read (``CallRecord.mapping_sha256``), and so is the
header row, so every figure can be traced to a named column of a kept line.
The format is documented in README.md ("Call logs from other systems"); two
tested examples are in ``examples/mappings/``.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import tomllib
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from evidence.domain import CallLogFormat, CallOutcome
from evidence.errors import InvalidInput
from evidence.ingest.phonelog import LineError, csv_row
from evidence.phones import NumberCache
from evidence.store.models import Base, CallRecord
from evidence.timeutil import UTC, resolve_local

FORMAT_CSV = CallLogFormat.CSV
FIELDS = (
    "start",
    "caller",
    "callee",
    "caller_name",
    "call_id",
    "linked_id",
    "direction",
    "queue",
    "agent",
    "answer",
    "end",
    "queue_wait",
    "ring_time",
    "talk_time",
    "duration",
    "outcome",
)
REQUIRED = ("start", "caller")
FIGURES = ("queue_wait", "ring_time", "talk_time", "duration")
DIRECTIONS = ("inbound", "outbound", "internal")
OUTCOMES = (
    CallOutcome.ANSWERED,
    CallOutcome.ABANDONED,
    CallOutcome.TIMEOUT,
    CallOutcome.EXIT_EMPTY,
    CallOutcome.EXIT_KEY,
    CallOutcome.IVR,
    CallOutcome.UNANSWERED,
    CallOutcome.BUSY,
    CallOutcome.FAILED,
    CallOutcome.TRANSFERRED,
    CallOutcome.VOICEMAIL,
)
DURATION_FORMATS = ("seconds", "milliseconds", "hh:mm:ss")
_CLOCK = re.compile(r"(?:(\d+):)?(\d{1,2}):(\d{1,2})(?:[.,]\d+)?")


@dataclass(frozen=True)
class Mapping:
    """A parsed mapping file. ``columns`` maps our field to a column name or 1-based number."""

    system: str
    delimiter: str
    encoding: str
    header: bool
    columns: dict[str, str | int]
    time_format: str  # "iso8601", "epoch", "epoch-ms" or a strptime format
    time_zone: str | None  # None: the store's zone
    duration_format: str
    directions: dict[str, str]
    outcomes: dict[str, str]

    def column_ref(self, name: str) -> str | None:
        """How the source names our field: ``column 'Wait (s)'`` or ``column 3``."""
        column = self.columns.get(name)
        if column is None:
            return None
        return f"column {column}" if isinstance(column, int) else f"column '{column}'"

    def source_of(self, name: str) -> str:
        where = self.column_ref(name)
        return f"{self.system}: {where}" if where else ""


def _table(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise InvalidInput(f"mapping: [{key}] must be a table")
    return value


def parse_mapping(raw: bytes, where: str = "mapping") -> Mapping:
    """Read a mapping file; every mistake is refused with what to write instead."""
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InvalidInput(f"{where} is not valid TOML: {exc}") from exc
    file = _table(data, "file")
    columns_raw = _table(data, "columns")
    header = bool(file.get("header", True))
    columns = _columns(columns_raw, header, where)
    time_format, zone = _time(data, where)
    durations = _table(data, "durations")
    duration_format = str(durations.get("format", "seconds"))
    if duration_format not in DURATION_FORMATS:
        raise InvalidInput(
            f"{where}: durations.format must be one of {', '.join(DURATION_FORMATS)}"
        )
    directions = _meanings(data, "direction", DIRECTIONS, ", ".join(DIRECTIONS), where)
    outcomes = _meanings(data, "outcome", OUTCOMES, f"one of {', '.join(OUTCOMES)}", where)
    delimiter, encoding = _file_format(file, where)
    return Mapping(
        system=str(data.get("system", "CSV export")),
        delimiter=delimiter,
        encoding=encoding,
        header=header,
        columns=columns,
        time_format=time_format,
        time_zone=str(zone) if zone is not None else None,
        duration_format=duration_format,
        directions=directions,
        outcomes=outcomes,
    )


def _columns(columns_raw: dict[str, Any], header: bool, where: str) -> dict[str, str | int]:
    """The [columns] table checked: known fields, the required ones, names or numbers."""
    unknown = sorted(set(columns_raw) - set(FIELDS))
    if unknown:
        raise InvalidInput(
            f"{where}: unknown column key(s) {', '.join(unknown)}; known: {', '.join(FIELDS)}"
        )
    missing = [name for name in REQUIRED if name not in columns_raw]
    if missing:
        raise InvalidInput(f"{where}: [columns] must name {' and '.join(missing)}")
    columns: dict[str, str | int] = {}
    for name, column in columns_raw.items():
        if isinstance(column, bool) or not isinstance(column, str | int):
            raise InvalidInput(f"{where}: columns.{name} must be a column name or number")
        if isinstance(column, int) and column < 1:
            raise InvalidInput(f"{where}: columns.{name}: column numbers start at 1")
        if isinstance(column, str) and not header:
            raise InvalidInput(
                f"{where}: columns.{name} names a column, but the file has no header: "
                "give column numbers (1 = first)"
            )
        columns[name] = column
    return columns


def _time(data: dict[str, Any], where: str) -> tuple[str, Any]:
    """The [time] table: its format, and its zone as written (None: the store's zone)."""
    time = _table(data, "time")
    time_format = str(time.get("format", "iso8601"))
    zone = time.get("zone")
    if zone is not None:
        try:
            ZoneInfo(str(zone))
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise InvalidInput(f"{where}: time.zone {zone!r} is not an IANA zone") from exc
    return time_format, zone


def _meanings(
    data: dict[str, Any], key: str, allowed: tuple[str, ...], must_be: str, where: str
) -> dict[str, str]:
    """A table of the system's words (lower-cased) and what each means, one of ``allowed``."""
    meanings = {str(k).strip().lower(): str(v) for k, v in _table(data, key).items()}
    for value in meanings.values():
        if value not in allowed:
            raise InvalidInput(f"{where}: [{key}] values must be {must_be}, not {value!r}")
    return meanings


def _file_format(file: dict[str, Any], where: str) -> tuple[str, str]:
    """The [file] table's delimiter and encoding, checked."""
    delimiter = str(file.get("delimiter", ","))
    if len(delimiter) != 1:
        raise InvalidInput(f"{where}: file.delimiter must be one character")
    encoding = str(file.get("encoding", "utf-8"))
    try:
        "".encode(encoding)
    except LookupError as exc:
        raise InvalidInput(f"{where}: unknown file.encoding {encoding!r}") from exc
    return delimiter, encoding


@functools.lru_cache(maxsize=32)
def mapping_from_bytes(raw: bytes) -> Mapping:
    return parse_mapping(raw)


def column_indexes(mapping: Mapping, header: list[str] | None) -> dict[str, int]:
    """Our field -> 0-based index, checked against the header row."""
    indexes: dict[str, int] = {}
    names = [h.strip() for h in header] if header is not None else []
    for name, column in mapping.columns.items():
        if isinstance(column, int):
            indexes[name] = column - 1
            continue
        if column.strip() not in names:
            raise InvalidInput(
                f"the mapping's column '{column}' ({name}) is not in the file's header "
                f"({', '.join(names)})"
            )
        indexes[name] = names.index(column.strip())
    return indexes


def parse_duration(text: str, fmt: str, name: str) -> int | None:
    value = text.strip()
    if not value:
        return None
    try:
        if fmt == "milliseconds":
            return round(float(value.replace(",", ".")) / 1000)
        if fmt == "hh:mm:ss":
            match = _CLOCK.fullmatch(value)
            if match:
                hours, minutes, seconds = (int(g or 0) for g in match.groups())
                return hours * 3600 + minutes * 60 + seconds
        return round(float(value.replace(",", ".")))
    except ValueError:
        pass
    raise LineError(f"{name} {value!r} is not a duration ({fmt})")


@dataclass
class CsvParser:
    mapping: Mapping
    indexes: dict[str, int]
    mapping_sha256: str
    header_line_id: int | None
    zone_key: str
    utc: bool
    region: str
    format: str = FORMAT_CSV
    multiline: bool = True
    encoding: str = field(init=False)
    numbers: NumberCache = field(init=False)

    def __post_init__(self) -> None:
        self.numbers = NumberCache(self.region)
        self.encoding = self.mapping.encoding

    def _time(self, text: str, name: str) -> tuple[dt.datetime, str | None] | None:
        value = text.strip()
        if not value:
            return None
        fmt = self.mapping.time_format
        try:
            if fmt in ("epoch", "epoch-ms"):
                seconds = float(value) / (1000 if fmt == "epoch-ms" else 1)
                return dt.datetime.fromtimestamp(seconds, UTC), None
            if fmt == "iso8601":
                parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            else:
                parsed = dt.datetime.strptime(value, fmt)  # noqa: DTZ007 - zone applied below
        except (ValueError, OverflowError, OSError) as exc:
            raise LineError(f"{name} time {value!r} does not match {fmt!r}") from exc
        if parsed.tzinfo is not None:
            return parsed.astimezone(UTC), None
        if self.utc or self.mapping.time_zone == "UTC":
            return parsed.replace(tzinfo=UTC), None
        resolved = resolve_local(parsed, ZoneInfo(self.mapping.time_zone or self.zone_key))
        return resolved.at, resolved.flag

    def parse(self, text: str) -> tuple[type[Base], dict[str, Any]]:
        row = csv_row(text, self.mapping.delimiter)
        need = max(self.indexes.values()) + 1
        if len(row) < need:
            raise LineError(f"{len(row)} columns; the mapping reads column {need}")

        def cell(name: str) -> str:
            index = self.indexes.get(name)
            return row[index].strip() if index is not None else ""

        start = self._time(cell("start"), "start")
        if start is None:
            raise LineError("the start time is empty")
        started, flag = start
        answered = self._time(cell("answer"), "answer")
        ended = self._time(cell("end"), "end")
        figures = {
            name: parse_duration(cell(name), self.mapping.duration_format, name) for name in FIGURES
        }
        direction_text = cell("direction")
        outcome_text = cell("outcome")
        caller, callee = cell("caller"), cell("callee")
        return CallRecord, {
            "header_line_id": self.header_line_id,
            "format": self.format,
            "mapping_sha256": self.mapping_sha256,
            "call_id": cell("call_id") or None,
            "linked_id": cell("linked_id") or None,
            "caller": caller,
            "caller_e164": self.numbers(caller),
            "caller_name": cell("caller_name") or None,
            "callee": callee,
            "callee_e164": self.numbers(callee),
            "direction": self.mapping.directions.get(direction_text.lower()),
            "direction_recorded": direction_text or None,
            "context": None,
            "start_local": cell("start"),
            "started_at": started,
            "answered_at": answered[0] if answered else None,
            "ended_at": ended[0] if ended else None,
            "time_flag": flag,
            "queue": cell("queue") or None,
            "agent": cell("agent") or None,
            "queue_wait": figures["queue_wait"],
            "ring_time": figures["ring_time"],
            "talk_time": figures["talk_time"],
            "duration": figures["duration"],
            "outcome": self.mapping.outcomes.get(outcome_text.lower()),
            "outcome_recorded": outcome_text or None,
        }
