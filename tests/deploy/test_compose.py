"""docker-compose.yml cannot run here (no container engine): check it as far as can be done
without one. It validates against the Compose Specification's JSON Schema, every file it
mounts exists, every placewatch command it runs parses as a real command, its images are
pinned, its host ports are on loopback, and the topics it creates are the ones placewatch
says it needs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import typer.main
import yaml

from streams.cli.main import app
from tests.helpers import ROOT

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]


def test_it_validates_against_the_compose_specification() -> None:
    schema = json.loads((Path(__file__).parent / "compose-spec.json").read_text())
    jsonschema.Draft7Validator(schema).validate(COMPOSE)


def test_every_file_it_mounts_exists() -> None:
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), (name, source)


@pytest.mark.parametrize("name", [n for n, s in SERVICES.items() if s.get("build") == "."])
def test_every_placewatch_command_it_runs_is_a_real_one(name: str) -> None:
    args = list(SERVICES[name]["command"])
    command: Any = typer.main.get_command(app)  # typer's own (vendored) click objects
    path = ["placewatch"]
    while hasattr(command, "commands"):  # a group: descend into the named subcommand
        sub = command.get_command(command.context_class(command), args[0])
        assert sub is not None, (name, args[0])
        path.append(args.pop(0))
        command = sub
    assert not hasattr(command, "commands") and len(path) >= 2, path
    # parses the options as the CLI would (a typo or a removed option raises here)
    command.make_context(" ".join(path), args)


def test_the_command_check_can_fail() -> None:
    command: Any = typer.main.get_command(app)
    run = command.get_command(command.context_class(command), "run")
    with pytest.raises(Exception, match="No such option"):
        run.make_context("placewatch run", ["--sourc", "kafka://kafka:9092"])


def test_images_are_pinned_and_ports_are_on_loopback() -> None:
    for name, service in SERVICES.items():
        if "image" in service:
            image = service["image"]
            assert re.fullmatch(r"[\w./-]+:[\w.-]+", image) and not image.endswith(":latest"), \
                (name, image)
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), (name, port)


def test_it_creates_the_topics_placewatch_needs() -> None:
    listed = subprocess.run([sys.executable, "-m", "streams.cli", "kafka", "topics"],
                            capture_output=True, text=True, cwd=ROOT, check=True).stdout
    wanted = {tuple(line.split()) for line in listed.splitlines()}
    script = SERVICES["kafka-topics"]["command"][0]
    specs = re.search(r"for spec in (.*?); do", script, re.S)
    assert specs is not None
    created = {tuple(spec.split(":")) for spec in specs.group(1).split()}
    assert created == wanted | {("placewatch.events", "4", "delete")}


def test_prometheus_scrapes_both_workers() -> None:
    prom = yaml.safe_load((ROOT / "deploy/prometheus.yml").read_text())
    targets = prom["scrape_configs"][0]["static_configs"][0]["targets"]
    workers = [n for n, s in SERVICES.items() if s.get("command", [None])[0] == "run"]
    assert sorted(targets) == sorted(f"{n}:9469" for n in workers)
    assert len(workers) == 2
