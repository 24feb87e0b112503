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


def _start(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "--log-format", "json", "run",
         "--metrics-port", "0", "--out", str(tmp_path / "run"), *args],
        stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = proc.stderr.readline()
        if not text:
            break
        if text.startswith("{") and json.loads(text)["msg"] == "serving metrics":
            return proc, json.loads(text)["url"]
    proc.kill()
    pytest.fail("run did not start serving metrics")


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_run_serves_metrics_on_loopback_and_stops_cleanly(tmp_path: Path, stop: int) -> None:
    proc, url = _start(tmp_path, "--speedup", "1000000", "--max-events", "5000000")
    try:
        assert url.startswith("http://127.0.0.1:")
        body = ""
        for _ in range(50):
            body = urllib.request.urlopen(url, timeout=5).read().decode()
            if 'placewatch_events_total{kind="placement"}' in body and \
                    'placewatch_group_rate{attribute="team"' in body:
                break
            time.sleep(0.1)
        assert 'placewatch_group_rate{attribute="team"' in body
        proc.send_signal(stop)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
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
         "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["events_in"] == 3000
