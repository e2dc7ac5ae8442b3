"""The front matter after the cover: claims, summary (with the chart), reachability (with
the evidence of absence) and completeness.

The figures come from ``evidence.timeline.summary`` and ``evidence.timeline.completeness``
as numbers and item ids; this module turns them into sentences in the dossier's language, with
the item ids turned into exhibit numbers that link to the exhibits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from babel.numbers import format_decimal

from evidence.domain import outcome_label, service_state_label
from evidence.records.customers import Identity, Period
from evidence.render.chart import (
    ChartLabels,
    HourBar,
    ServiceChartLabels,
    service_chart,
    timeline_chart,
)
from evidence.render.i18n import Formatter
from evidence.render.views import exhibit_number
from evidence.store.models import Claim, IdentifierKind
from evidence.timeline.calls import ANSWERED, Call
from evidence.timeline.completeness import Completeness, Reconciliation
from evidence.timeline.history import Item, Timeline
from evidence.timeline.mailfacts import MailRules, describe_rules
from evidence.timeline.reports import CustomerAttempt, CustomerReachability, Figures
from evidence.timeline.summary import CallFigures, EmailFigures, Fact, Summary

MAX_LINKS = 12


def _links(ids: Sequence[str], exhibit_of: dict[str, str]) -> list[str]:
    return [exhibit_of[i] for i in ids if i in exhibit_of]


def fact_sentence(fact: Fact, fmt: Formatter, _: Callable[[str], str]) -> str:
    duration = fmt.duration(fact.value) if fact.value is not None else _("ongoing")
    texts = {
        "calls": _("{n} calls"),
        "calls_answered": _("{n} answered"),
        "calls_unanswered": _("{n} not answered"),
        "calls_in_incident": _("{n} calls during an incident"),
        "emails_inbound": _("{n} emails from the customer"),
        "emails_outbound": _("{n} replies or other emails to the customer"),
        "emails_unanswered": _("{n} emails without a reply"),
        "longest_queue_wait": _("longest queue wait on {day}: {duration}"),
        "first_reply": _("the first email was answered after {duration}"),
        "incident": _("incident lasting {duration}"),
        "agent_pause": _("agent pause of {duration}"),
    }
    text = texts.get(fact.kind, fact.kind + ": {n}")
    return text.format(
        n=fact.value if fact.value is not None else 0,
        duration=duration,
        day=fmt.day(fact.day) if fact.day else "",
    )


def claims_view(
    claims: Sequence[Claim],
    summary: Summary,
    exhibit_of: dict[str, str],
    fmt: Formatter,
    _: Callable[[str], str],
) -> list[dict[str, Any]]:
    findings = {f.claim: f for f in summary.claims}
    result = []
    for claim in claims:
        found = findings.get(claim.id)
        facts = []
        if found is not None:
            for fact in found.facts:
                links = _links(fact.items, exhibit_of)
                facts.append(
                    {
                        "text": fact_sentence(fact, fmt, _),
                        "links": links[:MAX_LINKS],
                        "more": max(0, len(links) - MAX_LINKS),
                    }
                )
        result.append(
            {
                "text": claim.text,
                "facts": facts,
                "evidence": _links(claim.item_ids, exhibit_of)[:MAX_LINKS],
                "missing": list(found.missing) if found else [],
            }
        )
    return result


def summary_view(
    summary: Summary,
    exhibit_of: dict[str, str],
    timeline: Timeline,
    fmt: Formatter,
    _: Callable[[str], str],
) -> dict[str, Any]:
    rows = (
        _call_rows(summary.calls, exhibit_of, fmt, _)
        + _email_rows(summary.emails, exhibit_of, fmt, _)
        + _incident_and_hours_rows(summary, exhibit_of, _)
    )
    return {
        "rows": [{"label": a, "value": b, "links": c} for a, b, c in rows],
        "chart": timeline_chart(timeline, fmt.zone, _timeline_chart_labels(fmt, _)),
    }


# A Summary row: the label, the value, and the exhibits it links to.
_Row = tuple[str, str, list[str]]


def _call_rows(
    calls: CallFigures, exhibit_of: dict[str, str], fmt: Formatter, _: Callable[[str], str]
) -> list[_Row]:
    rows: list[_Row] = [
        (_("Calls"), str(calls.total), []),
        (_("answered"), str(calls.answered), []),
        (_("caller hung up in the queue"), str(calls.abandoned), []),
        (_("queue time limit reached"), str(calls.timeout), []),
    ]
    for outcome, count in sorted(calls.other.items()):
        rows.append((_("other outcome") + f" ({outcome})", str(count), []))
    waits = calls.queue_wait
    if waits.count:
        rows.append(
            (
                _("Queue wait: shortest / median / longest"),
                f"{fmt.duration(waits.min)} / {fmt.duration(waits.median)} / "
                f"{fmt.duration(waits.max)}",
                _links(waits.longest, exhibit_of)[:MAX_LINKS],
            )
        )
    return rows


def _email_rows(
    emails: EmailFigures, exhibit_of: dict[str, str], fmt: Formatter, _: Callable[[str], str]
) -> list[_Row]:
    rows: list[_Row] = [
        (_("Emails from the customer"), str(emails.inbound), []),
        (_("Emails to the customer"), str(emails.outbound), []),
    ]
    if emails.first_reply is not None:
        first = emails.first_reply
        rows.append(
            (
                _("Time to the first reply"),
                fmt.duration(first.seconds) if first.reply else _("no reply"),
                _links([first.email, *([first.reply] if first.reply else [])], exhibit_of),
            )
        )
    if emails.unanswered:
        rows.append(
            (
                _("Emails without a reply"),
                str(len(emails.unanswered)),
                _links(emails.unanswered, exhibit_of)[:MAX_LINKS],
            )
        )
    return rows


def _incident_and_hours_rows(
    summary: Summary, exhibit_of: dict[str, str], _: Callable[[str], str]
) -> list[_Row]:
    """The contacts made during each incident, and those outside opening hours."""
    rows: list[_Row] = [
        (
            _("Contacts during incident {incident}").format(
                incident=exhibit_of.get(contacts.incident, contacts.incident)
            ),
            _("{calls} calls, {emails} emails").format(
                calls=contacts.calls, emails=contacts.emails
            ),
            _links(contacts.items, exhibit_of)[:MAX_LINKS],
        )
        for contacts in summary.incidents
    ]
    if summary.outside_hours is not None:
        rows.append(
            (
                _("Contacts outside opening hours"),
                str(len(summary.outside_hours)),
                _links(summary.outside_hours, exhibit_of)[:MAX_LINKS],
            )
        )
    return rows


def _chart_clock(fmt: Formatter) -> Callable[[dt.time], str]:
    """A chart's axis times, written as the dossier writes a local time of day."""
    return lambda clock: fmt.clock(dt.datetime.combine(dt.date(2026, 1, 1), clock, tzinfo=fmt.zone))


def _timeline_chart_labels(fmt: Formatter, _: Callable[[str], str]) -> ChartLabels:
    return ChartLabels(
        email_inbound=_("email from the customer"),
        email_outbound=_("email to the customer"),
        call_inbound=_("call from the customer"),
        call_outbound=_("call to the customer"),
        queue_wait=_("queue wait"),
        incident=_("incident"),
        agent_pause=_("agent pause"),
        emails=_("Emails"),
        calls=_("Calls"),
        queue_waits=_("Queue waits"),
        agent_pauses=_("Agent pauses"),
        axis_title=_("Time, {zone}").format(zone=fmt.zone.key),
        format_day=fmt.day,
        format_clock=_chart_clock(fmt),
    )


def completeness_view(
    found: Completeness, fmt: Formatter, _: Callable[[str], str]
) -> list[dict[str, Any]]:
    kinds = {
        "mail": _("mailbox"),
        "asterisk-cdr": _("phone system call records (CDR)"),
        "asterisk-queue-log": _("phone system queue log"),
        "recordings": _("call recordings"),
    }
    result = []
    for source in found.sources:
        reasons: dict[str, int] = {}
        for item in source.quarantined:
            reasons[item.reason] = reasons.get(item.reason, 0) + 1
        result.append(
            {
                "kind": kinds.get(source.kind, source.kind),
                "source": Path(source.source).name or source.source,
                "path": source.source,
                "covers": (
                    f"{fmt.local(source.first)} – {fmt.local(source.last)}"
                    if source.first
                    else _("no items")
                ),
                "last_imported": fmt.local(source.last_imported) if source.last_imported else "–",
                "count": source.items,
                "in_period": source.items_in_period,
                "gaps": [
                    f"{fmt.day(g.first_day)} – {fmt.day(g.last_day)}"
                    if g.first_day != g.last_day
                    else fmt.day(g.first_day)
                    for g in source.gaps
                ],
                "quarantined": len(source.quarantined),
                "reasons": sorted(reasons.items()),
                "reconciled": _reconciled(source.reconciliation, fmt, _),
            }
        )
    return result


def _reconciled(
    found: Reconciliation | None, fmt: Formatter, _: Callable[[str], str]
) -> str | None:
    """A hosted folder's count on the server beside the store's, with the folder and time."""
    if found is None:
        return None
    counted = _("folder {folder}: {server} on the server, {held} in the store, counted {time}")
    if found.difference > 0:
        verdict = _("{count} not in the store").format(count=found.difference)
    elif found.difference < 0:
        verdict = _("{count} more in the store than on the server").format(count=-found.difference)
    else:
        verdict = _("no difference")
    return (
        counted.format(
            folder=found.folder,
            server=found.server_count,
            held=found.held,
            time=fmt.local(found.counted_at),
        )
        + "; "
        + verdict
    )


def selection_view(
    identity: Identity,
    rules: MailRules,
    fmt: Formatter,
    _: Callable[[str], str],
    *,
    captured: bool = False,
) -> dict[str, Any]:
    """Which identifiers selected the dossier's records, when each was the customer's and
    why it changed, and the rules that placed and directed the emails."""
    kinds = {IdentifierKind.EMAIL: _("email address"), IdentifierKind.PHONE: _("phone number")}

    def period(p: Period) -> str:
        if p.start is None and p.end is None:
            return _("always")
        if p.start is None:
            return _("until {time}").format(time=fmt.local(p.end))
        if p.end is None:
            return _("from {time}").format(time=fmt.local(p.start))
        return f"{fmt.local(p.start)} – {fmt.local(p.end)}"

    identifiers = [
        {
            "kind": kinds[i.kind],
            "value": i.value,
            "periods": [period(p) for p in i.periods] or [_("never")],
        }
        for i in identity.identifiers
    ]
    changes = []
    for change in identity.changes:
        what = [
            (_("added {value}") if item.action == "add" else _("removed {value}")).format(
                value=item.value
            )
            for item in change.identifiers
        ]
        if change.name:
            what.append(_("name: {name}").format(name=change.name))
        changes.append(
            {
                "valid_from": fmt.local(change.valid_from),
                "what": "; ".join(what),
                "reason": change.reason,
                "by": change.changed_by,
                "recorded": fmt.local(change.recorded_at),
            }
        )
    calls = _(
        "A call belongs to the customer's history when one of the customer's numbers is its "
        "caller or the number called, at the time of the call."
    )
    return {
        "identifiers": identifiers,
        "changes": changes,
        "rules": [*describe_rules(rules, _, captured=captured), calls],
    }


def exhibit_numbers(items: Sequence[Item]) -> dict[str, str]:
    """Each timeline item's exhibit number (as ``ViewBuilder.exhibits`` numbers them)."""
    return {item.id: exhibit_number(n) for n, item in enumerate(items, start=1)}


# --- Reachability and evidence of absence ------------------------------------------------


def _call_result(
    attempt: CustomerAttempt,
    call: Call,
    exhibit_of: dict[str, str],
    fmt: Formatter,
    _: Callable[[str], str],
) -> tuple[str, list[str]]:
    words = outcome_label(call.outcome, _)
    if call.queue_wait is not None:
        words += ", " + _("queue wait {duration}").format(duration=fmt.duration(call.queue_wait))
    if call.outcome in ANSWERED and call.agent:
        words += ", " + _("agent {agent}").format(agent=call.agent)
    links: list[str] = []
    if call.outcome not in ANSWERED:
        if attempt.callback is not None:
            words += "; " + _("called back {time}").format(time=fmt.local(attempt.callback.at))
            links = _links([attempt.callback.id], exhibit_of)
        elif call.number:
            words += "; " + _("not called back")
    return words, links


def _email_result(
    attempt: CustomerAttempt, exhibit_of: dict[str, str], fmt: Formatter, _: Callable[[str], str]
) -> tuple[str, list[str]]:
    if attempt.reply is None or attempt.reply_seconds is None:
        return _("no reply"), []
    return (
        _("replied after {duration}").format(duration=fmt.duration(attempt.reply_seconds)),
        _links([attempt.reply.id], exhibit_of),
    )


def _line_text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace").rstrip("\r\n")


def _mean_per_day(value: int, days: int, fmt: Formatter) -> str:
    return format_decimal(value / days, format="0.0", locale=fmt.locale) if days else "–"


def reachability_view(
    reach: CustomerReachability | None,
    exhibit_of: dict[str, str],
    fmt: Formatter,
    _: Callable[[str], str],
) -> dict[str, Any] | None:
    """The Reachability section: the customer's attempts, the company's figures on those
    days against the baseline, a chart per day, and the evidence of absence."""
    if reach is None:
        return None
    base = reach.baseline
    columns = [fmt.day(d.day) for d in reach.days]
    columns.append(
        _("Baseline {first} – {last}, per day").format(
            first=fmt.day(base.date_from), last=fmt.day(base.date_to)
        )
    )
    return {
        "attempts": [_attempt_row(a, exhibit_of, fmt, _) for a in reach.attempts],
        "absence": [
            _absence_entry(a.item, a.call, exhibit_of, fmt, _)
            for a in reach.attempts
            if a.call is not None and a.reached_nobody
        ],
        "columns": columns,
        "rows": _figure_rows(reach, fmt, _),
        "charts": _day_charts(reach, fmt, _),
        "threshold": reach.threshold,
        "more_days": reach.more_days,
        "baseline_empty": not (base.total.calls.offered or base.total.email.inbound),
    }


def _attempt_row(
    attempt: CustomerAttempt,
    exhibit_of: dict[str, str],
    fmt: Formatter,
    _: Callable[[str], str],
) -> dict[str, Any]:
    """One of the customer's attempts: when, how, in which service state, and what came of it."""
    item, call = attempt.item, attempt.call
    if call is not None:
        result, links = _call_result(attempt, call, exhibit_of, fmt, _)
    else:
        result, links = _email_result(attempt, exhibit_of, fmt, _)
    return {
        "exhibit": exhibit_of.get(item.id, ""),
        "time": fmt.local(item.at),
        "channel": _("Call") if call is not None else _("Email"),
        "state": service_state_label(item.service_state, _),
        "result": result,
        "links": links,
    }


def _absence_entry(
    item: Item,
    call: Call,
    exhibit_of: dict[str, str],
    fmt: Formatter,
    _: Callable[[str], str],
) -> dict[str, Any]:
    """A call no person answered, with the phone system's own lines that show it."""
    return {
        "exhibit": exhibit_of.get(item.id, ""),
        "time": fmt.local(item.at),
        "what": outcome_label(call.outcome, _),
        "state": service_state_label(item.service_state, _),
        "source": ", ".join(s for s in (call.outcome_source, call.outcome_recorded) if s),
        "lines": [
            {
                "ref": _("{file}, line {line}").format(
                    file=Path(line.source).name or line.source,
                    line=line.line_number,
                ),
                "text": _line_text(line.raw),
            }
            for line in call.source_lines
        ],
    }


def _figure_rows(
    reach: CustomerReachability, fmt: Formatter, _: Callable[[str], str]
) -> list[dict[str, Any]]:
    """The company's figures on each day in question and in the baseline, one row a figure."""

    def row(label: str, figure: Callable[[Figures], Any], kind: str) -> dict[str, Any]:
        return _figure_row(label, figure, kind, reach, fmt)

    threshold = _("Answered within {seconds} s").format(seconds=reach.threshold)
    rows = [
        row(_("Calls offered"), lambda f: f.calls.offered, "count"),
        row(_("answered"), lambda f: f.calls.answered, "count"),
        row(_("caller hung up in the queue"), lambda f: f.calls.abandoned, "count"),
        row(_("queue time limit reached"), lambda f: f.calls.timeout, "count"),
        row(
            _("ended before a queue (phone menu, announcement)"),
            lambda f: f.calls.ivr_only,
            "count",
        ),
        row(_("outside opening hours"), lambda f: f.calls.after_hours, "count"),
        row(threshold, lambda f: f.calls.service_level, "share"),
        row(_("Queue wait: median"), lambda f: f.calls.wait_median, "duration"),
        row(_("Queue wait: 90 % waited at most"), lambda f: f.calls.wait_p90, "duration"),
        row(_("Queue wait: longest"), lambda f: f.calls.wait_max, "duration"),
        row(
            _("Unanswered calls called back the same day"),
            lambda f: f.callbacks.callback_same_day_share,
            "share",
        ),
        row(_("Callback delay: mean"), lambda f: f.callbacks.callback_delay_mean, "duration"),
        row(_("Emails received"), lambda f: f.email.inbound, "count"),
        row(_("First reply: median"), lambda f: f.email.first_reply_median, "duration"),
        row(_("First reply: longest"), lambda f: f.email.first_reply_max, "duration"),
        row(_("Emails without a reply"), lambda f: f.email.unanswered, "count"),
    ]
    base = reach.baseline
    incident = [d.report.period.states["incident"].calls for d in reach.days]
    if any(c.offered for c in incident):
        rows.insert(
            1,
            {
                "label": _("of which during an incident"),
                "values": [str(c.offered) for c in incident]
                + [_mean_per_day(base.states["incident"].calls.offered, base.days, fmt)],
            },
        )
    return rows


def _figure_row(
    label: str,
    figure: Callable[[Figures], Any],
    kind: str,
    reach: CustomerReachability,
    fmt: Formatter,
) -> dict[str, Any]:
    """One figure for each day and for the baseline: a count is shown as a mean per
    day of the baseline, a share or a duration as the baseline's own."""

    def share(value: float | None) -> str:
        return f"{fmt.number(round(value * 100))} %" if value is not None else "–"

    def duration(value: float | None) -> str:
        return fmt.duration(value) if value is not None else "–"

    formats: dict[str, Callable[[Any], str]] = {"count": str, "share": share, "duration": duration}
    show = formats[kind]
    base = reach.baseline
    values = [show(figure(d.report.period.total)) for d in reach.days]
    if kind == "count":
        values.append(_mean_per_day(figure(base.total), base.days, fmt))
    else:
        values.append(show(figure(base.total)))
    return {"label": label, "values": values}


def _day_charts(
    reach: CustomerReachability, fmt: Formatter, _: Callable[[str], str]
) -> list[dict[str, Any]]:
    """A chart of each day in question that had calls: calls offered and answered an hour,
    the incidents, and the agents available."""
    labels = ServiceChartLabels(
        offered=_("calls offered"),
        answered=_("answered"),
        incident=_("incident"),
        agents=_("agents available (logged in, not paused)"),
        calls=_("calls"),
        axis_title=_("Time, {zone}").format(zone=fmt.zone.key),
        format_clock=_chart_clock(fmt),
    )
    charts = []
    for day in reach.days:
        report = day.report
        if not report.period.total.calls.offered:
            continue  # a day of emails only: no calls to draw
        start, end = day.hours[0].start, day.hours[-1].end
        charts.append(
            {
                "title": fmt.day(day.day),
                "svg": service_chart(
                    start,
                    end,
                    [HourBar(h.start, h.end, h.offered, h.answered) for h in day.hours],
                    [(i.start, i.end) for i in report.incidents if i.applies_to("phone")],
                    [(a.at, len(a.available)) for a in report.agents],
                    fmt.zone,
                    labels,
                ),
            }
        )
    return charts
