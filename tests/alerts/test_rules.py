"""The shipped alerting: Prometheus rules, their promtool tests, the Alertmanager configuration
and one runbook per alert, checked with the real tools (Debian's prometheus and
prometheus-alertmanager, installed by scripts/setup.sh)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from detectors.registry import ALERT_NAMES, ALERT_SEVERITIES
from streams import metric_names
from tests.helpers import ROOT

ALERTS = ROOT / "alerts"
RULES = ALERTS / "placewatch.rules.yml"


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} not found: scripts/setup.sh installs Debian's prometheus packages"
    return path


def _rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=ALERTS)


def test_promtool_checks_the_rules() -> None:
    done = _run(_tool("promtool"), "check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in done.stdout


def test_promtool_unit_tests_pass() -> None:
    tests = sorted(str(p) for p in (ALERTS / "tests").glob("*.test.yml"))
    assert tests
    done = _run(_tool("promtool"), "test", "rules", *tests)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("SUCCESS") == len(tests)


def test_a_wrong_expectation_fails_promtool(tmp_path: Path) -> None:
    """The unit tests can fail: the same file with one expected label changed does."""
    text = (ALERTS / "tests/findings.test.yml").read_text()
    broken = text.replace("group: genomics", "group: not-genomics", 1)
    assert broken != text
    (tmp_path / "broken.test.yml").write_text(
        broken.replace("../placewatch.rules.yml", str(RULES)))
    done = _run(_tool("promtool"), "test", "rules", str(tmp_path / "broken.test.yml"))
    assert done.returncode != 0


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    seen: dict[str, set[bool]] = {}
    for path in (ALERTS / "tests").glob("*.test.yml"):
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                seen.setdefault(check["alertname"], set()).add(bool(check.get("exp_alerts")))
    for rule in _rules():
        assert seen.get(rule["alert"]) == {True, False}, rule["alert"]


def test_every_finding_kind_has_a_rule_with_the_direct_path_labels() -> None:
    rules = {rule["alert"]: rule for rule in _rules()}
    for kind, name in ALERT_NAMES.items():
        rule = rules[name]
        assert f'kind="{kind}"' in rule["expr"] and "without (instance, job)" in rule["expr"]
        assert rule["labels"]["severity"] == ALERT_SEVERITIES[kind]


def test_every_rule_is_labelled_annotated_and_has_a_runbook_with_a_query() -> None:
    for rule in _rules():
        name = rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        notes = rule["annotations"]
        assert notes["summary"] and notes["description"], name
        assert notes["runbook_url"] == f"alerts/runbooks/{name}.md"
        runbook = (ROOT / notes["runbook_url"]).read_text()
        assert runbook.startswith(f"# {name}\n")
        for heading in ("## What it means", "## Confirm", "## Remediate", "**Owner**"):
            assert heading in runbook, (name, heading)
        confirm = runbook.split("## Confirm", 1)[1].split("## Remediate", 1)[0]
        snippets = re.findall(r"`([^`]+)`", confirm)
        assert any("placewatch_" in s or s.startswith(("placewatch ", "up{"))
                   for s in snippets), name


def test_every_metric_in_the_rules_is_defined_once_in_metric_names() -> None:
    defined = {v for k, v in vars(metric_names).items() if k.isupper() and k != "PREFIX"}
    text = RULES.read_text()
    used = set(re.findall(r"\b(placewatch_[a-z_]+)", text))
    assert used
    for name in used:
        base = name.removesuffix("_total")
        assert name in defined or base in defined, name
    assert (ALERTS / "runbooks").is_dir()
    documented = {p.stem for p in (ALERTS / "runbooks").glob("*.md")}
    assert documented == {rule["alert"] for rule in _rules()}


def test_alertmanager_config_checks_and_routes_by_severity() -> None:
    amtool = _tool("amtool")
    config = str(ALERTS / "alertmanager.yml")
    done = _run(amtool, "check-config", config)
    assert done.returncode == 0, done.stdout + done.stderr
    for labels, receiver in ((["severity=critical", "alertname=PlacewatchStalled"],
                              "placewatch-oncall"),
                             (["severity=warning", "alertname=PlacewatchEquityDrift"],
                              "placewatch-reviewers")):
        done = _run(amtool, "config", "routes", "test", f"--config.file={config}", *labels)
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.strip() == receiver


@pytest.mark.parametrize("source, target, equal", [
    ("PlacewatchEquityDrift", "PlacewatchPreferredTierDisparity", ["attribute", "group"]),
])
def test_a_drifting_group_does_not_also_page_for_its_disparity(source: str, target: str,
                                                               equal: list[str]) -> None:
    config = yaml.safe_load((ALERTS / "alertmanager.yml").read_text())
    assert {"source_matchers": [f'alertname="{source}"'],
            "target_matchers": [f'alertname="{target}"'], "equal": equal} in \
        config["inhibit_rules"]
