"""Incidents: logged, started, ended, corrected and planned."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

import click

from evidence.cli.base import (
    INCIDENT,
    TIME,
    at_zone,
    attach_option,
    channel_option,
    current_config,
    echo_json,
    json_option,
    main,
)
from evidence.service import incidents
from evidence.service.incidents import IncidentVersion
from evidence.service.result import as_list
from evidence.timeutil import TIME_FORMS, UserTime, format_local

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo


@main.group()
def incident() -> None:
    """Incidents that explain gaps in service (evacuations, outages, storms).

    INCIDENT is the id `incident list --json` prints (incident:7) or the number
    the listings show (7, #7).
    """


@incident.command("add")
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
    config = current_config()
    zone = config.zone
    created = incidents.add_incident(
        config,
        title=title,
        start=start.at(zone),
        end=at_zone(end, zone),
        channels=channels,
        note=note,
        logged_by=logged_by,
        logged_at=at_zone(logged_at, zone),
        attachments=attachments,
    )
    click.echo(
        f"incident #{created.number}: {created.title}, {format_local(created.start, zone)}"
        f" - {format_local(created.end, zone)}"
    )
    _say_recorded(created, zone)


@incident.command("start")
@click.option("--title", required=True, help="What is happening.")
@channel_option
@click.option("--note", help="Longer explanation.")
@click.option("--logged-by", required=True, help="Who logs it.")
@attach_option
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
    config = current_config()
    zone = config.zone
    created = incidents.start_incident(
        config,
        title=title,
        channels=channels,
        note=note,
        logged_by=logged_by,
        attachments=attachments,
    )
    click.echo(
        f"incident #{created.number} started {format_local(created.start, zone)}: {created.title}"
    )


@incident.command("end")
@click.argument("number", type=INCIDENT)
@click.option("--at", "at", type=TIME, help=f"When it ended, if not now ({TIME_FORMS}).")
@click.option("--by", help="Who ends it.")
@attach_option
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
    config = current_config()
    zone = config.zone
    ended = incidents.end_incident(
        config,
        number,
        at=at_zone(at, zone),
        by=by,
        attachments=attachments,
    )
    click.echo(f"incident #{ended.number} ended {format_local(ended.end, zone)}: {ended.title}")
    _say_recorded(ended, zone, ended.end)


@incident.command("correct")
@click.argument("number", type=INCIDENT)
@click.option("--reason", required=True, help="Why it is corrected (shown in the dossier).")
@click.option("--by", required=True, help="Who corrects it.")
@click.option("--start", type=TIME, help=f"The right start ({TIME_FORMS}).")
@click.option("--end", type=TIME, help=f"The right end ({TIME_FORMS}).")
@click.option("--title", help="The right title.")
@channel_option
@click.option("--note", help="The right note.")
@attach_option
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
    config = current_config()
    zone = config.zone
    corrected = incidents.correct_incident(
        config,
        number,
        reason=reason,
        by=by,
        start=at_zone(start, zone),
        end=at_zone(end, zone),
        title=title,
        channels=channels or None,
        note=note,
        attachments=attachments,
    )
    click.echo(
        f"incident #{corrected.number} corrected (version {corrected.id} replaces "
        f"{corrected.corrects}): {format_local(corrected.start, zone)} - "
        f"{format_local(corrected.end, zone)}"
    )


@incident.command("plan")
@click.option("--title", required=True, help="What is planned (maintenance, training...).")
@click.option("--start", required=True, type=TIME, help=f"First occurrence's start ({TIME_FORMS}).")
@click.option("--end", required=True, type=TIME, help=f"First occurrence's end ({TIME_FORMS}).")
@click.option("--rrule", "rrule_text", help='RFC 5545 recurrence, e.g. "FREQ=WEEKLY;BYDAY=FR".')
@channel_option
@click.option("--note", help="Longer explanation.")
@click.option("--logged-by", required=True, help="Who plans it.")
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
    config = current_config()
    zone = config.zone
    plan = incidents.plan_incident(
        config,
        title=title,
        start=start.at(zone),
        end=end.at(zone),
        rrule_text=rrule_text,
        channels=channels,
        note=note,
        logged_by=logged_by,
    )
    click.echo(
        f"plan #{plan.id}: {plan.title}, {plan.occurrences} occurrence(s) stored up to "
        f"{plan.horizon_days} days ahead"
    )


@incident.command("list")
@click.option("--open", "only_open", is_flag=True, help="Only incidents going on now.")
@json_option
def incident_list(only_open: bool, as_json: bool) -> None:
    """List incidents (current versions), planned occurrences included.

    Example:

    \b
        evidence incident list --open --json
    """
    config = current_config()
    views = incidents.list_incidents(config, only_open=only_open)
    if as_json:
        echo_json(as_list(views))
        return
    for view in views:
        i = view.current
        marks = ("  (planned)" if view.planned else "") + (
            "  (corrected)" if any(v.change == "corrected" for v in view.versions) else ""
        )
        click.echo(
            f"#{i.number}\t{format_local(i.start, config.zone)} - "
            f"{format_local(i.end, config.zone)}\t{i.title}{marks}"
        )


@incident.command("show")
@click.argument("number", type=INCIDENT)
@json_option
def incident_show(number: int, as_json: bool) -> None:
    """Show an incident with every version and its attached files.

    INCIDENT: incident:7 (the id `--json` prints), 7 or #7.

    Example:

    \b
        evidence incident show 7
    """
    config = current_config()
    zone = config.zone
    view = incidents.show_incident(config, number)
    if as_json:
        echo_json(view.as_dict())
        return
    i = view.current
    click.echo(f"incident #{i.number}: {i.title}")
    click.echo(f"  period: {format_local(i.start, zone)} - {format_local(i.end, zone)}")
    click.echo(f"  channels: {', '.join(view.channels)}")
    if view.planned is not None:
        click.echo(f"  planned: {view.planned}")
    if view.note:
        click.echo(f"  note: {view.note}")
    click.echo(f"  logged by {i.logged_by} at {format_local(i.logged_at, zone)}")
    click.echo("  versions:")
    for v in view.versions:
        click.echo(
            f"    {v.id} {v.change}, recorded {format_local(v.recorded_at, zone)}"
            + (f" by {v.changed_by}" if v.changed_by else "")
            + f": {format_local(v.start, zone)} - {format_local(v.end, zone)}"
            + (f"; reason: {v.correction_reason}" if v.correction_reason else "")
        )
    for a in view.attachments:
        click.echo(f"  attached: {a.filename} ({a.size} bytes) SHA-256 {a.sha256}")


def _say_recorded(
    incident: IncidentVersion, zone: ZoneInfo, claimed: dt.datetime | None = None
) -> None:
    """Say so when what was typed is earlier than now: nothing is back-dated silently."""
    claimed = claimed or incident.logged_at
    if incident.recorded_at - claimed > dt.timedelta(minutes=10):
        click.echo(
            f"note: entered {format_local(incident.recorded_at, zone)}; "
            "the dossier shows that it was recorded afterwards"
        )
