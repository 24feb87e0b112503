"""Pictures of the dashboards without a Grafana server: every panel's queries run against a
Prometheus (range queries for time series, instant queries for stat, bar-gauge and table
panels, as Grafana runs them) and drawn with matplotlib on Grafana's 24-column grid, in its
dark theme, with the panel's unit, thresholds and minimum and maximum.

    placewatch dashboards render --prometheus http://127.0.0.1:9090 --out docs/img

What it does not draw: Grafana's own chrome (time picker, variable drop-downs, panel menus),
value mappings and overrides (the dashboards use none), and legends beyond twelve series.
Template variables are set as a viewer would set them: ``datasource`` is the Prometheus
given, ``attribute`` the first value Prometheus has (or ``--var attribute=team``), ``group``
"All", ``compare`` its first option (or ``--var compare=5m``); ``$__range`` is the time range
and ``$__rate_interval`` Grafana's ``max(step + scrape interval, 4 x scrape interval)``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from dashboards.prometheus import Prometheus
from streams.errors import PlacewatchError

__all__ = ["PanelResult", "Rendered", "boards", "format_value", "render_dashboard",
           "substitute", "variables_for"]

# Grafana's dark theme and its named colours
_BACKGROUND: Final = "#111217"
_PANEL: Final = "#181b1f"
_BORDER: Final = "#2c3235"
_TEXT: Final = "#ccccdc"
_MUTED: Final = "#8e8e9e"
_COLOURS: Final = {"green": "#73bf69", "red": "#f2495c", "orange": "#ff9830",
                   "yellow": "#fade2a", "blue": "#5794f2", "purple": "#b877d9",
                   "text": _TEXT}
_SERIES: Final = ("#73bf69", "#fade2a", "#5794f2", "#ff9830", "#f2495c", "#b877d9",
                  "#8ab8ff", "#ca95e5", "#ffb357", "#96d98d", "#ff7383", "#fff899")
_GRID_W: Final = 24
_UNIT_IN: Final = 0.32  # inches per grid row (Grafana: 30 px of 24 columns ~ 1,600 px)
_WIDTH_IN: Final = 16.0
_MAX_LEGEND: Final = 12
_RC: Final[dict[str, Any]] = {
    "font.family": "DejaVu Sans", "font.size": 8, "text.parse_math": False,
    "axes.facecolor": _PANEL, "figure.facecolor": _BACKGROUND, "axes.edgecolor": _BORDER,
    "axes.labelcolor": _TEXT, "xtick.color": _MUTED, "ytick.color": _MUTED,
    "text.color": _TEXT, "axes.grid": True, "grid.color": "#23262b", "grid.linewidth": 0.6,
    "axes.spines.top": False, "axes.spines.right": False}


def _duration(seconds: float) -> str:
    """A PromQL duration (``90s``), as Grafana writes ``$__range``."""
    return f"{max(1, round(seconds))}s"


_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """Grafana's ``$name`` and ``${name}`` replaced by their values.

    >>> substitute('rate(x{a="$attribute"}[$__rate_interval])',
    ...            {"attribute": "team", "__rate_interval": "1m"})
    'rate(x{a="team"}[1m])'
    """
    def value(match: re.Match[str]) -> str:
        name = match[1] or match[2]
        if name not in values:
            raise PlacewatchError(f"the dashboard uses ${name}, which has no value")
        return values[name]
    return _VARIABLE.sub(value, expr)


def variables_for(board: Mapping[str, Any], prometheus: Prometheus, start: float, end: float,
                  step: float, scrape_interval: float, chosen: Mapping[str, str]
                  ) -> dict[str, str]:
    """Every template variable of ``board`` as a viewer would have it set (``chosen`` wins)."""
    values = {"__range": _duration(end - start),
              "__rate_interval": _duration(max(step + scrape_interval, 4 * scrape_interval)),
              "__interval": _duration(step), "datasource": ""}
    for variable in board.get("templating", {}).get("list", []):
        name = variable["name"]
        if name in chosen:
            values[name] = chosen[name]
        elif variable["type"] == "query":
            match = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"])
            if match is None:
                raise PlacewatchError(f"variable {name}: cannot read {variable['query']!r}")
            if variable.get("includeAll"):
                values[name] = variable.get("allValue") or ".*"
                continue
            found = prometheus.label_values(match[2], substitute(match[1], values), start, end)
            if not found:
                raise PlacewatchError(f"variable {name}: Prometheus has no values for "
                                      f"{variable['query']}; is it scraping placewatch?")
            values[name] = found[0]
        elif variable["type"] == "custom":
            values[name] = str(variable["query"]).split(",")[0].strip()
    return values


# -- units ----------------------------------------------------------------------------------

def _si(value: float, digits: int = 3) -> str:
    """``value`` with an SI suffix, the suffix chosen after rounding (999.7 is 1K, not 1e+03).

    >>> [_si(v) for v in (999.7, 999_700, 12.0, 0.000618, 2.5e15)]
    ['1K', '1M', '12', '0.000618', '2500T']
    """
    rounded = float(f"{value:.{digits}g}")
    for limit, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(rounded) >= limit:
            return f"{float(f'{rounded / limit:.{digits}g}'):g}{suffix}"
    return f"{rounded:g}"


def format_value(value: float, unit: str) -> str:
    """A value as Grafana shows it in ``unit`` (the units the dashboards use).

    >>> [format_value(v, u) for v, u in ((0.8123, "percentunit"), (2.5, "ops"),
    ...  (5400, "s"), (59.99, "s"), (0.799, "s"), (1234.5, "currencyUSD"), (12, "short"))]
    ['81.2%', '2.5 ops/s', '1.5 hour', '1 min', '799 ms', '$1.23K', '12']
    """
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    if unit == "percentunit":
        return f"{value * 100:.1f}%"
    if unit == "ops":
        return f"{_si(value)} ops/s"
    if unit == "s":
        rounded = float(f"{value:.3g}")
        for size, name in ((86400 * 7, "week"), (86400, "day"), (3600, "hour"), (60, "min")):
            if abs(rounded) >= size:
                return f"{float(f'{rounded / size:.3g}'):g} {name}"
        if 0 < abs(rounded) < 1:
            return f"{float(f'{value * 1000:.3g}'):g} ms"
        return f"{rounded:g} s"
    if unit == "currencyUSD":
        sign = "-" if value < 0 else ""
        return f"{sign}${_si(abs(value))}"
    return _si(value)


# -- data -----------------------------------------------------------------------------------

@dataclass
class _Series:
    name: str
    times: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)


def _legend(template: str, labels: Mapping[str, str]) -> str:
    if template:
        return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m[1], ""), template)
    shown = {k: v for k, v in labels.items() if k != "__name__"}
    name = labels.get("__name__", "")
    return name + ("{" + ", ".join(f'{k}="{v}"' for k, v in sorted(shown.items())) + "}"
                   if shown else "") or "value"


@dataclass(frozen=True)
class PanelResult:
    """What one panel showed: its title and the series its queries returned."""

    title: str
    kind: str
    series: int
    """Series (or rows) with at least one finite value."""
    error: str | None = None
    """Why the panel could not be drawn (its series are counted all the same)."""


@dataclass(frozen=True)
class Rendered:
    uid: str
    title: str
    path: Path
    panels: tuple[PanelResult, ...]

    @property
    def empty(self) -> list[str]:
        return [p.title for p in self.panels if p.series == 0 and p.error is None]

    @property
    def failed(self) -> list[str]:
        return [f"{p.title} ({p.error})" for p in self.panels if p.error is not None]


def _queries(panel: Mapping[str, Any], values: Mapping[str, str]) -> list[tuple[str, str]]:
    return [(substitute(t["expr"], values), t.get("legendFormat", ""))
            for t in panel.get("targets", [])]


def _range_series(panel: Mapping[str, Any], prometheus: Prometheus, values: Mapping[str, str],
                  start: float, end: float, step: float) -> list[_Series]:
    out = []
    for expr, legend in _queries(panel, values):
        for item in prometheus.range(expr, start, end, step):
            try:
                series = _Series(_legend(legend, {k: str(v) for k, v in item["metric"].items()}))
                for at, text in item["values"]:
                    series.times.append(float(at))
                    series.values.append(float(text))
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise _malformed(prometheus, panel, exc) from exc
            out.append(series)
    return out


def _malformed(prometheus: Prometheus, panel: Mapping[str, Any], exc: Exception
               ) -> PlacewatchError:
    """A reply Prometheus would never send: the server is not Prometheus, or is broken."""
    return PlacewatchError(f"{prometheus.url} answered panel {panel['title']!r} with a "
                           f"malformed series ({exc.__class__.__name__}: {exc}): is it "
                           "Prometheus?")


def _instant_rows(panel: Mapping[str, Any], prometheus: Prometheus, values: Mapping[str, str],
                  at: float) -> list[tuple[str, dict[str, str], float]]:
    """(legend, labels, value) of every series of every query (the target's legend)."""
    out = []
    for expr, legend in _queries(panel, values):
        for item in prometheus.instant(expr, at):
            try:
                labels = {k: str(v) for k, v in item["metric"].items()}
                out.append((legend, labels, float(item["value"][1])))
            except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
                raise _malformed(prometheus, panel, exc) from exc
    return out


# -- drawing --------------------------------------------------------------------------------

def _steps(panel: Mapping[str, Any]) -> list[tuple[str, float | None]]:
    thresholds = panel.get("fieldConfig", {}).get("defaults", {}).get("thresholds") or {}
    return [(str(s.get("color", "green")), s.get("value")) for s in thresholds.get("steps", [])]


def _colour_of(value: float, steps: Sequence[tuple[str, float | None]]) -> str:
    """The colour of the highest threshold step at or below ``value`` (Grafana's rule)."""
    colour = "blue" if not steps else steps[0][0]
    for name, start in steps:
        if start is None or value >= start:
            colour = name
    return _COLOURS.get(colour, colour)


def _frame(ax: Axes) -> None:
    """Content axes drawn over the panel's background (:func:`_background` titles it)."""
    ax.set_facecolor("none")
    for spine in ax.spines.values():
        spine.set_visible(False)


_TITLE_IN: Final = 0.32  # the panel's title bar
_MARGIN_IN: Final = 0.12


def _background(fig: Figure, rect: tuple[float, float, float, float], title: str
                ) -> tuple[float, float, float, float]:
    """The panel as Grafana draws it (a box with its title at the top left); returns the
    rectangle left for its content."""
    box = fig.add_axes(rect)
    box.set_facecolor(_PANEL)
    box.grid(False)
    box.set_xticks([])
    box.set_yticks([])
    for spine in box.spines.values():
        spine.set_color(_BORDER)
    width_in, height_in = fig.get_size_inches()
    box.text(_MARGIN_IN / (rect[2] * width_in), 1 - 0.5 * _TITLE_IN / (rect[3] * height_in),
             title, transform=box.transAxes, fontsize=9, fontweight="bold", color=_TEXT,
             va="center", ha="left")
    mx, my = _MARGIN_IN / width_in, _MARGIN_IN / height_in
    return (rect[0] + mx, rect[1] + my, rect[2] - 2 * mx,
            rect[3] - _TITLE_IN / height_in - 2 * my)


def _blank(ax: Axes, text: str) -> None:
    _frame(ax)
    ax.grid(False)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color=_MUTED,
            fontsize=11)


def _limits(panel: Mapping[str, Any]) -> tuple[float | None, float | None]:
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    return defaults.get("min"), defaults.get("max")


def _time_format(span_s: float) -> str:
    return "%H:%M:%S" if span_s <= 900 else ("%H:%M" if span_s <= 2 * 86400 else "%m-%d %H:%M")


def _timeseries(ax: Axes, panel: Mapping[str, Any], unit: str, series: list[_Series],
                start: float, end: float, step: float, legend_rows: int) -> None:
    _frame(ax)
    finite = [v for s in series for v in s.values if math.isfinite(v)]
    gap = 2.5 * step
    for i, s in enumerate(sorted(series, key=lambda s: s.name)):
        xs: list[float] = []
        ys: list[float] = []
        for at, value in zip(s.times, s.values, strict=True):
            if xs and at - xs[-1] * 86400 > gap:  # Grafana does not join across a gap
                xs.append(xs[-1])
                ys.append(math.nan)
            xs.append(at / 86400)  # matplotlib's dates: days since its 1970 epoch
            ys.append(value)
        name = s.name if len(s.name) <= 30 else s.name[:29] + "…"
        ax.plot(xs, ys, color=_SERIES[i % len(_SERIES)], linewidth=1.2,
                label=name if i < min(_MAX_LEGEND, legend_rows) else None)
    lowest, highest = _limits(panel)
    for colour, level in _steps(panel):
        if level is not None:
            ax.axhline(level, color=_COLOURS.get(colour, colour), linestyle="--",
                       linewidth=0.9)
    if lowest is None and finite and min(finite) >= 0:
        lowest = 0.0  # a count or a rate: its axis starts at zero
    if highest is None and finite and max(finite) == min(finite) == 0:
        highest = 1.0  # flat at zero: an axis that says so, not +-0.05
    if lowest is not None:
        ax.set_ylim(bottom=lowest)
    if highest is not None:
        ax.set_ylim(top=highest)
    ax.set_xlim(start / 86400, end / 86400)
    ax.spines["bottom"].set_visible(True)
    ax.spines["bottom"].set_color(_BORDER)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: format_value(v, unit)))
    ax.yaxis.set_major_locator(MaxNLocator(5))
    ax.xaxis.set_major_formatter(
        mdates.DateFormatter(_time_format(end - start), tz=dt.UTC))  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(
        mdates.AutoDateLocator(minticks=3, maxticks=7, tz=dt.UTC))  # type: ignore[no-untyped-call]
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        more = len(series) - len(handles)
        if more > 0:
            labels[-1] = f"{labels[-1]} (+{more} more)"
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7,
                  frameon=False, labelcolor=_TEXT, handlelength=1.2)


def _stat(ax: Axes, panel: Mapping[str, Any], unit: str,
          rows: list[tuple[str, dict[str, str], float]]) -> None:
    _frame(ax)
    ax.grid(False)
    ax.set_xticks([])
    ax.set_yticks([])
    steps = _steps(panel)
    for i, (legend, labels, value) in enumerate(rows):
        x = (i + 0.5) / len(rows)
        ax.text(x, 0.5, format_value(value, unit), ha="center", va="center",
                transform=ax.transAxes, fontsize=22 if len(rows) < 3 else 15,
                fontweight="bold", color=_colour_of(value, steps))
        if len(rows) > 1 or legend:
            ax.text(x, 0.18, _legend(legend, labels), ha="center", va="center",
                    transform=ax.transAxes, fontsize=8, color=_MUTED)


def _bargauge(ax: Axes, panel: Mapping[str, Any], unit: str,
              rows: list[tuple[str, dict[str, str], float]]) -> None:
    _frame(ax)
    ax.grid(False)
    steps = _steps(panel)
    lowest, highest = _limits(panel)
    finite = [v for _, _, v in rows if math.isfinite(v)]
    top = highest if highest is not None else max([0.0, *finite]) * 1.15 or 1.0
    bottom = lowest if lowest is not None else min([0.0, *finite])
    shown = rows[:14]
    names = [_legend(legend, labels) for legend, labels, _ in shown]
    positions = list(range(len(shown)))[::-1]
    for y, (_, _, value) in zip(positions, shown, strict=True):
        width = (min(max(value, bottom), top) - bottom) if math.isfinite(value) else 0.0
        ax.barh(y, top - bottom, left=bottom, color="#22252b", height=0.7)
        ax.barh(y, width, left=bottom, color=_colour_of(value, steps), height=0.7)
        ax.text(top, y, f" {format_value(value, unit)}", va="center", ha="left", fontsize=8,
                color=_colour_of(value, steps), fontweight="bold")
    ax.set_yticks(positions, names, fontsize=7)
    ax.set_xlim(bottom, top)
    ax.set_xticks([])
    ax.set_ylim(-0.6, len(shown) - 0.4)
    for spine in ("bottom", "left"):
        ax.spines[spine].set_visible(False)
    ax.tick_params(axis="y", length=0, colors=_TEXT)
    if len(rows) > len(shown):
        ax.text(1.0, -0.02, f"+{len(rows) - len(shown)} more", transform=ax.transAxes,
                ha="right", va="top", fontsize=7, color=_MUTED)


_ROW_IN: Final = 0.15  # a table row: 7.5-point text and its spacing


def _table(ax: Axes, panel: Mapping[str, Any], unit: str,
           rows: list[tuple[str, dict[str, str], float]], height_in: float) -> None:
    """Series joined on their labels, one column per query (Grafana's "merge")."""
    _frame(ax)
    ax.grid(False)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    columns = list(dict.fromkeys(legend or "Value" for legend, _, _ in rows))
    keys = sorted({k for _, labels, _ in rows for k in labels if k != "__name__"})
    table: dict[tuple[str, ...], dict[str, float]] = {}
    for legend, labels, value in rows:
        table.setdefault(tuple(labels.get(k, "") for k in keys), {})[legend or "Value"] = value
    header = [*keys, *columns]
    body = [[*key, *(format_value(cells[c], unit) if c in cells else "" for c in columns)]
            for key, cells in sorted(table.items())]
    capacity = max(1, int(height_in / _ROW_IN) - 1)  # below the header
    step = _ROW_IN / height_in
    hidden = max(0, len(body) - capacity)
    body = body[:capacity]
    widths = [max(len(str(r[i])) for r in [header, *body]) + 2 for i in range(len(header))]
    total = sum(widths)
    x = 0.01
    for i, name in enumerate(header):
        ax.text(x, 0.97, name, transform=ax.transAxes, fontsize=7.5, fontweight="bold",
                color="#6e9fff", va="top")
        for j, row in enumerate(body):
            ax.text(x, 0.97 - (j + 1) * step, row[i], transform=ax.transAxes,
                    fontsize=7.5, va="top", color=_TEXT)
        x += 0.98 * widths[i] / total
    if hidden:
        ax.text(0.99, 0.01, f"+{hidden} more rows", transform=ax.transAxes, ha="right",
                va="bottom", fontsize=7, color=_MUTED)


def _draw(fig: Figure, rect: tuple[float, float, float, float], panel: Mapping[str, Any],
          prometheus: Prometheus, values: Mapping[str, str], start: float, end: float,
          step: float) -> tuple[int, str | None]:
    """Draw one panel; returns its series with a finite value, and why it could not be drawn
    (None when it was)."""
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    unit = defaults.get("unit", "short")
    no_value = defaults.get("noValue") or "No data"
    kind = panel["type"]
    rect = _background(fig, rect, panel["title"])
    if kind == "timeseries":
        series = _range_series(panel, prometheus, values, start, end, step)
        shown = sum(any(math.isfinite(v) for v in s.values) for s in series)
    else:
        rows = _instant_rows(panel, prometheus, values, end)
        shown = sum(math.isfinite(v) for _, _, v in rows)
    drawn = len(fig.axes)
    try:
        if not shown:
            _blank(fig.add_axes(rect), no_value)
        elif kind == "timeseries":  # room left for the value axis, below for time, right legend
            left, below = 0.7 / _WIDTH_IN, 0.25 / fig.get_size_inches()[1]
            ax = fig.add_axes((rect[0] + left, rect[1] + below, rect[2] * 0.76 - left,
                               rect[3] - below))
            # as many legend lines as the panel has room for (7-point text, 0.16 in a line)
            legend_rows = max(1, int(rect[3] * fig.get_size_inches()[1] / 0.16))
            _timeseries(ax, panel, unit, series, start, end, step, legend_rows)
        elif kind == "stat":
            _stat(fig.add_axes(rect), panel, unit, rows)
        elif kind == "bargauge":
            left = rect[2] * 0.2
            _bargauge(fig.add_axes((rect[0] + left, rect[1], rect[2] * 0.68, rect[3])), panel,
                      unit, rows)
        elif kind == "table":
            _table(fig.add_axes(rect), panel, unit, rows, rect[3] * fig.get_size_inches()[1])
        else:
            _blank(fig.add_axes(rect), f"({kind} panels are not drawn)")
            return shown, f"{kind} panels are not drawn"
    except Exception as exc:  # one odd series must not lose the other panels
        for ax in fig.axes[drawn:]:
            ax.remove()
        _blank(fig.add_axes(rect), f"Cannot draw this panel ({exc.__class__.__name__})")
        return shown, f"{exc.__class__.__name__}: {exc}"
    return shown, None


def render_dashboard(board: Mapping[str, Any], prometheus: Prometheus, out: Path,
                     start: float, end: float, scrape_interval: float = 15.0,
                     chosen: Mapping[str, str] | None = None) -> Rendered:
    """Draw ``board`` (a dashboard's JSON) over ``[start, end]`` into the PNG ``out``."""
    if end <= start:
        raise PlacewatchError("the time range is empty: its end must come after its start")
    step = max(1.0, (end - start) / 240)
    values = variables_for(board, prometheus, start, end, step, scrape_interval, chosen or {})
    panels = list(board["panels"])
    height_units = max((p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels), default=1)
    height_in = height_units * _UNIT_IN + 0.9
    results: list[PanelResult] = []
    with plt.rc_context(_RC):  # type: ignore[arg-type]  # its stubs list every key as a Literal
        fig = plt.figure(figsize=(_WIDTH_IN, height_in))
        try:
            heading = board["title"] + "".join(
                f"   {name} = {value}" for name, value in sorted(values.items())
                if not name.startswith("__") and name != "datasource")
            fig.text(0.01, 1 - 0.35 / height_in, heading, fontsize=12, fontweight="bold",
                     va="center", color=_TEXT)
            span = f"{_utc(start)} to {_utc(end)} UTC"
            fig.text(0.99, 1 - 0.35 / height_in, span, fontsize=8, va="center", ha="right",
                     color=_MUTED)
            for panel in panels:
                grid = panel["gridPos"]
                top_in = 0.7 + grid["y"] * _UNIT_IN
                if panel["type"] == "row":
                    fig.text(0.01, 1 - (top_in + 0.5 * _UNIT_IN) / height_in,
                             substitute(panel["title"], values), fontsize=10,
                             fontweight="bold", va="center", color=_TEXT)
                    continue
                pad_x, pad_top, pad_bottom = 0.35, 0.35, 0.3
                left = (grid["x"] / _GRID_W * _WIDTH_IN + pad_x) / _WIDTH_IN
                width = (grid["w"] / _GRID_W * _WIDTH_IN - 2 * pad_x) / _WIDTH_IN
                bottom = 1 - (top_in + grid["h"] * _UNIT_IN - pad_bottom) / height_in
                height = (grid["h"] * _UNIT_IN - pad_top - pad_bottom) / height_in
                titled = {**panel, "title": substitute(panel["title"], values)}
                count, error = _draw(fig, (left, bottom, width, height), titled, prometheus,
                                     values, start, end, step)
                results.append(PanelResult(titled["title"], panel["type"], count, error))
            out.parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(out, format="png", dpi=100, metadata={"Software": None})
        finally:
            plt.close(fig)
    return Rendered(str(board["uid"]), str(board["title"]), out, tuple(results))


def _utc(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M")


def boards(uids: Iterable[str] = ()) -> list[dict[str, Any]]:
    """The committed dashboards (dashboards/json), all or those named."""
    from dashboards.build import JSON_DIR

    found = {p.stem: json.loads(p.read_text()) for p in sorted(JSON_DIR.glob("*.json"))}
    wanted = list(uids) or list(found)
    unknown = [u for u in wanted if u not in found]
    if unknown:
        raise PlacewatchError(f"no dashboard {', '.join(unknown)}; there are "
                              f"{', '.join(found)}")
    return [found[u] for u in wanted]
