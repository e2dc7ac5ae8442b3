"""Reading the store: a customer's timeline, agents' figures and the service report."""

from __future__ import annotations

import datetime as dt

import click

from evidence.cli.base import DATE, current_config, echo_json, in_order, json_option, main
from evidence.service import reading
from evidence.timeutil import DATE_FORMS, format_local


@main.command()
@click.argument("ref")
@click.option("--from", "date_from", type=DATE, help=f"First local day ({DATE_FORMS}).")
@click.option("--to", "date_to", type=DATE, help=f"Last local day, inclusive ({DATE_FORMS}).")
@json_option
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
    from evidence.timeline.history import timeline_json

    in_order(date_from, date_to)
    config = current_config()
    with reading.customer_timeline(config, ref, date_from, date_to) as built:
        if as_json:
            echo_json(timeline_json(built))
            return
        for line in timeline_lines(built, config.zone):
            click.echo(line)
        for erasure in built.erasures:
            click.echo(
                f"{format_local(erasure.erased_at, config.zone)}  ERASED: the customer's "
                f"personal content (erasure #{erasure.id} by {erasure.erased_by}: "
                f"{erasure.reason})"
            )


@main.command()
@click.option(
    "--from", "date_from", required=True, type=DATE, help=f"First local day ({DATE_FORMS})."
)
@click.option(
    "--to", "date_to", type=DATE, help=f"Last local day, inclusive ({DATE_FORMS}; default: --from)."
)
@json_option
def agents(date_from: dt.date, date_to: dt.date | None, as_json: bool) -> None:
    """Agent availability: who was logged in to the queues and who was paused, and why.

    Replayed from the queue_log's agent events (ADDMEMBER, REMOVEMEMBER, PAUSE,
    UNPAUSE, PAUSEALL, UNPAUSEALL, AGENTLOGIN, AGENTLOGOFF). The first line is
    the state at the start of the period; then one line per change.

    Example:

    \b
        evidence agents --from 2026-09-28 --json
    """
    from evidence.timeline.history import availability_json

    in_order(date_from, date_to)
    config = current_config()
    changes = reading.agent_availability(config, date_from, date_to)
    if as_json:
        echo_json([availability_json(change) for change in changes])
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


@main.group()
def report() -> None:
    """Company-wide reports (counts and durations only, no customer's personal data)."""


@report.command("service")
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
    from evidence.timeline.reports import report_text

    in_order(date_from, date_to)
    in_order(baseline_from, baseline_to, "--baseline-from", "--baseline-to")
    built = reading.service_report(
        current_config(),
        date_from,
        date_to,
        baseline_from=baseline_from,
        baseline_to=baseline_to,
        threshold=threshold,
        by=by,
    )
    if as_json:
        echo_json(built.json())
        return
    for line in report_text(built):
        click.echo(line)
