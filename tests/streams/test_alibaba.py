"""Importer for the Alibaba GPU 2023 pod list, on a small file made here in the same format."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import placewatch

HEADER = ("name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,"
          "deletion_time,scheduled_time\n")


def _pod_list(path: Path) -> Path:
    rows = []
    for i in range(120):
        qos = ("LS", "BE", "Burstable")[i % 3]
        created = 100 * i
        if i % 10 == 0:  # never scheduled
            rows.append(f"pod-{i:04d},4000,8192,1,500,,{qos},Pending,{created},{created + 50},")
        else:
            phase = ("Running", "Succeeded", "Failed")[i % 3 if i % 7 else 1]
            rows.append(f"pod-{i:04d},8000,16384,1,1000,V100M16,{qos},{phase},{created},"
                        f"{created + 5000},{created + 30}")
    rows.append("pod-bad1,abc,1,1,1,,LS,Running,0,1,0")
    rows.append("pod-bad2,1000,1024,0,0,,BE,Failed,500,400,450")
    path.write_text(HEADER + "\n".join(rows) + "\n")
    return path


def test_import_then_replay_shows_qos_groups(tmp_path: Path) -> None:
    pods = _pod_list(tmp_path / "openb_pod_list_test.csv")
    events = tmp_path / "events.jsonl"
    result = placewatch("--quiet", "import", "alibaba-gpu2023", str(pods), "--out", str(events))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(x) for x in events.read_text().splitlines()]
    placements = [e for e in lines if e["event_type"] == "placement"]
    assert len(placements) == 120
    assert {e["decision"]["action"] for e in placements} == {"place", "queue"}
    first = next(e for e in placements if e["job_id"] == "pod-0001")
    assert first["submitted_at"] == "2023-07-01T00:01:40.000Z"
    assert first["decided_at"] == "2023-07-01T00:02:10.000Z"
    assert first["job"]["requested"] == {"cpu": 8.0, "memory_gb": 16.0, "gpu": 1.0}
    statuses = {e["status"] for e in lines if e["event_type"] == "outcome"}
    assert statuses == {"succeeded", "failed", "killed"}
    times = [e.get("decided_at") or e.get("finished_at") for e in lines]
    assert times == sorted(times)
    rejected = (tmp_path / "events.rejected.jsonl").read_text().splitlines()
    assert len(rejected) == 2

    out = tmp_path / "out"
    assert placewatch("--quiet", "replay", str(events), "--out", str(out)).returncode == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rejected"] == 0
    groups = summary["fairness"]["qos"]["groups"]
    assert set(groups) == {"LS", "BE", "Burstable"}
    assert groups["LS"]["queue_rate"] > 0
    assert summary["fairness"]["qos"]["disparity"]["queue_rate"]["groups_compared"] == 3


def test_wrong_file_is_a_clear_error(tmp_path: Path) -> None:
    other = tmp_path / "nodes.csv"
    other.write_text("sn,cpu_milli,memory_mib,gpu,model\n")
    result = placewatch("import", "alibaba-gpu2023", str(other), "--out",
                        str(tmp_path / "e.jsonl"))
    assert result.returncode == 3
    assert "missing column" in result.stderr
