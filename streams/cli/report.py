"""``placewatch report``: the Monday report for reviewers (docs/report.md)."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Annotated

import typer

from streams.cli.support import ERR, ConfigOpt, settings_for
from streams.errors import PlacewatchError
from streams.logs import log_event

__all__ = ["report"]

_LOG = logging.getLogger("placewatch")


def report(
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory to write report.html, "
                                      "report.pdf and report.json into.", file_okay=False)],
    week: Annotated[str | None, typer.Option(
        help="ISO week, such as 2026-W47 (Monday 00:00 to Monday 00:00 in the "
             "report_timezone setting). Default: the last full week before now.")] = None,
    data: Annotated[Path, typer.Option(
        "--data", "-d", help="Run directory (the --out of `run` or `replay`).",
        file_okay=False)] = Path("placewatch-data"),
    config: ConfigOpt = None,
) -> None:
    """Write one week's report for reviewers: HTML and PDF with plots, and every figure in
    report.json.

    Sections: a scorecard, disparity per attribute with intervals and week-over-week change,
    every anomaly with its times, groups and an estimate in money, forecast error by group,
    trends (who would lose first), sampled deep audits with group-flip rates, overrides,
    findings and remediation age, data quality (with the audit chain verified), and how to
    reproduce every number. It reads the run directory without writing to it, so it can run
    beside the service. The same week and data give the same report apart from its
    generated-at line.
    """
    from report.render import write_report
    from report.week import Week

    settings = settings_for(config)
    tz = settings.report_timezone
    try:
        chosen = (Week.parse(week, tz) if week is not None
                  else Week.containing(dt.datetime.now(dt.UTC), tz).previous())
    except ValueError as exc:
        raise PlacewatchError(str(exc)) from exc
    core = settings.core
    written = write_report(chosen, data, out, currency=settings.currency,
                           min_support=core.min_group_support, confidence=core.confidence,
                           audit_sample_rate=core.audit_sample_rate,
                           config_hash=settings.config_hash,
                           config_file=str(config) if config else "")
    figures = written.figures
    log_event(_LOG, logging.INFO, "report written", week=chosen.label, out=str(out),
              anomalies=len(figures["anomalies"]), events=figures["quality"]["events_in"])
    ERR.print(f"{chosen.label}: {figures['quality']['events_in']} events, "
              f"{len(figures['anomalies'])} anomalies, "
              f"{len(figures['findings']['open'])} findings open at week end")
    print(written.pdf)
    print(written.html)
