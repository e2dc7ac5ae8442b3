"""Company-wide service figures: how reachable the company was, by phone and email.

A regulator judges "you were unreachable" with figures: contact attempts, how
many were answered and how fast, how many callbacks were made the same day, how
long email replies took, and whether a bad day had a reason. This module counts
them from the store, for a period and a baseline period before it, each split by
service state (inside an incident, outside opening hours, normal service).

Only counts and durations leave this module: no numbers, addresses or names of
any customer (``ServiceReport.json`` is safe to hand to anyone).

The rules, in one place:

- An **inbound attempt** is a call the phone system records as coming from
  outside (``Call.direction`` inbound, hidden numbers included). ``offered``
  counts every one of them, also calls that ended in the IVR or an after-hours
  message before reaching a queue.
- ``answered``: a person took the call (outcome answered or transferred);
  ``abandoned``: the caller hung up in the queue; ``timeout``: the queue's time
  limit ended it; ``ivr_only``: the attempt never reached a queue and no person
  answered (IVR hang-up, announcement, after-hours message); ``after_hours``:
  the attempt started outside the phone's opening hours (evidence.toml; 0 when
  no hours are set).
- ``service_level``: the share of the attempts that reached a queue and were
  answered with a queue wait of at most the threshold (default 60 s,
  ``[reports] service_level_threshold``). ``wait_median``, ``wait_p90``
  (nearest rank) and ``wait_max``: queue waits in seconds of the attempts that
  reached a queue, as the phone system recorded them.
- **Callback**: an unanswered inbound attempt from a visible number followed by
  an outbound call to the same number (the first one after the attempt started,
  within ``CALLBACK_HORIZON``). ``callback_same_day_share``: attempts called
  back on the same local day / unanswered attempts; ``callback_delay_mean``:
  seconds from the attempt's start to the callback's start, over the attempts
  called back; ``not_called_back``: distinct numbers with an unanswered attempt
  and no callback.
- **Email**: an inbound email is answered by the first outbound email after it
  in its thread with the same correspondent (References/In-Reply-To, then
  subject: ``evidence.timeline.summary``);
  ``first_reply_median`` and ``first_reply_max`` in seconds from our receive
  time; ``unanswered``: inbound emails without such a reply (within
  ``REPLY_HORIZON`` after the period).
- Each attempt belongs to the service state of its start instant.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from evidence.config import DEFAULT_THRESHOLD, Config
from evidence.domain import CallOutcome, ItemKind, ServiceState
from evidence.errors import InvalidInput
from evidence.records.incidents import chains_overlapping, is_going_on
from evidence.store.models import (
    CustomerChangeIdentifier,
    CustomerIdentifier,
    Direction,
    Email,
    EmailAddress,
    Incident,
)
from evidence.timeline.calls import ANSWERED, Availability, Call, agent_availability, calls_between
from evidence.timeline.history import Item, period_bounds
from evidence.timeline.hours import OpeningHours
from evidence.timeline.mailfacts import MailRules, emails_between, placements
from evidence.timeline.summary import email_figures
from evidence.timeutil import day_start, iso_utc, require_in_range, require_order

DEFAULT_BASELINE_DAYS = 28
CALLBACK_HORIZON = dt.timedelta(days=7)
REPLY_HORIZON = dt.timedelta(days=14)
# The keys of the states in the JSON, in the order of the text table.
STATE_KEYS = {
    ServiceState.INCIDENT: "incident",
    ServiceState.OUTSIDE_HOURS: "outside_hours",
    ServiceState.NORMAL: "normal",
}


def threshold_from_config(config: Config) -> int:
    """``[reports] service_level_threshold`` in evidence.toml (seconds), default 60."""
    return config.reports.service_level_threshold


# --- figures ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CallCounts:
    offered: int
    answered: int
    abandoned: int
    timeout: int
    ivr_only: int
    after_hours: int
    other: int  # not answered for another reason (exit-empty, exit-key, busy, failed, ...)
    reached_queue: int
    service_level: float | None  # share, 0..1; None when no attempt reached a queue
    wait_median: float | None
    wait_p90: int | None
    wait_max: int | None


@dataclass(frozen=True)
class CallbackCounts:
    unanswered: int  # unanswered inbound attempts from a visible number
    called_back: int
    called_back_same_day: int
    callback_same_day_share: float | None
    callback_delay_mean: float | None
    not_called_back: int  # distinct numbers never called back


@dataclass(frozen=True)
class EmailCounts:
    inbound: int
    answered: int
    first_reply_median: float | None
    first_reply_max: int | None
    unanswered: int


@dataclass(frozen=True)
class Figures:
    calls: CallCounts
    callbacks: CallbackCounts
    email: EmailCounts

    def json(self) -> dict[str, Any]:
        return {
            "calls": vars(self.calls).copy(),
            "callbacks": vars(self.callbacks).copy(),
            "email": vars(self.email).copy(),
        }


@dataclass(frozen=True)
class Attempt:
    """An inbound call as the report counts it (no number leaves the module)."""

    call: Call
    state: str
    after_hours: bool
    callback: Call | None  # the outbound call that called it back


@dataclass(frozen=True)
class InboundEmail:
    at: dt.datetime
    state: str
    reply_seconds: int | None


@dataclass
class PeriodFigures:
    date_from: dt.date
    date_to: dt.date
    days: int
    total: Figures
    states: dict[str, Figures]  # incident, outside_hours, normal

    def json(self) -> dict[str, Any]:
        return {
            "from": self.date_from.isoformat(),
            "to": self.date_to.isoformat(),
            "days": self.days,
            **self.total.json(),
            "states": {k: v.json() for k, v in self.states.items()},
        }


@dataclass
class Bucket:
    start: dt.datetime  # local day or hour
    figures: Figures


@dataclass
class ServiceReport:
    threshold: int
    zone: ZoneInfo
    period: PeriodFigures
    baseline: PeriodFigures | None
    agents: list[Availability] = field(default_factory=list)
    by: str | None = None
    buckets: list[Bucket] = field(default_factory=list)
    incidents: list[Incident] = field(default_factory=list)
    # The attempts it counted, for the dossier's hourly chart (not in ``json``).
    attempts: list[Attempt] = field(default_factory=list, compare=False, repr=False)

    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "timezone": self.zone.key,
            "threshold": self.threshold,
            "period": self.period.json(),
            "baseline": self.baseline.json() if self.baseline else None,
            "incidents": [
                {
                    "number": inc.number,
                    "start": iso_utc(inc.start),
                    "end": iso_utc(inc.end),
                    "channels": inc.channel_names,
                }
                for inc in self.incidents
            ],
            "agents": [
                {
                    "at": iso_utc(a.at),
                    "logged_in": len(a.logged_in),
                    "available": len(a.available),
                }
                for a in self.agents
            ],
        }
        if self.by:
            data["by"] = self.by
            data["buckets"] = [
                {"start": b.start.isoformat(), **b.figures.json()} for b in self.buckets
            ]
        return data


def _median(values: Sequence[int]) -> float | None:
    return float(statistics.median(values)) if values else None


def _p90(values: Sequence[int]) -> int | None:
    """Nearest rank: the smallest value with at least 90 % of the values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _reached_queue(call: Call) -> bool:
    """A queue is named, or the call has a wait for a person: only a call that queued or
    rang someone has one (a FreeSWITCH CDR, for one, names no queue)."""
    return call.queue is not None or call.queue_wait is not None


def call_counts(attempts: Sequence[Attempt], threshold: int) -> CallCounts:
    calls = [a.call for a in attempts]
    queued = [c for c in calls if _reached_queue(c)]
    waits = [c.queue_wait for c in queued if c.queue_wait is not None]
    answered = [c for c in calls if c.outcome in ANSWERED]
    in_time = [c for c in queued if c.outcome in ANSWERED and (c.queue_wait or 0) <= threshold]
    ivr_only = [c for c in calls if not _reached_queue(c) and c.outcome not in ANSWERED]
    abandoned = sum(1 for c in calls if c.outcome == CallOutcome.ABANDONED)
    timeout = sum(1 for c in calls if c.outcome == CallOutcome.TIMEOUT)
    return CallCounts(
        offered=len(calls),
        answered=len(answered),
        abandoned=abandoned,
        timeout=timeout,
        ivr_only=len(ivr_only),
        after_hours=sum(1 for a in attempts if a.after_hours),
        other=len(calls) - len(answered) - abandoned - timeout - len(ivr_only),
        reached_queue=len(queued),
        service_level=_share(len(in_time), len(queued)),
        wait_median=_median(waits),
        wait_p90=_p90(waits),
        wait_max=max(waits) if waits else None,
    )


def callback_counts(attempts: Sequence[Attempt], zone: ZoneInfo) -> CallbackCounts:
    unanswered = [a for a in attempts if a.call.outcome not in ANSWERED and a.call.number]
    done = [a for a in unanswered if a.callback is not None]
    same_day = [
        a
        for a in done
        if a.callback is not None
        and a.callback.started_at.astimezone(zone).date()
        == a.call.started_at.astimezone(zone).date()
    ]
    delays = [
        (a.callback.started_at - a.call.started_at).total_seconds()
        for a in done
        if a.callback is not None
    ]
    called = {a.call.number for a in done}
    never = {a.call.number for a in unanswered if a.callback is None} - called
    return CallbackCounts(
        unanswered=len(unanswered),
        called_back=len(done),
        called_back_same_day=len(same_day),
        callback_same_day_share=_share(len(same_day), len(unanswered)),
        callback_delay_mean=statistics.fmean(delays) if delays else None,
        not_called_back=len(never),
    )


def email_counts(emails: Sequence[InboundEmail]) -> EmailCounts:
    replies = [e.reply_seconds for e in emails if e.reply_seconds is not None]
    return EmailCounts(
        inbound=len(emails),
        answered=len(replies),
        first_reply_median=_median(replies),
        first_reply_max=max(replies) if replies else None,
        unanswered=len(emails) - len(replies),
    )


def figures(
    attempts: Sequence[Attempt],
    emails: Sequence[InboundEmail],
    threshold: int,
    zone: ZoneInfo,
) -> Figures:
    return Figures(
        calls=call_counts(attempts, threshold),
        callbacks=callback_counts(attempts, zone),
        email=email_counts(emails),
    )


# --- reading the store ------------------------------------------------------------------


class _States:
    """The service state of an instant on a channel."""

    def __init__(self, incidents: Sequence[Incident], hours: OpeningHours | None) -> None:
        self.incidents = incidents
        self.hours = hours

    def outside_hours(self, at: dt.datetime, channel: str) -> bool:
        if self.hours is None:
            return False
        verdict = self.hours.check(channel, at)
        return verdict is not None and not verdict.open

    def state(self, at: dt.datetime, channel: str) -> ServiceState:
        if any(inc.applies_to(channel) and is_going_on(inc, at) for inc in self.incidents):
            return ServiceState.INCIDENT
        if self.outside_hours(at, channel):
            return ServiceState.OUTSIDE_HOURS
        return ServiceState.NORMAL


def _attempts(
    session: Session,
    start: dt.datetime,
    end: dt.datetime,
    zone: ZoneInfo,
    states: _States,
) -> list[Attempt]:
    calls = calls_between(session, start, end + CALLBACK_HORIZON, zone, details=False)
    outbound: dict[str, list[Call]] = {}
    for call in calls:
        if call.direction is Direction.OUTBOUND and call.number:
            outbound.setdefault(call.number, []).append(call)
    result = []
    for call in calls:
        if call.direction is not Direction.INBOUND or not start <= call.started_at < end:
            continue
        callback = None
        if call.number and call.outcome not in ANSWERED:
            callback = next(
                (
                    o
                    for o in outbound.get(call.number, [])
                    if call.started_at < o.started_at <= call.started_at + CALLBACK_HORIZON
                ),
                None,
            )
        result.append(
            Attempt(
                call=call,
                state=states.state(call.started_at, "phone"),
                after_hours=states.outside_hours(call.started_at, "phone"),
                callback=callback,
            )
        )
    return result


def _emails(
    session: Session, start: dt.datetime, end: dt.datetime, states: _States, rules: MailRules
) -> list[InboundEmail]:
    """Inbound emails received in [start, end) and the time to their first reply.

    Threads are found per correspondent (the inbound sender; an outbound email's To and
    Cc), so two customers who both write "Lasku" are never one thread by subject.
    Times and directions are derived as for a timeline (``evidence.timeline.mailfacts``); without
    company mail domains an email from a customer's address is inbound, one to a
    customer's address outbound, and any other one inbound (it is in our mailbox)."""
    ids = emails_between(session, start, end + REPLY_HORIZON, rules)
    placed = placements(session, rules, ids)
    mails: dict[int, Email] = {}
    recipients: dict[int, set[str]] = defaultdict(set)
    for first in range(0, len(ids), 500):
        chunk = ids[first : first + 500]
        mails.update((m.id, m) for m in session.scalars(select(Email).where(Email.id.in_(chunk))))
        # The To and Cc, as plain strings (not ORM objects: a year's mail).
        for email_id, address in session.execute(
            select(EmailAddress.email_id, EmailAddress.address).where(
                EmailAddress.email_id.in_(chunk), EmailAddress.role.in_(("to", "cc"))
            )
        ):
            recipients[email_id].add(address.lower())
    customers: set[str] = set()
    if not rules.domains:
        customers = {value for value in session.scalars(select(CustomerIdentifier.value))}
        customers.update(session.scalars(select(CustomerChangeIdentifier.value)))
    by_party: dict[str, list[Item]] = defaultdict(list)
    for email_id in ids:
        mail = mails[email_id]
        sender = (mail.from_addr or "").lower()
        if rules.domains:
            outbound = rules.is_own(sender)
        else:
            outbound = sender not in customers and bool(recipients[email_id] & customers)
        way = Direction.OUTBOUND if outbound else Direction.INBOUND
        item = Item(ItemKind.EMAIL, placed[email_id].at, f"email:{email_id}", mail, direction=way)
        parties = recipients[email_id] if outbound else {sender}
        for party in parties:
            by_party[party].append(item)
    result = []
    for items in by_party.values():
        at_of = {i.id: i.at for i in items}
        for reply in email_figures(items).replies:
            at = at_of[reply.email]
            if start <= at < end:
                result.append(InboundEmail(at, states.state(at, "email"), reply.seconds))
    return sorted(result, key=lambda e: e.at)


def _period(
    attempts: list[Attempt],
    emails: list[InboundEmail],
    date_from: dt.date,
    date_to: dt.date,
    threshold: int,
    zone: ZoneInfo,
) -> PeriodFigures:
    return PeriodFigures(
        date_from=date_from,
        date_to=date_to,
        days=(date_to - date_from).days + 1,
        total=figures(attempts, emails, threshold, zone),
        states={
            key: figures(
                [a for a in attempts if a.state == state],
                [e for e in emails if e.state == state],
                threshold,
                zone,
            )
            for state, key in STATE_KEYS.items()
        },
    )


def _period_between(
    session: Session,
    date_from: dt.date,
    date_to: dt.date,
    states: _States,
    threshold: int,
    zone: ZoneInfo,
    rules: MailRules,
) -> PeriodFigures:
    """The company-wide figures of the local days ``date_from``..``date_to`` (inclusive)."""
    start, end = _bounds(date_from, date_to, zone)
    return _period(
        _attempts(session, start, end, zone, states),
        _emails(session, start, end, states, rules),
        date_from,
        date_to,
        threshold,
        zone,
    )


def _bounds(
    date_from: dt.date, date_to: dt.date, zone: ZoneInfo
) -> tuple[dt.datetime, dt.datetime]:
    start, end = period_bounds(date_from, date_to, zone)
    assert start is not None and end is not None
    return start, end


def _bucket_starts(
    start: dt.datetime, end: dt.datetime, by: str, zone: ZoneInfo
) -> list[dt.datetime]:
    """Local days or local hours (each a real hour, across DST changes) in [start, end)."""
    result = []
    if by == "day":
        day = start.astimezone(zone).date()
        while (at := day_start(day, zone)) < end:
            result.append(at.astimezone(zone))
            day += dt.timedelta(days=1)
    else:
        at = start
        while at < end:
            result.append(at.astimezone(zone))
            at += dt.timedelta(hours=1)
    return result


def _buckets(
    attempts: list[Attempt],
    emails: list[InboundEmail],
    start: dt.datetime,
    end: dt.datetime,
    by: str,
    threshold: int,
    zone: ZoneInfo,
) -> list[Bucket]:
    starts = _bucket_starts(start, end, by, zone)
    edges = [*starts, end.astimezone(zone)]
    result = []
    for lo, hi in zip(edges, edges[1:], strict=False):
        result.append(
            Bucket(
                lo,
                figures(
                    [a for a in attempts if lo <= a.call.started_at < hi],
                    [e for e in emails if lo <= e.at < hi],
                    threshold,
                    zone,
                ),
            )
        )
    return result


def default_baseline(date_from: dt.date) -> tuple[dt.date, dt.date]:
    """The 28 days before ``date_from``."""
    return (
        date_from - dt.timedelta(days=DEFAULT_BASELINE_DAYS),
        date_from - dt.timedelta(days=1),
    )


def service_report(
    session: Session,
    zone: ZoneInfo,
    date_from: dt.date,
    date_to: dt.date,
    *,
    hours: OpeningHours | None = None,
    threshold: int = DEFAULT_THRESHOLD,
    baseline_from: dt.date | None = None,
    baseline_to: dt.date | None = None,
    by: str | None = None,
    baseline: bool = True,
    rules: MailRules,
) -> ServiceReport:
    """Service figures for the local days ``date_from``..``date_to`` (inclusive) and for a
    baseline (default: the 28 days before), each split by service state; ``baseline=False``
    leaves the baseline out."""
    require_in_range(date_from, date_to, baseline_from, baseline_to)
    require_order(date_from, date_to)
    if by not in (None, "day", "hour"):
        raise InvalidInput(f"--by {by!r}: use day or hour")
    if threshold < 0:
        raise InvalidInput("the service-level threshold is a number of seconds, 0 or more")
    if baseline_from is None and baseline_to is None:
        baseline_from, baseline_to = default_baseline(date_from)
    elif baseline_from is None or baseline_to is None:
        raise InvalidInput("give both --baseline-from and --baseline-to, or neither")
    require_order(baseline_from, baseline_to, "--baseline-from", "--baseline-to")

    start, end = _bounds(date_from, date_to, zone)
    b_start, b_end = _bounds(baseline_from, baseline_to, zone)
    lo, hi = (min(start, b_start), max(end, b_end)) if baseline else (start, end)
    incidents = [c.current for c in chains_overlapping(session, lo, hi)]
    states = _States(incidents, hours)

    attempts = _attempts(session, start, end, zone, states)
    emails = _emails(session, start, end, states, rules)
    base = None
    if baseline:
        base = _period_between(session, baseline_from, baseline_to, states, threshold, zone, rules)
    return ServiceReport(
        threshold=threshold,
        zone=zone,
        period=_period(attempts, emails, date_from, date_to, threshold, zone),
        baseline=base,
        agents=agent_availability(session, start, end),
        by=by,
        buckets=_buckets(attempts, emails, start, end, by, threshold, zone) if by else [],
        incidents=[i for i in incidents if i.start < end and (i.end is None or i.end > start)],
        attempts=attempts,
    )


# --- the customer's side, for the dossier ----------------------------------------------

MAX_DAYS = 4  # days in question shown with their own figures and chart


@dataclass(frozen=True)
class CustomerAttempt:
    """One of the customer's own contact attempts (an inbound call or email)."""

    item: Item
    callback: Item | None = None  # unanswered call: the first outbound call to them after it
    reply: Item | None = None  # email: the first reply in its thread
    reply_seconds: int | None = None

    @property
    def call(self) -> Call | None:
        """The call, when the attempt is one (else it is an email)."""
        record = self.item.record
        return record if isinstance(record, Call) else None

    @property
    def reached_nobody(self) -> bool:
        """A call that no person answered (IVR, after-hours message, abandoned, timed out)."""
        return self.call is not None and self.call.outcome not in ANSWERED


@dataclass(frozen=True)
class HourCount:
    start: dt.datetime
    end: dt.datetime
    offered: int
    answered: int


@dataclass
class DayInQuestion:
    day: dt.date
    report: ServiceReport
    hours: list[HourCount]


@dataclass
class CustomerReachability:
    attempts: list[CustomerAttempt]
    days: list[DayInQuestion]  # at most MAX_DAYS, oldest first
    more_days: int  # days in question not shown with figures of their own
    baseline: PeriodFigures
    threshold: int


def _hour_counts(attempts: Sequence[Attempt], day: dt.date, zone: ZoneInfo) -> list[HourCount]:
    start, end = _bounds(day, day, zone)
    starts = _bucket_starts(start, end, "hour", zone)
    edges = [*starts, end]
    result = []
    for lo, hi in zip(edges, edges[1:], strict=False):
        inside = [a.call for a in attempts if lo <= a.call.started_at < hi]
        result.append(
            HourCount(lo, hi, len(inside), sum(1 for c in inside if c.outcome in ANSWERED))
        )
    return result


def customer_reachability(
    session: Session,
    items: Sequence[Item],
    zone: ZoneInfo,
    *,
    hours: OpeningHours | None = None,
    threshold: int = DEFAULT_THRESHOLD,
    rules: MailRules,
) -> CustomerReachability | None:
    """The customer's own attempts (from their timeline ``items``) and what happened to
    each, with the company-wide figures of the days they fall on and a baseline of the
    28 days before the first of them. None when the customer made no attempt."""
    attempts = _customer_attempts(items)
    if not attempts:
        return None
    all_days = sorted({a.item.at.astimezone(zone).date() for a in attempts})
    shown = all_days[:MAX_DAYS]
    days = []
    for day in shown:
        report = service_report(
            session,
            zone,
            day,
            day,
            hours=hours,
            threshold=threshold,
            baseline=False,
            rules=rules,
        )
        days.append(DayInQuestion(day, report, _hour_counts(report.attempts, day, zone)))
    b_from, b_to = default_baseline(all_days[0])
    b_start, b_end = _bounds(b_from, b_to, zone)
    states = _States([c.current for c in chains_overlapping(session, b_start, b_end)], hours)
    return CustomerReachability(
        attempts=attempts,
        days=days,
        more_days=len(all_days) - len(shown),
        baseline=_period_between(session, b_from, b_to, states, threshold, zone, rules),
        threshold=threshold,
    )


def _customer_attempts(items: Sequence[Item]) -> list[CustomerAttempt]:
    """The customer's inbound calls and emails: each unanswered call with its callback, each
    email with its first reply."""
    replies = {r.email: r for r in email_figures(items).replies}
    by_id = {i.id: i for i in items}
    outbound_calls = [
        i for i in items if isinstance(i.record, Call) and i.record.direction is Direction.OUTBOUND
    ]
    attempts = []
    for item in items:
        record = item.record
        if not isinstance(record, Call | Email) or item.direction is not Direction.INBOUND:
            continue
        if isinstance(record, Call):
            callback = _callback(item, record, outbound_calls)
            attempts.append(CustomerAttempt(item, callback=callback))
        else:
            reply = replies.get(item.id)
            attempts.append(
                CustomerAttempt(
                    item,
                    reply=by_id.get(reply.reply) if reply and reply.reply else None,
                    reply_seconds=reply.seconds if reply else None,
                )
            )
    return attempts


def _callback(item: Item, call: Call, outbound_calls: list[Item]) -> Item | None:
    """For a call no person answered: the first outbound call to the same number within
    the callback horizon."""
    if call.outcome in ANSWERED or call.number is None:
        return None
    return next(
        (
            o
            for o in outbound_calls
            if item.at < o.at <= item.at + CALLBACK_HORIZON
            and isinstance(o.record, Call)
            and o.record.number == call.number
        ),
        None,
    )


# --- text -------------------------------------------------------------------------------

ROWS: list[tuple[str, str, str]] = [
    # (section, key, label)
    ("calls", "offered", "calls offered (inbound attempts)"),
    ("calls", "answered", "answered"),
    ("calls", "abandoned", "abandoned in the queue"),
    ("calls", "timeout", "queue timeout"),
    ("calls", "ivr_only", "IVR only (never reached a queue)"),
    ("calls", "other", "not answered, other outcome"),
    ("calls", "after_hours", "outside opening hours"),
    ("calls", "service_level", "service level"),
    ("calls", "wait_median", "queue wait median"),
    ("calls", "wait_p90", "queue wait 90th percentile"),
    ("calls", "wait_max", "queue wait longest"),
    ("callbacks", "unanswered", "unanswered attempts (visible number)"),
    ("callbacks", "called_back", "called back"),
    ("callbacks", "callback_same_day_share", "called back the same day"),
    ("callbacks", "callback_delay_mean", "callback delay, mean"),
    ("callbacks", "not_called_back", "numbers never called back"),
    ("email", "inbound", "emails received"),
    ("email", "first_reply_median", "first reply, median"),
    ("email", "first_reply_max", "first reply, longest"),
    ("email", "unanswered", "emails without a reply"),
]
_DURATIONS = {
    "wait_median",
    "wait_p90",
    "wait_max",
    "callback_delay_mean",
    "first_reply_median",
    "first_reply_max",
}
_SHARES = {"service_level", "callback_same_day_share"}


def format_value(key: str, value: Any, duration: Callable[[float], str]) -> str:
    if value is None:
        return "–"
    if key in _SHARES:
        return f"{value * 100:.0f} %"
    if key in _DURATIONS:
        return duration(value)
    return str(value)


def _plain_duration(seconds: float) -> str:
    if seconds >= 3600:  # to the nearest minute
        hours, minutes = divmod(int(round(seconds / 60)), 60)
        return f"{hours} h {minutes:02d} min"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def report_text(report: ServiceReport) -> list[str]:
    """A readable table: one row per figure; the period, its states and the baseline."""
    period, base = report.period, report.baseline
    columns: list[tuple[str, Figures]] = [("period", period.total)]
    columns += [
        (name.replace("_", " "), period.states[name])
        for name in ("incident", "outside_hours", "normal")
    ]
    if base is not None:
        columns.append(("baseline", base.total))
    lines = [
        f"Service figures {period.date_from} – {period.date_to} ({report.zone.key}); "
        f"service level: answered within {report.threshold} s",
    ]
    if base is not None:
        lines.append(f"Baseline: {base.date_from} – {base.date_to} ({base.days} days)")
    width = max(len(label) for _, _, label in ROWS) + 2
    header = "".ljust(width) + "".join(name.rjust(15) for name, _ in columns)
    lines += ["", header]
    section = ""
    for sec, key, label in ROWS:
        if sec != section:
            section = sec
            lines.append(sec.upper())
        cells = [
            format_value(key, getattr(getattr(f, sec), key), _plain_duration).rjust(15)
            for _, f in columns
        ]
        lines.append(("  " + label).ljust(width) + "".join(cells))
    if report.agents:
        lines += ["", "AGENTS (logged in / available)"]
        for change in report.agents:
            lines.append(
                f"  {change.at.astimezone(report.zone):%Y-%m-%d %H:%M:%S}  "
                f"{len(change.logged_in)} / {len(change.available)}"
            )
    if report.buckets:
        lines += ["", f"BY {report.by.upper() if report.by else ''}"]
        lines.append(
            "  start".ljust(22)
            + "".join(h.rjust(10) for h in ("offered", "answered", "abandon", "timeout", "ivr"))
            + "  wait max"
        )
        for bucket in report.buckets:
            c = bucket.figures.calls
            stamp = (
                f"{bucket.start:%Y-%m-%d}"
                if report.by == "day"
                else f"{bucket.start:%Y-%m-%d %H:%M}"
            )
            lines.append(
                f"  {stamp}".ljust(22)
                + "".join(
                    str(v).rjust(10)
                    for v in (c.offered, c.answered, c.abandoned, c.timeout, c.ivr_only)
                )
                + "  "
                + format_value("wait_max", c.wait_max, _plain_duration)
            )
    return lines
