"""The repository keeps its promised shape: layout, README commands, deployment files."""

from __future__ import annotations

import re
import subprocess

from tests.helpers import ROOT


def test_required_top_level_layout() -> None:
    for name in ("pyproject.toml", "streams", "detectors", "dashboards", "alerts", "tests",
                 "docker-compose.yml", ".ci/run", "scripts/demo", "scripts/test"):
        assert (ROOT / name).exists(), name


def test_readme_names_exactly_the_two_commands_and_ci_calls_the_test_one() -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Quick start.*?```sh\n(.*?)```", readme, re.S)
    assert block is not None
    commands = [c.split("#")[0].strip() for c in block.group(1).splitlines() if c.strip()]
    assert commands == ["./scripts/demo", "./scripts/test"]
    assert "scripts/test" in (ROOT / ".ci/run").read_text()


def test_every_documented_config_key_exists_and_every_key_is_documented() -> None:
    import dataclasses

    from detectors.config import CoreConfig
    from streams.settings import KafkaSettings, Settings

    doc = (ROOT / "docs/configuration.md").read_text()
    documented = set(re.findall(r"^\| `(\w+)` \|", doc, re.M))
    keys = {f.name for f in dataclasses.fields(CoreConfig)}
    keys |= {f.name for f in dataclasses.fields(Settings)} - {"core", "source", "kafka",
                                                               "config_file"}
    keys |= {f"kafka_{f.name}" for f in dataclasses.fields(KafkaSettings)}
    keys.add("kafka_sasl_password_file")
    assert documented == keys


def test_every_metric_is_documented() -> None:
    from streams import metric_names

    doc = (ROOT / "docs/metrics.md").read_text()
    for name, value in vars(metric_names).items():
        if name.isupper() and name != "PREFIX":
            assert f"`{value}" in doc, value


def test_no_trace_data_is_tracked() -> None:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout
    assert "openb_" not in files


def test_the_documented_rates_are_the_rate_table() -> None:
    from detectors.rates import RATE_BY_NAME, RATE_METRICS

    doc = (ROOT / "docs/metrics.md").read_text()
    row = next(line for line in doc.splitlines() if line.startswith("| `placewatch_group_rate`"))
    listed = re.search(r"`metric` = ([a-z_, ]+)", row)
    assert listed is not None
    assert tuple(name.strip() for name in listed.group(1).split(",")) == RATE_METRICS
    detectors_doc = (ROOT / "docs/detectors.md").read_text()
    for name, words in (("preferred_rate", "the cheap-tier share"), ("queue_rate", "queueing"),
                        ("old_hardware_rate", "old hardware"), ("reject_rate", "rejections")):
        factor = f"{RATE_BY_NAME[name].design_factor:g}"
        assert f"{factor} for {words}" in " ".join(detectors_doc.split()), (name, factor)


def test_every_documented_default_is_the_code_s() -> None:
    """A default cell holding one literal (`60`, `"cusum"`, `["spot", "reserved"]`) equals the
    setting's default, so an edit to the table cannot drift from the code."""
    import dataclasses
    import tomllib

    from detectors.config import CoreConfig
    from streams.settings import KafkaSettings, Settings

    defaults: dict[str, object] = {}
    for cls, prefix in ((CoreConfig, ""), (Settings, ""), (KafkaSettings, "kafka_")):
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                defaults[prefix + f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                defaults[prefix + f.name] = f.default_factory()
    doc = (ROOT / "docs/configuration.md").read_text()
    checked = 0
    for key, cell in re.findall(r"^\| `(\w+)` \|.*\| `([^`]+)`(?: \([^)]*\))? \|$", doc, re.M):
        try:
            documented = tomllib.loads(f"v = {cell}")["v"]
        except tomllib.TOMLDecodeError:
            continue  # words, not a literal
        if key not in defaults:
            continue
        actual = defaults[key]
        if isinstance(actual, tuple):
            actual = [list(x) if isinstance(x, tuple) else x for x in actual]
        if isinstance(documented, dict):  # a mapping setting is held as (key, value) pairs
            actual = dict(actual)  # type: ignore[call-overload]
        assert documented == actual, (key, documented, actual)
        checked += 1
    assert checked > 50
