"""The dossier's timeline chart: one SVG, drawn for print, from a built timeline.

Each email and call is a mark on a time axis (squares for email, circles for
calls; filled inbound, hollow outbound), each call's queue wait a bar scaled in
minutes, incidents are bands across the whole chart and agents' pauses bands
in a lane of their own. Axis labels are local time in the zone given; every
word is the caller's (``ChartLabels``), so the chart speaks the dossier's language.

The output references nothing outside itself and names only a generic font
family; the same timeline, zone and labels always give the same bytes.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

from evidence.store.models import Direction, Email, Incident
from evidence.timeline.calls import AgentPause, Call
from evidence.timeline.history import Item, Timeline, records
from evidence.timeutil import day_start


def _fi_day(day: dt.date) -> str:
    return f"{day.day}.{day.month}."


def _fi_clock(clock: dt.time) -> str:
    return f"{clock.hour:02d}.{clock.minute:02d}"


@dataclass(frozen=True)
class ChartLabels:
    """Every word on the chart, in the dossier's language."""

    email_inbound: str
    email_outbound: str
    call_inbound: str
    call_outbound: str
    queue_wait: str
    incident: str
    agent_pause: str
    emails: str  # lane titles
    calls: str
    queue_waits: str
    agent_pauses: str
    minutes: str = "min"
    axis_title: str = ""  # e.g. "Aika, Europe/Helsinki"
    format_day: Callable[[dt.date], str] = _fi_day
    format_clock: Callable[[dt.time], str] = _fi_clock


# Geometry, in millimetres (the SVG's user unit).
FONT = 2.6
SMALL = 2.2
LABEL_COLUMN = 22.0
RIGHT = 3.0
LANE_TITLE = 3.4
MARK_LANE = 6.0
WAIT_LANE = 16.0
PAUSE_ROW = 3.2
MIN_TICK_SPACING = 15.0
BIN = 0.25  # marks nearer than this (mm) are one mark on paper

INK = "#222222"
GRID = "#d9d9d9"
EMAIL = "#1f4e79"
CALL = "#2e6b30"
WAIT = "#b5651d"
INCIDENT = "#f4d3cf"
PAUSE = "#c9c9c9"

_CLOCK_STEPS = (15, 30, 60, 120, 180, 360, 720)  # minutes
_DAY_STEPS = (1, 2, 7, 14)  # days; beyond that, months
_WAIT_SCALES = (1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 240, 480)  # minutes


def _n(value: float) -> str:
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _text_width(text: str, size: float) -> float:
    """A deterministic estimate: no font metrics are available (nor wanted) here."""
    return len(text) * size * 0.56


def _fit(text: str, size: float, width: float) -> str:
    if _text_width(text, size) <= width:
        return text
    keep = max(1, int(width / (size * 0.56)) - 1)
    return text[:keep] + "…"


class _Svg:
    def __init__(self) -> None:
        self.parts: list[str] = []

    def rect(self, x: float, y: float, w: float, h: float, cls: str, **style: str) -> None:
        attrs = "".join(f' {k.replace("_", "-")}="{v}"' for k, v in style.items())
        self.parts.append(
            f'<rect class="{cls}" x="{_n(x)}" y="{_n(y)}" width="{_n(w)}" height="{_n(h)}"{attrs}/>'
        )

    def circle(self, cx: float, cy: float, r: float, cls: str, **style: str) -> None:
        attrs = "".join(f' {k.replace("_", "-")}="{v}"' for k, v in style.items())
        self.parts.append(f'<circle class="{cls}" cx="{_n(cx)}" cy="{_n(cy)}" r="{_n(r)}"{attrs}/>')

    def line(self, x1: float, y1: float, x2: float, y2: float, stroke: str, width: float) -> None:
        self.parts.append(
            f'<line x1="{_n(x1)}" y1="{_n(y1)}" x2="{_n(x2)}" y2="{_n(y2)}" '
            f'stroke="{stroke}" stroke-width="{_n(width)}"/>'
        )

    def text(
        self, x: float, y: float, content: str, size: float = FONT, anchor: str = "start"
    ) -> None:
        self.parts.append(
            f'<text x="{_n(x)}" y="{_n(y)}" font-size="{_n(size)}" text-anchor="{anchor}" '
            f'fill="{INK}">{escape(content)}</text>'
        )


def _domain(timeline: Timeline, zone: ZoneInfo) -> tuple[dt.datetime, dt.datetime] | None:
    if timeline.start is not None and timeline.end is not None:
        return timeline.start, timeline.end
    times: list[dt.datetime] = []
    for item in timeline.items:
        times.append(item.at)
        record = item.record
        if isinstance(record, Incident | AgentPause) and record.end is not None:
            times.append(record.end)
    if timeline.start is not None:
        times.append(timeline.start)
    if timeline.end is not None:
        times.append(timeline.end)
    if not times:
        return None
    lo, hi = min(times), max(times)
    # Whole local hours around what there is, at least two of them.
    lo_local = lo.astimezone(zone)
    lo = lo - dt.timedelta(minutes=lo_local.minute, seconds=lo_local.second)
    lo = lo.replace(microsecond=0)
    hi_local = hi.astimezone(zone)
    if hi_local.minute or hi_local.second or hi_local.microsecond:
        hi = (hi - dt.timedelta(minutes=hi_local.minute, seconds=hi_local.second)).replace(
            microsecond=0
        ) + dt.timedelta(hours=1)
    if hi - lo < dt.timedelta(hours=2):
        hi = lo + dt.timedelta(hours=2)
    return timeline.start or lo, timeline.end or hi


@dataclass(frozen=True)
class _Tick:
    at: dt.datetime
    clock: str | None  # None on day ticks
    day: str | None  # set where the local date changes


def _clock_ticks(
    lo: dt.datetime, hi: dt.datetime, zone: ZoneInfo, step: int, labels: ChartLabels
) -> list[_Tick]:
    ticks = []
    quarter = dt.timedelta(minutes=15)
    t = lo.replace(minute=(lo.minute // 15) * 15, second=0, microsecond=0)
    last_day: dt.date | None = None
    while t <= hi:
        if t >= lo:
            local = t.astimezone(zone)
            minutes = local.hour * 60 + local.minute
            if local.second == 0 and minutes % step == 0:
                day = local.date()
                ticks.append(
                    _Tick(
                        t,
                        labels.format_clock(local.time()),
                        labels.format_day(day) if day != last_day else None,
                    )
                )
                last_day = day
        t += quarter
    return ticks


def _day_ticks(
    lo: dt.datetime, hi: dt.datetime, zone: ZoneInfo, step: int | None, labels: ChartLabels
) -> list[_Tick]:
    ticks = []
    day = lo.astimezone(zone).date()
    last = hi.astimezone(zone).date()
    while day <= last:
        if step is None:
            wanted = day.day == 1
        elif step >= 7:
            wanted = day.weekday() == 0 and (step == 7 or day.isocalendar().week % 2 == 0)
        else:
            wanted = day.toordinal() % step == 0
        at = day_start(day, zone)
        if wanted and lo <= at <= hi:
            ticks.append(_Tick(at, None, labels.format_day(day)))
        day += dt.timedelta(days=1)
    return ticks


def _ticks(
    lo: dt.datetime, hi: dt.datetime, zone: ZoneInfo, width: float, labels: ChartLabels
) -> list[_Tick]:
    most = max(2, int(width // MIN_TICK_SPACING))
    minutes = (hi - lo).total_seconds() / 60
    for step in _CLOCK_STEPS:
        if minutes / step <= most + 1:
            ticks = _clock_ticks(lo, hi, zone, step, labels)
            if len(ticks) <= most:
                return ticks
    for days in _DAY_STEPS:
        if minutes / (days * 1440) <= most + 1:
            ticks = _day_ticks(lo, hi, zone, days, labels)
            if len(ticks) <= most:
                return ticks
    return _day_ticks(lo, hi, zone, None, labels)


def _wait_scale(longest: int) -> int:
    """The top of the queue-wait scale, in minutes."""
    for minutes in _WAIT_SCALES:
        if longest <= minutes * 60:
            return minutes
    return math.ceil(longest / 3600) * 60


def _legend(
    svg: _Svg,
    entries: list[tuple[str, str]],
    width_mm: float,
    symbol_width: float,
    symbol: Callable[[str, float, float], None],
) -> float:
    """Legend entries (a symbol, then its word) flowed into rows; returns the last row's y."""
    x, y = 0.0, 3.0
    for key, word in entries:
        needed = symbol_width + _text_width(word, FONT) + 4.0
        if x > 0 and x + needed > width_mm:
            x, y = 0.0, y + 4.5
        symbol(key, x, y)
        svg.text(x + symbol_width, y, word)
        x += needed
    return y


@dataclass(frozen=True)
class _TimeAxis:
    """Where a time falls on a chart: ``[lo, hi]`` from ``x0`` to ``x1`` (mm); times outside
    it are drawn at its ends."""

    lo: dt.datetime
    hi: dt.datetime
    x0: float
    x1: float

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    def x(self, at: dt.datetime) -> float:
        span = (self.hi - self.lo).total_seconds() or 1.0
        clamped = min(max(at, self.lo), self.hi)
        return self.x0 + (clamped - self.lo).total_seconds() / span * self.width


@dataclass(frozen=True)
class _Lanes:
    """The timeline chart's lanes, top to bottom (y of each lane's top, in mm)."""

    top: float
    email: float
    call: float
    wait: float
    pause: float
    bottom: float

    @classmethod
    def below(cls, top: float, agents: int) -> _Lanes:
        email = top + LANE_TITLE
        call = email + MARK_LANE + LANE_TITLE
        wait = call + MARK_LANE + LANE_TITLE
        pause = wait + WAIT_LANE + LANE_TITLE
        return cls(top, email, call, wait, pause, pause + max(1, agents) * PAUSE_ROW + 1.0)


class _Bins:
    """Marks closer than the print can tell apart are drawn once: a long history stays a
    small SVG that lays out quickly."""

    def __init__(self) -> None:
        self.drawn: set[tuple[str, int]] = set()

    def first(self, kind: str, x: float) -> bool:
        """True for the first mark of ``kind`` in the bin at ``x``."""
        key = (kind, round(x / BIN))
        if key in self.drawn:
            return False
        self.drawn.add(key)
        return True


def timeline_chart(
    timeline: Timeline, zone: ZoneInfo, labels: ChartLabels, *, width_mm: float = 170.0
) -> str:
    """The chart as a standalone SVG document (a string), ``width_mm`` wide."""
    svg = _Svg()
    x0, x1 = LABEL_COLUMN, width_mm - RIGHT
    y = _timeline_legend(svg, labels, width_mm)
    domain = _domain(timeline, zone)
    calls = records(timeline.items, Call)
    emails = [item for item, _ in records(timeline.items, Email)]
    pauses = [i.record for i in timeline.items if isinstance(i.record, AgentPause)]
    incidents = [i.record for i in timeline.items if isinstance(i.record, Incident)]
    agents = sorted({p.agent for p in pauses})
    lanes = _Lanes.below(y + 3.5, len(agents))

    body = _Svg()
    if domain is not None:
        axis = _TimeAxis(*domain, x0, x1)
        for incident in incidents:
            left, right = axis.x(incident.start), axis.x(incident.end or axis.hi)
            body.rect(left, lanes.top, max(right - left, 0.3), lanes.bottom - lanes.top,
                      "incident", fill=INCIDENT)  # fmt: skip
        _draw_time_ticks(body, axis, zone, labels, lanes)
        bins = _Bins()
        _draw_emails(body, axis, emails, lanes, bins)
        scale = _wait_scale(max((call.queue_wait or 0 for _, call in calls), default=0))
        _draw_calls(body, axis, calls, lanes, bins, scale)
        _draw_pauses(body, axis, agents, pauses, lanes)
        svg.text(x0 - 1.0, lanes.wait + WAIT_LANE, "0", SMALL, "end")
        svg.text(x0 - 1.0, lanes.wait + SMALL * 0.8, f"{scale} {labels.minutes}", SMALL, "end")
        svg.line(x0, lanes.wait, x1, lanes.wait, GRID, 0.15)

    # Lane titles and frame.
    for title, lane_top in (
        (labels.emails, lanes.email),
        (labels.calls, lanes.call),
        (labels.queue_waits, lanes.wait),
        (labels.agent_pauses, lanes.pause),
    ):
        svg.text(x0, lane_top - 0.8, title, SMALL)
    svg.line(x0, lanes.bottom, x1, lanes.bottom, INK, 0.25)
    svg.line(x0, lanes.wait + WAIT_LANE, x1, lanes.wait + WAIT_LANE, INK, 0.15)
    height = lanes.bottom + (10.5 if labels.axis_title else 8.0)
    _axis_title(svg, x0, x1, height, labels.axis_title)
    return _document(width_mm, height, body, svg)


def _timeline_legend(svg: _Svg, labels: ChartLabels, width_mm: float) -> float:
    """The timeline chart's legend, flowed into rows; returns the last row's y."""
    legend = [
        ("email-in", labels.email_inbound),
        ("email-out", labels.email_outbound),
        ("call-in", labels.call_inbound),
        ("call-out", labels.call_outbound),
        ("wait", labels.queue_wait),
        ("incident", labels.incident),
        ("pause", labels.agent_pause),
    ]
    return _legend(
        svg, legend, width_mm, 4.5, lambda key, x, y: _legend_symbol(svg, key, x + 1.5, y - 0.9)
    )


def _draw_time_ticks(
    body: _Svg, axis: _TimeAxis, zone: ZoneInfo, labels: ChartLabels, lanes: _Lanes
) -> None:
    """Grid lines and the local time (and day) under the lanes."""
    x0, bottom = axis.x0, lanes.bottom
    ticks = _ticks(axis.lo, axis.hi, zone, axis.width, labels)
    if not ticks or axis.x(ticks[0].at) - x0 > 12.0:
        # Say where the axis starts when no tick is near its left end.
        start = axis.lo.astimezone(zone)
        body.text(x0, bottom + 3.6, labels.format_day(start.date()), SMALL, "middle")
    for tick in ticks:
        tx = axis.x(tick.at)
        body.line(tx, lanes.top, tx, bottom, GRID, 0.15)
        body.line(tx, bottom, tx, bottom + 1.0, INK, 0.2)
        if tick.clock is not None:
            body.text(tx, bottom + 3.6, tick.clock, SMALL, "middle")
        if tick.day is not None:
            row = 6.6 if tick.clock is not None else 3.6
            body.text(tx, bottom + row, tick.day, SMALL, "middle")


def _draw_emails(
    body: _Svg, axis: _TimeAxis, emails: list[Item], lanes: _Lanes, bins: _Bins
) -> None:
    """Squares in the email lane: filled from the customer, hollow to them."""
    for item in emails:
        cx, cy = axis.x(item.at), lanes.email + MARK_LANE / 2
        if item.direction is Direction.INBOUND:
            if bins.first("email inbound", cx):
                body.rect(cx - 1.1, cy - 1.1, 2.2, 2.2, "email inbound", fill=EMAIL)
        elif bins.first("email outbound", cx):
            body.rect(cx - 1.0, cy - 1.0, 2.0, 2.0, "email outbound", fill="#ffffff",
                      stroke=EMAIL, stroke_width="0.35")  # fmt: skip


def _draw_calls(
    body: _Svg,
    axis: _TimeAxis,
    calls: list[tuple[Item, Call]],
    lanes: _Lanes,
    bins: _Bins,
    scale: int,
) -> None:
    """Circles in the call lane (filled inbound, hollow outbound), then each call's queue wait
    as a bar on a scale of ``scale`` minutes (the longest wait of the calls in one bin)."""
    bars: dict[int, tuple[float, int]] = {}
    for item, call in calls:
        cx, cy = axis.x(item.at), lanes.call + MARK_LANE / 2
        if call.direction is Direction.OUTBOUND:
            if bins.first("call outbound", cx):
                body.circle(cx, cy, 1.0, "call outbound", fill="#ffffff", stroke=CALL,
                            stroke_width="0.35")  # fmt: skip
        elif bins.first("call inbound", cx):
            body.circle(cx, cy, 1.15, "call inbound", fill=CALL)
        wait = call.queue_wait
        if wait:
            column = round(cx / BIN)
            if column not in bars or wait > bars[column][1]:
                bars[column] = (bars.get(column, (cx, 0))[0], wait)
    for cx, wait in bars.values():
        height = WAIT_LANE * wait / (scale * 60)
        body.rect(cx - 0.45, lanes.wait + WAIT_LANE - height, 0.9, height, "wait", fill=WAIT)


def _draw_pauses(
    body: _Svg, axis: _TimeAxis, agents: list[str], pauses: list[AgentPause], lanes: _Lanes
) -> None:
    """One row an agent in the pause lane, named at its left, with a band a pause."""
    x0 = axis.x0
    for row, agent in enumerate(agents):
        ry = lanes.pause + row * PAUSE_ROW
        for pause in (p for p in pauses if p.agent == agent):
            left, right = axis.x(pause.start), axis.x(pause.end or axis.hi)
            body.rect(left, ry + 0.4, max(right - left, 0.3), PAUSE_ROW - 0.8, "pause",
                      fill=PAUSE)  # fmt: skip
        body.text(x0 - 1.0, ry + PAUSE_ROW - 0.9, _fit(agent, SMALL, x0 - 2.0), SMALL, "end")


def _axis_title(svg: _Svg, x0: float, x1: float, height: float, title: str) -> None:
    if title:
        svg.text((x0 + x1) / 2, height - 1.0, title, SMALL, "middle")


def _document(width_mm: float, height: float, body: _Svg, svg: _Svg) -> str:
    """A standalone SVG: the plot's ``body`` under the legend, labels and frame of ``svg``."""
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_n(width_mm)}mm" '
        f'height="{_n(height)}mm" viewBox="0 0 {_n(width_mm)} {_n(height)}" '
        'font-family="sans-serif">' + "".join(body.parts) + "".join(svg.parts) + "</svg>"
    )


def _legend_symbol(svg: _Svg, key: str, cx: float, cy: float) -> None:
    if key == "email-in":
        svg.rect(cx - 1.1, cy - 1.1, 2.2, 2.2, "legend", fill=EMAIL)
    elif key == "email-out":
        svg.rect(cx - 1.0, cy - 1.0, 2.0, 2.0, "legend", fill="#ffffff", stroke=EMAIL,
                 stroke_width="0.35")  # fmt: skip
    elif key == "call-in":
        svg.circle(cx, cy, 1.15, "legend", fill=CALL)
    elif key == "call-out":
        svg.circle(cx, cy, 1.0, "legend", fill="#ffffff", stroke=CALL, stroke_width="0.35")
    elif key == "wait":
        svg.rect(cx - 0.45, cy - 1.3, 0.9, 2.6, "legend", fill=WAIT)
    elif key == "incident":
        svg.rect(cx - 1.5, cy - 1.3, 3.0, 2.6, "legend", fill=INCIDENT)
    else:
        svg.rect(cx - 1.5, cy - 0.9, 3.0, 1.8, "legend", fill=PAUSE)


# --- calls per hour (the Reachability section) ---------------------------------------------


@dataclass(frozen=True)
class ServiceChartLabels:
    """Every word on the calls-per-hour chart, in the dossier's language."""

    offered: str
    answered: str
    incident: str
    agents: str  # the availability line: agents logged in and not paused
    calls: str  # the left axis
    axis_title: str = ""
    format_clock: Callable[[dt.time], str] = _fi_clock


OFFERED = "#a9c7a3"
AVAILABLE = "#1f4e79"
SERVICE_PLOT = 34.0  # mm


@dataclass(frozen=True)
class HourBar:
    start: dt.datetime
    end: dt.datetime
    offered: int
    answered: int


def service_chart(
    start: dt.datetime,
    end: dt.datetime,
    bars: list[HourBar],
    incidents: list[tuple[dt.datetime, dt.datetime | None]],
    available: list[tuple[dt.datetime, int]],
    zone: ZoneInfo,
    labels: ServiceChartLabels,
    *,
    width_mm: float = 170.0,
) -> str:
    """Offered and answered calls per hour over ``[start, end)`` (a local day), incidents
    as bands, and the number of agents available (logged in, not paused) as a step line
    on the same scale. ``available``: (from, count) changes, the first at or before
    ``start``. A standalone SVG; the same input gives the same bytes."""
    svg = _Svg()
    x0, x1 = LABEL_COLUMN, width_mm - RIGHT
    legend = [
        ("offered", labels.offered),
        ("answered", labels.answered),
        ("agents", labels.agents),
        ("incident", labels.incident),
    ]
    y = _legend(
        svg, legend, width_mm, 5.5, lambda key, x, y: _service_legend_symbol(svg, key, x, y)
    )
    top = y + 5.0
    axis = _TimeAxis(start, end, x0, x1)
    counts = _CountAxis.of(top, [b.offered for b in bars] + [n for at, n in available if at < end])

    body = _Svg()
    for inc_start, inc_end in incidents:
        left, right = axis.x(inc_start), axis.x(inc_end or end)
        if right > left:
            body.rect(left, top, right - left, SERVICE_PLOT, "incident", fill=INCIDENT)
    for value in range(0, counts.scale + 1, counts.step):
        body.line(x0, counts.y(value), x1, counts.y(value), GRID, 0.15)
        svg.text(x0 - 1.0, counts.y(value) + 0.8, str(value), SMALL, "end")
    for bar in bars:
        _draw_hour_bar(body, axis, counts, bar)
    if available:
        body.parts.append(_agents_line(axis, counts, available))
    _draw_hour_ticks(body, axis, zone, labels, counts.bottom)
    bottom = counts.bottom
    svg.text(0.0, top + (bottom - top) / 2, _fit(labels.calls, SMALL, x0 - 7.0), SMALL)
    svg.line(x0, bottom, x1, bottom, INK, 0.25)
    svg.line(x0, top, x0, bottom, INK, 0.2)
    height = bottom + (10.5 if labels.axis_title else 6.5)
    _axis_title(svg, x0, x1, height, labels.axis_title)
    return _document(width_mm, height, body, svg)


def _service_legend_symbol(svg: _Svg, key: str, x: float, y: float) -> None:
    cx, cy = x + 2.0, y - 0.9
    if key == "agents":
        svg.line(cx - 2.0, cy, cx + 2.0, cy, AVAILABLE, 0.5)
    else:
        fill = {"offered": OFFERED, "answered": CALL}.get(key, INCIDENT)
        svg.rect(cx - 1.5, cy - 1.3, 3.0, 2.6, "legend", fill=fill)


@dataclass(frozen=True)
class _CountAxis:
    """The calls-per-hour chart's vertical scale: 0..``scale`` over the plot's height, with a
    grid line every ``step``."""

    top: float
    scale: int
    step: int

    @property
    def bottom(self) -> float:
        return self.top + SERVICE_PLOT

    @classmethod
    def of(cls, top: float, values: list[int]) -> _CountAxis:
        highest = max([*values, 1])
        step = 1 if highest <= 6 else 2 if highest <= 12 else 5 if highest <= 30 else 10
        # Headroom above the highest bar or agent count, so the line never runs on the frame.
        return cls(top, (highest // step + 1) * step, step)

    def y(self, value: float) -> float:
        return self.bottom - SERVICE_PLOT * value / self.scale


def _draw_hour_bar(body: _Svg, axis: _TimeAxis, counts: _CountAxis, bar: HourBar) -> None:
    """An hour's calls offered, with the answered ones as a narrower bar inside."""
    left, right = axis.x(bar.start), axis.x(bar.end)
    width = (right - left) * 0.8
    pad = (right - left - width) / 2
    bottom = counts.bottom
    if bar.offered:
        body.rect(left + pad, counts.y(bar.offered), width, bottom - counts.y(bar.offered),
                  "offered", fill=OFFERED)  # fmt: skip
    if bar.answered:
        inner = width * 0.55
        body.rect(left + pad + (width - inner) / 2, counts.y(bar.answered), inner,
                  bottom - counts.y(bar.answered), "answered", fill=CALL)  # fmt: skip


def _agents_line(
    axis: _TimeAxis, counts: _CountAxis, available: list[tuple[dt.datetime, int]]
) -> str:
    """Agents available: a step line from each change to the next, across the whole plot."""
    start, end = axis.lo, axis.hi
    changes = sorted(available)
    level = next((c for at, c in reversed(changes) if at <= start), 0)
    path = [(axis.x0, counts.y(level))]
    for at, count in changes:
        if start < at < end:
            path += [(axis.x(at), counts.y(level)), (axis.x(at), counts.y(count))]
            level = count
    path.append((axis.x1, counts.y(level)))
    return (
        f'<polyline class="agents" fill="none" stroke="{AVAILABLE}" stroke-width="0.5" '
        'points="' + " ".join(f"{_n(px)},{_n(py)}" for px, py in path) + '"/>'
    )


def _draw_hour_ticks(
    body: _Svg, axis: _TimeAxis, zone: ZoneInfo, labels: ServiceChartLabels, bottom: float
) -> None:
    """Hour ticks, labelled every 2 hours (local clock), across DST days too."""
    at = axis.lo
    n = 0
    while at <= axis.hi:
        tx = axis.x(at)
        body.line(tx, bottom, tx, bottom + 1.0, INK, 0.2)
        if n % 2 == 0:
            body.text(tx, bottom + 3.6, labels.format_clock(at.astimezone(zone).time()), SMALL,
                      "middle")  # fmt: skip
        at += dt.timedelta(hours=1)
        n += 1
