"""Summary figures from a built timeline: the phone system's own numbers, reply times, claims."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import pytest

from evidence.config import load_config
from evidence.records.cases import add_claim, current_claims, load_case, open_case
from evidence.store.db import Store, open_store
from evidence.store.models import Direction, Email
from evidence.timeline.history import Item, Timeline, build_timeline
from evidence.timeline.mailfacts import MailRules
from evidence.timeline.summary import (
    ClaimFindings,
    Fact,
    IncidentContacts,
    QueueWaits,
    Reply,
    email_figures,
    normalized_subject,
    summarize,
    threads,
)
from tests.conftest import COMPANY_TOML, SCENARIO, Env, need_shared
from tests.samples import AINO, MATTI, SAMPLE_TOML, load_sample, load_scenario

HELSINKI = ZoneInfo("Europe/Helsinki")
# The scenario store is made with the company's domain (COMPANY_TOML).
RULES = MailRules(domains=("aurora-energia.example",))
UTC = dt.UTC


@dataclass
class FakeClaim:
    id: int
    item_ids: list[str] = field(default_factory=list)


@pytest.fixture
def scenario_store(env: Env) -> Iterator[Store]:
    need_shared()
    env.write_config(COMPANY_TOML)
    opened = open_store(load_config())
    load_scenario(opened, SCENARIO)
    yield opened
    opened.close()


def _email_ids(timeline: Timeline) -> dict[str, str]:
    """Message-ID -> timeline item id."""
    return {i.record.message_id or "": i.id for i in timeline.items if isinstance(i.record, Email)}


def test_scenario_summary(scenario_store: Store) -> None:
    with scenario_store.session() as session:
        timeline = build_timeline(session, MATTI, HELSINKI, rules=RULES)
    calls = [i.id for i in timeline.of_kind("call")]
    on_28 = calls[:6]
    mail = _email_ids(timeline)
    m01 = mail["<20260928091422.5521@mail.example.net>"]
    m02 = mail["<20260928100109.7781@mail.example.net>"]
    m03 = mail["<wm.1790583962.33@webmail.example.net>"]
    m04 = mail["<20260928135240.1102@mail.example.net>"]
    m05 = mail["<a7f3.20260928143715@aurora-energia.example>"]
    m06 = mail["<20260929080351.2001@mail.example.net>"]
    claims = [
        FakeClaim(1, [*on_28, "incident:1"]),
        FakeClaim(2, [m01, m03]),
        FakeClaim(3, []),
    ]
    summary = summarize(timeline, HELSINKI, claims)

    figures = summary.calls
    assert (figures.total, figures.inbound, figures.outbound) == (7, 7, 0)
    assert (figures.answered, figures.abandoned, figures.timeout) == (1, 3, 2)
    assert figures.other == {"ivr": 1}  # the after-hours call ended in the announcement
    # waits 95, 240, 300, 31, 300, 100: the IVR call has none
    assert figures.queue_wait == QueueWaits(
        count=6, min=31, median=170.0, max=300, longest=(on_28[2], on_28[4])
    )

    emails = summary.emails
    assert (emails.inbound, emails.outbound, emails.internal) == (5, 1, 0)
    # m01 received 09:14:25, answered by m05 at 14:37:15: 5 h 22 min 50 s.
    assert emails.first_reply == Reply(m01, m05, 5 * 3600 + 22 * 60 + 50)
    assert emails.replies == [
        Reply(m01, m05, 19370),
        Reply(m02, m05, 4 * 3600 + 15 * 60 + 38),  # received 10:21:37
        Reply(m03, None, None),  # HTML-only, no headers tie it to the reply
        Reply(m04, m05, 44 * 60 + 33),  # received 13:52:42
        Reply(m06, None, None),  # the complaint the next morning
    ]
    assert emails.unanswered == [m03, m06]

    [inside] = summary.incidents
    # 10:15 call, m02 10:21, 10:42 call, 11:31 call, m03 11:46, 12:06 call, 13:33 call, m04 13:52
    c1, c2, c3, c4, c5 = on_28[:5]
    assert inside == IncidentContacts("incident:1", 5, 3, (c1, m02, c2, c3, m03, c4, c5, m04))
    assert summary.outside_hours is None

    queued, mailed, bare = summary.claims
    assert queued == ClaimFindings(
        claim=1,
        facts=[
            Fact("calls", 6, tuple(on_28)),
            Fact("calls_answered", 1, (on_28[5],)),
            Fact("calls_unanswered", 5, tuple(on_28[:5])),
            Fact("longest_queue_wait", 300, (on_28[2], on_28[4]), day=dt.date(2026, 9, 28)),
            Fact("calls_in_incident", 5, tuple(on_28[:5])),
            Fact("incident", 4 * 3600 + 9 * 60, ("incident:1",)),
        ],
        missing=(),
    )
    assert mailed.facts == [
        Fact("emails_inbound", 2, (m01, m03)),
        Fact("first_reply", 19370, (m01, m05)),
        Fact("emails_unanswered", 1, (m03,)),
    ]
    assert bare == ClaimFindings(3, [], ())


def test_scenario_period_leaves_out_the_autumn_call(scenario_store: Store) -> None:
    with scenario_store.session() as session:
        timeline = build_timeline(
            session, MATTI, HELSINKI, dt.date(2026, 9, 28), dt.date(2026, 9, 30), rules=RULES
        )
    summary = summarize(timeline, HELSINKI, [FakeClaim(7, ["call:1792891812.901"])])
    assert summary.calls.total == 6 and summary.calls.other == {}
    assert summary.claims == [ClaimFindings(7, [], ("call:1792891812.901",))]


def test_sample_summary_and_opening_hours(env: Env) -> None:
    env.write_config(SAMPLE_TOML)
    store = open_store(load_config())
    try:
        load_sample(store)
        open_case(store, "KKV/1", customer_ref=AINO, authority="KKV", received=None, deadline=None)
        add_claim(store, "KKV/1", "kukaan ei vastannut", ["call:1773129795.1044", "email:3"])
        with store.session() as session:
            timeline = build_timeline(session, AINO, HELSINKI, rules=MailRules.of(store.config))
            claims = current_claims(load_case(session, "KKV/1"))
    finally:
        store.close()
    # The stored claims are what the summary takes.
    [found] = summarize(timeline, HELSINKI, claims).claims
    assert found == ClaimFindings(
        claim=1,
        facts=[
            Fact("calls", 1, ("call:1773129795.1044",)),
            Fact("calls_answered", 0, ()),
            Fact("calls_unanswered", 1, ("call:1773129795.1044",)),
            Fact("longest_queue_wait", 300, ("call:1773129795.1044",), day=dt.date(2026, 3, 10)),
            Fact("calls_in_incident", 1, ("call:1773129795.1044",)),
            Fact("emails_inbound", 1, ("email:3",)),
            Fact("emails_unanswered", 1, ("email:3",)),
        ],
        missing=(),
    )

    def is_open(at: dt.datetime, channel: str) -> bool:
        local = at.astimezone(HELSINKI)
        return channel == "email" or 9 <= local.hour < 16

    summary = summarize(timeline, HELSINKI, is_open=is_open)
    assert summary.calls.queue_wait == QueueWaits(3, 45, 120.0, 300, ("call:1773129795.1044",))
    assert [(r.email, r.reply, r.seconds) for r in summary.emails.replies] == [
        ("email:1", "email:6", 17986),
        ("email:2", "email:6", 12618),
        ("email:3", None, None),
        ("email:4", "email:6", 7644),
        ("email:7", None, None),
    ]
    assert summary.incidents == [
        IncidentContacts("incident:1", 2, 0, ("call:1773126750.1041", "call:1773129795.1044"))
    ]
    # Calls at 09.12, 10.03 and 11.48 local: all inside 9-16.
    assert summary.outside_hours == ()
    strict = summarize(
        timeline, HELSINKI, is_open=lambda at, ch: at.astimezone(HELSINKI).hour >= 10
    )
    assert strict.outside_hours == ("email:1", "call:1773126750.1041", "email:2")


def _mail(n: int, at: str, direction: Direction, subject: str, **headers: str) -> Item:
    record = Email(
        subject=subject,
        message_id=f"<m{n}@x>",
        in_reply_to=headers.get("in_reply_to"),
        references=headers.get("references"),
    )
    return Item("email", dt.datetime.fromisoformat(at), f"email:{n}", record, direction=direction)


def test_threads_by_headers_then_subject() -> None:
    inbound, outbound = Direction.INBOUND, Direction.OUTBOUND
    items = [
        _mail(1, "2026-09-28T06:00:00+00:00", inbound, "Lasku 4471203"),
        _mail(2, "2026-09-28T07:00:00+00:00", inbound, "VASTATKAA!!!"),
        _mail(3, "2026-09-28T08:00:00+00:00", inbound, "Toinen asia", references="<m1@x>"),
        # A reply from a web tool that sets no In-Reply-To: tied by its subject.
        _mail(4, "2026-09-28T09:00:00+00:00", outbound, "VS: Re:  vastatkaa!!! "),
        _mail(5, "2026-09-28T10:00:00+00:00", outbound, "Re: Toinen asia", in_reply_to="<m3@x>"),
        # A reply to an unknown message falls back to its subject.
        _mail(6, "2026-09-28T11:00:00+00:00", inbound, "RE: Lasku 4471203", in_reply_to="<zz@y>"),
    ]
    assert normalized_subject("VS: Re:  vastatkaa!!! ") == "vastatkaa!!!"
    assert normalized_subject("SV: AW[2]: Fwd: x") == "x"
    assert threads(items) == {
        "email:1": 1,
        "email:2": 2,
        "email:3": 1,
        "email:4": 2,
        "email:5": 1,
        "email:6": 1,
    }
    figures = email_figures(items)
    assert figures.replies == [
        Reply("email:1", "email:5", 4 * 3600),
        Reply("email:2", "email:4", 2 * 3600),
        Reply("email:3", "email:5", 2 * 3600),
        Reply("email:6", None, None),  # nothing outbound after it in its thread
    ]
    assert figures.first_reply == Reply("email:1", "email:4", 3 * 3600)
