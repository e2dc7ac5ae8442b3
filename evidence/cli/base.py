"""What every command shares: the group class (help settings, errors and exit codes, once),
the value types and options read from text, progress on a terminal, and the store."""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import signal
import sqlite3
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click
from sqlalchemy.exc import SQLAlchemyError

from evidence import __version__
from evidence.config import Config, load_config
from evidence.errors import EvidenceError, InputQuarantined, InvalidArguments, InvalidInput
from evidence.ingest import ImportReport
from evidence.known_warnings import silence_known_warnings
from evidence.records.incidents import parse_incident_id
from evidence.store.db import Store, database_failure, open_store, write_failure
from evidence.timeutil import (
    UserTime,
    parse_period,
    parse_user_date,
    read_user_moment,
    read_user_time,
    require_order,
)

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo


CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

_T = TypeVar("_T")


def _fail(message: str, code: int = 1) -> None:
    if message:
        click.echo(f"evidence: {message}", err=True)
    sys.exit(code)


BUG_LINE = (
    "this is a bug in evidence ({name}): please report it (set EVIDENCE_DEBUG=1 for the traceback)"
)


class EvidenceCommand(click.Command):
    """Every command of ``evidence``: arguments that the library finds make no sense
    together (:class:`~evidence.errors.InvalidArguments`) are a usage error (exit 2), as
    the ones click finds are."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except InvalidArguments as exc:
            raise click.UsageError(str(exc), ctx) from exc


class EvidenceGroup(click.Group):
    """Every group and command of ``evidence``: -h as well as --help, 100 columns of help
    (subcommands inherit both from their parent's context), and one place that turns what a
    command raises into one line on stderr and an exit code (the classes in
    ``evidence.errors`` carry them), never a traceback."""

    group_class = type  # subgroups are EvidenceGroups too
    command_class = EvidenceCommand

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("context_settings", CONTEXT)
        super().__init__(*args, **kwargs)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise  # click's own: usage errors (exit 2), a declined prompt, an early exit
        except (Exception, KeyboardInterrupt) as exc:
            _exit_for(exc)


def _exit_for(exc: BaseException) -> None:
    """Our errors become one line on stderr and their exit code.

    A failure of the database is worded by what it means (``database_failure``):
    damage (8), the database or its disk failing (7), or neither: then, like any
    other unexpected exception, it is a bug (1), with the traceback only under
    ``EVIDENCE_DEBUG=1`` (a traceback can hold stored content).
    """
    if isinstance(exc, EvidenceError):
        _fail(str(exc), exc.exit_code)
    if isinstance(exc, KeyboardInterrupt):
        _fail("interrupted; what was committed before stays", 130)
    if isinstance(exc, BrokenPipeError):
        # The reader went away (`evidence timeline 1 | head`): stop quietly with the
        # shell's code for SIGPIPE, as `git log | head` does; nothing more to say.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(128 + signal.SIGPIPE)
    if isinstance(exc, (SQLAlchemyError, sqlite3.Error)):
        failure = database_failure(exc, _store_place())
        if failure is not None:
            _fail(str(failure), failure.exit_code)
    elif isinstance(exc, OSError):
        if exc.errno == errno.ENOSPC:
            failure = write_failure(exc)
            _fail(str(failure), failure.exit_code)
        _fail(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))
    _bug(exc)  # anything else is ours to fix


def _bug(exc: BaseException) -> None:
    """One line naming the exception's type only (its text can hold stored content)."""
    if os.environ.get("EVIDENCE_DEBUG", "") not in ("", "0"):
        traceback.print_exception(exc, file=sys.stderr)
    _fail(BUG_LINE.format(name=type(exc).__name__), 1)


def _store_place() -> str:
    """Where the store is, for a message about it (the URL without its password)."""
    from evidence.store.db import store_place

    try:
        return store_place(current_config().database_url)
    except Exception:  # the message must be given even without a config
        return ""


def current_config() -> Config:
    return load_config()


@contextmanager
def opened_store() -> Iterator[Store]:
    store = open_store(current_config())
    try:
        yield store
    finally:
        store.close()


class _Parsed(click.ParamType[_T]):
    """A value the library reads from text (``evidence.timeutil``); what it refuses is a
    usage error naming the option (exit 2)."""

    def __init__(self, name: str, metavar: str, parse: Callable[[str], _T]) -> None:
        self.name = name
        self.metavar = metavar
        self.parse = parse

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str:
        return self.metavar

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> _T:
        if not isinstance(value, str):  # already read (a default, or a second pass)
            return cast("_T", value)
        try:
            return self.parse(value)
        except InvalidInput as exc:
            self.fail(str(exc), param, ctx)


DATE = _Parsed("date", "DATE", parse_user_date)
TIME = _Parsed("time", "TIME", read_user_time)
PERIOD = _Parsed("period", "FROM..TO", parse_period)
MOMENT = _Parsed("moment", "DATE|TIME", read_user_moment)
# An incident, as `--json` prints its id (incident:7) or as the listings number it (7, #7).
INCIDENT = _Parsed("incident", "INCIDENT", parse_incident_id)


def in_order(
    first: dt.date | None, last: dt.date | None, first_name: str = "--from", last_name: str = "--to"
) -> None:
    """A period that ends before it starts is a usage error (exit 2), not an empty answer."""
    try:
        require_order(first, last, first_name, last_name)
    except InvalidInput as exc:
        raise click.UsageError(str(exc)) from exc


def at_zone(value: UserTime | None, zone: ZoneInfo) -> dt.datetime | None:
    return value.at(zone) if value is not None else None


def finish_import(report: ImportReport, as_json: bool, *, unmatched: bool = False) -> None:
    if as_json:
        echo_json(report.as_dict(unmatched=unmatched))
    else:
        for line in report.messages:
            click.echo(f"  {line}", err=True)
        click.echo(report.summary())
        for note in report.notes:
            click.echo(f"note: {note}")
    if report.quarantined:
        raise InputQuarantined


@contextmanager
def progress_bar(
    label: str, total: int | None = None, *, in_bytes: bool = False
) -> Iterator[Callable[[int], None] | None]:
    """A progress bar on a terminal; silent when stderr is a pipe or a file.

    ``in_bytes``: the steps are bytes of ``total``, shown as a share, not a count.
    """
    if not sys.stderr.isatty() or (in_bytes and not total):
        yield None
        return
    with click.progressbar(
        length=total or 0,
        label=label,
        file=sys.stderr,
        show_pos=not in_bytes,
        show_eta=bool(total),
    ) as bar:
        yield bar.update


class LiveCounts:
    """A status line on a terminal: progress, counts and rate (redrawn at most 10 times a s)."""

    def __init__(self, label: str, total: int | None) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.started = time.monotonic()
        self.shown = 0.0

    def __call__(self, advance: int, report: ImportReport) -> None:
        self.done += advance
        now = time.monotonic()
        if now - self.shown < 0.1:
            return
        self.shown = now
        count = report.imported + report.duplicates + report.quarantined
        rate = count / max(now - self.started, 1e-6)
        share = f" {min(self.done / self.total, 1):4.0%}" if self.total else ""
        click.echo(
            f"\r{self.label}{share}  {report.summary()}  {rate:,.0f} msg/s\x1b[K",
            err=True,
            nl=False,
        )

    def close(self) -> None:
        if self.shown:
            click.echo("", err=True)


@contextmanager
def live_counts(label: str, total: int | None = None) -> Iterator[LiveCounts | None]:
    """Import progress with counts and rate on a terminal; silent when stderr is not one."""
    if not sys.stderr.isatty():
        yield None
        return
    live = LiveCounts(label, total)
    try:
        yield live
    finally:
        live.close()


def echo_json(data: object, *, sort_keys: bool = False) -> None:
    """What ``--json`` prints: the value as indented JSON, non-ASCII as it is."""
    click.echo(json.dumps(data, sort_keys=sort_keys, ensure_ascii=False, indent=2))


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
attach_option = click.option(
    "--attach",
    "attachments",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A supporting file, stored byte-exact with its SHA-256; repeatable.",
)
channel_option = click.option(
    "--channel",
    "channels",
    multiple=True,
    type=click.Choice(["phone", "email", "all"]),
    help="Channel affected; repeatable (default: all).",
)


@click.group(cls=EvidenceGroup)
@click.version_option(__version__, prog_name="evidence")
def main() -> None:
    """Keep an append-only store of customer emails, calls and incidents, and
    export a regulator-ready PDF dossier of one customer's history.

    The store lives in EVIDENCE_HOME (default ~/.local/share/evidence);
    EVIDENCE_DATABASE_URL points at PostgreSQL instead of the embedded SQLite;
    EVIDENCE_TIMEZONE (default Europe/Helsinki) is the zone of local times.

    Example:

    \b
        evidence init --company "Aurora Energia Oy" --mail-domain aurora-energia.example
        evidence customer add 100234 --name "Matti Virtanen" --email matti@example.net
        evidence import mail ~/Maildir/export.mbox
        evidence export 100234 -o dossier.pdf
    """
    silence_known_warnings()
