"""What the store holds from each source, and what it does not: the dossier's Completeness.

A source is one mailbox (an mbox file, an IMAP folder, or a folder of ``.eml``
files) or one phone-system log file (a CDR ``Master.csv``, a ``queue_log``).
For each: the period its items cover, when it was last imported, and for the
dossier's period the quarantined input from it and its gaps.

Rules, kept simple so a reader can check them:

- An item's time is an email's receive time, a CDR row's start, a queue_log line's time.
- A *gap* is a run of local calendar days inside the period on which the source has no
  item at all although it has items before and after that day. (A closed office's
  weekend is a gap too: the reader sees it and its explanation, not a silence.)
- Quarantined input has no trustworthy time of its own, so every quarantined item of a
  source is listed, whatever the period; the same input quarantined again by a later
  import of the same file is listed once. An item dismissed (``evidence quarantine
  dismiss``: no part of any source) is not listed, and a file that was quarantined whole
  and dismissed is no source at all.
- An email imported from two sources counts for the one it was first imported from
  (the store keeps one record per message); a mailbox whose every message was already
  stored is listed with no items.
- A hosted folder (IMAP, Microsoft Graph) is also reconciled: the server's own count of
  its messages at the last run beside how many of them the store holds (stored from it,
  or recognised as already stored from elsewhere). Quarantined messages, mail older than
  an import's ``--since``, and mail deleted on the server after it was imported make
  the two differ; the reader sees both figures and the time they were taken.
"""

from __future__ import annotations

import datetime as dt
import posixpath
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from evidence.domain import CallLogFormat
from evidence.store.models import (
    CdrRecord,
    Email,
    GraphFolderState,
    ImapFolderState,
    ImportRun,
    QuarantineDismissal,
    QuarantineItem,
    QueueEvent,
    SourceLine,
)
from evidence.timeline.mailfacts import MailRules, placements
from evidence.timeutil import day_start

MAIL = "mail"
PHONE_FORMATS = (CallLogFormat.CDR, CallLogFormat.QUEUE_LOG)
_MBOX_LOCATOR = re.compile(r"^(?P<path>.*) \((?P<locator>message \d+|UID \d+|id [^()]+)\)$")


@dataclass(frozen=True)
class Gap:
    first_day: dt.date  # local days, inclusive
    last_day: dt.date

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1


@dataclass(frozen=True)
class Quarantined:
    id: int
    locator: str | None  # line or message number
    reason: str
    quarantined_at: dt.datetime


@dataclass(frozen=True)
class Reconciliation:
    """A hosted folder's own count at the last run beside what the store holds from it."""

    folder: str
    server_count: int  # IMAP STATUS MESSAGES, Graph totalItemCount
    held: int  # messages of the folder in the store (stored from it or found already stored)
    counted_at: dt.datetime  # when the run read the count

    @property
    def difference(self) -> int:
        """Positive: messages on the server the store does not hold from this folder."""
        return self.server_count - self.held


@dataclass
class SourceCompleteness:
    kind: str  # "mail", "asterisk-cdr", "asterisk-queue-log", or another importer's kind
    source: str  # the mailbox or log file as it was imported
    items: int = 0
    first: dt.datetime | None = None  # the period its items cover
    last: dt.datetime | None = None
    last_imported: dt.datetime | None = None
    items_in_period: int = 0
    gaps: list[Gap] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)
    reconciliation: Reconciliation | None = None

    @property
    def quarantine_reasons(self) -> dict[str, int]:
        return dict(sorted(Counter(q.reason for q in self.quarantined).items()))

    def covers(self, start: dt.datetime | None, end: dt.datetime | None) -> bool:
        """True when the source's items span the whole of [start, end)."""
        if self.first is None or self.last is None:
            return False
        return (start is None or self.first <= start) and (end is None or self.last >= end)


@dataclass(frozen=True)
class Completeness:
    start: dt.datetime | None  # the dossier's period, [start, end)
    end: dt.datetime | None
    sources: list[SourceCompleteness]


def mail_source(source: str, locator: str | None = None) -> str:
    """The mailbox an email's (or a quarantined message's) ``source`` belongs to.

    A message with a locator ("message 3") is inside that mbox or folder; a lone
    ``.eml`` file belongs to the folder it was in (a Maildir's ``cur/`` and ``new/``
    are one mailbox).
    """
    match = _MBOX_LOCATOR.match(source)
    if match is not None:
        return match.group("path")
    if locator is not None or "://" in source:
        return source
    folder = posixpath.dirname(source) or source
    if posixpath.basename(folder) in ("cur", "new"):  # a Maildir is one mailbox
        folder = posixpath.dirname(folder) or folder
    return folder


def _run_paths(run: ImportRun) -> list[str]:
    if run.kind != MAIL:
        return [run.source]
    if run.source.startswith(("imap://", "graph://")):  # one run, several folders
        scheme, _sep, rest = run.source.partition("://")
        account, _slash, folders = rest.partition("/")  # user@host:port or the mailbox
        return [f"{scheme}://{account}/{folder}" for folder in folders.split(",") if folder]
    return [p for p in run.source.split(", ") if p]


def _covers(path: str, source: str) -> bool:
    return (
        path == source
        or source.startswith(path.rstrip("/") + "/")
        or (path.startswith(source.rstrip("/") + "/"))
    )


def completeness(
    session: Session,
    zone: ZoneInfo,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    *,
    rules: MailRules,
) -> Completeness:
    """Every source in the store, with its coverage and, for [start, end), gaps and quarantine.

    With no period, gaps are looked for over each source's own span.
    """
    sources: dict[tuple[str, str], SourceCompleteness] = {}
    for found in _mail_coverage(session, rules, zone, start, end) + _phone_log_coverage(
        session, zone, start, end
    ):
        sources[(found.kind, found.source)] = found
    listed, not_sources = _quarantine_by_source(session)
    for kind, key, quarantined in listed:
        _entry(sources, kind, key).quarantined.append(quarantined)
    for key, reconciled in reconciliations(session).items():
        _entry(sources, MAIL, key).reconciliation = reconciled
    runs = list(session.scalars(select(ImportRun).order_by(ImportRun.id)))
    _add_imported_without_items(sources, runs, not_sources)
    for found in sources.values():
        found.last_imported = _last_imported(found, runs)
    ordered = sorted(sources.values(), key=lambda s: (s.kind != MAIL, s.kind, s.source))
    return Completeness(start=start, end=end, sources=ordered)


def _entry(
    sources: dict[tuple[str, str], SourceCompleteness], kind: str, source: str
) -> SourceCompleteness:
    return sources.setdefault((kind, source), SourceCompleteness(kind, source))


def _mail_coverage(
    session: Session,
    rules: MailRules,
    zone: ZoneInfo,
    start: dt.datetime | None,
    end: dt.datetime | None,
) -> list[SourceCompleteness]:
    """Each mailbox's items, span and gaps. An email carries one source string, so the
    mailbox is worked out here."""
    mail_times: dict[str, list[dt.datetime]] = defaultdict(list)
    placed = placements(session, rules)
    for email_id, source in session.execute(select(Email.id, Email.source)):
        mail_times[mail_source(source)].append(placed[email_id].at)
    found = []
    for source, values in mail_times.items():
        values.sort()
        found.append(
            SourceCompleteness(
                MAIL,
                source,
                items=len(values),
                first=values[0],
                last=values[-1],
                items_in_period=sum(
                    1 for t in values if (start is None or t >= start) and (end is None or t < end)
                ),
                gaps=_gaps(values, values[0], values[-1], start, end, zone),
            )
        )
    return found


def _phone_log_coverage(
    session: Session, zone: ZoneInfo, start: dt.datetime | None, end: dt.datetime | None
) -> list[SourceCompleteness]:
    """Each CDR and queue_log file's items, span and gaps: counted in the database; only the
    period's times are read."""
    found = []
    for model, column in ((CdrRecord, CdrRecord.started_at), (QueueEvent, QueueEvent.at)):
        joined = (SourceLine.format, SourceLine.source)
        aggregate = (
            select(*joined, func.count(), func.min(column), func.max(column))
            .join(model, model.source_line_id == SourceLine.id)
            .group_by(*joined)
        )
        for fmt, source, count, first, last in session.execute(aggregate):
            window = (
                select(column)
                .join(SourceLine, model.source_line_id == SourceLine.id)
                .where(SourceLine.source == source, SourceLine.format == fmt)
                .order_by(column)
            )
            if start is not None:
                window = window.where(column >= start)
            if end is not None:
                window = window.where(column < end)
            values = list(session.scalars(window))
            found.append(
                SourceCompleteness(
                    fmt,
                    source,
                    items=count,
                    first=first,
                    last=last,
                    items_in_period=len(values),
                    gaps=_gaps(values, first, last, start, end, zone),
                )
            )
    return found


def _quarantine_by_source(
    session: Session,
) -> tuple[list[tuple[str, str, Quarantined]], set[tuple[str, str]]]:
    """Every quarantined item not dismissed, as (kind, source, item), each bad input once;
    and the files quarantined whole and then dismissed, which are no sources at all."""
    listed: list[tuple[str, str, Quarantined]] = []
    seen: set[tuple[str, str, str | None, str]] = set()
    dismissed = set(session.scalars(select(QuarantineDismissal.quarantine_id)))
    not_sources: set[tuple[str, str]] = set()
    for item in session.scalars(select(QuarantineItem).order_by(QuarantineItem.id)):
        if item.id in dismissed:
            if item.locator is None:
                not_sources.add((item.kind, item.source))
            continue
        # The same bad input met again by a later import is listed once.
        again = (item.source, item.raw_sha256, item.locator, item.reason)
        if again in seen:
            continue
        seen.add(again)
        if item.kind == MAIL:
            key = mail_source(item.source, item.locator)
        elif item.kind in PHONE_FORMATS:
            key = item.source
        else:  # e.g. a recording: one file in the folder that was imported
            key = posixpath.dirname(item.source) or item.source
        listed.append(
            (item.kind, key, Quarantined(item.id, item.locator, item.reason, item.quarantined_at))
        )
    return listed, not_sources


def _add_imported_without_items(
    sources: dict[tuple[str, str], SourceCompleteness],
    runs: list[ImportRun],
    not_sources: set[tuple[str, str]],
) -> None:
    """A mailbox or log that was imported but brought nothing new (every message already
    in the store from another file) is still a source the reader should see."""
    for run in runs:
        if run.kind != MAIL and run.kind not in PHONE_FORMATS:
            continue
        for path in _run_paths(run):
            if (run.kind, path) in not_sources:
                continue
            source = mail_source(path) if run.kind == MAIL and path.endswith(".eml") else path
            if not any(k == run.kind and _covers(source, s) for k, s in sources):
                _entry(sources, run.kind, source)


def _last_imported(found: SourceCompleteness, runs: list[ImportRun]) -> dt.datetime | None:
    """When the latest import run that read this source ended (or began, if unfinished)."""
    last: dt.datetime | None = None
    for run in runs:
        if run.kind != found.kind:
            continue
        if any(_covers(path, found.source) for path in _run_paths(run)):
            when = run.finished_at or run.started_at
            if last is None or when > last:
                last = when
    return last


def reconciliations(session: Session) -> dict[str, Reconciliation]:
    """Every hosted folder counted at its last run, by the mailbox name its emails carry
    (``imap://user@host:port/folder``, ``graph://mailbox/folder``)."""
    found: dict[str, Reconciliation] = {}
    for imap in session.scalars(select(ImapFolderState).order_by(ImapFolderState.id)):
        if imap.server_count is not None and imap.counted_at is not None:
            found[f"imap://{imap.account}/{imap.folder}"] = Reconciliation(
                imap.folder, imap.server_count, imap.held, imap.counted_at
            )
    for graph in session.scalars(select(GraphFolderState).order_by(GraphFolderState.id)):
        if graph.server_count is not None and graph.counted_at is not None:
            found[f"graph://{graph.mailbox}/{graph.folder}"] = Reconciliation(
                graph.folder, graph.server_count, graph.held, graph.counted_at
            )
    return found


def _gaps(
    times: list[dt.datetime],
    first: dt.datetime,
    last: dt.datetime,
    start: dt.datetime | None,
    end: dt.datetime | None,
    zone: ZoneInfo,
) -> list[Gap]:
    """Local days in [start, end) without items, strictly between the source's first and
    last item. ``times`` holds (at least) every item time in the period."""
    lo = max(first, start) if start is not None else first
    hi = min(last, end) if end is not None else last
    if hi <= lo:
        return []
    busy = {t.astimezone(zone).date() for t in times}
    day = lo.astimezone(zone).date()
    final = hi.astimezone(zone).date()
    gaps: list[Gap] = []
    run: list[dt.date] = []
    while day <= final:
        day_begins, day_ends = day_start(day, zone), day_start(day + dt.timedelta(days=1), zone)
        between = first < day_begins and day_ends <= last
        in_period = (start is None or day_begins >= start) and (end is None or day_ends <= end)
        if day not in busy and between and in_period:
            run.append(day)
        elif run:
            gaps.append(Gap(run[0], run[-1]))
            run = []
        day += dt.timedelta(days=1)
    if run:
        gaps.append(Gap(run[0], run[-1]))
    return gaps
