"""The timeline chart: an SVG that WeasyPrint draws, the same bytes every time."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re
import subprocess
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from evidence.config import load_config
from evidence.records.customers import identity_of
from evidence.render.chart import WAIT_LANE, ChartLabels, timeline_chart
from evidence.store.db import open_store
from evidence.timeline.history import Item, Timeline, build_timeline
from evidence.timeline.mailfacts import MailRules
from tests.conftest import Env
from tests.samples import AINO, SAMPLE_TOML, load_sample

HELSINKI = ZoneInfo("Europe/Helsinki")
FI = ChartLabels(
    email_inbound="saapuva sähköposti",
    email_outbound="lähtevä sähköposti",
    call_inbound="saapuva puhelu",
    call_outbound="lähtevä puhelu",
    queue_wait="jonotusaika",
    incident="häiriö",
    agent_pause="palvelijan tauko",
    emails="Sähköpostit",
    calls="Puhelut",
    queue_waits="Jonotusajat",
    agent_pauses="Palvelijoiden tauot",
    axis_title="Aika (Europe/Helsinki)",
)


def _timeline(env: Env, date_from: dt.date | None = None) -> Timeline:
    env.write_config(SAMPLE_TOML)
    store = open_store(load_config())
    try:
        load_sample(store)
        with store.session() as session:
            return build_timeline(
                session, AINO, HELSINKI, date_from, date_from, rules=MailRules.of(store.config)
            )
    finally:
        store.close()


@pytest.mark.parametrize("env", ["sqlite"], indirect=True)
def test_chart_draws_every_contact_wait_and_band(env: Env) -> None:
    svg = timeline_chart(_timeline(env), HELSINKI, FI)
    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg" width="170mm" height="')
    assert svg.count('class="email inbound"') == 5
    assert svg.count('class="email outbound"') == 1
    assert svg.count('class="call inbound"') == 3
    assert svg.count('class="call outbound"') == 0
    assert svg.count('class="incident"') == 1
    assert svg.count('class="pause"') == 2  # PJSIP/2001 and PJSIP/2002
    # Waits 120 s, 300 s, 45 s on a 5-minute scale; bars in time order.
    bars = re.findall(r'class="wait" x="([\d.]+)" y="[\d.]+" width="[\d.]+" height="([\d.]+)"', svg)
    assert [float(h) for _, h in bars] == [
        pytest.approx(WAIT_LANE * w / 300, abs=0.01) for w in (120, 300, 45)
    ]
    assert [float(x) for x, _ in bars] == sorted(float(x) for x, _ in bars)
    assert ">5 min<" in svg
    # Self-contained: no links, no images, no stylesheets, only a generic font family.
    assert "href" not in svg and "url(" not in svg and "<image" not in svg
    assert re.findall(r'font-family="([^"]+)"', svg) == ["sans-serif"]


@pytest.mark.parametrize("env", ["postgresql"], indirect=True)
def test_chart_is_deterministic_and_in_the_zone_given(env: Env) -> None:
    timeline = _timeline(env)
    first = timeline_chart(timeline, HELSINKI, FI)
    assert timeline_chart(timeline, HELSINKI, FI) == first
    # The outage 08.40-11.05 local (UTC+2): hourly ticks 08.00 ... 15.00 local.
    ticks = re.findall(r'text-anchor="middle" fill="#222222">(\d\d\.\d\d)<', first)
    assert ticks == ["08.00", "09.00", "10.00", "11.00", "12.00", "13.00", "14.00", "15.00"]
    in_utc = timeline_chart(timeline, ZoneInfo("UTC"), FI)
    assert re.findall(r'text-anchor="middle" fill="#222222">(\d\d\.\d\d)<', in_utc)[0] == "06.00"
    english = dataclasses.replace(
        FI,
        format_clock=lambda t: f"{t.hour}:{t.minute:02d}",
        format_day=lambda d: f"{d.day}/{d.month}",
    )
    assert ">8:00<" in timeline_chart(timeline, HELSINKI, english)
    assert ">10/3<" in timeline_chart(timeline, HELSINKI, english)


@pytest.mark.parametrize("env", ["sqlite"], indirect=True)
def test_chart_renders_in_weasyprint(
    env: Env, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from weasyprint import HTML

    # The requested day: 00.00 to 24.00 local, ticks every three hours.
    svg = timeline_chart(_timeline(env, dt.date(2026, 3, 10)), HELSINKI, FI)
    out = tmp_path / "chart.pdf"
    with caplog.at_level(logging.WARNING):
        HTML(string=f"<!doctype html><html lang=fi><body>{svg}</body></html>").write_pdf(out)
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    text = subprocess.run(
        ["pdftotext", "-layout", str(out), "-"], capture_output=True, text=True, check=True
    ).stdout
    flat = " ".join(text.split())
    for label in ("00.00", "03.00", "06.00", "09.00", "12.00", "21.00", "10.3.", "11.3."):
        assert label in flat, label
    for word in (
        "saapuva sähköposti",
        "lähtevä puhelu",
        "palvelijan tauko",
        "Jonotusajat",
        "PJSIP/2001",
        "5 min",
        "Aika (Europe/Helsinki)",
    ):
        assert word in flat, word


def test_chart_of_nothing_is_still_a_chart() -> None:
    from evidence.store.models import Customer

    customer = Customer(ref="1", name="x")
    empty = Timeline(customer, None, None, [], identity_of(customer), MailRules())
    svg = timeline_chart(empty, HELSINKI, FI)
    assert "Sähköpostit" in svg and 'class="email' not in svg and svg.endswith("</svg>")


def test_marks_closer_than_print_can_show_are_drawn_once() -> None:
    from evidence.store.models import Customer, Direction
    from evidence.timeline.calls import Call

    start = dt.datetime(2026, 9, 28, 7, 0, tzinfo=dt.UTC)

    def call(seconds: int, wait: int) -> Item:
        at = start + dt.timedelta(seconds=seconds)
        record = Call(f"{seconds}.1", at, None, Direction.INBOUND, "+358", "0", queue_wait=wait)
        return Item("call", at, f"call:{seconds}.1", record)

    # Two hours over ~145 mm: calls 2 s apart share a column, 30 min apart do not.
    items = [call(0, 100), call(2, 200), call(1800, 60)]
    customer = Customer(ref="1", name="x")
    end = start + dt.timedelta(hours=2)
    timeline = Timeline(customer, start, end, items, identity_of(customer), MailRules())
    svg = timeline_chart(timeline, HELSINKI, FI)
    assert svg.count('class="call inbound"') == 2
    heights = re.findall(
        r'class="wait" x="[\d.]+" y="[\d.]+" width="[\d.]+" height="([\d.]+)"', svg
    )
    # The scale is 5 min; the shared column shows the longer wait, 200 s.
    assert [float(h) for h in heights] == [
        pytest.approx(WAIT_LANE * 200 / 300, abs=0.01),
        pytest.approx(WAIT_LANE * 60 / 300, abs=0.01),
    ]
