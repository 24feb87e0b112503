"""The Monday report, end to end: a simulated week through replay, then `placewatch report`,
checked in the PDF's own text (pdftotext) and pixels (pdftoppm)."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import subprocess
from pathlib import Path

import msgspec
import pytest

from detectors.alerts import Alert
from report.render import write_report
from report.week import Week
from simulator import SCENARIOS, Simulation
from streams.bench.report import write_history
from tests.helpers import placewatch

pytestmark = pytest.mark.skipif(shutil.which("pdftotext") is None,
                                reason="needs poppler-utils (scripts/setup.sh installs it)")

WEEK = "2026-W45"  # the simulator starts on Monday 2026-11-02


def _replay(tmp: Path, scenario: str, events: int, seed: int) -> Path:
    source = tmp / f"{scenario}.jsonl"
    source.write_bytes(b"".join(raw + b"\n" for raw in
                                Simulation(SCENARIOS[scenario], events, seed=seed)))
    out = tmp / f"{scenario}-run"
    done = placewatch("--quiet", "replay", str(source), "--out", str(out))
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="module")
def drift_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _replay(tmp_path_factory.mktemp("drift"), "equity_drift", 100_000, 1)


def _text(pdf: Path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True,
                          text=True, check=True).stdout


def _report(data: Path, out: Path, week: str = WEEK) -> str:
    done = placewatch("--quiet", "report", "--week", week, "--data", str(data), "--out",
                      str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(out / "report.pdf"), str(out / "report.html")]
    return _text(out / "report.pdf")


def test_the_injected_drift_is_in_the_pdf_with_its_group_time_change_and_money(
        drift_run: Path, tmp_path: Path) -> None:
    alerts = [msgspec.json.decode(line, type=Alert)
              for line in (drift_run / "alerts.jsonl").read_bytes().splitlines()]
    drift = next(a for a in alerts if a.kind == "equity_drift" and a.group == "genomics"
                 and a.metric == "preferred_rate")
    text = _report(drift_run, tmp_path / "out")
    flat = " ".join(text.split())
    detected = dt.datetime.fromisoformat(drift.at).strftime("%Y-%m-%d %H:%M UTC")
    assert "PlacewatchEquityDrift: team=genomics · preferred_rate" in flat
    assert f"Detected {detected}" in flat
    assert "cheap-tier share fell to" in flat  # the change, in the alert's own words
    money = re.search(r"([\d,]+\.\d\d) USD in this week\. At the other groups' cheap-tier share",
                      flat)
    assert money is not None and float(money.group(1).replace(",", "")) > 0
    # the scorecard names the attribute red, and the sections are all there
    lights = json.loads((tmp_path / "out" / "report.json").read_text())["scorecard"]
    team = next(row for row in lights if row["name"] == "Equity: team")
    assert team["light"] == "red" and team["group"] == "genomics"
    assert re.search(r"red\s+Equity:", text) and "genomics (preferred_rate)" in flat
    for heading in ("Summary", "Anomalies", "Disparity per attribute", "Forecast error by group",
                    "Amplification and trends", "Sampled deep audits", "Group-flip rates",
                    "Overrides", "Findings and remediation age", "Data quality",
                    "How to reproduce every number"):
        assert heading in text, heading
    assert "Audit chain: verified" in flat
    figures = json.loads((tmp_path / "out" / "report.json").read_text())
    head = json.loads((drift_run / "summary.json").read_text())["audit_head"]
    assert figures["reproduce"]["audit_head"] == {"records": head["records"],
                                                  "hash": head["hash"]}
    assert head["hash"] in flat.replace(" ", "") or head["hash"][:32] in flat


def test_the_pdf_has_its_plots(drift_run: Path, tmp_path: Path) -> None:
    text = _report(drift_run, tmp_path / "out")
    # the plots' titles are text inside the drawn SVG (matplotlib keeps text as text)
    for title in ("Equity scorecard", "Daily cheap-tier share by team",
                  "Runtime forecast error by", "Deep audits per day", "Group-flip rate"):
        assert title in text, title
    html = (tmp_path / "out" / "report.html").read_text()
    assert html.count('src="data:image/svg+xml;base64,') >= 6
    # and they are drawn: the first page's lower half (the scorecard plot) is not blank
    from PIL import Image

    subprocess.run(["pdftoppm", "-r", "40", "-f", "1", "-l", "1", "-png",
                    str(tmp_path / "out" / "report.pdf"), str(tmp_path / "page")], check=True)
    page = Image.open(next(tmp_path.glob("page*.png"))).convert("L")
    lower = page.crop((0, page.height // 2, page.width, page.height))
    dark = lower.point(lambda value: 255 if value < 128 else 0).histogram()[255]
    assert dark > 500, dark


def test_the_same_week_and_data_give_the_same_report(drift_run: Path, tmp_path: Path) -> None:
    now = dt.datetime(2026, 11, 16, 6, 0, tzinfo=dt.UTC)
    kwargs = {"currency": "USD", "min_support": 30, "confidence": 0.95,
              "audit_sample_rate": 0.02, "config_hash": "c0ffee"}
    week = Week.parse(WEEK)
    first = write_report(week, drift_run, tmp_path / "a", now=now, **kwargs)  # type: ignore[arg-type]
    second = write_report(week, drift_run, tmp_path / "b", now=now, **kwargs)  # type: ignore[arg-type]
    later = write_report(week, drift_run, tmp_path / "c",  # type: ignore[arg-type]
                         now=now + dt.timedelta(days=3), **kwargs)
    for name in ("report.json", "report.html", "report.pdf"):
        assert (first.directory / name).read_bytes() == (second.directory / name).read_bytes()
    assert first.json.read_bytes() == later.json.read_bytes()
    one, other = _text(first.pdf).splitlines(), _text(later.pdf).splitlines()
    differ = [(a, b) for a, b in zip(one, other, strict=True) if a != b]
    assert len(differ) == 1 and "Generated" in differ[0][0], differ


def test_an_empty_week_renders_and_says_so(drift_run: Path, tmp_path: Path) -> None:
    text = " ".join(_report(drift_run, tmp_path / "out", "2026-W40").split())
    assert "No alert was open at any time in the week." in text
    assert "No decision was audited this week." in text
    assert "Events in 0" in text
    assert "grey Data quality no events in the week" in text


def test_a_week_without_findings(tmp_path: Path) -> None:
    run = _replay(tmp_path, "baseline", 30_000, 3)
    assert (run / "alerts.jsonl").read_bytes() == b""
    text = " ".join(_report(run, tmp_path / "out").split())
    assert "No alert was open at any time in the week." in text
    assert "0 open at week end; 0 resolved in the week" in text
    assert "red Equity" not in text


def test_thousands_of_groups_render_with_tables_cut_to_the_worst(tmp_path: Path) -> None:
    write_history(tmp_path / "run", dt.datetime(2026, 11, 8, tzinfo=dt.UTC), 2000, days=8)
    text = " ".join(_report(tmp_path / "run", tmp_path / "out", "2026-W46").split())
    figures = json.loads((tmp_path / "out" / "report.json").read_text())
    team = figures["disparity"][0]
    assert team["compared"] >= 1500 and len(team["shown"]) == 12
    assert f"{team['hidden']} more groups with a higher ratio are in report.json." in text
    # 2000 groups: the lowest point estimate is low by chance; the simultaneous interval says
    # so, and the light is amber (not significant), not red
    assert team["ratio_high"] > 0.8
    assert "amber Equity: team" in text
    pages = subprocess.run(["pdfinfo", str(tmp_path / "out" / "report.pdf")], check=True,
                           capture_output=True, text=True).stdout
    assert int(re.search(r"Pages:\s+(\d+)", pages).group(1)) <= 8  # type: ignore[union-attr]


def test_clear_errors(tmp_path: Path) -> None:
    done = placewatch("report", "--week", "2026-W54", "--data", str(tmp_path), "--out",
                      str(tmp_path / "o"))
    assert done.returncode != 0 and "2026-W54" in done.stderr and "Traceback" not in done.stderr
    done = placewatch("report", "--week", "2026-W45", "--data", str(tmp_path / "nothing"),
                      "--out", str(tmp_path / "o"))
    assert done.returncode != 0 and "no run directory" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_service_writes_the_week_just_ended_once_on_monday_morning(
        drift_run: Path, tmp_path: Path) -> None:
    from streams.report_schedule import ReportSchedule, due_week
    from streams.settings import load_settings

    data = tmp_path / "run"
    shutil.copytree(drift_run, data)
    config = tmp_path / "placewatch.toml"
    config.write_text('report_timezone = "Europe/Berlin"\nreport_time = "06:30"\n')
    settings = load_settings(config, environ={})
    # Monday 2026-11-09 06:29 in Berlin is 05:29 UTC: the week before last is due, and the
    # data directory has no history of it
    moments = iter([dt.datetime(2026, 11, 9, 5, 29, tzinfo=dt.UTC),
                    dt.datetime(2026, 11, 9, 5, 31, tzinfo=dt.UTC),
                    dt.datetime(2026, 11, 9, 5, 32, tzinfo=dt.UTC),
                    dt.datetime(2026, 11, 10, 12, 0, tzinfo=dt.UTC)])
    # the stream has not yet passed the week's end (plus outcome_settle_s): wait for it
    watermark = [dt.datetime(2026, 11, 8, 22, 0, tzinfo=dt.UTC).timestamp()]
    schedule = ReportSchedule(settings, data, clock=lambda: next(moments),
                              watermark=lambda: watermark[0])
    assert schedule.check() is None
    assert schedule.check() is None
    assert not (data / "reports").exists()
    watermark[0] = dt.datetime(2026, 11, 9, 1, 0, tzinfo=dt.UTC).timestamp()
    assert schedule.check() == WEEK
    pdf = data / "reports" / WEEK / "report.pdf"
    assert "PlacewatchEquityDrift: team=genomics" in " ".join(_text(pdf).split())
    assert "Europe/Berlin" in _text(pdf)
    written = pdf.stat().st_mtime_ns
    assert schedule.check() is None  # idempotent: the week is written once
    assert pdf.stat().st_mtime_ns == written
    assert due_week(dt.datetime(2026, 11, 9, 5, 31, tzinfo=dt.UTC), "UTC", "06:30").label \
        == "2026-W44"


def test_hostile_names_and_broken_lines_are_reported_not_fatal(tmp_path: Path) -> None:
    from detectors.history import GroupWindow
    from streams.sinks.base import Batch
    from streams.sinks.history import HistoryFiles

    run = tmp_path / "run"
    sink = HistoryFiles(run / "history", 400)
    names = ["$\\foo$", "<script>alert(1)</script>", "{{ 7*7 }}", "plain"]
    for hour in range(30):
        start = dt.datetime(2026, 11, 9, tzinfo=dt.UTC) + dt.timedelta(hours=hour)
        iso = [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in (start, start + dt.timedelta(hours=1))]
        sink.write(Batch(0, 0, [], [], [], history=[
            GroupWindow(iso[0], iso[1], "team", name,
                        {"decisions": 20, "placed": 20, "tiered": 20, "preferred": 5 + i * 3})
            for i, name in enumerate(names)]))
    sink.close()
    with (run / "history" / "2026-11-09.jsonl").open("ab") as handle:
        handle.write(b'{"type":"stream","start":"yesterday","end":"2026-11-09T01:00:00Z"}\n'
                     b'{"type":"group","start":"2026-11-09T00:00:00Z","end":'
                     b'"2026-11-09T01:00:00Z","attribute":"team","group":"x",'
                     b'"waits":{"\xc2\xb2":1}}\n'
                     b'{"type":"stream","start":"2026-11-09T00:00:00Z","end":'
                     b'"2026-11-09T01:00:00Z","overrides":[{"by":"a","reason":"b",'
                     b'"placements":1,"latest_expiry":"garbage"}]}\n')
    edge = {"alert": "PlacewatchEquityDrift", "state": "firing", "fingerprint": "f",
            "kind": "equity_drift", "attribute": "team", "group": "plain",
            "metric": "preferred_rate", "severity": "warning", "value": 0.3, "reference": 0.5,
            "decision_id": "d", "event_index": 1, "at": "2026-11-09T10:00:00Z", "summary": "s"}
    late = {**edge, "state": "resolved", "at": "9999-12-31T23:59:59-01:00"}
    (run / "alerts.jsonl").write_bytes(b'{"alert": 1}\nnot json\n' + json.dumps(edge).encode()
                                       + b"\n" + json.dumps(late).encode() + b"\n")
    (run / "findings.sqlite").write_bytes(b"")
    (run / "audit.sqlite").write_bytes(b"")
    text = " ".join(_report(run, tmp_path / "out", "2026-W46").split())
    assert "$\\foo$" in text and "<script>alert(1)</script>" in text
    assert "3 history line(s) were not what placewatch writes" in text
    assert "3 line(s) of alerts.jsonl were not alert edges" in text
    assert "PlacewatchEquityDrift: team=plain" in text  # the good edge is kept
    html = (tmp_path / "out" / "report.html").read_text()
    assert "<script>alert" not in html and "&lt;script&gt;" in html
    assert "{{ 7*7 }}" in html  # shown as written, never evaluated
