"""The ``evidence`` command: parses arguments and calls the library. Nothing else lives here.

Exit codes: 0 done; 1 error; 2 usage; 3 done, but some input was quarantined.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from evidence import __version__
from evidence.config import Config, load_config, write_initial_config
from evidence.errors import EvidenceError
from evidence.ingest import ImportReport
from evidence.store.db import Store, open_store, upgrade
from evidence.timeutil import format_local, parse_user_date, parse_user_time

EXIT_QUARANTINED = 3
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

F = TypeVar("F", bound=Callable[..., Any])


def _fail(message: str, code: int = 1) -> None:
    click.echo(f"evidence: {message}", err=True)
    sys.exit(code)


def handle_errors(func: F) -> F:
    """Our errors become one line on stderr and their exit code, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except EvidenceError as exc:
            _fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted; what was committed before stays", 130)
        except OSError as exc:
            _fail(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))

    return wrapper  # type: ignore[return-value]


def _config() -> Config:
    return load_config()


@contextmanager
def _store() -> Iterator[Store]:
    store = open_store(_config())
    try:
        yield store
    finally:
        store.close()


def _date(value: str | None) -> dt.date | None:
    return parse_user_date(value) if value else None


def _finish_import(report: ImportReport, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
    else:
        for line in report.messages:
            click.echo(f"  {line}", err=True)
        click.echo(report.summary())
    if report.quarantined:
        sys.exit(EXIT_QUARANTINED)


@contextmanager
def _progress(label: str, total: int | None = None) -> Iterator[Callable[[int], None] | None]:
    """A progress bar on a terminal; silent when stderr is a pipe or a file."""
    if not sys.stderr.isatty():
        yield None
        return
    with click.progressbar(
        length=total or 0, label=label, file=sys.stderr, show_pos=True, show_eta=bool(total)
    ) as bar:
        yield bar.update


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, prog_name="evidence")
def main() -> None:
    """Keep an append-only store of customer emails, calls and incidents, and
    export a regulator-ready PDF dossier of one customer's history.

    The store lives in EVIDENCE_HOME (default ~/.local/share/evidence);
    EVIDENCE_DATABASE_URL points at PostgreSQL instead of the embedded SQLite;
    EVIDENCE_TIMEZONE (default Europe/Helsinki) is the zone of local times.

    Example:

        evidence init --company "Aurora Energia Oy" --mail-domain aurora-energia.example
        evidence customer add 100234 --name "Matti Virtanen" --email matti@example.net
        evidence import mail ~/Maildir/export.mbox
        evidence export 100234 -o dossier.pdf
    """


@main.command(context_settings=CONTEXT)
@click.option("--company", help="Company name for the dossier cover (first init only).")
@click.option(
    "--mail-domain",
    "mail_domains",
    multiple=True,
    help="The company's own mail domain; mail from it is outbound. Repeatable.",
)
@click.option("--timezone", help="IANA zone of local times (first init only).")
@handle_errors
def init(company: str | None, mail_domains: tuple[str, ...], timezone: str | None) -> None:
    """Create the store, or upgrade an older one to this version's schema.

    Safe to run again at any time. On the first run, --company, --mail-domain
    and --timezone are written to evidence.toml in EVIDENCE_HOME.

    Example:

        evidence init --company "Aurora Energia Oy" --mail-domain aurora-energia.example
    """
    config = _config()
    config.home.mkdir(parents=True, exist_ok=True, mode=0o700)
    written = write_initial_config(config.home, company, list(mail_domains), timezone)
    config = _config()
    upgrade(config)
    click.echo(f"store ready: {config.database_url}")
    if written:
        click.echo(f"settings written to {written}")


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

        evidence customer add 100234 --name "Matti Virtanen" \\
            --email matti.virtanen@example.net --phone "040 123 4567"
    """
    from evidence.customers import add_customer

    with _store() as store:
        added = add_customer(store, ref, name, list(emails), list(phones))
        ids = ", ".join(i.value for i in added.identifiers) or "no identifiers yet"
        click.echo(f"customer {added.ref} ({added.name}): {ids}")


@customer.command("list", context_settings=CONTEXT)
@json_option
@handle_errors
def customer_list(as_json: bool) -> None:
    """List customers with their identifiers.

    Example:

        evidence customer list --json
    """
    from evidence.customers import list_customers

    with _store() as store:
        rows = [
            {"ref": c.ref, "name": c.name, "identifiers": [i.value for i in c.identifiers]}
            for c in list_customers(store)
        ]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for row in rows:
        click.echo(f"{row['ref']}\t{row['name']}\t{', '.join(row['identifiers'])}")


# --- imports --------------------------------------------------------------------


@main.group("import", context_settings=CONTEXT)
def import_() -> None:
    """Import mail, phone-system logs and recordings.

    Exit code 3 means the import finished but some input was quarantined
    (see the lines printed on stderr).
    """


@import_.command("mail", context_settings=CONTEXT)
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@json_option
@handle_errors
def import_mail_cmd(paths: tuple[Path, ...], as_json: bool) -> None:
    """Import .eml files, directories of them, and mbox files.

    The kind of each file is detected from its content. A message already
    in the store (from any file) is counted as a duplicate and not stored
    again. Input that is not mail is quarantined with the reason.

    Example:

        evidence import mail saved/*.eml export-2026-09-29.mbox
    """
    from evidence.ingest.mail import import_mail

    with _store() as store, _progress("importing mail") as progress:
        report = import_mail(store, list(paths), progress=progress)
    _finish_import(report, as_json)


@import_.command("calls", context_settings=CONTEXT)
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    required=True,
    type=click.Choice(["asterisk-cdr", "asterisk-queue-log", "freeswitch-cdr", "csv"]),
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
    is refused with the format it looks like.

    Example:

        evidence import calls /var/log/asterisk/cdr-csv/Master.csv --format asterisk-cdr
        evidence import calls /var/log/asterisk/queue_log --format asterisk-queue-log
        evidence import calls Master.csv --format freeswitch-cdr
        evidence import calls export.csv --format csv --mapping cloud-pbx.toml
    """
    from evidence.ingest.phonelog import import_calls

    with _store() as store, _progress(f"importing {path.name}") as progress:
        report = import_calls(store, path, fmt, utc=utc, mapping=mapping, progress=progress)
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


# --- incidents ------------------------------------------------------------------


@main.group(context_settings=CONTEXT)
def incident() -> None:
    """Incidents that explain gaps in service (evacuations, outages, storms)."""


@incident.command("add", context_settings=CONTEXT)
@click.option("--start", required=True, help="Local time (EVIDENCE_TIMEZONE) or ISO with offset.")
@click.option("--end", help="Local time or ISO with offset; omit while it is still going on.")
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
@click.option("--logged-at", help="When it was logged, if not now (the store also keeps now).")
@handle_errors
def incident_add(
    start: str,
    end: str | None,
    title: str,
    channels: tuple[str, ...],
    note: str | None,
    logged_by: str,
    logged_at: str | None,
) -> None:
    """Record an incident that happened (or is happening).

    The store keeps both the time you give with --logged-at and the time it
    was actually entered, so a past incident entered today says so.

    Example:

        evidence incident add --start "2026-09-28 10:02" --end "2026-09-28 14:11" \\
            --title "Toimitalo tyhjennetty uhkatilanteen vuoksi" \\
            --channel phone --channel email \\
            --logged-by "Kaisa Lehtonen (esihenkilö)" --logged-at "2026-09-28 14:25"
    """
    from evidence.incidents import add_incident

    config = _config()
    zone = config.zone
    with _store() as store:
        created = add_incident(
            store,
            title=title,
            start=parse_user_time(start, zone),
            end=parse_user_time(end, zone) if end else None,
            channels=list(channels),
            note=note,
            logged_by=logged_by,
            logged_at=parse_user_time(logged_at, zone) if logged_at else None,
        )
    click.echo(
        f"incident #{created.id}: {created.title}, {format_local(created.start, zone)}"
        f" - {format_local(created.end, zone)}"
    )


@incident.command("list", context_settings=CONTEXT)
@json_option
@handle_errors
def incident_list(as_json: bool) -> None:
    """List incidents (current versions).

    Example:

        evidence incident list --json
    """
    from evidence.incidents import current_incidents
    from evidence.timeline import Item, item_json

    config = _config()
    with _store() as store, store.session() as session:
        rows = current_incidents(session)
        payload = [item_json(Item("incident", i.start, f"incident:{i.id}", i)) for i in rows]
    if as_json:
        click.echo(json.dumps(payload, ensure_ascii=False, indent=2))
        return
    for i in rows:
        click.echo(
            f"#{i.id}\t{format_local(i.start, config.zone)} - {format_local(i.end, config.zone)}"
            f"\t{i.title}"
        )


# --- cases ----------------------------------------------------------------------


@main.group(context_settings=CONTEXT)
def case() -> None:
    """Cases: a regulator's request about a customer, and its legal PDFs."""


@case.command("open", context_settings=CONTEXT)
@click.argument("reference")
@click.option("--customer", "customer_ref", required=True, help="Customer reference.")
@click.option("--authority", required=True, help="Who asks, e.g. 'Etelä-Suomen AVI'.")
@click.option("--received", help="Date the request arrived (YYYY-MM-DD).")
@click.option("--deadline", help="Date the answer is due (YYYY-MM-DD).")
@handle_errors
def case_open(
    reference: str, customer_ref: str, authority: str, received: str | None, deadline: str | None
) -> None:
    """Open a case for a customer.

    Example:

        evidence case open ESAVI/31337/2026 --customer 100234 \\
            --authority "Etelä-Suomen aluehallintovirasto" --received 2026-10-20
    """
    from evidence.cases import open_case

    with _store() as store:
        opened = open_case(
            store,
            reference,
            customer_ref=customer_ref,
            authority=authority,
            received=_date(received),
            deadline=_date(deadline),
        )
    click.echo(f"case {opened.reference} opened")


@case.command("attach", context_settings=CONTEXT)
@click.argument("reference")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--title", required=True, help="What the document is.")
@click.option("--date", "document_date", help="The document's own date (YYYY-MM-DD).")
@handle_errors
def case_attach(reference: str, file: Path, title: str, document_date: str | None) -> None:
    """Attach a PDF (the regulator's letter, a reply) to a case, byte-exact.

    Example:

        evidence case attach ESAVI/31337/2026 selvityspyynto.pdf --title "Selvityspyyntö"
    """
    from evidence.cases import attach_document

    with _store() as store:
        document = attach_document(
            store, reference, file, title=title, document_date=_date(document_date)
        )
    click.echo(f"attached {document.filename} to {reference} (SHA-256 {document.sha256})")


@case.command("show", context_settings=CONTEXT)
@click.argument("reference")
@json_option
@handle_errors
def case_show(reference: str, as_json: bool) -> None:
    """Show a case and its documents.

    Example:

        evidence case show ESAVI/31337/2026
    """
    from evidence.cases import get_case

    with _store() as store:
        found = get_case(store, reference)
        documents = [
            {"title": d.title, "filename": d.filename, "size": d.size, "sha256": d.sha256}
            for d in found.documents
        ]
        data = {
            "reference": found.reference,
            "customer": found.customer.ref,
            "authority": found.authority,
            "received": found.received.isoformat() if found.received else None,
            "deadline": found.deadline.isoformat() if found.deadline else None,
            "documents": documents,
        }
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    click.echo(f"{found.reference}: customer {found.customer.ref}, {found.authority}")
    click.echo(f"received {data['received'] or '-'}, deadline {data['deadline'] or '-'}")
    for doc in documents:
        click.echo(f"  {doc['title']}: {doc['filename']} ({doc['size']} bytes) {doc['sha256']}")


# --- reading --------------------------------------------------------------------


@main.command(context_settings=CONTEXT)
@click.argument("ref")
@click.option("--from", "date_from", help="First local day (YYYY-MM-DD).")
@click.option("--to", "date_to", help="Last local day, inclusive (YYYY-MM-DD).")
@json_option
@handle_errors
def timeline(ref: str, date_from: str | None, date_to: str | None, as_json: bool) -> None:
    """A customer's emails, calls, incidents and agents' pauses in time order.

    Example:

        evidence timeline 100234 --from 2026-09-28 --to 2026-09-30 --json
    """
    from evidence.render.text import timeline_lines
    from evidence.timeline import build_timeline, timeline_json

    config = _config()
    with _store() as store, store.session() as session:
        built = build_timeline(session, ref, config.zone, _date(date_from), _date(date_to))
        if as_json:
            click.echo(json.dumps(timeline_json(built), ensure_ascii=False, indent=2))
            return
        for line in timeline_lines(built, config.zone):
            click.echo(line)


@main.command(context_settings=CONTEXT)
@click.option("--from", "date_from", required=True, help="First local day (YYYY-MM-DD).")
@click.option("--to", "date_to", help="Last local day, inclusive (default: --from).")
@json_option
@handle_errors
def agents(date_from: str, date_to: str | None, as_json: bool) -> None:
    """Agent availability: who was logged in to the queues and who was paused, and why.

    Replayed from the queue_log's agent events (ADDMEMBER, REMOVEMEMBER, PAUSE,
    UNPAUSE, PAUSEALL, UNPAUSEALL, AGENTLOGIN, AGENTLOGOFF). The first line is
    the state at the start of the period; then one line per change.

    Example:

        evidence agents --from 2026-09-28 --json
    """
    from evidence.calls import agent_availability
    from evidence.timeline import availability_json, period_bounds

    config = _config()
    first = _date(date_from)
    start, end = period_bounds(first, _date(date_to) or first, config.zone)
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


@main.command(context_settings=CONTEXT)
@click.argument("ref", required=False)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the PDF.",
)
@click.option("--from", "date_from", help="First local day (YYYY-MM-DD).")
@click.option("--to", "date_to", help="Last local day, inclusive (YYYY-MM-DD).")
@click.option(
    "--case", "case_ref", help="Case reference: its authority on the cover, its PDFs appended."
)
@click.option("--generated-at", help="Pin the generation time (ISO 8601), for reproducible output.")
@handle_errors
def export(
    ref: str | None,
    output: Path,
    date_from: str | None,
    date_to: str | None,
    case_ref: str | None,
    generated_at: str | None,
) -> None:
    """Write a customer's dossier as one PDF.

    The dossier has a cover, every email (verbatim), call and incident in
    time order, and the case's PDFs appended whole. The raw originals are
    embedded in the PDF (list them with `pdfdetach -list`).

    Example:

        evidence export 100234 --case ESAVI/31337/2026 -o dossier.pdf
    """
    from evidence.render.dossier import export_dossier

    config = _config()
    if ref is None and case_ref is None:
        raise click.UsageError("give a customer REF or --case REFERENCE")
    pinned = parse_user_time(generated_at, config.zone) if generated_at else None
    with _store() as store:
        result = export_dossier(
            store,
            customer_ref=ref,
            output=output,
            date_from=_date(date_from),
            date_to=_date(date_to),
            case_ref=case_ref,
            generated_at=pinned,
        )
    click.echo(
        f"wrote {output} ({result.pages} pages, {result.items} items, SHA-256 {result.sha256})"
    )


if __name__ == "__main__":  # pragma: no cover
    main()
