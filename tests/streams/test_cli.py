"""The command line as a user meets it: help, errors, the benchmark, config show."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import placewatch

COMMANDS = [[], ["simulate"], ["import", "alibaba-gpu2023"], ["replay"], ["run"],
            ["audit", "verify"], ["bench", "throughput"], ["config", "show"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "root")
def test_every_command_explains_itself(command: list[str]) -> None:
    result = placewatch(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout
    assert len(result.stdout.splitlines()) > 8


def test_unknown_scenario_and_bad_config_are_one_clear_line(tmp_path: Path) -> None:
    result = placewatch("simulate", "--scenario", "chaos", "--out", str(tmp_path / "x.jsonl"))
    assert result.returncode != 0
    assert "unknown 'chaos'" in result.stderr and "Traceback" not in result.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("min_group_support = 0\n")
    result = placewatch("replay", str(bad), "--config", str(bad), "--out", str(tmp_path / "o"))
    assert result.returncode == 2
    assert "min_group_support" in result.stderr and "Traceback" not in result.stderr


def test_simulate_twice_is_byte_identical_and_writes_truth(tmp_path: Path) -> None:
    for name in ("a", "b"):
        result = placewatch("--quiet", "simulate", "--scenario", "step_change", "--events",
                            "3000", "--seed", "2", "--out", str(tmp_path / f"{name}.jsonl"))
        assert result.returncode == 0, result.stderr
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert (tmp_path / "a.truth.json").read_bytes() == (tmp_path / "b.truth.json").read_bytes()
    assert len((tmp_path / "a.jsonl").read_bytes().splitlines()) == 3000


def test_json_logs_are_one_object_per_line(tmp_path: Path) -> None:
    result = placewatch("--log-format", "json", "simulate", "--events", "1000",
                        "--out", str(tmp_path / "s.jsonl"))
    assert result.returncode == 0
    import json
    logs = [json.loads(x) for x in result.stderr.splitlines() if x.startswith("{")]
    assert any(entry["msg"] == "simulated" and entry["events"] == 1000 for entry in logs)


def test_benchmark_prints_every_stage_the_ratio_and_its_verdicts() -> None:
    result = placewatch("--quiet", "bench", "throughput", "--events", "3000", "--repeats", "1",
                        "--sparse-groups", "50")
    out = result.stdout
    for stage in ("floor", "ingest", "full pipeline", "replay (whole command", "ratio to floor",
                  "full pipeline, +50 sparse groups",
                  "scaling: with 50 more groups the full core runs"):
        assert stage in out, out
    verdicts = [line for line in out.splitlines() if line.startswith(("PASS  ", "FAIL  "))]
    assert len(verdicts) == 2 and "of the floor (target >= 25%)" in verdicts[0], out
    assert "of the floor (target >= 20%)" in verdicts[1], out
    # exit 1 exactly when a target is missed
    assert result.returncode == (1 if any(v.startswith("FAIL") for v in verdicts) else 0), \
        result.stderr


def test_throughput_verdicts_pass_at_the_target_and_fail_below_it() -> None:
    from streams.bench.throughput import FULL_STAGE, REPLAY_STAGE, StageResult, verdicts

    floor = StageResult("floor", 1000, 1.0)
    at = verdicts([floor, StageResult(FULL_STAGE, 1000, 4.0), StageResult(REPLAY_STAGE, 1000, 5.0)])
    assert [met for met, _ in at] == [True, True]
    assert at[0][1].startswith("PASS  full pipeline") and "25.0% of the floor" in at[0][1]
    below = verdicts([floor, StageResult(FULL_STAGE, 1000, 4.1),
                      StageResult(REPLAY_STAGE, 1000, 4.0)])
    assert [met for met, _ in below] == [False, True]
    assert below[0][1].startswith("FAIL  ") and below[1][1].startswith("PASS  ")


def test_a_benchmark_that_misses_its_target_exits_non_zero() -> None:
    """One short seed of feedback_loop cannot show amplification in 90% of seeds: FAIL, 1."""
    result = placewatch("--quiet", "bench", "detection", "--seeds", "1", "--events", "30000",
                        "--scenario", "feedback_loop", "--workers", "1", "--no-peers")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL  feedback_loop: amplification" in result.stdout


def test_bench_detection_runs_rivers_detectors_beside_placewatchs() -> None:
    from streams.bench.detection import PEERS

    result = placewatch("--quiet", "bench", "detection", "--seeds", "1", "--events", "10000",
                        "--scenario", "baseline", "--scenario", "equity_drift")
    out = result.stdout
    assert result.returncode in (0, 1), result.stderr  # 10k events decide nothing
    for label in ("placewatch cusum", *PEERS):
        assert out.count(label) >= 2, (label, out)  # a baseline and an equity_drift row
    assert "no River setting finds as often, as fast (p90) and with as few" in out


def test_bench_detection_refuses_peers_against_a_river_configuration(tmp_path: Path) -> None:
    config = tmp_path / "adwin.toml"
    config.write_text('drift_detector = "adwin"\n')
    result = placewatch("--quiet", "bench", "detection", "--seeds", "1", "--scenario",
                        "baseline", "--config", str(config))
    assert result.returncode == 1 and "pass --no-peers" in " ".join(result.stderr.split())


def test_config_show_redacts_the_sample_key() -> None:
    import os
    env = dict(os.environ, PLACEWATCH_AUDIT_SAMPLE_KEY="s3cret")
    result = placewatch("config", "show", env=env)
    assert result.returncode == 0
    assert "s3cret" not in result.stdout and '"audit_sample_key": "<redacted>"' in result.stdout
