"""The ``evidence`` command: parses arguments and calls the library. Nothing else lives here.

Exit codes: 0 done; 1 error, or a bug in evidence (one line; the traceback with
EVIDENCE_DEBUG=1); 2 usage; 3 done, but some input was quarantined;
4 `evidence sync` is already running (this run did nothing).
5 verification found the store or a dossier altered; 6 `customer erase` refused (open case or
legal hold); 7 the database or its disk failed during the run (disk full, connection lost):
nothing half-written, run it again; 8 the store's database is damaged: restore a backup.
"""

from __future__ import annotations

import datetime as dt
import errno
import functools
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
from evidence.config import Config, load_config, update_company_settings, write_initial_config
from evidence.domain import CallLogFormat
from evidence.errors import EvidenceError, InvalidInput
from evidence.files import private_dir
from evidence.incidents import parse_incident_id
from evidence.ingest import ImportReport
from evidence.known_warnings import silence_known_warnings
from evidence.mailfacts import MailRules, unconfigured_note
from evidence.store.db import Store, database_failure, open_store, upgrade, write_failure
from evidence.timeutil import (
    DATE_FORMS,
    TIME_FORMS,
    UserTime,
    format_local,
    iso_utc,
    parse_period,
    parse_user_date,
    read_user_moment,
    read_user_time,
    require_order,
)

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from evidence.ingest.oauth import OAuthOptions
    from evidence.store.models import Incident, QuarantineDismissal

EXIT_QUARANTINED = 3
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

F = TypeVar("F", bound=Callable[..., Any])
_T = TypeVar("_T")


def _fail(message: str, code: int = 1) -> None:
    click.echo(f"evidence: {message}", err=True)
    sys.exit(code)


BUG_LINE = (
    "this is a bug in evidence ({name}): please report it (set EVIDENCE_DEBUG=1 for the traceback)"
)


def handle_errors(func: F) -> F:
    """Our errors become one line on stderr and their exit code, never a traceback.

    A failure of the database is worded by what it means (``database_failure``):
    damage (8), the database or its disk failing (7), or neither: then, like any
    other unexpected exception, it is a bug (1), with the traceback only under
    ``EVIDENCE_DEBUG=1`` (a traceback can hold stored content).
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except EvidenceError as exc:
            _fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted; what was committed before stays", 130)
        except BrokenPipeError:
            # The reader went away (`evidence timeline 1 | head`): stop quietly with the
            # shell's code for SIGPIPE, as `git log | head` does; nothing more to say.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(128 + signal.SIGPIPE)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise  # click's own: usage errors (exit 2), a declined prompt, an early exit
        except (SQLAlchemyError, sqlite3.Error) as exc:
            failure = database_failure(exc, _store_place())
            if failure is None:
                _bug(exc)
            else:
                _fail(str(failure), failure.exit_code)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                failure = write_failure(exc)
                _fail(str(failure), failure.exit_code)
            _fail(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))
        except Exception as exc:  # anything else is ours to fix
            _bug(exc)

    return wrapper  # type: ignore[return-value]


def _bug(exc: BaseException) -> None:
    """One line naming the exception's type only (its text can hold stored content)."""
    if os.environ.get("EVIDENCE_DEBUG", "") not in ("", "0"):
        traceback.print_exception(exc, file=sys.stderr)
    _fail(BUG_LINE.format(name=type(exc).__name__), 1)


def _store_place() -> str:
    """Where the store is, for a message about it (the URL without its password)."""
    from evidence.store.db import store_place

    try:
        return store_place(_config().database_url)
    except Exception:  # the message must be given even without a config
        return ""


def _config() -> Config:
    return load_config()


@contextmanager
def _store() -> Iterator[Store]:
    store = open_store(_config())
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


def _in_order(
    first: dt.date | None, last: dt.date | None, first_name: str = "--from", last_name: str = "--to"
) -> None:
    """A period that ends before it starts is a usage error (exit 2), not an empty answer."""
    try:
        require_order(first, last, first_name, last_name)
    except InvalidInput as exc:
        raise click.UsageError(str(exc)) from exc


def _at(value: UserTime | None, zone: ZoneInfo) -> dt.datetime | None:
    return value.at(zone) if value is not None else None


def _finish_import(report: ImportReport, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
    else:
        for line in report.messages:
            click.echo(f"  {line}", err=True)
        click.echo(report.summary())
        for note in report.notes:
            click.echo(f"note: {note}")
    if report.quarantined:
        sys.exit(EXIT_QUARANTINED)


@contextmanager
def _progress(
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


class _LiveCounts:
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
def _live_counts(label: str, total: int | None = None) -> Iterator[_LiveCounts | None]:
    """Import progress with counts and rate on a terminal; silent when stderr is not one."""
    if not sys.stderr.isatty():
        yield None
        return
    live = _LiveCounts(label, total)
    try:
        yield live
    finally:
        live.close()


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


@click.group(context_settings=CONTEXT)
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


@main.command(context_settings=CONTEXT)
@click.option("--company", help="Company name for the dossier cover.")
@click.option(
    "--mail-domain",
    "mail_domains",
    multiple=True,
    help="The company's own mail domain; mail from it is outbound. Repeatable; on an "
    "existing store it is added to evidence.toml.",
)
@click.option("--timezone", help="IANA zone of local times (first init only; never changed).")
@handle_errors
def init(company: str | None, mail_domains: tuple[str, ...], timezone: str | None) -> None:
    """Create the store, or upgrade an older one to this version's schema.

    Safe to run again at any time. On the first run, --company, --mail-domain
    and --timezone are written to evidence.toml in EVIDENCE_HOME, and the
    Ed25519 key that signs the store's checkpoints is created there
    (checkpoint-key.pem, owner-only). Publish its key id: it is what a third
    party compares with the id printed on a dossier's cover. The key that signs
    the desk's sessions (`evidence serve`) is made there too (desk-secret.key,
    owner-only), unless EVIDENCE_SECRET_KEY is set when serving.

    Nothing needs configuring: without --mail-domain every email with a
    customer's address in From, To, Cc or Bcc is in their history, its
    direction taken relative to the customer. Given later, --company and
    --mail-domain are written to the existing evidence.toml (domains are added),
    and every stored email's direction and time are derived from them at once.

    Example:

    \b
        evidence init --company "Aurora Energia Oy" --mail-domain aurora-energia.example
    """
    config = _config()
    private_dir(config.home)
    written = write_initial_config(config.home, company, list(mail_domains), timezone)
    change = None
    if not written and (company or mail_domains or timezone):
        # An existing store: the options are applied, never silently ignored.
        change = update_company_settings(config, company, list(mail_domains), timezone)
    config = _config()
    upgrade(config)
    click.echo(f"store ready: {config.database_url}")
    if written:
        click.echo(f"settings written to {written}")
    if change is not None and change.company_name is not None:
        click.echo(f"company name set to {change.company_name!r} in {change.path}")
    rules = MailRules.of(config)
    if (written and mail_domains) or (change is not None and change.added_domains):
        click.echo(
            f"mail domains now {', '.join(rules.domains)} in {config.config_path}: the "
            "direction and time of every stored email are derived from them from now on"
        )
    note = unconfigured_note(rules)
    if note:
        click.echo(f"note: {note}", err=True)
    from evidence.web.settings import ensure_secret_key

    secret, made = ensure_secret_key(config)
    click.echo(f"desk secret key {'created' if made else 'kept'}: {secret}")
    from evidence.store.checkpoints import ensure_signing_key

    key, created = ensure_signing_key(config)
    click.echo(
        f"checkpoint key {'created' if created else 'kept'}: {key.path} (key id {key.key_id})"
    )


# --- customers ------------------------------------------------------------------


@main.group(context_settings=CONTEXT)
def customer() -> None:
    """Customers and the addresses and numbers that identify them."""


@customer.command("add", context_settings=CONTEXT)
@click.argument("ref")
@click.option("--name", help="The customer's name (required for a new customer).")
@click.option("--email", "emails", multiple=True, help="Email address; repeatable.")
@click.option("--phone", "phones", multiple=True, help="Phone number, any spelling; repeatable.")
@handle_errors
def customer_add(
    ref: str, name: str | None, emails: tuple[str, ...], phones: tuple[str, ...]
) -> None:
    """Add a customer, or more addresses and numbers to one.

    Email addresses match case-insensitively; phone numbers are stored in
    E.164, so 040 123 4567 and +358401234567 are the same number.

    Example:

    \b
        evidence customer add 100234 --name "Matti Virtanen" \\
            --email matti.virtanen@example.net --phone "040 123 4567"
    """
    from evidence.customers import add_customer

    with _store() as store:
        added = add_customer(store, ref, name, list(emails), list(phones))
        ids = ", ".join(i.value for i in added.identifiers) or "no identifiers yet"
        click.echo(f"customer {added.ref} ({added.name}): {ids}")


@customer.command("update", context_settings=CONTEXT)
@click.argument("ref")
@click.option("--name", help="The customer's new name.")
@click.option("--add-email", "add_emails", multiple=True, help="An address that becomes theirs.")
@click.option("--add-phone", "add_phones", multiple=True, help="A number that becomes theirs.")
@click.option(
    "--remove-email", "remove_emails", multiple=True, help="An address that is no longer theirs."
)
@click.option(
    "--remove-phone", "remove_phones", multiple=True, help="A number that is no longer theirs."
)
@click.option(
    "--from",
    "valid_from",
    required=True,
    type=MOMENT,
    help=f"When the change took effect: a day ({DATE_FORMS}; its local start) or a time "
    f"({TIME_FORMS}).",
)
@click.option("--reason", required=True, help="Why (shown in every dossier of the customer).")
@click.option("--by", help="Who records the change (default: EVIDENCE_USER, else login@host).")
@handle_errors
def customer_update(
    ref: str,
    name: str | None,
    add_emails: tuple[str, ...],
    add_phones: tuple[str, ...],
    remove_emails: tuple[str, ...],
    remove_phones: tuple[str, ...],
    valid_from: UserTime,
    reason: str,
    by: str | None,
) -> None:
    """Record a new version of a customer: addresses or numbers added or removed, or a
    new name, from a time on. Nothing is overwritten: the old version stays and
    every dossier lists the identifiers with their validity and the reason.

    An email or call belongs to the customer when one of its addresses or numbers
    was theirs at its time: a number that moved to someone else on 1 October stops
    selecting this customer's calls from then on. Repeatable options.

    Example:

    \b
        evidence customer update 100234 --remove-phone "040 123 4567" \\
            --from "2026-10-01 00:00" --reason "number moved to another subscriber"
        evidence customer update 100777 --add-phone "040 123 4567" \\
            --from "2026-10-01 00:00" --reason "new subscriber of the number"
    """
    from evidence.customers import update_customer

    config = _config()
    with _store() as store:
        change = update_customer(
            store,
            ref,
            valid_from=valid_from.at(config.zone),
            reason=reason,
            name=name,
            add_emails=list(add_emails),
            add_phones=list(add_phones),
            remove_emails=list(remove_emails),
            remove_phones=list(remove_phones),
            by=by,
        )
    what = ", ".join(f"{i.action} {i.value}" for i in change.identifiers)
    if change.name:
        what = ", ".join(filter(None, [what, f"name {change.name!r}"]))
    click.echo(
        f"customer {ref}: version #{change.id} from "
        f"{format_local(change.valid_from, config.zone)}: {what}"
    )


@customer.command("show", context_settings=CONTEXT)
@click.argument("ref")
@json_option
@handle_errors
def customer_show(ref: str, as_json: bool) -> None:
    """A customer's identifiers, the periods each was theirs, and every change.

    Example:

    \b
        evidence customer show 100234 --json
    """
    from evidence.customers import get_identity, identity_json

    config = _config()
    with _store() as store:
        data = identity_json(get_identity(store, ref))
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    click.echo(f"{data['ref']}\t{data['name']}")

    def local(value: str | None, missing: str) -> str:
        return format_local(dt.datetime.fromisoformat(value), config.zone) if value else missing

    for item in data["identifiers"]:
        periods = "; ".join(
            f"{local(p['from'], 'since ever')} – {local(p['until'], 'still')}"
            for p in item["periods"]
        )
        click.echo(f"  {item['kind']} {item['value']}: {periods or 'never'}")
    for change in data["changes"]:
        what = [f"+{v}" for v in change["added"]] + [f"-{v}" for v in change["removed"]]
        if change["name"]:
            what.append(f"name {change['name']!r}")
        click.echo(
            f"  version #{change['id']} from {local(change['valid_from'], '')}: "
            f"{', '.join(what)} ({change['reason']}; recorded "
            f"{local(change['recorded_at'], '')} by {change['by']})"
        )


@customer.command("list", context_settings=CONTEXT)
@json_option
@handle_errors
def customer_list(as_json: bool) -> None:
    """List customers with their identifiers now.

    Example:

    \b
        evidence customer list --json
    """
    from evidence.customers import identity_of, list_customers
    from evidence.store.models import IdentifierKind

    with _store() as store:
        rows = []
        for c in list_customers(store):
            identity = identity_of(c)
            rows.append(
                {
                    "ref": c.ref,
                    "name": identity.name,
                    "identifiers": [
                        *identity.current(IdentifierKind.EMAIL),
                        *identity.current(IdentifierKind.PHONE),
                    ],
                }
            )
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for row in rows:
        click.echo(f"{row['ref']}\t{row['name']}\t{', '.join(row['identifiers'])}")


@customer.command("erase", context_settings=CONTEXT)
@click.argument("ref")
@click.option("--reason", required=True, help="Why (e.g. the request's date); kept in the log.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--by", help="Who erases (default: EVIDENCE_USER, else login@host).")
@handle_errors
def customer_erase(ref: str, reason: str, yes: bool, by: str | None) -> None:
    """Erase a customer's personal content (GDPR Art. 17), leaving a tombstone in the log.

    Refused (exit 6) while the customer has an open case or an active legal
    hold (Art. 17(3)(e)). Otherwise removes the bytes of the customer's emails,
    attachments and call recordings (a blob another record also cites stays)
    and of the phone-system lines of their calls, blanks subjects, addresses,
    numbers and file names in the store and in the ledger, and removes the
    customer's name and identifiers. The hash chain and every signed checkpoint
    still verify: `evidence verify` reports the erasure (when, why, by whom,
    which blobs). Emails and calls that are also another customer's stay whole.

    Example:

    \b
        evidence customer erase 100234 --reason "erasure request of 2026-11-20" --yes
    """
    from evidence.erasure import erase_customer, plan_erasure

    with _store() as store:
        if not yes:
            with store.session() as session:
                plan = plan_erasure(session, ref, MailRules.of(store.config))
            click.echo(
                f"customer {ref}: {len(plan.emails)} emails, {len(plan.recordings)} "
                f"recordings and {len(plan.lines)} call-log lines erased, {len(plan.blobs)} "
                f"blobs removed; kept as shared with other customers: "
                f"{len(plan.shared_emails)} emails, {len(plan.shared_recordings)} recordings, "
                f"{len(plan.shared_lines)} call-log lines, {len(plan.shared_blobs)} blobs"
            )
            click.confirm("This cannot be undone. Erase?", abort=True)
        erasure, plan = erase_customer(store, ref, reason=reason, by=by)
    click.echo(
        f"erased customer {ref}: {len(plan.emails)} emails, {len(plan.recordings)} recordings, "
        f"{len(plan.lines)} call-log lines, {len(plan.blobs)} blobs "
        f"(erasure #{erasure.id}, chained; {len(plan.shared_blobs)} shared blobs kept)"
    )


# --- legal holds -------------------------------------------------------------------


@main.group(context_settings=CONTEXT)
def hold() -> None:
    """Legal holds: keep a customer's data whatever else is asked (GDPR Art. 17(3)(e))."""


@hold.command("add", context_settings=CONTEXT)
@click.argument("ref")
@click.option("--reason", required=True, help="Why the data is held.")
@click.option("--by", help="Who places the hold (default: EVIDENCE_USER, else login@host).")
@handle_errors
def hold_add(ref: str, reason: str, by: str | None) -> None:
    """Place a legal hold on a customer, or on a case (which holds its customer).

    REF is a customer reference, else a case reference. While a hold is active,
    `evidence customer erase` refuses. Holds are chained like evidence.

    Example:

    \b
        evidence hold add 100234 --reason "court summons of 2026-11-20"
    """
    from evidence.holds import add_hold

    with _store() as store:
        placed = add_hold(store, ref, reason=reason, by=by)
    on = (
        f"case {placed.case_ref} (customer {placed.customer_ref})"
        if placed.case_ref
        else (f"customer {placed.customer_ref}")
    )
    click.echo(f"legal hold #{placed.id} on {on}")


@hold.command("release", context_settings=CONTEXT)
@click.argument("ref")
@click.option("--reason", required=True, help="Why the hold ends.")
@click.option("--by", help="Who releases it (default: EVIDENCE_USER, else login@host).")
@handle_errors
def hold_release(ref: str, reason: str, by: str | None) -> None:
    """Release the active holds placed on REF. The release is a new record; the hold stays.

    Example:

    \b
        evidence hold release 100234 --reason "proceedings ended 2026-12-15"
    """
    from evidence.holds import release_hold

    with _store() as store:
        releases = release_hold(store, ref, reason=reason, by=by)
    for release in releases:
        click.echo(f"legal hold #{release.releases_id} released (record #{release.id})")


@hold.command("list", context_settings=CONTEXT)
@json_option
@handle_errors
def hold_list(as_json: bool) -> None:
    """List legal holds, active and released.

    Example:

    \b
        evidence hold list --json
    """
    from evidence.holds import list_holds

    with _store() as store:
        states = list_holds(store)
    rows = [
        {
            "id": s.hold.id,
            "ref": s.ref,
            "customer": s.hold.customer_ref,
            "case": s.hold.case_ref,
            "reason": s.hold.reason,
            "held_by": s.hold.actor,
            "held_at": iso_utc(s.hold.at),
            "active": s.active,
            "released_at": iso_utc(s.release.at) if s.release else None,
            "released_by": s.release.actor if s.release else None,
            "release_reason": s.release.reason if s.release else None,
        }
        for s in states
    ]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for row in rows:
        state = "active" if row["active"] else f"released {row['released_at']}"
        click.echo(f"#{row['id']}\t{row['ref']}\t{state}\t{row['held_at']}\t{row['reason']}")


# --- imports --------------------------------------------------------------------


@main.group("import", context_settings=CONTEXT)
def import_() -> None:
    """Import mail, phone-system logs and recordings.

    Exit code 3 means the import finished but some input was quarantined
    (see the lines printed on stderr). Exit code 7 means the database or its
    disk failed during the import (disk full, database restarted): what was
    stored before is whole, nothing is half-written; run it again once fixed.
    """


@import_.command("mail", context_settings=CONTEXT)
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@json_option
@handle_errors
def import_mail_cmd(paths: tuple[Path, ...], as_json: bool) -> None:
    """Import .eml files, mbox files, Maildirs and directories of them.

    The kind of each file is detected from its content; a directory with
    cur/ and new/ is read as a Maildir, any other directory recursively. A
    message already in the store (from any file, mbox, Maildir or IMAP) is
    counted as a duplicate and not stored again. Input that is not mail, or is
    past the limits in [mail.limits] of evidence.toml, is quarantined with the
    reason (see `evidence quarantine list`).

    Example:

    \b
        evidence import mail saved/*.eml export-2026-09-29.mbox ~/Maildir
    """
    from evidence.ingest.mail import import_mail

    total = sum(_size_below(p) for p in paths) if sys.stderr.isatty() else None
    with _store() as store, _live_counts("importing mail", total) as progress:
        report = import_mail(store, list(paths), progress=progress)
    _finish_import(report, as_json)


def _size_below(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def oauth_options(purpose: str) -> Callable[[F], F]:
    """The OAuth 2.0 options shared by `import imap` and `import graph` (Microsoft only)."""
    scope = MICROSOFT_SCOPES[purpose]
    certificate_help = (
        "PEM with the app's certificate and private key (a signed client assertion); "
        "without it the secret is read from EVIDENCE_OAUTH_CLIENT_SECRET."
    )
    options = [
        click.option("--tenant", help="Microsoft: the directory (tenant) ID or domain."),
        click.option("--client-id", help="The application (client) ID."),
        click.option(
            "--client-certificate",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help=certificate_help,
        ),
        click.option("--token-url", help="Token endpoint (another provider, a national cloud)."),
        click.option("--scope", help=f"Scope asked for (Microsoft: {scope})."),
    ]
    if purpose == "imap":
        options[:0] = [
            click.option(
                "--provider",
                type=click.Choice(["microsoft", "google"]),
                help="microsoft: Entra ID (--tenant, --client-id); google: --service-account.",
            )
        ]
        options[-2:-2] = [
            click.option(
                "--service-account",
                type=click.Path(exists=True, dir_okay=False, path_type=Path),
                help="Google: the service account's JSON key (domain-wide delegation).",
            )
        ]

    def decorate(func: F) -> F:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


MICROSOFT_SCOPES = {
    "imap": "https://outlook.office365.com/.default",
    "graph": "https://graph.microsoft.com/.default",
}


def _oauth(
    provider: str | None,
    tenant: str | None,
    client_id: str | None,
    client_certificate: Path | None,
    service_account: Path | None,
    token_url: str | None,
    scope: str | None,
) -> OAuthOptions:
    from evidence.ingest.oauth import OAuthOptions

    return OAuthOptions(
        provider, tenant, client_id, client_certificate, service_account, token_url, scope
    )


@import_.command("imap", context_settings=CONTEXT)
@click.option("--host", help="IMAP server (default with --provider: the provider's).")
@click.option("--port", type=int, help="Default 993 with --ssl, else 143.")
@click.option("--ssl", "security", flag_value="ssl", help="TLS from the start (default on 993).")
@click.option("--starttls", "security", flag_value="starttls", help="Plain, then STARTTLS.")
@click.option("--user", required=True, help="Login name (with OAuth: the mailbox).")
@click.option(
    "--folder", "folders", multiple=True, help="Folder to import; repeatable (default INBOX)."
)
@click.option(
    "--since",
    type=DATE,
    help=f"Only mail the server received on or after this day ({DATE_FORMS}).",
)
@click.option(
    "--cafile",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CA certificates to trust for the server (a company CA).",
)
@click.option(
    "--auth",
    type=click.Choice(["password", "oauth2"]),
    default="password",
    show_default=True,
    help="oauth2: log in with an app-only OAuth 2.0 token (SASL XOAUTH2).",
)
@oauth_options("imap")
@json_option
@handle_errors
def import_imap_cmd(
    host: str | None,
    port: int | None,
    security: str | None,
    user: str,
    folders: tuple[str, ...],
    since: dt.date | None,
    cafile: Path | None,
    auth: str,
    provider: str | None,
    tenant: str | None,
    client_id: str | None,
    client_certificate: Path | None,
    service_account: Path | None,
    token_url: str | None,
    scope: str | None,
    as_json: bool,
) -> None:
    """Import mail from an IMAP server, read-only: nothing is marked read.

    The password is read from EVIDENCE_IMAP_PASSWORD or from a netrc entry
    for the host (~/.netrc, or the file NETRC names), never from the command
    line. Each run fetches only mail newer than the last run's, per folder;
    when the server renumbers a folder (a new UIDVALIDITY), the folder is read
    again and what is already stored counts as duplicates. Without --ssl or
    --starttls the connection is unencrypted, which is allowed only to a
    server on this machine.

    Microsoft 365 and Google Workspace take no password: use --auth oauth2
    with an app-only token (see README, "Hosted mailboxes"). Microsoft: --tenant,
    --client-id, and the secret in EVIDENCE_OAUTH_CLIENT_SECRET or
    --client-certificate. Google: --service-account KEY.json (domain-wide
    delegation). Any other provider: --token-url and --client-id. The token
    is fetched for each run and never printed or stored.

    After each run the server's count of messages in each folder is compared
    with what the store holds from it (see `evidence status`).

    Example:

    \b
        export EVIDENCE_IMAP_PASSWORD=...
        evidence import imap --host imap.aurora-energia.example --ssl \\
            --user asiakaspalvelu --folder INBOX --folder Sent --since 2026-09-01
        export EVIDENCE_OAUTH_CLIENT_SECRET=...
        evidence import imap --auth oauth2 --provider microsoft --tenant aurora-energia.example \\
            --client-id 5f1c... --user asiakaspalvelu@aurora-energia.example
    """
    from evidence.ingest.imap import imap_login, import_imap

    oauth = None
    if auth == "oauth2":
        oauth = _oauth(
            provider, tenant, client_id, client_certificate, service_account, token_url, scope
        )
    elif any((provider, tenant, client_id, client_certificate, service_account, token_url)):
        raise InvalidInput("the OAuth options need --auth oauth2")
    account, credential = imap_login(
        host=host, user=user, port=port, security=security, cafile=cafile, oauth=oauth
    )
    with _store() as store, _live_counts(f"importing from {account.host}") as progress:
        report = import_imap(
            store, account, credential, list(folders), since=since, progress=progress
        )
    _finish_import(report, as_json)


@import_.command("graph", context_settings=CONTEXT)
@click.option("--mailbox", required=True, help="The mailbox, e.g. support@company.example.")
@click.option(
    "--folder",
    "folders",
    multiple=True,
    help="Folder: a well-known name (inbox, sentitems), id or display name; repeatable "
    "(default inbox).",
)
@click.option(
    "--since",
    type=DATE,
    help=f"On the first run, only mail received on or after this day ({DATE_FORMS}).",
)
@click.option(
    "--graph-url",
    default="https://graph.microsoft.com/v1.0",
    show_default=True,
    help="Graph endpoint (a national cloud).",
)
@oauth_options("graph")
@json_option
@handle_errors
def import_graph_cmd(
    mailbox: str,
    folders: tuple[str, ...],
    since: dt.date | None,
    graph_url: str,
    tenant: str | None,
    client_id: str | None,
    client_certificate: Path | None,
    token_url: str | None,
    scope: str | None,
    as_json: bool,
) -> None:
    """Import mail from Microsoft 365 through Microsoft Graph, read-only.

    The app needs the Mail.Read application permission, limited to the mailbox
    (see README, "Hosted mailboxes"). The client secret is read from
    EVIDENCE_OAUTH_CLIENT_SECRET, or a certificate is given with
    --client-certificate. Each run fetches only what is new since the last
    (a delta query per folder); a run that stopped resumes where it was.
    Graph rebuilds each message's MIME from its own storage: such emails are
    marked as having come through Graph, in the dossier next to their hash.
    Prefer IMAP (`import imap --auth oauth2`) where it is allowed: it gives
    the bytes as received. After each run the folder's count on the server is
    compared with what the store holds from it (see `evidence status`).

    Example:

    \b
        export EVIDENCE_OAUTH_CLIENT_SECRET=...
        evidence import graph --tenant aurora-energia.example --client-id 5f1c... \\
            --mailbox asiakaspalvelu@aurora-energia.example --folder inbox --folder sentitems
    """
    from evidence.ingest.graph import graph_tokens, import_graph

    options = _oauth("microsoft", tenant, client_id, client_certificate, None, token_url, scope)
    tokens = graph_tokens(options)
    with _store() as store, _live_counts(f"importing from {mailbox}") as progress:
        report = import_graph(
            store,
            mailbox,
            list(folders),
            tokens,
            graph_url=graph_url,
            since=since,
            progress=progress,
        )
    _finish_import(report, as_json)


@import_.command("calls", context_settings=CONTEXT)
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    required=True,
    type=click.Choice([f.value for f in CallLogFormat]),
    help="asterisk-cdr: cdr_csv Master.csv; asterisk-queue-log: queue_log; "
    "freeswitch-cdr: mod_cdr_csv (default template); csv: any export, with --mapping.",
)
@click.option(
    "--mapping",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="TOML file saying which CSV column is what (--format csv; see README).",
)
@click.option("--utc", is_flag=True, help="Times in the file are UTC (Asterisk usegmtime=yes).")
@json_option
@handle_errors
def import_calls_cmd(path: Path, fmt: str, mapping: Path | None, utc: bool, as_json: bool) -> None:
    """Import a phone system's call log.

    Local times are read in EVIDENCE_TIMEZONE. A time in the hour that
    repeats when summer time ends (or the hour skipped when it starts) is
    resolved from the Unix time in the call's uniqueid or queue_log, or from
    an unambiguous end time less the recorded duration; otherwise it is
    stored flagged, never guessed. Lines already imported are skipped, so a
    grown log can be imported again. A file that is not in the given format
    is refused with the format it looks like. A file with no call in it (0
    bytes, blank lines, a CSV's header row alone) imports nothing and says
    so ("empty": true with --json); that is not an error (exit 0).

    The queue wait is the phone system's own: queue_log's, else the call
    record's time to the answer, or the whole call when nobody answered
    (see README, "Phone systems").

    Example:

    \b
        evidence import calls /var/log/asterisk/cdr-csv/Master.csv --format asterisk-cdr
        evidence import calls /var/log/asterisk/queue_log --format asterisk-queue-log
        evidence import calls Master.csv --format freeswitch-cdr
        evidence import calls export.csv --format csv --mapping cloud-pbx.toml
    """
    from evidence.ingest.phonelog import import_calls

    size = path.stat().st_size
    with _store() as store, _progress(f"importing {path.name}", size, in_bytes=True) as progress:
        report = import_calls(store, path, fmt, utc=utc, mapping=mapping, progress=progress)
    if report.empty is not None:
        click.echo(f"evidence: {report.empty}", err=True)
    _finish_import(report, as_json)


@import_.command("recordings", context_settings=CONTEXT)
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--pattern",
    help="Regular expression whose first group is the uniqueid (default: <digits>.<digits>).",
)
@json_option
@handle_errors
def import_recordings_cmd(directory: Path, pattern: str | None, as_json: bool) -> None:
    """Import call recordings (WAV, MP3, OGG, GSM), linked to calls by the call id in the name.

    Each file is stored byte-exact with its SHA-256 and duration. The call id
    is the Asterisk uniqueid (or a UUID) in the file name, or what --pattern
    finds there (its group named "id", or its first group). A recording whose
    call is not in the store is kept and listed, and linked when the call's
    log is imported.

    Example:

    \b
        evidence import recordings /var/spool/asterisk/monitor
        evidence import recordings recordings/ --pattern 'rec-(?P<id>[0-9a-f-]{36})'
    """
    from evidence.ingest.recordings import import_recordings

    with _store() as store:
        report = import_recordings(store, directory, pattern)
    if as_json:
        data = {**report.as_dict(), "unmatched_recordings": report.unmatched}
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
        if report.quarantined:
            sys.exit(EXIT_QUARANTINED)
        return
    for line in report.unmatched:
        click.echo(f"  {line}", err=True)
    if report.unmatched:
        click.echo(f"{len(report.unmatched)} recording(s) match no call in the store", err=True)
    _finish_import(report, as_json)


# --- receivers --------------------------------------------------------------------


@main.group(context_settings=CONTEXT)
def receive() -> None:
    """Take mail as it arrives (long-running; see README, "A journal address")."""


@receive.command("smtp", context_settings=CONTEXT)
@click.option(
    "--listen",
    required=True,
    metavar="HOST:PORT",
    help="Address to listen on, e.g. 0.0.0.0:2525 ([::]:2525; port 0: any free one, printed).",
)
@click.option(
    "--allow",
    "allow",
    multiple=True,
    metavar="CIDR",
    help="A peer address or network that may send; repeatable (default 127.0.0.1 and ::1).",
)
@click.option(
    "--tls-cert",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Certificate (PEM, chain included) to offer STARTTLS with; needs --tls-key.",
)
@click.option(
    "--tls-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The certificate's private key (PEM).",
)
@json_option
@handle_errors
def receive_smtp_cmd(
    listen: str,
    allow: tuple[str, ...],
    tls_cert: Path | None,
    tls_key: Path | None,
    as_json: bool,
) -> None:
    """Run an SMTP receiver that stores every message the mail server sends it.

    Point the mail server's journal (or a BCC rule for the support mailbox) at
    it. Each message is stored with our own receive time and its SMTP envelope
    (MAIL FROM, RCPT TO, the peer's address and HELO); the sender gets 250 only
    once it is committed, 451 (it retries) if the store fails. A message sent
    twice is stored once. Peers outside --allow get 554. Runs until SIGTERM or
    Ctrl-C, finishing a message being sent, then prints what it stored and exits
    0; exit 1 if it cannot start (port taken, bad certificate), 2 for a
    --listen or --allow it cannot use.

    Example:

    \b
        evidence receive smtp --listen 0.0.0.0:2525 --allow 10.20.0.0/24 \\
            --tls-cert /etc/evidence/smtp.pem --tls-key /etc/evidence/smtp.key
    """
    from evidence.ingest.smtp import SmtpReceiver, receive_smtp, receiver_settings

    try:
        settings = receiver_settings(listen, allow, tls_cert, tls_key)
    except InvalidInput as exc:
        raise click.UsageError(str(exc)) from exc

    def on_signals(server: SmtpReceiver) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda _signum, _frame: server.stop())

    def ready(host: str, port: int) -> None:
        allowed = ", ".join(str(n) for n in settings.allow)
        tls = "STARTTLS offered" if settings.tls_cert else "no STARTTLS"
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        click.echo(f"evidence: receiving SMTP on {where} from {allowed} ({tls})", err=True)

    with _store() as store:
        report = receive_smtp(store, settings, ready=ready, receiver=on_signals)
    if as_json:
        click.echo(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
    else:
        click.echo(f"stopped: {report.summary()}")


# --- quarantine -----------------------------------------------------------------


@main.group(context_settings=CONTEXT)
def quarantine() -> None:
    """Input that could not be imported (mail, call-log lines, recordings) and why."""


@quarantine.command("list", context_settings=CONTEXT)
@click.option("--kind", help="Only this kind, e.g. mail, asterisk-cdr, asterisk-queue-log.")
@click.option("--open", "only_open", is_flag=True, help="Leave out dismissed items.")
@json_option
@handle_errors
def quarantine_list(kind: str | None, only_open: bool, as_json: bool) -> None:
    """List quarantined input of every kind, oldest first.

    A dismissed item is listed with who dismissed it, when and why (`dismissed`,
    `dismissed_at`, `dismissed_by`, `dismiss_reason` in --json) unless --open.

    Example:

    \b
        evidence quarantine list --kind mail --json
    """
    from evidence.quarantine import list_quarantine

    config = _config()
    with _store() as store, store.session() as session:
        items = list_quarantine(session, kind, dismissed=not only_open)
        rows = [q.as_dict() for q in items]
        when = [format_local(q.item.quarantined_at, config.zone) for q in items]
        gone = [_dismissed_text(q.dismissal, config.zone) for q in items]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for row, at, dismissed in zip(rows, when, gone, strict=True):
        where = f"{row['source']}:{row['locator']}" if row["locator"] else row["source"]
        mark = f"\t{dismissed}" if dismissed else ""
        click.echo(f"#{row['id']}\t{row['kind']}\t{at}\t{where}\t{row['reason']}{mark}")


def _dismissed_text(dismissal: QuarantineDismissal | None, zone: ZoneInfo) -> str:
    if dismissal is None:
        return ""
    return (
        f"DISMISSED {format_local(dismissal.dismissed_at, zone)} by {dismissal.dismissed_by}: "
        f"{dismissal.reason}"
    )


@quarantine.command("show", context_settings=CONTEXT)
@click.argument("item_id", metavar="ID", type=int)
@click.option("--raw", is_flag=True, help="Write the quarantined bytes to stdout, exactly.")
@json_option
@handle_errors
def quarantine_show(item_id: int, raw: bool, as_json: bool) -> None:
    """Show one quarantined item: where it came from, why, and its first lines.

    Example:

    \b
        evidence quarantine show 17
        evidence quarantine show 17 --raw > message-17.eml
    """
    from evidence.quarantine import get_quarantined

    config = _config()
    with _store() as store, store.session() as session:
        found, data = get_quarantined(session, item_id)
        row = found.as_dict()
        at = format_local(found.item.quarantined_at, config.zone)
        dismissed = _dismissed_text(found.dismissal, config.zone)
    if raw:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    if as_json:
        click.echo(json.dumps(row, ensure_ascii=False, indent=2))
        return
    where = f"{row['source']} ({row['locator']})" if row["locator"] else row["source"]
    click.echo(f"quarantine #{row['id']} ({row['kind']}), {at}")
    click.echo(f"from:   {where}")
    click.echo(f"reason: {row['reason']}")
    click.echo(f"bytes:  {row['size']:,}, SHA-256 {row['sha256']}")
    if dismissed:
        click.echo(dismissed)
    click.echo("first lines:")
    for line in data[:2000].decode("utf-8", "replace").splitlines()[:12]:
        printable = "".join(c if c.isprintable() else "\ufffd" for c in line.expandtabs(4))
        click.echo(f"  {printable[:200]}")


@quarantine.command("dismiss", context_settings=CONTEXT)
@click.argument("item_id", metavar="ID", type=int)
@click.option("--reason", required=True, help="Why it is no part of any source (kept, chained).")
@click.option("--by", help="Who dismisses it (default: the OS user).")
@handle_errors
def quarantine_dismiss(item_id: int, reason: str, by: str | None) -> None:
    """Set aside a quarantined item that is no part of any source, e.g. a file imported
    by mistake.

    The item and its bytes stay in the quarantine (`quarantine list` marks it);
    the dismissal is a new record, chained like evidence, saying who, when and
    why. A dismissed item is no longer listed in a dossier's completeness of
    the sources, nor counted by `evidence status`.

    Example:

    \b
        evidence quarantine dismiss 17 --reason "Master.csv imported as mail by mistake"
    """
    from evidence.quarantine import dismiss

    with _store() as store:
        found = dismiss(store, item_id, reason=reason, by=by)
    assert found.dismissal is not None
    click.echo(
        f"quarantine #{item_id} dismissed by {found.dismissal.dismissed_by} "
        f"(kept, with its bytes: `evidence quarantine show {item_id}`)"
    )


# --- incidents ------------------------------------------------------------------


@main.group(context_settings=CONTEXT)
def incident() -> None:
    """Incidents that explain gaps in service (evacuations, outages, storms).

    INCIDENT is the id `incident list --json` prints (incident:7) or the number
    the listings show (7, #7).
    """


@incident.command("add", context_settings=CONTEXT)
@click.option("--start", required=True, type=TIME, help=f"When it began ({TIME_FORMS}).")
@click.option(
    "--end", type=TIME, help=f"When it ended ({TIME_FORMS}); omit while it is still going on."
)
@click.option("--title", required=True, help="What happened.")
@click.option(
    "--channel",
    "channels",
    multiple=True,
    type=click.Choice(["phone", "email", "all"]),
    help="Channel affected; repeatable (default: all).",
)
@click.option("--note", help="Longer explanation.")
@click.option("--logged-by", required=True, help="Who logged it.")
@click.option(
    "--logged-at",
    type=TIME,
    help=f"When it was logged, if not now ({TIME_FORMS}); the store also keeps now.",
)
@attach_option
@handle_errors
def incident_add(
    start: UserTime,
    end: UserTime | None,
    title: str,
    channels: tuple[str, ...],
    note: str | None,
    logged_by: str,
    logged_at: UserTime | None,
    attachments: tuple[Path, ...],
) -> None:
    """Record an incident that happened (or is happening).

    The store keeps both the time you give with --logged-at and the time it
    was actually entered, so a past incident entered today says so.
    --attach stores a supporting file (e.g. the evacuation order) byte-exact.

    Example:

    \b
        evidence incident add --start "2026-09-28 10:02" --end "2026-09-28 14:11" \\
            --title "Toimitalo tyhjennetty uhkatilanteen vuoksi" \\
            --channel phone --channel email \\
            --logged-by "Kaisa Lehtonen (esihenkilö)" --logged-at "2026-09-28 14:25" \\
            --attach poliisin-maarays.pdf
    """
    from evidence.incidents import add_incident

    config = _config()
    zone = config.zone
    with _store() as store:
        created = add_incident(
            store,
            title=title,
            start=start.at(zone),
            end=_at(end, zone),
            channels=list(channels),
            note=note,
            logged_by=logged_by,
            logged_at=_at(logged_at, zone),
            attachments=attachments,
        )
    click.echo(
        f"incident #{created.number}: {created.title}, {format_local(created.start, zone)}"
        f" - {format_local(created.end, zone)}"
    )
    _say_recorded(created, zone)


@incident.command("start", context_settings=CONTEXT)
@click.option("--title", required=True, help="What is happening.")
@channel_option
@click.option("--note", help="Longer explanation.")
@click.option("--logged-by", required=True, help="Who logs it.")
@attach_option
@handle_errors
def incident_start(
    title: str,
    channels: tuple[str, ...],
    note: str | None,
    logged_by: str,
    attachments: tuple[Path, ...],
) -> None:
    """Open an incident now; close it with `evidence incident end`.

    Example:

    \b
        evidence incident start --title "Puhelinjärjestelmä ei vastaa" --channel phone \\
            --logged-by "Kaisa Lehtonen (esihenkilö)"
    """
    from evidence.incidents import start_incident

    zone = _config().zone
    with _store() as store:
        created = start_incident(
            store,
            title=title,
            channels=list(channels),
            note=note,
            logged_by=logged_by,
            attachments=attachments,
        )
    click.echo(
        f"incident #{created.number} started {format_local(created.start, zone)}: {created.title}"
    )


@incident.command("end", context_settings=CONTEXT)
@click.argument("number", type=INCIDENT)
@click.option("--at", "at", type=TIME, help=f"When it ended, if not now ({TIME_FORMS}).")
@click.option("--by", help="Who ends it.")
@attach_option
@handle_errors
def incident_end(
    number: int, at: UserTime | None, by: str | None, attachments: tuple[Path, ...]
) -> None:
    """Close an open incident (now, or --at an earlier time).

    INCIDENT: incident:7 (the id `--json` prints), 7 or #7.

    The end is a new version of the incident; the store keeps when it was
    entered, so an end typed later says so.

    Example:

    \b
        evidence incident end 7 --at "2026-09-28 14:11" --by "Kaisa Lehtonen"
    """
    from evidence.incidents import end_incident

    zone = _config().zone
    with _store() as store:
        ended = end_incident(
            store,
            number,
            at=_at(at, zone),
            by=by,
            attachments=attachments,
        )
    click.echo(f"incident #{ended.number} ended {format_local(ended.end, zone)}: {ended.title}")
    _say_recorded(ended, zone, ended.end)


@incident.command("correct", context_settings=CONTEXT)
@click.argument("number", type=INCIDENT)
@click.option("--reason", required=True, help="Why it is corrected (shown in the dossier).")
@click.option("--by", required=True, help="Who corrects it.")
@click.option("--start", type=TIME, help=f"The right start ({TIME_FORMS}).")
@click.option("--end", type=TIME, help=f"The right end ({TIME_FORMS}).")
@click.option("--title", help="The right title.")
@channel_option
@click.option("--note", help="The right note.")
@attach_option
@handle_errors
def incident_correct(
    number: int,
    reason: str,
    by: str,
    start: UserTime | None,
    end: UserTime | None,
    title: str | None,
    channels: tuple[str, ...],
    note: str | None,
    attachments: tuple[Path, ...],
) -> None:
    """Correct an incident: a new version pointing to the old one, which stays.

    INCIDENT: incident:7 (the id `--json` prints), 7 or #7.

    The dossier shows the current version, that it was corrected, when, by
    whom and why, and what the earlier versions said.

    Example:

    \b
        evidence incident correct 7 --end "2026-09-28 14:31" \\
            --reason "Henkilöstö palasi vasta 14.31" --by "Kaisa Lehtonen"
    """
    from evidence.incidents import correct_incident

    zone = _config().zone
    with _store() as store:
        corrected = correct_incident(
            store,
            number,
            reason=reason,
            by=by,
            start=_at(start, zone),
            end=_at(end, zone),
            title=title,
            channels=list(channels) or None,
            note=note,
            attachments=attachments,
        )
    click.echo(
        f"incident #{corrected.number} corrected (version {corrected.id} replaces "
        f"{corrected.corrects_id}): {format_local(corrected.start, zone)} - "
        f"{format_local(corrected.end, zone)}"
    )


@incident.command("plan", context_settings=CONTEXT)
@click.option("--title", required=True, help="What is planned (maintenance, training...).")
@click.option("--start", required=True, type=TIME, help=f"First occurrence's start ({TIME_FORMS}).")
@click.option("--end", required=True, type=TIME, help=f"First occurrence's end ({TIME_FORMS}).")
@click.option("--rrule", "rrule_text", help='RFC 5545 recurrence, e.g. "FREQ=WEEKLY;BYDAY=FR".')
@channel_option
@click.option("--note", help="Longer explanation.")
@click.option("--logged-by", required=True, help="Who plans it.")
@handle_errors
def incident_plan(
    title: str,
    start: UserTime,
    end: UserTime,
    rrule_text: str | None,
    channels: tuple[str, ...],
    note: str | None,
    logged_by: str,
) -> None:
    """Record a planned break, once or recurring.

    Recurrence works on local wall-clock time in EVIDENCE_TIMEZONE: a weekly
    15:00-16:00 stays 15:00-16:00 local across daylight-saving changes.
    Occurrences are stored as incidents up to [sync] horizon_days ahead
    (default 60); `evidence sync` keeps extending them.

    Example:

    \b
        evidence incident plan --title "Viikkopalaveri" --start "2026-10-02 15:00" \\
            --end "2026-10-02 16:00" --rrule "FREQ=WEEKLY;BYDAY=FR" --channel phone \\
            --logged-by "Kaisa Lehtonen"
    """
    from evidence.plans import plan_incident
    from evidence.sync import horizon_days

    config = _config()
    zone = config.zone
    with _store() as store:
        plan, created = plan_incident(
            store,
            title=title,
            start=start.at(zone),
            end=end.at(zone),
            rrule_text=rrule_text,
            channels=list(channels),
            note=note,
            logged_by=logged_by,
            horizon_days=horizon_days(config),
        )
    click.echo(
        f"plan #{plan.id}: {plan.title}, {created} occurrence(s) stored up to "
        f"{horizon_days(config)} days ahead"
    )


@incident.command("list", context_settings=CONTEXT)
@click.option("--open", "only_open", is_flag=True, help="Only incidents going on now.")
@json_option
@handle_errors
def incident_list(only_open: bool, as_json: bool) -> None:
    """List incidents (current versions), planned occurrences included.

    Example:

    \b
        evidence incident list --open --json
    """
    from evidence.domain import ItemKind
    from evidence.incidents import incident_chains, is_going_on
    from evidence.timeline import Item, item_json
    from evidence.timeutil import utcnow

    config = _config()
    now = utcnow()
    with _store() as store, store.session() as session:
        chains = incident_chains(session)
        if only_open:
            chains = [c for c in chains if is_going_on(c.current, now)]
        items = [
            Item(
                ItemKind.INCIDENT,
                c.current.start,
                f"incident:{c.number}",
                c.current,
                versions=c.versions,
            )
            for c in chains
        ]
        payload = [item_json(item) for item in items]
    if as_json:
        click.echo(json.dumps(payload, ensure_ascii=False, indent=2))
        return
    for c in chains:
        i = c.current
        marks = ("  (planned)" if i.plan_id else "") + (
            "  (corrected)" if any(v.change == "corrected" for v in c.versions) else ""
        )
        click.echo(
            f"#{c.number}\t{format_local(i.start, config.zone)} - "
            f"{format_local(i.end, config.zone)}\t{i.title}{marks}"
        )


@incident.command("show", context_settings=CONTEXT)
@click.argument("number", type=INCIDENT)
@json_option
@handle_errors
def incident_show(number: int, as_json: bool) -> None:
    """Show an incident with every version and its attached files.

    INCIDENT: incident:7 (the id `--json` prints), 7 or #7.

    Example:

    \b
        evidence incident show 7
    """
    from evidence.domain import ItemKind
    from evidence.incidents import get_chain
    from evidence.timeline import Item, item_json

    zone = _config().zone
    with _store() as store, store.session() as session:
        chain = get_chain(session, number)
        i = chain.current
        data = item_json(
            Item(ItemKind.INCIDENT, i.start, f"incident:{chain.number}", i, versions=chain.versions)
        )
        if as_json:
            click.echo(json.dumps(data, ensure_ascii=False, indent=2))
            return
        click.echo(f"incident #{chain.number}: {i.title}")
        click.echo(f"  period: {format_local(i.start, zone)} - {format_local(i.end, zone)}")
        click.echo(f"  channels: {', '.join(data['channels'])}")
        if i.plan is not None:
            click.echo(f"  planned: plan #{i.plan.id} ({i.plan.rrule or 'once'})")
        if i.note:
            click.echo(f"  note: {i.note}")
        click.echo(f"  logged by {i.logged_by} at {format_local(i.logged_at, zone)}")
        click.echo("  versions:")
        for v in chain.versions:
            click.echo(
                f"    {v.id} {v.change}, recorded {format_local(v.recorded_at, zone)}"
                + (f" by {v.changed_by}" if v.changed_by else "")
                + f": {format_local(v.start, zone)} - {format_local(v.end, zone)}"
                + (f"; reason: {v.correction_reason}" if v.correction_reason else "")
            )
        for a in chain.attachments:
            click.echo(f"  attached: {a.filename} ({a.size} bytes) SHA-256 {a.sha256}")


def _say_recorded(incident: Incident, zone: ZoneInfo, claimed: dt.datetime | None = None) -> None:
    """Say so when what was typed is earlier than now: nothing is back-dated silently."""
    claimed = claimed or incident.logged_at
    if incident.recorded_at - claimed > dt.timedelta(minutes=10):
        click.echo(
            f"note: entered {format_local(incident.recorded_at, zone)}; "
            "the dossier shows that it was recorded afterwards"
        )


# --- cases ----------------------------------------------------------------------


@main.group(context_settings=CONTEXT)
def case() -> None:
    """Cases: a regulator's request about a customer, and its legal PDFs."""


@case.command("open", context_settings=CONTEXT)
@click.argument("reference")
@click.option("--customer", "customer_ref", required=True, help="Customer reference.")
@click.option(
    "--authority",
    required=True,
    help="Who asks: a key (lvv, kkv, kril, traficom, energiavirasto: the name is printed in "
    "the dossier's language) or any name, e.g. 'Etelä-Suomen AVI'.",
)
@click.option("--received", type=DATE, help=f"Date the request arrived ({DATE_FORMS}).")
@click.option(
    "--deadline", type=DATE, help=f"Date the answer is due ({DATE_FORMS}); not before --received."
)
@click.option(
    "--period",
    type=PERIOD,
    help=f"Local days the request covers, FROM..TO (inclusive; each {DATE_FORMS}); the "
    "default period of `export --case`.",
)
@handle_errors
def case_open(
    reference: str,
    customer_ref: str,
    authority: str,
    received: dt.date | None,
    deadline: dt.date | None,
    period: tuple[dt.date | None, dt.date | None] | None,
) -> None:
    """Open a case for a customer.

    --authority takes a known key, and the dossier's cover names the authority
    in its own language: lvv (Lupa- ja valvontavirasto / Tillstånds- och
    tillsynsverket, the AVIs' successor from 1.1.2026), kkv (Kilpailu- ja
    kuluttajavirasto, kuluttajaneuvonta), kril (Kuluttajariitalautakunta),
    traficom (Liikenne- ja viestintävirasto Traficom), energiavirasto
    (Energiavirasto); or any other name as free text.

    Example:

    \b
        evidence case open ESAVI/31337/2026 --customer 100234 \\
            --authority lvv --received 2026-10-20 \\
            --deadline 2026-11-03 --period 2026-09-28..2026-09-30
    """
    from evidence.cases import open_case

    _in_order(received, deadline, "--received", "--deadline")
    period_from, period_to = period or (None, None)
    with _store() as store:
        opened = open_case(
            store,
            reference,
            customer_ref=customer_ref,
            authority=authority,
            received=received,
            deadline=deadline,
            period_from=period_from,
            period_to=period_to,
        )
    click.echo(f"case {opened.reference} opened")


@case.command("close", context_settings=CONTEXT)
@click.argument("reference")
@click.option("--reason", required=True, help="Why the case is closed (kept in the audit log).")
@click.option("--by", help="Who closes it (default: EVIDENCE_USER, else login@host).")
@handle_errors
def case_close(reference: str, reason: str, by: str | None) -> None:
    """Close a case once it is settled; its customer's data is then no longer held for it.

    While a customer has an open case, `evidence customer erase` refuses
    (GDPR Art. 17(3)(e)). The closing is recorded in the audit log.

    Example:

    \b
        evidence case close ESAVI/31337/2026 --reason "AVI decision of 2026-12-01 received"
    """
    from evidence.cases import close_case

    with _store() as store:
        closed = close_case(store, reference, reason=reason, by=by)
    click.echo(f"case {closed.reference} closed")


def _days_left_text(days_left: int | None) -> str:
    if days_left is None:
        return "no deadline"
    if days_left < 0:
        return f"overdue by {-days_left} day{'' if days_left == -1 else 's'}"
    if days_left == 0:
        return "due today"
    return f"{days_left} day{'' if days_left == 1 else 's'} left"


@case.command("list", context_settings=CONTEXT)
@click.option(
    "--today", type=DATE, help=f"Count days left from this day instead of today ({DATE_FORMS})."
)
@json_option
@handle_errors
def case_list(today: dt.date | None, as_json: bool) -> None:
    """List cases with the days left to each deadline, overdue first.

    Days are counted in EVIDENCE_TIMEZONE; a negative days_left is overdue.

    Example:

    \b
        evidence case list
        evidence case list --json
    """
    from evidence.cases import case_summaries

    config = _config()
    day = today or dt.datetime.now(config.zone).date()
    with _store() as store:
        rows = case_summaries(store, day)
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in rows], ensure_ascii=False, indent=2))
        return
    for r in rows:
        click.echo(
            f"{r.reference}\t{r.customer}\t{r.authority_name('en')}\t"
            f"{r.deadline.isoformat() if r.deadline else '-'}\t{_days_left_text(r.days_left)}"
        )


@case.command("attach", context_settings=CONTEXT)
@click.argument("reference")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--title", required=True, help="What the document is.")
@click.option("--date", "document_date", type=DATE, help=f"The document's own date ({DATE_FORMS}).")
@handle_errors
def case_attach(reference: str, file: Path, title: str, document_date: dt.date | None) -> None:
    """Attach a PDF (the regulator's letter, a reply) to a case, byte-exact.

    Example:

    \b
        evidence case attach ESAVI/31337/2026 selvityspyynto.pdf --title "Selvityspyyntö"
    """
    from evidence.cases import attach_document

    with _store() as store:
        document = attach_document(store, reference, file, title=title, document_date=document_date)
    click.echo(f"attached {document.filename} to {reference} (SHA-256 {document.sha256})")


@case.command("show", context_settings=CONTEXT)
@click.argument("reference")
@json_option
@handle_errors
def case_show(reference: str, as_json: bool) -> None:
    """Show a case, its documents and the customer's claims.

    Example:

    \b
        evidence case show ESAVI/31337/2026 --json
    """
    from evidence.cases import case_detail

    with _store() as store:
        data = case_detail(store, reference).as_dict()
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    click.echo(f"{data['reference']}: customer {data['customer']}, {data['authority_name']}")
    click.echo(f"received {data['received'] or '-'}, deadline {data['deadline'] or '-'}")
    if data["period_from"] or data["period_to"]:
        click.echo(f"period {data['period_from'] or ''}..{data['period_to'] or ''}")
    for doc in data["documents"]:
        click.echo(f"  {doc['title']}: {doc['filename']} ({doc['size']} bytes) {doc['sha256']}")
    for claim in data["claims"]:
        click.echo(f"  claim #{claim['id']}: {claim['text']}")
        if claim["evidence"]:
            click.echo(f"    evidence: {', '.join(claim['evidence'])}")


@case.command("claim", context_settings=CONTEXT)
@click.argument("reference")
@click.option("--text", required=True, help="The claim, in the customer's words.")
@click.option(
    "--evidence",
    "items",
    multiple=True,
    help="A timeline item id the claim concerns (as `timeline --json` prints it); repeatable.",
)
@click.option("--corrects", type=int, help="The claim number this one replaces.")
@handle_errors
def case_claim(reference: str, text: str, items: tuple[str, ...], corrects: int | None) -> None:
    """Record a claim of the customer, tied to the items that bear on it.

    Items are ids from `evidence timeline REF --json` (email:12,
    call:1790579705.312, incident:1) and must be in the case customer's
    timeline. Claims are never edited: --corrects N records a new version.

    Example:

    \b
        evidence case claim ESAVI/31337/2026 --text "queued at least half an hour" \\
            --evidence call:1790579705.312 --evidence call:1790581330.313
    """
    from evidence.cases import add_claim

    with _store() as store:
        claim = add_claim(store, reference, text, list(items), corrects=corrects)
    count = len(claim.item_ids)
    click.echo(
        f"claim #{claim.id} recorded on {reference} ({count} item{'' if count == 1 else 's'})"
    )


# --- reading --------------------------------------------------------------------


@main.command(context_settings=CONTEXT)
@click.argument("ref")
@click.option("--from", "date_from", type=DATE, help=f"First local day ({DATE_FORMS}).")
@click.option("--to", "date_to", type=DATE, help=f"Last local day, inclusive ({DATE_FORMS}).")
@json_option
@handle_errors
def timeline(ref: str, date_from: dt.date | None, date_to: dt.date | None, as_json: bool) -> None:
    """A customer's emails, calls, incidents and agents' pauses in time order.

    Every incident and planned occurrence overlapping the period is shown, and
    each contact is flagged: inside an incident, outside the opening hours set
    in evidence.toml, or normal service (`service_state` in --json).

    Example:

    \b
        evidence timeline 100234 --from 2026-09-28 --to 2026-09-30 --json
    """
    from evidence.render.text import timeline_lines
    from evidence.timeline import customer_timeline, timeline_json

    _in_order(date_from, date_to)
    config = _config()
    with _store() as store, store.session() as session:
        built = customer_timeline(session, config, ref, date_from, date_to)
        if as_json:
            click.echo(json.dumps(timeline_json(built), ensure_ascii=False, indent=2))
            return
        for line in timeline_lines(built, config.zone):
            click.echo(line)
        for erasure in built.erasures:
            click.echo(
                f"{format_local(erasure.erased_at, config.zone)}  ERASED: the customer's "
                f"personal content (erasure #{erasure.id} by {erasure.erased_by}: "
                f"{erasure.reason})"
            )


@main.command(context_settings=CONTEXT)
@click.option(
    "--from", "date_from", required=True, type=DATE, help=f"First local day ({DATE_FORMS})."
)
@click.option(
    "--to", "date_to", type=DATE, help=f"Last local day, inclusive ({DATE_FORMS}; default: --from)."
)
@json_option
@handle_errors
def agents(date_from: dt.date, date_to: dt.date | None, as_json: bool) -> None:
    """Agent availability: who was logged in to the queues and who was paused, and why.

    Replayed from the queue_log's agent events (ADDMEMBER, REMOVEMEMBER, PAUSE,
    UNPAUSE, PAUSEALL, UNPAUSEALL, AGENTLOGIN, AGENTLOGOFF). The first line is
    the state at the start of the period; then one line per change.

    Example:

    \b
        evidence agents --from 2026-09-28 --json
    """
    from evidence.calls import agent_availability
    from evidence.timeline import availability_json, period_bounds

    _in_order(date_from, date_to)
    config = _config()
    start, end = period_bounds(date_from, date_to or date_from, config.zone)
    with _store() as store, store.session() as session:
        changes = agent_availability(session, start, end)
        rows = [availability_json(change) for change in changes]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for change in changes:
        what = (
            f"{change.event} {change.agent}" + (f" ({change.reason})" if change.reason else "")
            if change.event
            else "at the start"
        )
        paused = "".join(f"; {a} paused: {r or '-'}" for a, r in sorted(change.paused.items()))
        click.echo(
            f"{format_local(change.at, config.zone)}  available {len(change.available)} of "
            f"{len(change.logged_in)} logged in  [{what}]{paused}"
        )


@main.group(context_settings=CONTEXT)
def report() -> None:
    """Company-wide reports (counts and durations only, no customer's personal data)."""


@report.command("service", context_settings=CONTEXT)
@click.option(
    "--from", "date_from", required=True, type=DATE, help=f"First local day ({DATE_FORMS})."
)
@click.option(
    "--to", "date_to", type=DATE, help=f"Last local day, inclusive ({DATE_FORMS}; default: --from)."
)
@click.option(
    "--baseline-from",
    type=DATE,
    help=f"First day of the baseline ({DATE_FORMS}; default: 28 days before --from).",
)
@click.option(
    "--baseline-to",
    type=DATE,
    help=f"Last day of the baseline ({DATE_FORMS}; default: the day before --from).",
)
@click.option(
    "--threshold",
    type=click.IntRange(min=0),
    help="Service level: answered within this many seconds "
    "(default: [reports] service_level_threshold in evidence.toml, else 60).",
)
@click.option(
    "--by", type=click.Choice(["day", "hour"]), help="Also give the figures per local day or hour."
)
@json_option
@handle_errors
def report_service(
    date_from: dt.date,
    date_to: dt.date | None,
    baseline_from: dt.date | None,
    baseline_to: dt.date | None,
    threshold: int | None,
    by: str | None,
    as_json: bool,
) -> None:
    """Service figures: calls offered, answered, abandoned, timed out, IVR only, after
    hours; service level and queue waits; callbacks; email reply times.

    Each figure for the whole period, per service state (during an incident,
    outside opening hours, normal service) and for a baseline period. Only
    counts and durations are printed: no customer's number, address or name.

    \b
    Example:
        evidence report service --from 2026-09-28 --to 2026-09-28
        evidence report service --from 2026-09-28 --json --by hour --threshold 30
    """
    from evidence.hours import opening_hours
    from evidence.reports import report_text, service_report, threshold_from_config

    _in_order(date_from, date_to)
    _in_order(baseline_from, baseline_to, "--baseline-from", "--baseline-to")
    config = _config()
    with _store() as store, store.session() as session:
        built = service_report(
            session,
            config.zone,
            date_from,
            date_to or date_from,
            hours=opening_hours(config),
            threshold=threshold if threshold is not None else threshold_from_config(config),
            baseline_from=baseline_from,
            baseline_to=baseline_to,
            by=by,
            rules=MailRules.of(config),
        )
    if as_json:
        click.echo(json.dumps(built.json(), ensure_ascii=False, indent=2))
        return
    for line in report_text(built):
        click.echo(line)


@main.command(context_settings=CONTEXT)
@click.argument("ref", required=False)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(path_type=Path),
    help="Where to write the PDF (or the .zip); an existing file is replaced only with --force.",
)
@click.option("--force", is_flag=True, help="Replace the -o file if it exists.")
@click.option("--from", "date_from", type=DATE, help=f"First local day ({DATE_FORMS}).")
@click.option("--to", "date_to", type=DATE, help=f"Last local day, inclusive ({DATE_FORMS}).")
@click.option(
    "--case", "case_ref", help="Case reference: its authority on the cover, its PDFs appended."
)
@click.option(
    "--generated-at",
    type=TIME,
    help=f"Pin the generation time ({TIME_FORMS}), for reproducible output.",
)
@click.option(
    "--lang",
    "language",
    type=click.Choice(["fi", "sv", "en"]),
    help="Language of the dossier (default: fi, or `language` in evidence.toml).",
)
@click.option("--jobs", type=click.IntRange(1, 64), help="Rendering processes (default: 2).")
@click.option("--no-cache", is_flag=True, help="Render every page again (ignore the page cache).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["pdf", "zip"]),
    default="pdf",
    show_default=True,
    help="zip: the PDF plus originals/, manifest.csv, as a BagIt bag (RFC 8493).",
)
@click.option(
    "--by",
    help="Who exports, for the audit log and the record of exports "
    "(default: EVIDENCE_USER, else login@host).",
)
@handle_errors
def export(
    ref: str | None,
    output: Path,
    force: bool,
    date_from: dt.date | None,
    date_to: dt.date | None,
    case_ref: str | None,
    generated_at: UserTime | None,
    language: str | None,
    jobs: int | None,
    no_cache: bool,
    fmt: str,
    by: str | None,
) -> None:
    """Write a customer's dossier as one PDF (or a ZIP with the originals).

    The dossier has a cover, every email (verbatim), call and incident in
    time order, and the case's PDFs appended whole. The raw originals are
    embedded in the PDF (list them with `pdfdetach -list`), with manifest.json:
    each exhibit's inclusion proof against a checkpoint signed for this export
    (its root is on the cover; see VERIFYING.md). With [signing] in
    evidence.toml the PDF gets a PAdES signature. The export is logged in the
    audit log and in the record of exports, with the output's SHA-256, who
    exported it and the checkpoint the dossier is proved against (see
    `evidence audit`, `evidence exports list`). With --case and neither --from
    nor --to, the case's period is used. An exhibit the renderer cannot lay out
    within the limits ([render] in evidence.toml) gets a placeholder page that
    names its embedded original; the export goes on and names the exhibit on
    stderr.

    Nothing is rendered when -o names an existing file (without --force), a
    folder, or a file in a folder that is missing or not writable, nor for a
    customer whose content was erased.

    Example:

    \b
        evidence export 100234 --case ESAVI/31337/2026 -o dossier.pdf
        evidence export 100234 -o dossier.pdf --force --by "Laura Lakimies"
    """
    from evidence.render.dossier import export_dossier

    if ref is None and case_ref is None:
        raise click.UsageError("give a customer REF or --case REFERENCE")
    _in_order(date_from, date_to)
    config = _config()
    pinned = _at(generated_at, config.zone)
    with _store() as store, _progress("rendering") as progress:
        result = export_dossier(
            store,
            customer_ref=ref,
            output=output,
            date_from=date_from,
            date_to=date_to,
            case_ref=case_ref,
            generated_at=pinned,
            language=language,
            jobs=jobs,
            use_cache=not no_cache,
            progress=progress,
            fmt=fmt,
            force=force,
            by=by,
            as_given={"generated_at": generated_at.text if generated_at else None},
        )
    for placeholder in result.placeholders:
        click.echo(
            f"warning: exhibit {placeholder.describe()}; a placeholder page stands in for it",
            err=True,
        )
    click.echo(
        f"wrote {output} ({result.pages} pages, {result.items} items, SHA-256 {result.sha256})"
    )
    click.echo(
        f"proved against checkpoint #{result.checkpoint_id} (root {result.root})"
        + ("; PDF signed" if result.signed else "")
    )


@main.group(context_settings=CONTEXT)
def exports() -> None:
    """The record of every dossier exported from this store."""


@exports.command("list", context_settings=CONTEXT)
@json_option
@handle_errors
def exports_list(as_json: bool) -> None:
    """List every export: when, by whom, arguments, size and SHA-256 of the output.

    Example:

    \b
        evidence exports list --json
    """
    from evidence.exports import export_json, list_exports

    config = _config()
    with _store() as store:
        rows = list_exports(store)
    if as_json:
        click.echo(json.dumps([export_json(r) for r in rows], ensure_ascii=False, indent=2))
        return
    for r in rows:
        click.echo(
            f"#{r.id}\t{format_local(r.exported_at, config.zone)}\t{r.exported_by}\t"
            f"{r.case_ref or r.customer_ref or '-'}\t{r.format}\t{r.size} bytes\t{r.sha256}"
            f"\t{r.output}"
        )


# --- scheduled logging -----------------------------------------------------------


@main.command(context_settings=CONTEXT)
@json_option
@handle_errors
def sync(as_json: bool) -> None:
    """Import from every source in evidence.toml [sync], then extend planned incidents.

    For cron or a systemd timer. Prints one line per source with its counts
    (quarantined items on stderr). A second run while one is going exits at
    once with code 4. A run killed half-way leaves only whole records; the
    next run adds exactly what is missing.

    Exit codes: 0 done; 1 a source failed (the others still ran) or the
    configuration is wrong; 3 done, some input quarantined; 4 already running.

    Example:

    \b
        */15 * * * *  EVIDENCE_HOME=/srv/evidence evidence sync >> /srv/evidence/sync.log 2>&1
    """
    from evidence.sync import run_sync
    from evidence.timeutil import iso_utc, utcnow

    def log(line: str) -> None:
        if not as_json:
            click.echo(f"{iso_utc(utcnow())} {line}")

    with _store() as store:
        outcome = run_sync(store, log=log)
    for result in outcome.results:
        for message in result.report.messages if result.report else []:
            click.echo(f"  {message}", err=True)
    if as_json:
        click.echo(json.dumps(outcome.as_dict(), ensure_ascii=False, indent=2))
    if outcome.exit_code:
        sys.exit(outcome.exit_code)


@main.command(context_settings=CONTEXT)
@json_option
@handle_errors
def status(as_json: bool) -> None:
    """When each source last synced and what it brought, open incidents,
    quarantined items, each hosted mailbox folder's count on the server beside
    what the store holds from it (at its last import), and whether the store
    verifies.

    Runs the checks of `evidence verify` but one: the database file (SQLite's
    quick check), the hash chain, every record against its ledger entry, the
    append-only triggers and the signed checkpoints. It does not read the blobs'
    bytes (it checks that every cited blob is stored) and says so: `evidence
    verify` hashes them. Exits 5 when a check fails (each problem is listed),
    8 when the database is damaged.

    Example:

    \b
        evidence status --json
    """
    from evidence.errors import IntegrityFailure
    from evidence.status import store_status

    zone = _config().zone

    def local(value: str | None) -> str:
        return format_local(dt.datetime.fromisoformat(value), zone) if value else "never"

    with _store() as store:
        data = store_status(store)
    chain = data["chain"]
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        click.echo(f"store: {data['database']}")
        key = data["signing_key"]
        if key["key_id"]:
            click.echo(
                f"signing key id: {key['key_id']} (publish it: `evidence verify DOSSIER.pdf "
                "--key-id ID` ties a dossier to it)"
            )
        elif key.get("error"):
            click.echo(f"signing key: unreadable: {key['error']}")
        else:
            click.echo(f"signing key: none yet at {key['path']} (`evidence init` creates it)")
        last = data["last_sync"]
        if last is None:
            click.echo("last sync: never")
        else:
            click.echo(
                f"last sync: #{last['id']} started {local(last['started_at'])}, {last['state']}"
                + (f", exit {last['exit_code']}" if last["exit_code"] is not None else "")
            )
        for src in data["sources"]:
            head = f"  {src['kind']} {src['source']}".rstrip()
            if src["last_synced_at"]:
                head += (
                    f": synced {local(src['last_synced_at'])}: imported {src['imported']}, "
                    f"duplicates {src['duplicates']}, quarantined {src['quarantined']}"
                )
            else:
                head += ": never synced"
            if src["last_error"]:
                head += (
                    f"; last attempt {local(src['last_attempt_at'])} FAILED: {src['last_error']}"
                )
            elif src["interrupted"]:
                head += f"; last attempt {local(src['last_attempt_at'])} was interrupted"
            click.echo(head)
        click.echo(f"open incidents: {len(data['open_incidents'])}")
        for inc in data["open_incidents"]:
            click.echo(
                f"  #{inc['number']} since {local(inc['start'])}: {inc['title']}"
                + (" (planned)" if inc["planned"] else "")
            )
        quarantine = data["quarantine"]
        kinds = ", ".join(f"{k} {n}" for k, n in quarantine["by_kind"].items())
        click.echo(
            f"quarantined items: {quarantine['total']}"
            + (f" ({kinds})" if kinds else "")
            + (f"; {quarantine['dismissed']} dismissed" if quarantine["dismissed"] else "")
        )
        for folder in data["reconciliation"]:
            gap = folder["difference"]
            verdict = (
                "matches"
                if gap == 0
                else f"{gap} not in the store"
                if gap > 0
                else f"{-gap} more in the store than on the server (deleted there?)"
            )
            click.echo(
                f"mailbox {folder['mailbox']}: server {folder['server_count']}, "
                f"store {folder['in_store']} at {local(folder['counted_at'])}: {verdict}"
            )
        mail = data["mail"]
        click.echo(
            f"mail domains: {', '.join(mail['domains']) or 'none'}; receiving hosts: "
            f"{', '.join(mail['receiving_hosts']) or 'none (the topmost Received: line)'}"
        )
        if mail["note"]:
            click.echo(f"  note: {mail['note']}")
        click.echo("store checks (those of `evidence verify` except reading the blobs' bytes):")
        for line in chain["checks"]:
            click.echo(f"  ok    {line}")
        for line in chain["not_checked"]:
            click.echo(f"  not checked  {line}")
        for line in chain["notes"]:
            click.echo(f"  note  {line}")
        for problem in chain["problems"]:
            click.echo(f"  FAIL  {problem['subject']}: {problem['problem']}")
        n = len(chain["problems"])
        verdict = (
            "verifies as far as checked"
            if chain["ok"]
            else f"DOES NOT VERIFY ({n} problem{'s' if n != 1 else ''})"
        )
        click.echo(f"store: {verdict}, {chain['entries']} ledger entries, head {chain['head']}")
    if not chain["ok"]:
        sys.exit(IntegrityFailure.exit_code)


# --- verification and audit -------------------------------------------------------

EXIT_NOT_INTACT = 5


def _key_ids(
    _ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> tuple[str, ...]:
    from evidence.verify.dossier import parse_key_id

    try:
        return tuple(parse_key_id(v) for v in values)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


@main.command(context_settings=CONTEXT)
@click.argument(
    "dossier", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--trust",
    "trust",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="PEM certificate of a CA (or TSA) to trust when checking a dossier's signature.",
)
@click.option(
    "--previous",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="An earlier dossier of the same store: check its log is a prefix of this one's.",
)
@click.option(
    "--key-id",
    "key_ids",
    multiple=True,
    callback=_key_ids,
    metavar="HEX",
    help="The id of the company's key (as `evidence status` prints it, and the company "
    "publishes it): the dossier must be signed with it (repeatable: any of them).",
)
@json_option
@handle_errors
def verify(
    dossier: Path | None,
    trust: tuple[Path, ...],
    previous: tuple[Path, ...],
    key_ids: tuple[str, ...],
    as_json: bool,
) -> None:
    """Prove the store, or a dossier PDF, is untouched.

    Without an argument: recompute every blob's SHA-256, the ledger's hash chain
    and Merkle tree, every record against its ledger entry, the append-only
    triggers and every signed checkpoint. With a PDF: check it on its own (no
    store needed): the embedded originals against its manifest, each inclusion
    proof against the checkpoint printed on the cover, the checkpoint's
    signature, every page against the digests signed with the store's key
    (pages.json: a page removed, added, reordered or changed is named) and the
    PDF's signature; with --previous, that an earlier dossier's log is a prefix
    of this one's. Anyone can make a key: only --key-id with the id the company
    publishes ties the dossier to the company (without it, the id found is
    printed). Each verification is kept in the audit log when a store is at
    hand. Exit code 5 means something failed; every failure is named.

    Example:

    \b
        evidence verify
        evidence verify dossier.pdf --key-id "$COMPANY_KEY_ID" --trust company-ca.pem
        evidence verify dossier-2.pdf --previous dossier-1.pdf
    """
    from evidence.verify.audit import record_verification

    if dossier is None and (key_ids or trust or previous):
        raise click.UsageError("--key-id, --trust and --previous check a dossier: give its PDF")
    if dossier is None:
        from evidence.verify.store import verify_store

        with _store() as store:
            report = verify_store(store)
            record_verification(store, report)
    else:
        from evidence.verify.dossier import verify_dossier

        report = verify_dossier(
            dossier, trusted_certificates=list(trust), previous=list(previous), key_ids=key_ids
        )
        _record_if_store(report)
    if as_json:
        # Sorted keys: the SHA-256 of this output is the one the audit log records.
        click.echo(json.dumps(report.as_dict(), sort_keys=True, ensure_ascii=False, indent=2))
    else:
        for line in report.lines():
            click.echo(line)
    if not report.intact:
        sys.exit(EXIT_NOT_INTACT)


@main.command(context_settings=CONTEXT)
@click.argument("dest", type=click.Path(file_okay=True, dir_okay=True, path_type=Path))
@click.option("--force", is_flag=True, help="Replace DEST when it is an earlier backup.")
@json_option
@handle_errors
def backup(dest: Path, force: bool, as_json: bool) -> None:
    """Copy the store to the new folder DEST while it is in use, verify the copy,
    and print the checkpoint it holds.

    The SQLite database is copied with SQLite's online backup API (one consistent
    state, even while an import runs), with the files in EVIDENCE_HOME the store
    needs (evidence.toml, the checkpoint key and other keys and certificates). The
    copy is opened and checked as `evidence verify` checks a store before it is
    renamed to DEST. To restore, make a copy of DEST the EVIDENCE_HOME. An existing
    DEST is refused unless --force (and then only an earlier backup). A PostgreSQL
    store is backed up with pg_dump (README, "Backups and restore"). Exit 5 when
    the copy does not verify (the backup is kept: it holds what the store holds).

    Example:

    \b
        evidence backup /mnt/backup/evidence-2026-12-06
        evidence backup /mnt/backup/evidence-latest --force --json
    """
    from evidence.backup import backup_store

    result = backup_store(_config(), dest, force=force)
    if as_json:
        click.echo(json.dumps(result.as_dict(), ensure_ascii=False, indent=2))
    else:
        data = result.as_dict()
        others = ", ".join(result.files[1:])
        click.echo(
            f"backup: {result.dest} ({'replaced; ' if result.replaced else ''}"
            f"{result.files[0]} {result.database_bytes:,} bytes"
            + (f"; {others}" if others else "")
            + ")"
        )
        for line in result.report.lines()[1:-1]:
            click.echo(line)
        root = data["root"] or "none (an entry is missing: see the failures above)"
        click.echo(
            f"checkpoint: {data['tree_size']} ledger entries, Merkle root {root}; "
            f"chain head #{result.head_seq} {result.head_hash}"
        )
        last = data["last_checkpoint"]
        if last is not None:
            click.echo(
                f"last signed checkpoint: #{last['id']}, {last['tree_size']} entries, "
                f"root {last['root']}"
            )
        click.echo(
            "INTACT: the copy verifies"
            if result.intact
            else "NOT INTACT: the copy holds what the store holds: run `evidence verify`"
        )
    if not result.intact:
        sys.exit(EXIT_NOT_INTACT)


def _record_if_store(report: Any) -> None:
    """A dossier check needs no store; when there is one, the check is logged in it."""
    from evidence.errors import StoreNotInitialised, StoreOutdated
    from evidence.verify.audit import record_verification

    try:
        store = open_store(_config())
    except (StoreNotInitialised, StoreOutdated):
        return
    try:
        record_verification(store, report)
    finally:
        store.close()


@main.command(context_settings=CONTEXT)
@json_option
@handle_errors
def audit(as_json: bool) -> None:
    """List the audit log: every export, verification and correction, oldest first.

    Each event is itself a record in the ledger (its leaf index is shown), so
    it is covered by the signed checkpoints like the evidence.

    Example:

    \b
        evidence audit --json
    """
    from evidence.store.audit import event_json, list_events

    config = _config()
    with _store() as store, store.session() as session:
        events = list_events(session)
        rows = [event_json(e, leaf) for e, leaf in events]
        if as_json:
            click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
            return
        for event, _leaf in events:
            digest = f"  SHA-256 {event.output_sha256}" if event.output_sha256 else ""
            click.echo(
                f"#{event.id}\t{format_local(event.at, config.zone)}\t{event.action}\t"
                f"{event.actor}\t{event.subject}{digest}"
            )


# --- the legal desk ----------------------------------------------------------------


@main.group(context_settings=CONTEXT)
def user() -> None:
    """Users of the legal desk (`evidence serve`) and their roles.

    Roles: viewer reads timelines, cases and dossiers; agent also logs
    incidents; legal also opens cases, attaches, claims, exports; admin also
    manages users.
    """


@user.command("add", context_settings=CONTEXT)
@click.argument("name")
@click.option(
    "--role",
    required=True,
    type=click.Choice(["viewer", "agent", "legal", "admin"]),
    help="What the user may do.",
)
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from standard input (else it is asked for, hidden; without a "
    "terminal, the user signs in only through the trusted proxy).",
)
@click.option(
    "--lang",
    "language",
    type=click.Choice(["fi", "sv", "en"]),
    default="fi",
    show_default=True,
    help="The desk's language for this user.",
)
@handle_errors
def user_add(name: str, role: str, password_stdin: bool, language: str) -> None:
    """Add a user of the desk; the password is hashed with argon2.

    Example:

    \b
        evidence user add laura --role legal
        printf '%s\\n' "$PASSWORD" | evidence user add crm --role legal --password-stdin
    """
    from evidence.users import add_user

    password: str | None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif sys.stdin.isatty():
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    else:
        password = None
    with _store() as store:
        added = add_user(store, name, role=role, password=password, language=language)
    click.echo(f"user {added.name} added ({added.role})")


@user.command("list", context_settings=CONTEXT)
@json_option
@handle_errors
def user_list(as_json: bool) -> None:
    """List the desk's users and their roles.

    Example:

    \b
        evidence user list --json
    """
    from evidence.users import list_users

    with _store() as store:
        users = list_users(store)
    if as_json:
        click.echo(json.dumps([u.as_dict() for u in users], ensure_ascii=False, indent=2))
        return
    for u in users:
        click.echo(f"{u.name}\t{u.role}\t{u.language}" + ("\tdisabled" if u.disabled else ""))


@user.command("disable", context_settings=CONTEXT)
@click.argument("name")
@handle_errors
def user_disable(name: str) -> None:
    """Disable a user: no more sign-in, and their API tokens stop working.

    Example:

    \b
        evidence user disable laura
    """
    from evidence.users import disable_user

    with _store() as store:
        disable_user(store, name)
    click.echo(f"user {name} disabled")


@main.group(context_settings=CONTEXT)
def token() -> None:
    """API tokens of the desk's JSON API."""


@token.command("create", context_settings=CONTEXT)
@click.argument("name")
@click.option(
    "--expires", type=click.IntRange(min=1), help="Days until it expires (default never)."
)
@json_option
@handle_errors
def token_create(name: str, expires: int | None, as_json: bool) -> None:
    """Make an API token for user NAME and print it once (only its hash is kept).

    Example:

    \b
        evidence token create crm --expires 365
        curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8080/api/cases
    """
    from evidence.users import create_token

    with _store() as store:
        made = create_token(store, name, expires_days=expires)
    if as_json:
        click.echo(json.dumps(made.as_dict(), ensure_ascii=False, indent=2))
        return
    click.echo(made.token)


@main.command(context_settings=CONTEXT)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8080,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="Port to listen on.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    help="Server processes (default: [desk] workers in evidence.toml, else 2).",
)
@handle_errors
def serve(host: str, port: int, workers: int | None) -> None:
    """Serve the legal desk (web pages and JSON API) with gunicorn.

    Sessions are signed with EVIDENCE_SECRET_KEY, else desk-secret.key made by
    `evidence init`. On SQLite the server runs queued exports itself (in an
    `evidence worker` process it starts and stops); on PostgreSQL run
    `evidence worker` (any number, anywhere) to run them.
    Settings: [desk] in evidence.toml (see README, "The legal desk").

    Example:

    \b
        evidence serve --host 127.0.0.1 --port 8080
    """
    from evidence.web.server import serve as run

    config = _config()
    click.echo(f"the desk is at http://{host}:{port}/", err=True)
    run(config, host, port, workers)


@main.command(context_settings=CONTEXT)
@handle_errors
def worker() -> None:
    """Run the desk's queued exports (PostgreSQL); stop with Ctrl-C or SIGTERM.

    Any number of workers, on any machine that reaches the database (through
    procrastinate). A job whose worker was killed is run again (3 tries) or
    failed with the reason. Runs at a lower CPU priority (nice 10). On SQLite,
    `evidence serve` starts one itself.

    Example:

    \b
        EVIDENCE_DATABASE_URL=postgresql+psycopg://... evidence worker
    """
    from evidence.jobs import run_worker

    with _store() as store:
        run_worker(store, log=lambda line: click.echo(line, err=True))


if __name__ == "__main__":  # pragma: no cover
    main()
