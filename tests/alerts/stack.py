"""Real Prometheus and Alertmanager processes (Debian packages) on 127.0.0.1 for end-to-end
tests, and a webhook receiver that records what Alertmanager notifies."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from tests.helpers import ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def until(check: Callable[[], Any], seconds: float, what: str) -> Any:
    """Poll ``check`` until it returns something truthy, or fail at a generous deadline."""
    deadline = time.monotonic() + seconds
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"after {seconds:g} s: {what}")
        time.sleep(0.1)


class Receiver:
    """Records every JSON body POSTed to it, by path; answers 503 while ``down``."""

    def __init__(self) -> None:
        self.down = False
        self.posts: list[tuple[str, Any, float]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if receiver.down:
                    self.send_response(503)
                else:
                    with receiver._lock:
                        receiver.posts.append((self.path, json.loads(body), time.time()))
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def bodies(self, prefix: str) -> list[Any]:
        with self._lock:
            return [body for path, body, _ in self.posts if path.startswith(prefix)]

    def notified(self, prefix: str) -> list[dict[str, Any]]:
        """Every alert Alertmanager notified under ``prefix``, with the notification's time."""
        with self._lock:
            return [{**alert, "received": at} for path, body, at in self.posts
                    if path.startswith(prefix) for alert in body.get("alerts", [])]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"{url} exited: {log.read_text()[-3000:]}")
        try:
            return urllib.request.urlopen(f"{url}/-/ready", timeout=2).status == 200
        except OSError:
            return False
    until(ready, 120, f"{url} not ready: {log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


def alertmanager_config(receiver: str, directory: Path) -> Path:
    """The shipped alerts/alertmanager.yml with its receivers pointed at ``receiver`` and its
    timers shortened for a test."""
    config = yaml.safe_load((ROOT / "alerts/alertmanager.yml").read_text())
    config["route"].update(group_wait="0s", group_interval="1s", repeat_interval="1h")
    for route in config["route"].get("routes", []):
        route["repeat_interval"] = "1h"
    for entry in config["receivers"]:
        for hook in entry["webhook_configs"]:
            hook["url"] = f"{receiver}/{entry['name']}"
    path = directory / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@contextmanager
def alertmanager(directory: Path, receiver: str, port: int | None = None
                 ) -> Iterator[str]:
    binary = shutil.which("prometheus-alertmanager")
    assert binary, "prometheus-alertmanager not found: scripts/setup.sh installs it"
    directory.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    log = directory / "alertmanager.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [binary, f"--config.file={alertmanager_config(receiver, directory)}",
             f"--storage.path={directory / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
             "--cluster.listen-address="], stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_ready(url, proc, log)
        yield url
    finally:
        _stop(proc)


@contextmanager
def prometheus(directory: Path, target: str | list[str], alertmanager_url: str,
               scrape: float = 1.0,
               evaluation: float = 1.0, keep_firing_for: str | None = None) -> Iterator[str]:
    """Prometheus with the shipped rules (``keep_firing_for`` shortened when given, so a test
    need not wait the production minute for a rule alert to end)."""
    binary = shutil.which("prometheus")
    assert binary, "prometheus not found: scripts/setup.sh installs it"
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    rules = ROOT / "alerts/placewatch.rules.yml"
    if keep_firing_for is not None:
        text = rules.read_text().replace("keep_firing_for: 1m",
                                         f"keep_firing_for: {keep_firing_for}")
        rules = directory / "placewatch.rules.yml"
        rules.write_text(text)
    config = {
        "global": {"scrape_interval": f"{scrape:g}s", "evaluation_interval": f"{evaluation:g}s"},
        "rule_files": [str(rules)],
        "alerting": {"alertmanagers": [{"static_configs": [
            {"targets": [alertmanager_url.removeprefix("http://")]}]}]},
        "scrape_configs": [{"job_name": "placewatch", "static_configs": [
            {"targets": [target] if isinstance(target, str) else target}]}],
    }
    (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
    url = f"http://127.0.0.1:{port}"
    log = directory / "prometheus.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [binary, f"--config.file={directory / 'prometheus.yml'}",
             f"--storage.tsdb.path={directory / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_ready(url, proc, log)
        yield url
    finally:
        _stop(proc)


def start_run(out: Path, config: Path, log: Path, *args: str) -> subprocess.Popen[bytes]:
    """``placewatch run`` in a child process, its log in ``log`` (reap it with
    :func:`stop_run`)."""
    with log.open("ab") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "--log-format", "json", "run", "--config",
             str(config), "--out", str(out), *args],
            stdout=subprocess.DEVNULL, stderr=err)


def stop_run(proc: subprocess.Popen[bytes], timeout: float = 180) -> int:
    """SIGTERM (a clean stop), then wait; kill if it hangs. Returns its exit code."""
    if proc.poll() is None:
        proc.terminate()
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=60)
        raise
