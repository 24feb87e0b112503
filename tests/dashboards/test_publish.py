"""Publishing through grafana-client to a local server that records the requests and answers
as Grafana's HTTP API does (folders, dashboards by uid, POST /api/dashboards/db): the folder
once, every dashboard created, a second publish changes nothing, clear errors otherwise."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from dashboards.build import build_all
from dashboards.publish import FOLDER_UID, publish
from streams.errors import PlacewatchError

TOKEN = "glsa_test_token_0123"


class FakeGrafana:
    """Just enough of Grafana's API, with its status codes, behind a bearer token."""

    def __init__(self) -> None:
        self.folders: dict[str, dict[str, Any]] = {}
        self.dashboards: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        grafana = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _authorised(self) -> bool:
                grafana.requests.append((self.command, self.path))
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    self._answer(401, {"message": "invalid API key"})
                    return False
                return True

            def do_GET(self) -> None:
                if not self._authorised():
                    return
                if self.path.startswith("/api/folders/"):
                    uid = self.path.rsplit("/", 1)[1]
                    if uid in grafana.folders:
                        self._answer(200, grafana.folders[uid])
                    else:
                        self._answer(404, {"message": "folder not found"})
                elif self.path.startswith("/api/dashboards/uid/"):
                    uid = self.path.rsplit("/", 1)[1]
                    if uid in grafana.dashboards:
                        self._answer(200, grafana.dashboards[uid])
                    else:
                        self._answer(404, {"message": "Dashboard not found"})
                else:
                    self._answer(404, {"message": "not found"})

            def do_POST(self) -> None:
                if not self._authorised():
                    return
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path == "/api/folders":
                    grafana.folders[body["uid"]] = {"uid": body["uid"], "title": body["title"],
                                                    "id": len(grafana.folders) + 1}
                    self._answer(200, grafana.folders[body["uid"]])
                elif self.path == "/api/dashboards/db":
                    if body.get("folderUid") not in grafana.folders:
                        self._answer(400, {"message": "folder not found"})
                        return
                    board = dict(body["dashboard"])
                    old = grafana.dashboards.get(board["uid"])
                    board["id"] = 7
                    board["version"] = (old["dashboard"]["version"] + 1) if old else 1
                    grafana.dashboards[board["uid"]] = {
                        "dashboard": board, "meta": {"folderUid": body["folderUid"]}}
                    self._answer(200, {"status": "success", "uid": board["uid"],
                                       "version": board["version"]})
                else:
                    self._answer(404, {"message": "not found"})

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def writes(self) -> list[tuple[str, str]]:
        return [r for r in self.requests if r[0] == "POST"]


@pytest.fixture
def grafana() -> Iterator[FakeGrafana]:
    fake = FakeGrafana()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def test_publish_creates_then_changes_nothing(grafana: FakeGrafana) -> None:
    first = publish(grafana.url, TOKEN)
    assert sorted((c.uid, c.change) for c in first) == sorted(
        (json.loads(text)["uid"], "created") for text in build_all().values())
    assert FOLDER_UID in grafana.folders
    held = grafana.dashboards["placewatch-sre"]
    assert held["meta"]["folderUid"] == FOLDER_UID
    assert held["dashboard"]["title"] == "placewatch: SRE on-call"
    writes = len(grafana.writes())
    assert {c.change for c in publish(grafana.url, TOKEN)} == {"unchanged"}
    assert len(grafana.writes()) == writes  # idempotent: nothing written the second time
    # someone edits a dashboard in Grafana: the next publish puts the generated one back
    grafana.dashboards["placewatch-reviewer"]["dashboard"]["title"] = "edited by hand"
    again = {c.uid: c.change for c in publish(grafana.url, TOKEN)}
    assert again["placewatch-reviewer"] == "updated"
    assert grafana.dashboards["placewatch-reviewer"]["dashboard"]["title"] == \
        "placewatch: reviewer"


def test_a_bad_token_a_bad_url_and_no_server_are_clear_errors(grafana: FakeGrafana) -> None:
    with pytest.raises(PlacewatchError, match="refused the token"):
        publish(grafana.url, "wrong")
    with pytest.raises(PlacewatchError, match="not an http"):
        publish("grafana.example:3000", TOKEN)
    with pytest.raises(PlacewatchError, match="no Grafana token"):
        publish(grafana.url, "  ")
    port = grafana.server.server_address[1]
    grafana.server.shutdown()
    grafana.server.server_close()
    with pytest.raises(PlacewatchError, match=r"cannot reach Grafana.*connection refused"):
        publish(f"http://127.0.0.1:{port}", TOKEN, timeout=5)


def test_the_command_reads_the_token_from_a_file_and_never_prints_it(
        grafana: FakeGrafana, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    done = subprocess.run([sys.executable, "-m", "streams.cli", "dashboards", "publish",
                           "--url", grafana.url, "--token-file", str(token)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("created") == 3
    assert TOKEN not in done.stdout + done.stderr
    again = subprocess.run([sys.executable, "-m", "streams.cli", "dashboards", "publish",
                            "--url", grafana.url], capture_output=True, text=True,
                           timeout=120, env={"GRAFANA_TOKEN": TOKEN, "PATH": "/usr/bin:/bin"})
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("unchanged") == 3
