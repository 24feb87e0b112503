"""Write one week's report: ``report.json`` (every figure), ``report.html`` and ``report.pdf``.

Rendering is deterministic: the same week and data give byte-identical ``report.json`` and the
same HTML and PDF apart from the one generated-at line (the PDF carries no creation date).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import logging
import math
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import markupsafe

from report.data import load
from report.model import ReportInputs, build
from report.plots import all_plots, printable
from report.week import Week
from streams.errors import PlacewatchError
from streams.sinks.files import write_atomically

__all__ = ["Written", "write_report"]

_LOG = logging.getLogger("placewatch.report")


@dataclass(frozen=True, slots=True)
class Written:
    directory: Path
    html: Path
    pdf: Path
    json: Path
    figures: dict[str, Any]


def _clean(value: Any) -> Any:
    """JSON-safe: infinities and NaN become None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _template() -> tuple[jinja2.Template, str]:
    folder = resources.files("report") / "templates"
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True,
                             # names from the events: no control characters in the page
                             finalize=lambda v: (printable(v) if isinstance(v, str)
                                                 and not isinstance(v, markupsafe.Markup)
                                                 else v),
                             loader=jinja2.DictLoader({
                                 "report": (folder / "report.html.j2").read_text("utf-8")}))
    return env.get_template("report"), (folder / "report.css").read_text("utf-8")


def _atomic(path: Path, data: bytes) -> None:
    write_atomically(path, data)  # a random temporary name, no link followed


def _pdf(weasyprint: Any, html: str, out_dir: Path, epoch: int) -> bytes | None:
    """The PDF of ``html``. fontTools stamps each embedded font subset with the time it was
    made unless SOURCE_DATE_EPOCH is set (reproducible-builds.org): set to the week's end while
    rendering, so the same report gives the same bytes."""
    before = os.environ.get("SOURCE_DATE_EPOCH")
    os.environ["SOURCE_DATE_EPOCH"] = str(epoch)
    try:
        result: bytes | None = weasyprint.HTML(string=html, base_url=str(out_dir)).write_pdf()
        return result
    finally:
        if before is None:
            os.environ.pop("SOURCE_DATE_EPOCH", None)
        else:
            os.environ["SOURCE_DATE_EPOCH"] = before


def write_report(week: Week, data_dir: Path, out_dir: Path, *, currency: str,
                 min_support: int, confidence: float, audit_sample_rate: float,
                 config_hash: str, config_file: str = "",
                 now: dt.datetime | None = None) -> Written:
    """Read ``data_dir`` (a run directory), write the week's report into ``out_dir``."""
    data = load(data_dir, week)
    chain = data.chain
    inputs = ReportInputs(
        week=week, history=data.history, history_bad_lines=data.history_bad_lines,
        history_first_day=data.history_first_day, alerts=data.alerts,
        alerts_bad_lines=data.alerts_bad_lines, findings=data.findings,
        findings_error=data.findings_error,
        audits=data.audits, audits_emptied=data.audits_emptied,
        chain_ok=None if chain is None and not data.chain_error else (
            chain.ok if chain is not None else False),
        chain_records=chain.records if chain is not None else 0,
        chain_head=chain.head if chain is not None else "",
        chain_problem=(chain.problem if chain is not None else data.chain_error),
        currency=currency, min_support=min_support, confidence=confidence,
        audit_sample_rate=audit_sample_rate, config_hash=config_hash, summary=data.summary,
        data_dir=str(data_dir), config_file=config_file)
    figures = _clean(build(inputs))
    body = json.dumps(figures, indent=1, sort_keys=True, ensure_ascii=False).encode() + b"\n"
    drawn, failed = all_plots(figures)
    plots = {name: base64.b64encode(svg.encode()).decode("ascii") for name, svg in drawn.items()}
    moment = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    digest = hashlib.sha256(body).hexdigest()
    generated = (f"Generated {moment.strftime('%Y-%m-%d %H:%M:%S UTC')} from {data_dir} · "
                 f"report.json sha256 {digest}")
    template, css = _template()
    html = template.render(r=figures, plots=plots, failed_plots=failed, css=css,
                           generated_line=generated)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        _atomic(out_dir / "report.json", body)
        _atomic(out_dir / "report.html", html.encode("utf-8"))
    except OSError as exc:
        raise PlacewatchError(f"cannot write the report into {out_dir}: {exc}") from exc
    import weasyprint  # slow to import; only when a PDF is written

    pdf = _pdf(weasyprint, html, out_dir, int(week.end.timestamp()))
    if pdf is None:
        raise PlacewatchError("WeasyPrint returned no PDF")
    _atomic(out_dir / "report.pdf", pdf)
    return Written(out_dir, out_dir / "report.html", out_dir / "report.pdf",
                   out_dir / "report.json", figures)
