"""The report's plots, drawn with matplotlib into SVG text (deterministic: fixed hash salt,
no date; text kept as text, so the PDF can be searched and read aloud)."""

from __future__ import annotations

import functools
import io
import logging
import math
import re
from collections.abc import Callable
from typing import Any
from xml.etree import ElementTree

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

__all__ = ["all_plots", "printable"]

_LOG = logging.getLogger("placewatch.report")

_RC: dict[str, Any] = {
       "svg.hashsalt": "placewatch", "svg.fonttype": "none", "font.family": "DejaVu Sans",
       "text.parse_math": False,  # a group called "$x$" is a name, not a formula
       "font.size": 8, "axes.spines.top": False, "axes.spines.right": False,
       "axes.titlesize": 9, "axes.titleweight": "bold"}
SHOWN_FLIPS = 15
_RED, _AMBER, _BLUE, _GREY = "#c0392b", "#d68910", "#2e86c1", "#7f8c8d"


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def printable(text: object) -> str:
    """A group or attribute name as plot text: characters XML cannot hold (control
    characters) shown as U+FFFD, so one odd name cannot spoil a plot."""
    return _NOT_XML.sub("\ufffd", str(text))


def _svg(fig: Any) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight")
    plt.close(fig)
    text = buffer.getvalue()
    ElementTree.fromstring(text)  # raises on anything a PDF renderer would drop silently
    return text


def _scorecard(report: dict[str, Any]) -> str | None:
    rows = [e for e in report["disparity"] if "ratio" in e]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(6.8, 0.45 * len(rows) + 0.9))
    for i, entry in enumerate(rows):
        lo, hi, ratio = entry["flag_low"], min(entry["flag_high"], 1.5), entry["flag_ratio"]
        colour = _RED if entry["confidently_below"] else (_AMBER if entry["below"] else _BLUE)
        ax.plot([lo, hi], [i, i], color=colour, linewidth=2)
        ax.plot([ratio], [i], "o", color=colour)
        if "previous_ratio" in entry:
            ax.plot([entry["previous_ratio"]], [i], "|", color=_GREY, markersize=10)
        ax.annotate(f"{printable(entry['flag_group'])} vs {printable(entry['best'])}", (ratio, i),
                    xytext=(0, 6),
                    textcoords="offset points", ha="center", fontsize=7)
    ax.axvline(0.8, color=_RED, linestyle="--", linewidth=1)
    ax.text(0.8, len(rows) - 0.4, " four-fifths line", color=_RED, fontsize=7)
    ax.set_yticks(range(len(rows)), [printable(e["attribute"]) for e in rows])
    ax.set_ylim(-0.6, len(rows) - 0.2)
    ax.set_xlim(0, 1.3)
    ax.set_xlabel("lowest parity ratio of cheap-tier share (dot; bar: simultaneous interval; "
                  "tick: last week)")
    ax.set_title("Equity scorecard")
    return _svg(fig)


def _trend(report: dict[str, Any], attribute: str) -> str | None:
    trends = report["trends"]
    series = trends["series"].get(attribute)
    if not series:
        return None
    days = trends["days"]
    fig, ax = plt.subplots(figsize=(6.8, 2.6))
    marked = {a["group"] for a in report["anomalies"] if a["attribute"] == attribute}
    # the groups alerted on, then the worst-served this week, then the best-served
    shown: list[dict[str, Any]] = next(
        (e["shown"] for e in report["disparity"] if e["attribute"] == attribute), [])
    order = [g for g in sorted(marked) if g in series]
    order += [row["group"] for row in shown[:8] if row["group"] in series]
    best = next((e.get("best") for e in report["disparity"] if e["attribute"] == attribute), None)
    if best in series:
        order.append(best)
    order += sorted(series)
    ranked = list(dict.fromkeys(order))[:10]
    for group in ranked:
        values = [math.nan if v is None else v for v in series[group]]
        width = 2.2 if group in marked else 1.0
        ax.plot(range(len(days)), values, linewidth=width, label=printable(group),
                color=_RED if group in marked else None, alpha=1.0 if group in marked else 0.6)
    ax.axvline(6.5, color=_GREY, linewidth=0.8)
    ax.text(6.6, ax.get_ylim()[1], "this week", color=_GREY, fontsize=7, va="top")
    ax.set_xticks(range(len(days)), [d[5:] for d in days], rotation=45, fontsize=6)
    ax.set_ylabel("cheap-tier share")
    ax.set_title(f"Daily cheap-tier share by {printable(attribute)} (last week and this)")
    ax.legend(fontsize=6, ncol=5, loc="lower left", frameon=False)
    return _svg(fig)


def _forecast(report: dict[str, Any]) -> str | None:
    if not report["forecast"]:
        return None
    entry = report["forecast"][0]
    rows = sorted(entry["rows"], key=lambda r: r["group"])
    fig, ax = plt.subplots(figsize=(6.8, 0.28 * len(rows) + 0.9))
    for i, row in enumerate(rows):
        off = abs(math.log(row["ratio"])) > math.log(1.2)
        colour = _RED if off else _BLUE
        ax.plot([row["low"], row["high"]], [i, i], color=colour, linewidth=2)
        ax.plot([row["ratio"]], [i], "o", color=colour)
    ax.axvline(1.0, color=_GREY, linewidth=1)
    ax.set_yticks(range(len(rows)), [printable(r["group"]) for r in rows])
    lo = min(min(r["low"] for r in rows), 0.9)
    hi = max(max(r["high"] for r in rows), 1.1)
    ax.set_xlim(lo - 0.02, hi + 0.02)
    ax.xaxis.set_major_formatter(lambda value, _: f"{value:.2f}×")
    ax.set_xlabel("actual / predicted runtime (geometric mean, interval; 1.00× is a true "
                  "forecast)")
    ax.set_title(f"Runtime forecast error by {printable(entry['attribute'])}")
    return _svg(fig)


def _audits(report: dict[str, Any]) -> str | None:
    per_day = report["audits"]["per_day"]
    if not per_day:
        return None
    fig, ax = plt.subplots(figsize=(6.8, 1.8))
    days = list(per_day)
    ax.bar(range(len(days)), [per_day[d] for d in days], color=_BLUE)
    ax.set_xticks(range(len(days)), days, fontsize=7)
    ax.set_title("Deep audits per day")
    return _svg(fig)


def _flips(report: dict[str, Any]) -> str | None:
    flips = [r for r in report["audits"]["flips"] if r["checked"] >= 5][:SHOWN_FLIPS]
    if not flips:
        return None
    fig, ax = plt.subplots(figsize=(6.8, 0.25 * len(flips) + 0.9))
    for i, row in enumerate(reversed(flips)):
        ax.plot([row["low"], row["high"]], [i, i], color=_BLUE, linewidth=2)
        ax.plot([row["rate"]], [i], "o", color=_BLUE)
    ax.set_yticks(range(len(flips)),
                  [printable(f"{r['attribute']}={r['group']}") for r in reversed(flips)])
    ax.set_xlim(0, max(0.3, max(r["high"] for r in flips) + 0.05))
    ax.xaxis.set_major_formatter(lambda value, _: f"{100 * value:.0f}%")
    ax.set_xlabel("share of the group's audited decisions the shadow would decide otherwise "
                  "with only the group changed")
    ax.set_title("Group-flip rate (interval)")
    return _svg(fig)


def all_plots(report: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    """SVG text of every plot the week has data for, by name, and the plots that could not
    be drawn (with why: the report says so instead of failing)."""
    attributes: list[str] = []
    for anomaly in report["anomalies"]:
        if anomaly["attribute"] and anomaly["attribute"] not in attributes:
            attributes.append(anomaly["attribute"])
    for entry in report["disparity"]:
        if entry["attribute"] not in attributes:
            attributes.append(entry["attribute"])
    wanted: list[tuple[str, Callable[[], str | None]]] = [
        ("scorecard", lambda: _scorecard(report))]
    for attribute in attributes[:3]:
        wanted.append((f"trend:{attribute}", functools.partial(_trend, report, attribute)))
    wanted += [("forecast", lambda: _forecast(report)), ("audits", lambda: _audits(report)),
               ("flips", lambda: _flips(report))]
    out: dict[str, str] = {}
    failed: list[str] = []
    with plt.rc_context(_RC):  # type: ignore[arg-type]  # its stubs list every key as a Literal
        for name, draw in wanted:
            try:
                drawn = draw()
            except Exception as exc:  # one plot's failure must not lose the report
                plt.close("all")
                _LOG.warning("plot not drawn", extra={"plot": name, "error": str(exc)})
                failed.append(f"{name}: {type(exc).__name__}: {exc}")
                continue
            if drawn:
                out[name] = drawn
    return out, failed
