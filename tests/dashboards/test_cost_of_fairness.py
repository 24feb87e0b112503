"""The leadership dashboard's cost of fairness, evaluated by Prometheus's own engine
(``promtool test rules``) on hand-made counters, against arithmetic done by hand here.

Each case's counters grow every 30 s; at 2 m the comparison window (1 m) holds two steps.
The saving per cheap placement is the pooled mean premium spend minus the pooled mean cheap
spend; a group's extra spend is the cheap placements it would have had at the other groups'
share, beyond its own, times that saving.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from dashboards.build import JSON_DIR

PRICED = "placewatch_group_priced_placements_total"
SPEND = "placewatch_group_spend_total"


def _expressions() -> dict[str, str]:
    """The three cost-of-fairness queries as committed, for attribute team over 1 m."""
    board = json.loads((JSON_DIR / "placewatch-leadership.json").read_text())
    out = {}
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            if SPEND in target["expr"]:
                key = target.get("legendFormat") or panel["title"]
                out[key] = (target["expr"].replace("$attribute", "team")
                            .replace("$compare", "1m"))
    assert set(out) == {"saved", "extra spend", "{{group}}"}, sorted(out)
    return out


def _series(groups: dict[str, dict[str, tuple[float, float]]]) -> list[dict[str, str]]:
    """group -> tier -> (placements, spend) added every 30 s."""
    rows = []
    for group, tiers in groups.items():
        for tier, (placed, spent) in tiers.items():
            labels = f'attribute="team",group="{group}",tier="{tier}"'
            rows.append({"series": f"{PRICED}{{{labels}}}", "values": f"0+{placed}x10"})
            rows.append({"series": f"{SPEND}{{{labels}}}", "values": f"0+{spent}x10"})
    return rows


THREE = {"a": {"cheap": (4, 4), "premium": (1, 5)},
         "b": {"cheap": (1, 1), "premium": (4, 20)},
         "c": {"cheap": (2.5, 2.5), "premium": (2.5, 12.5)}}
# Over the window: a 8 cheap / 2 premium, b 2 / 8, c 5 / 5. Pooled means: premium 75 / 15 = 5,
# cheap 15 / 15 = 1, so a cheap placement saves 4 and 15 of them saved 60. The rest of b has
# 13 cheap in 20: at that share b would have had 6.5 of its 10, 4.5 more than its 2: 18.
# a (rest 7 / 20, 3.5 < 8) and c (rest 10 / 20, 5 = 5) are not short.
CASES: list[tuple[str, dict[str, dict[str, tuple[float, float]]], dict[str, Any]]] = [
    ("three groups", THREE,
     {"saved": 60, "extra spend": 18, "{{group}}": {"a": 0, "b": 18, "c": 0}}),
    # b has no cheap series at all: premium 50 / 10 = 5, cheap 8 / 8 = 1, saving 4; b's rest
    # (a) has 8 cheap of 10, so b would have had 6.4 of its 8: 25.6
    ("a group never on a cheap tier", {"a": THREE["a"], "b": {"premium": (4, 20)}},
     {"saved": 32, "extra spend": 25.6, "{{group}}": {"a": 0, "b": 25.6}}),
    # nothing to compare a with: a saving, but no extra spend and no bar
    ("one group", {"a": THREE["a"]}, {"saved": 32, "extra spend": None, "{{group}}": {}}),
    # no premium placement in the window: no saving to price anything with
    ("no premium placements", {g: {"cheap": t["cheap"]} for g, t in THREE.items()},
     {"saved": None, "extra spend": None, "{{group}}": {}}),
    # cheap dearer than premium: nothing saved, nothing owed
    ("cheap tiers dearer", {g: {"cheap": (t["cheap"][0], t["cheap"][0] * 9),
                                "premium": t["premium"]} for g, t in THREE.items()},
     {"saved": 0, "extra spend": 0, "{{group}}": {"a": 0, "b": 0, "c": 0}}),
    # the overflow group is pooled into the means and the rest, but gets no bar: premium
    # 85 / 17 = 5, cheap 17 / 17 = 1, saving 4, 17 cheap saved 68; b's rest has 15 cheap in
    # 24, so b would have had 6.25 of its 10, 4.25 more than its 2: 17
    ("an overflow group", {**THREE, "__other__": {"cheap": (1, 1), "premium": (1, 5)}},
     {"saved": 68, "extra spend": 17, "{{group}}": {"a": 0, "b": 17, "c": 0}}),
]


@pytest.mark.parametrize(("name", "groups", "expected"), CASES, ids=[c[0] for c in CASES])
def test_cost_of_fairness_is_the_arithmetic_done_by_hand(
        name: str, groups: dict[str, dict[str, tuple[float, float]]], expected: dict[str, Any],
        tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: scripts/setup.sh installs prometheus"
    tests = []
    for legend, expr in _expressions().items():
        want = expected[legend]
        if legend == "{{group}}":
            samples = [{"labels": f'{{group="{g}"}}', "value": v} for g, v in sorted(want.items())]
        else:
            samples = [] if want is None else [{"labels": "{}", "value": want}]
        tests.append({"expr": expr, "eval_time": "2m", "exp_samples": samples})
    (tmp_path / "rules.yml").write_text("groups: []\n")
    (tmp_path / "cost.test.yml").write_text(yaml.safe_dump({
        "rule_files": ["rules.yml"], "evaluation_interval": "30s",
        "tests": [{"name": name, "interval": "30s", "input_series": _series(groups),
                   "promql_expr_test": tests}]}))
    done = subprocess.run([promtool, "test", "rules", "cost.test.yml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
