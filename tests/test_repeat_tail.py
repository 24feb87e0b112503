"""scripts/repeat-tail: the file, then its tail again, later and under new ids."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

from tests.helpers import outcome, placement

SCRIPT = Path(__file__).parent.parent / "scripts" / "repeat-tail"


def test_the_tail_is_repeated_later_under_new_ids(tmp_path: Path) -> None:
    events = [placement("d-1", at="2026-11-02T08:15:00.000Z"),
              placement("d-2", at="2026-11-02T09:15:00.000Z"),
              outcome("d-2", at="2026-11-02T10:15:00.000Z")]
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    out = tmp_path / "out.jsonl"
    subprocess.run([sys.executable, str(SCRIPT), str(source), str(out), "--share", "0.5",
                    "--copies", "2"], check=True, capture_output=True)
    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert lines[:3] == events
    # the last half (2 of 3 lines, rounded) spans 09:15 to 10:15: one hour, plus a second
    assert [(e["decision_id"], e.get("decided_at") or e["finished_at"]) for e in lines[3:]] == [
        ("d-2-c1", "2026-11-02T10:15:01.000Z"), ("d-2-c1", "2026-11-02T11:15:01.000Z"),
        ("d-2-c2", "2026-11-02T11:15:02.000Z"), ("d-2-c2", "2026-11-02T12:15:02.000Z")]
    assert lines[3]["job_id"] == "j-d-2-c1"
    assert lines[3]["submitted_at"] == "2026-11-02T09:13:13.000Z"
    assert lines[3]["job"]["deadline"] == "2026-11-02T13:00:01.000Z"  # 12:00 + 1 h 1 s


def test_an_outcome_whose_placement_is_before_the_tail_is_not_copied(tmp_path: Path) -> None:
    events = [placement("d-1", at="2026-11-02T08:15:00.000Z"),
              placement("d-2", at="2026-11-02T09:15:00.000Z"),
              outcome("d-1", at="2026-11-02T10:15:00.000Z"),
              outcome("d-2", at="2026-11-02T10:45:00.000Z")]
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    out = tmp_path / "out.jsonl"
    run = subprocess.run([sys.executable, str(SCRIPT), str(source), str(out), "--share", "0.75"],
                         check=True, capture_output=True, text=True)
    copied = [orjson.loads(line) for line in out.read_bytes().splitlines()][4:]
    assert [(e["event_type"], e["decision_id"]) for e in copied] == [
        ("placement", "d-2-c1"), ("outcome", "d-2-c1")]
    assert "1 outcomes of earlier placements left out" in run.stderr


def test_bad_options_are_refused(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(orjson.dumps(placement()) + b"\n")
    run = subprocess.run([sys.executable, str(SCRIPT), str(source), str(tmp_path / "o"),
                          "--share", "0"], capture_output=True, text=True)
    assert run.returncode == 2 and "--share must be in (0, 1]" in run.stderr
