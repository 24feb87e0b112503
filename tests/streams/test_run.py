"""`placewatch run`: the live simulator through the pipeline, /metrics on loopback, clean stop."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest


def _reap(proc: subprocess.Popen[str]) -> None:
    """Never leave a child behind: kill it if it still runs, then wait for it."""
    if proc.poll() is None:
        proc.kill()
        proc.communicate(timeout=60)
    proc.wait(timeout=60)


def _start(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "--log-format", "json", "run",
         "--metrics-port", "0", "--out", str(tmp_path / "run"), *args],
        stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    deadline = time.monotonic() + 120  # a loaded machine may take a while to import
    while time.monotonic() < deadline:
        text = proc.stderr.readline()
        if not text:
            break
        if text.startswith("{") and json.loads(text)["msg"] == "serving metrics":
            return proc, json.loads(text)["url"]
    _reap(proc)
    pytest.fail("run did not start serving metrics")


def _scrape_until(url: str, wanted: tuple[str, ...], seconds: float = 120) -> str:
    """Scrape until every ``wanted`` text is in the page, or fail at a generous deadline."""
    deadline = time.monotonic() + seconds
    body = ""
    while time.monotonic() < deadline:
        body = urllib.request.urlopen(url, timeout=10).read().decode()
        if all(text in body for text in wanted):
            return body
        time.sleep(0.2)
    pytest.fail(f"after {seconds:g} s /metrics still lacks one of {wanted}:\n{body[:2000]}")


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_run_serves_metrics_on_loopback_and_stops_cleanly(tmp_path: Path, stop: int) -> None:
    proc, url = _start(tmp_path, "--speedup", "1000000", "--max-events", "5000000")
    try:
        assert url.startswith("http://127.0.0.1:")
        _scrape_until(url, ('placewatch_events_total{kind="placement"}',
                            'placewatch_group_rate{attribute="team"',
                            # a live run's own health: wall-clock figures, the chain verified
                            "placewatch_last_batch_processed_timestamp_seconds ",
                            "placewatch_processing_seconds_total ",
                            "placewatch_audit_chain_ok 1.0"))
        proc.send_signal(stop)
        _, err = proc.communicate(timeout=120)
    finally:
        _reap(proc)
    assert proc.returncode == 0, err
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["events_in"] > 0
    assert summary["events_in"] == (summary["placements"] + summary["outcomes"]
                                    + summary["duplicates"] + summary["rejected"])
    assert '"reason":"interrupt"' in err


def test_run_to_a_fixed_number_of_events(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "streams.cli", "--quiet", "run", "--metrics-port", "0",
         "--speedup", "1000000", "--max-events", "3000", "--scenario", "baseline",
         "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["events_in"] == 3000


def test_a_restarted_run_continues_its_directory(tmp_path: Path) -> None:
    """``run`` resumes: the audit chain goes on from its head, alert and dead-letter lines are
    appended, the store verifies as one chain, and alerts the first run left open are closed
    by the second (its detectors start afresh), so every fingerprint's edges still pair up."""
    from simulator import SCENARIOS, Simulation
    from streams.app import create_app
    from streams.audit.verify import verify_store
    from streams.settings import load_settings

    out = tmp_path / "run"
    summaries = []
    for scenario, events in (("equity_drift", 60_000), ("baseline", 6000)):
        app = create_app(load_settings(environ={}, overrides={
            "metrics_port": 0, "audit_worker": "inline", "audit_sample_rate": 0.05,
            "shadow_train_rate": 0.05}))
        lines = [b"not json", *Simulation(SCENARIOS[scenario], events, 1)]
        summaries.append(app.run_live((("sim", raw) for raw in lines), out))
    first, second = summaries
    assert first["alerts_open"] >= 1  # the drift was still open when the first run stopped
    assert second["alerts_closed_on_restart"] == first["alerts_open"]
    assert first["audited"] > 0 and second["audited"] > 0
    assert second["audit_head"]["records"] == first["audited"] + second["audited"]
    assert len((out / "dead_letter.jsonl").read_text().splitlines()) == 2  # one per run
    edges = [json.loads(line) for line in (out / "alerts.jsonl").read_text().splitlines()]
    open_now: set[str] = set()
    for edge in edges:
        if edge["state"] == "firing":
            assert edge["fingerprint"] not in open_now
            open_now.add(edge["fingerprint"])
        else:
            open_now.remove(edge["fingerprint"])
    assert len(open_now) == second["alerts_open"]
    closed = [e for e in edges if "placewatch restarted" in e["summary"]]
    assert len(closed) == first["alerts_open"]
    result = verify_store(out / "audit.sqlite", expect_head=second["audit_head"]["hash"])
    assert result.ok, result


def test_a_second_ctrl_c_right_after_the_first_still_exits(tmp_path: Path) -> None:
    proc, _ = _start(tmp_path, "--speedup", "1000000", "--max-events", "5000000")
    try:
        proc.send_signal(signal.SIGINT)
        time.sleep(0.05)  # the scenario itself: a second Ctrl-C 50 ms after the first
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=120)  # exits (it used to hang joining the audit worker)
    finally:
        _reap(proc)
    assert proc.returncode is not None


def test_a_sink_that_fails_ends_the_run_with_an_error_instead_of_hanging(tmp_path: Path
                                                                         ) -> None:
    import sqlite3

    # equity_drift changes at 40% of --max-events: its alert comes some 45,000 events in
    proc, url = _start(tmp_path, "--scenario", "equity_drift", "--speedup", "1000000",
                       "--max-events", "100000")
    holder = None
    try:
        # the first batch is processed: the run directory and its stores are open
        _scrape_until(url, ("placewatch_last_batch_processed_timestamp_seconds ",))
        # mid-run, another process takes the findings store: the alert edge cannot be
        # recorded (after SQLite's 30 s busy timeout)
        holder = sqlite3.connect(tmp_path / "run" / "findings.sqlite", isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        _, err = proc.communicate(timeout=300)
    finally:
        if holder is not None:
            holder.close()
        _reap(proc)
    assert proc.returncode not in (0, None)
    assert "cannot write the findings store" in " ".join(err.split())
    assert "(SQLITE_BUSY)" in err


def test_a_crash_after_a_restart_is_reconciled_at_the_next_start_not_reported_tampered(
        tmp_path: Path) -> None:
    """A run killed mid-way leaves records after the head the last summary published; before,
    ``audit verify`` then said TAMPERED about an untampered store. The next start publishes
    the head it finds, once the chain passes through the published one; a store that does
    not is refused, not appended to."""
    from tests.helpers import placewatch

    out = tmp_path / "run"
    first = subprocess.run(
        [sys.executable, "-m", "streams.cli", "--quiet", "run", "--metrics-port", "0",
         "--speedup", "1000000", "--max-events", "3000", "--out", str(out)],
        capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    published = json.loads((out / "summary.json").read_text())["audit_head"]
    proc, url = _start(tmp_path, "--speedup", "1000000", "--max-events", "5000000")
    try:  # killed once it has appended records of its own
        _scrape_until(url, ("placewatch_audits_explained_total 1",))
        proc.kill()
    finally:
        _reap(proc)
    stale = placewatch("audit", "verify", "--store", str(out / "audit.sqlite"))
    assert stale.returncode == 1 and "appended after the published head" in stale.stderr

    proc, url = _start(tmp_path, "--speedup", "1", "--max-events", "5000000")
    try:
        _scrape_until(url, ("placewatch_last_batch_processed_timestamp_seconds ",))
        checked = placewatch("audit", "verify", "--store", str(out / "audit.sqlite"))
        assert checked.returncode == 0, checked.stderr
        summary = json.loads((out / "summary.json").read_text())
        assert summary["audit_head_reconciled"]["published_records"] == published["records"]
        assert summary["audit_head"]["records"] > published["records"]
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        _reap(proc)
    assert proc.returncode == 0, err

    summary = json.loads((out / "summary.json").read_text())
    summary["audit_head"]["hash"] = "0" * 64  # a published head the chain does not reach
    (out / "summary.json").write_text(json.dumps(summary))
    refused = subprocess.run(
        [sys.executable, "-m", "streams.cli", "--quiet", "run", "--metrics-port", "0",
         "--max-events", "10", "--out", str(out)], capture_output=True, text=True, timeout=300)
    said = " ".join(refused.stderr.split())
    assert refused.returncode == 1 and "a run would append to it" in said, said
