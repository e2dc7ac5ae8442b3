"""The figures of the dossier's Summary, computed from a built timeline.

Pure functions over ``evidence.timeline.Timeline``: no database, no words. Every
figure is a number, a local date or timeline item ids (``call:1790579705.312``)
that the dossier turns into sentences in its own language and links to exhibits.
Calls count only with the phone system's own figures (``Call.queue_wait``,
``Call.outcome``); nothing is estimated.

Time to first reply: an inbound email is answered by the first outbound email
after it (by the timeline's time) in the same thread. Two emails are in the same
thread when one names the other in In-Reply-To or References (transitively); an
email that no such header ties to any other falls back to its subject, compared
without reply/forward prefixes (Re:, RE:, Fwd:, VS:, SV:, VL:, AW:, WG:), case or
extra spaces.
"""

from __future__ import annotations

import bisect
import datetime as dt
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol
from zoneinfo import ZoneInfo

from evidence.domain import CallOutcome, ItemKind
from evidence.store.models import Direction, Email, Incident
from evidence.timeline.calls import AgentPause, Call
from evidence.timeline.history import CONTACT_CHANNELS, Item, Timeline, records

# Outcomes with a figure of their own; any other outcome is counted in ``other``.
MAIN_OUTCOMES = (CallOutcome.ANSWERED, CallOutcome.ABANDONED, CallOutcome.TIMEOUT)


class ClaimLike(Protocol):
    """A claim as the summary needs it (``evidence.store.models.Claim`` is one)."""

    @property
    def id(self) -> int: ...

    @property
    def item_ids(self) -> list[str]: ...


@dataclass(frozen=True)
class QueueWaits:
    """Queue waits in seconds, over the calls whose phone system recorded one."""

    count: int
    min: int | None
    median: float | None
    max: int | None
    longest: tuple[str, ...]  # ids of the calls that waited ``max``


@dataclass(frozen=True)
class CallFigures:
    total: int
    inbound: int
    outbound: int
    answered: int
    abandoned: int
    timeout: int
    other: dict[str, int]  # any other outcome (ivr, exit-empty, busy, ...) -> count
    queue_wait: QueueWaits


@dataclass(frozen=True)
class Reply:
    """An inbound email and the first outbound email after it in its thread."""

    email: str  # the inbound email's item id
    reply: str | None  # None: not answered (within the timeline)
    seconds: int | None


@dataclass(frozen=True)
class EmailFigures:
    inbound: int
    outbound: int
    internal: int
    replies: list[Reply]  # one per inbound email, in time order
    # From the first inbound email to the first outbound email after it, whatever the thread.
    first_reply: Reply | None

    @property
    def unanswered(self) -> list[str]:
        return [r.email for r in self.replies if r.reply is None]


@dataclass(frozen=True)
class IncidentContacts:
    """The customer's contacts that fall inside one incident (on a channel it affects)."""

    incident: str  # item id, e.g. incident:1
    calls: int
    emails: int
    items: tuple[str, ...]


@dataclass(frozen=True)
class Fact:
    """One thing the record shows. ``kind`` says what ``value`` is:

    - ``calls``, ``calls_answered``, ``calls_unanswered``, ``calls_in_incident``,
      ``emails_inbound``, ``emails_outbound``, ``emails_unanswered``: a count;
    - ``longest_queue_wait``: seconds, on the local ``day`` of the first such call;
    - ``first_reply``: seconds from the first inbound email to its reply
      (``items`` = the email, the reply);
    - ``incident``, ``agent_pause``: duration in seconds (None while ongoing).
    ``items`` are the timeline item ids the fact rests on.
    """

    kind: str
    value: int | None
    items: tuple[str, ...]
    day: dt.date | None = None


@dataclass(frozen=True)
class ClaimFindings:
    claim: int
    facts: list[Fact]
    missing: tuple[str, ...]  # the claim's items not in this timeline (e.g. outside the period)


@dataclass(frozen=True)
class Summary:
    calls: CallFigures
    emails: EmailFigures
    incidents: list[IncidentContacts]
    claims: list[ClaimFindings] = field(default_factory=list)
    # Contacts outside opening hours: None when no opening hours were given.
    outside_hours: tuple[str, ...] | None = None


# --- calls --------------------------------------------------------------------------


def queue_waits(calls: Sequence[Item]) -> QueueWaits:
    waited = [(i, i.record.queue_wait) for i in calls if isinstance(i.record, Call)]
    known = [(i.id, w) for i, w in waited if w is not None]
    if not known:
        return QueueWaits(0, None, None, None, ())
    values = [w for _, w in known]
    longest = max(values)
    return QueueWaits(
        count=len(values),
        min=min(values),
        median=float(statistics.median(values)),
        max=longest,
        longest=tuple(i for i, w in known if w == longest),
    )


def call_figures(items: Iterable[Item]) -> CallFigures:
    calls = [i for i in items if isinstance(i.record, Call)]
    records = [i.record for i in calls if isinstance(i.record, Call)]
    outcomes = Counter(c.outcome for c in records)
    return CallFigures(
        total=len(records),
        inbound=sum(1 for c in records if c.direction is Direction.INBOUND),
        outbound=sum(1 for c in records if c.direction is Direction.OUTBOUND),
        answered=outcomes["answered"],
        abandoned=outcomes["abandoned"],
        timeout=outcomes["timeout"],
        other={k: v for k, v in sorted(outcomes.items()) if k not in MAIN_OUTCOMES},
        queue_wait=queue_waits(calls),
    )


# --- emails -------------------------------------------------------------------------

_PREFIX = re.compile(r"^\s*((re|fwd?|vs|sv|vl|aw|wg)\s*(\[\d+\])?\s*:\s*)+", re.IGNORECASE)
_MESSAGE_ID = re.compile(r"<[^<>\s]+>")


def normalized_subject(subject: str | None) -> str:
    """The subject without reply/forward prefixes, case and repeated spaces."""
    return " ".join(_PREFIX.sub("", subject or "").split()).casefold()


def _header_ids(mail: Email) -> list[str]:
    return _MESSAGE_ID.findall(" ".join(filter(None, (mail.in_reply_to, mail.references))))


def threads(emails: Sequence[Item]) -> dict[str, int]:
    """Item id -> thread number (see the module docstring for the rule)."""
    mails = records(emails, Email)
    parent = {i.id: i.id for i, _ in mails}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    by_message_id: dict[str, list[str]] = defaultdict(list)
    for item, mail in mails:
        if mail.message_id:
            by_message_id[mail.message_id].append(item.id)
    linked: set[str] = set()
    for item, mail in mails:
        for ref in _header_ids(mail):
            for other in by_message_id.get(ref, []):
                if other != item.id:
                    union(item.id, other)
                    linked.update((item.id, other))
    by_subject: dict[str, list[str]] = defaultdict(list)
    for item, mail in mails:
        key = normalized_subject(mail.subject)
        if key:
            by_subject[key].append(item.id)
    for item, mail in mails:
        if item.id in linked:
            continue
        for other in by_subject.get(normalized_subject(mail.subject), []):
            union(item.id, other)
    # Threads are numbered in the order of their first email.
    number: dict[str, int] = {}
    for item, _ in mails:
        number.setdefault(find(item.id), len(number) + 1)
    return {i.id: number[find(i.id)] for i, _ in mails}


def _seconds(later: dt.datetime, earlier: dt.datetime) -> int:
    return int((later - earlier).total_seconds())


def email_figures(items: Iterable[Item]) -> EmailFigures:
    emails = [i for i in items if isinstance(i.record, Email)]
    direction = {i.id: i.direction for i in emails}
    thread = threads(emails)
    outbound_by_thread: dict[int, list[Item]] = defaultdict(list)
    for item in emails:  # the timeline is in time order, so each list is too
        if direction[item.id] is Direction.OUTBOUND:
            outbound_by_thread[thread[item.id]].append(item)
    replies = []
    for item in emails:
        if direction[item.id] is not Direction.INBOUND:
            continue
        candidates = outbound_by_thread.get(thread[item.id], [])
        index = bisect.bisect_right(candidates, item.at, key=lambda o: o.at)
        answer = candidates[index] if index < len(candidates) else None
        replies.append(
            Reply(item.id, answer.id, _seconds(answer.at, item.at))
            if answer
            else Reply(item.id, None, None)
        )
    first_in = next((i for i in emails if direction[i.id] is Direction.INBOUND), None)
    first_reply = None
    if first_in is not None:
        first_out = next(
            (o for o in emails if direction[o.id] is Direction.OUTBOUND and o.at > first_in.at),
            None,
        )
        first_reply = Reply(
            first_in.id,
            first_out.id if first_out else None,
            _seconds(first_out.at, first_in.at) if first_out else None,
        )
    counts = Counter(direction.values())
    return EmailFigures(
        inbound=counts[Direction.INBOUND],
        outbound=counts[Direction.OUTBOUND],
        internal=counts[Direction.INTERNAL],
        replies=replies,
        first_reply=first_reply,
    )


# --- incidents ----------------------------------------------------------------------


def incident_contacts(timeline: Timeline) -> list[IncidentContacts]:
    result = []
    for incident, record in records(timeline.items, Incident):
        inside = [
            i
            for i in timeline.items
            if i.kind in CONTACT_CHANNELS and any(inc.id == record.id for inc in i.incidents)
        ]
        result.append(
            IncidentContacts(
                incident=incident.id,
                calls=sum(1 for i in inside if i.kind is ItemKind.CALL),
                emails=sum(1 for i in inside if i.kind is ItemKind.EMAIL),
                items=tuple(i.id for i in inside),
            )
        )
    return result


# --- claims -------------------------------------------------------------------------


def _duration(start: dt.datetime, end: dt.datetime | None) -> int | None:
    return _seconds(end, start) if end is not None else None


def claim_findings(
    timeline: Timeline, claim_id: int, item_ids: Sequence[str], zone: ZoneInfo
) -> ClaimFindings:
    """What the record shows about one claim, from the items it is tied to."""
    by_id = {i.id: i for i in timeline.items}
    chosen = [by_id[i] for i in item_ids if i in by_id]
    chosen.sort(key=Item.sort_key)
    missing = tuple(i for i in item_ids if i not in by_id)
    calls = [i for i in chosen if isinstance(i.record, Call)]
    emails = [i for i in chosen if isinstance(i.record, Email)]
    facts: list[Fact] = []
    if calls:
        facts += _call_facts(calls, by_id, zone)
    if emails:
        facts += _email_facts(emails, email_figures(timeline.items))
    for item in chosen:
        record = item.record
        if isinstance(record, Incident):
            facts.append(Fact("incident", _duration(record.start, record.end), (item.id,)))
        elif isinstance(record, AgentPause):
            facts.append(Fact("agent_pause", _duration(record.start, record.end), (item.id,)))
    return ClaimFindings(claim=claim_id, facts=facts, missing=missing)


def _call_facts(calls: list[Item], by_id: dict[str, Item], zone: ZoneInfo) -> list[Fact]:
    """A claim's calls: how many, answered or not, the longest queue wait (and its local
    day), and those inside an incident."""
    ids = tuple(i.id for i in calls)
    answered = tuple(
        i.id for i in calls if getattr(i.record, "outcome", "") == CallOutcome.ANSWERED
    )
    facts = [
        Fact("calls", len(calls), ids),
        Fact("calls_answered", len(answered), answered),
        Fact(
            "calls_unanswered",
            len(calls) - len(answered),
            tuple(i for i in ids if i not in answered),
        ),
    ]
    waits = queue_waits(calls)
    if waits.max is not None:
        first = by_id[waits.longest[0]]
        facts.append(
            Fact(
                "longest_queue_wait",
                waits.max,
                waits.longest,
                day=first.at.astimezone(zone).date(),
            )
        )
    inside = tuple(i.id for i in calls if i.incidents)
    if inside:
        facts.append(Fact("calls_in_incident", len(inside), inside))
    return facts


def _email_facts(emails: list[Item], figures: EmailFigures) -> list[Fact]:
    """A claim's emails: inbound and outbound, the first reply to the earliest inbound one
    (replies are looked for in the whole timeline), and those never answered."""
    reply_of = {r.email: r for r in figures.replies}
    inbound = tuple(i.id for i in emails if i.id in reply_of)
    outbound = tuple(i.id for i in emails if i.direction is Direction.OUTBOUND)
    facts = []
    if inbound:
        facts.append(Fact("emails_inbound", len(inbound), inbound))
    if outbound:
        facts.append(Fact("emails_outbound", len(outbound), outbound))
    if inbound:
        earliest = reply_of[inbound[0]]
        if earliest.reply is not None:
            facts.append(Fact("first_reply", earliest.seconds, (earliest.email, earliest.reply)))
        unanswered = tuple(i for i in inbound if reply_of[i].reply is None)
        if unanswered:
            facts.append(Fact("emails_unanswered", len(unanswered), unanswered))
    return facts


# --- all of it ----------------------------------------------------------------------


def summarize(
    timeline: Timeline,
    zone: ZoneInfo,
    claims: Sequence[ClaimLike] = (),
    *,
    is_open: Callable[[dt.datetime, str], bool] | None = None,
) -> Summary:
    """The Summary's figures. ``is_open(at, channel)`` (channel ``phone`` or ``email``)
    says whether a contact at ``at`` was within opening hours; without it, contacts
    outside opening hours are not counted (``outside_hours`` is None)."""
    outside = None
    if is_open is not None:
        outside = tuple(
            i.id
            for i in timeline.items
            if i.kind in CONTACT_CHANNELS and not is_open(i.at, CONTACT_CHANNELS[i.kind])
        )
    return Summary(
        calls=call_figures(timeline.items),
        emails=email_figures(timeline.items),
        incidents=incident_contacts(timeline),
        claims=[claim_findings(timeline, c.id, c.item_ids, zone) for c in claims],
        outside_hours=outside,
    )
