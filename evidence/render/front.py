"""The front matter after the cover: claims, summary (with the chart) and completeness.

The figures come from ``evidence.summary`` and ``evidence.completeness`` as numbers
and item ids; this module turns them into sentences in the dossier's language, with
the item ids turned into exhibit numbers that link to the exhibits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from evidence.completeness import Completeness
from evidence.render.chart import ChartLabels, timeline_chart
from evidence.render.i18n import Formatter
from evidence.render.views import Exhibit
from evidence.store.models import Claim
from evidence.summary import Fact, Summary
from evidence.timeline import Timeline

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
    calls, emails = summary.calls, summary.emails
    waits = calls.queue_wait
    rows: list[tuple[str, str, list[str]]] = [
        (_("Calls"), str(calls.total), []),
        (_("answered"), str(calls.answered), []),
        (_("caller hung up in the queue"), str(calls.abandoned), []),
        (_("queue time limit reached"), str(calls.timeout), []),
    ]
    for outcome, count in sorted(calls.other.items()):
        rows.append((_("other outcome") + f" ({outcome})", str(count), []))
    if waits.count:
        rows.append(
            (
                _("Queue wait: shortest / median / longest"),
                f"{fmt.duration(waits.min)} / {fmt.duration(waits.median)} / "
                f"{fmt.duration(waits.max)}",
                _links(waits.longest, exhibit_of)[:MAX_LINKS],
            )
        )
    rows.append((_("Emails from the customer"), str(emails.inbound), []))
    rows.append((_("Emails to the customer"), str(emails.outbound), []))
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
    for contacts in summary.incidents:
        rows.append(
            (
                _("Contacts during incident {incident}").format(
                    incident=exhibit_of.get(contacts.incident, contacts.incident)
                ),
                _("{calls} calls, {emails} emails").format(
                    calls=contacts.calls, emails=contacts.emails
                ),
                _links(contacts.items, exhibit_of)[:MAX_LINKS],
            )
        )
    if summary.outside_hours is not None:
        rows.append(
            (
                _("Contacts outside opening hours"),
                str(len(summary.outside_hours)),
                _links(summary.outside_hours, exhibit_of)[:MAX_LINKS],
            )
        )
    labels = ChartLabels(
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
        format_clock=lambda clock: fmt.clock(
            dt.datetime.combine(dt.date(2026, 1, 1), clock, tzinfo=fmt.zone)
        ),
    )
    return {
        "rows": [{"label": a, "value": b, "links": c} for a, b, c in rows],
        "chart": timeline_chart(timeline, fmt.zone, labels),
    }


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
            }
        )
    return result


def exhibit_numbers(exhibits: Sequence[Exhibit]) -> dict[str, str]:
    return {ex.item.id: ex.number for ex in exhibits}
