"""Publish the generated dashboards to a Grafana server through its HTTP API (grafana-client).

Idempotent: the folder is created once; each dashboard is looked up by uid and uploaded only
when what the server holds differs from the generated JSON (or lives in another folder), so a
second publish reports every dashboard ``unchanged`` and writes nothing. The token (a Grafana
service-account token with the Editor role on the folder) comes from the environment or a
file, is sent as ``Authorization: Bearer`` and is never printed.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from grafana_client.api import GrafanaApi
from grafana_client.client import (
    GrafanaClientError,
    GrafanaException,
    GrafanaUnauthorizedError,
)

from dashboards.build import build_all
from streams.errors import PlacewatchError
from streams.settings import endpoint_of

__all__ = ["FOLDER_TITLE", "FOLDER_UID", "Change", "publish"]

FOLDER_UID: Final = "placewatch"
FOLDER_TITLE: Final = "placewatch"
_SERVER_FIELDS: Final = frozenset({"id", "version"})
"""Fields Grafana sets itself: not part of what we compare."""


@dataclass(frozen=True, slots=True)
class Change:
    uid: str
    title: str
    change: str  # created, updated, unchanged


def _client(url: str, token: str, timeout: float) -> Any:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PlacewatchError(f"--url: not an http(s) URL with a host: {endpoint_of(url)}")
    if not token.strip():
        raise PlacewatchError("no Grafana token: set GRAFANA_TOKEN or pass "
                              "--token-file (a service-account token with the Editor role)")
    return GrafanaApi.from_url(url, credential=token.strip(), timeout=timeout)


def _same(held: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    return all(held.get(key) == value for key, value in wanted.items()
               if key not in _SERVER_FIELDS)


def publish(url: str, token: str, timeout: float = 10.0) -> list[Change]:
    """Create the folder if needed and upload every dashboard that differs."""
    api: Any = _client(url, token, timeout)  # grafana-client is untyped
    where = endpoint_of(url)
    try:
        try:
            api.folder.get_folder(FOLDER_UID)
        except GrafanaClientError as exc:
            if getattr(exc, "status_code", None) != 404:
                raise
            api.folder.create_folder(FOLDER_TITLE, uid=FOLDER_UID)
        changes = []
        for text in build_all().values():
            wanted = json.loads(text)
            uid = wanted["uid"]
            try:
                held = api.dashboard.get_dashboard(uid)
            except GrafanaClientError as exc:
                if getattr(exc, "status_code", None) != 404:
                    raise
                held = None
            if held is not None and _same(held.get("dashboard", {}), wanted) and \
                    held.get("meta", {}).get("folderUid") == FOLDER_UID:
                changes.append(Change(uid, wanted["title"], "unchanged"))
                continue
            api.dashboard.update_dashboard({
                "dashboard": {**wanted, "id": None}, "folderUid": FOLDER_UID,
                "overwrite": True, "message": "placewatch dashboards publish"})
            changes.append(Change(uid, wanted["title"],
                                  "created" if held is None else "updated"))
        return changes
    except GrafanaUnauthorizedError as exc:
        raise PlacewatchError(f"Grafana at {where} refused the token (HTTP "
                              f"{exc.status_code}): check GRAFANA_TOKEN or "
                              "--token-file") from exc
    except GrafanaClientError as exc:
        if exc.status_code == 403:
            raise PlacewatchError(f"Grafana at {where} does not let this token write the "
                                  f"{FOLDER_TITLE!r} folder (HTTP 403): give its service "
                                  "account the Editor role") from exc
        raise PlacewatchError(f"Grafana at {where} answered HTTP {exc.status_code}: "
                              f"{exc.message}") from exc
    except GrafanaException as exc:
        raise PlacewatchError(f"Grafana at {where} failed: {exc.message}") from exc
    except OSError as exc:  # niquests' connection errors derive from it
        raise PlacewatchError(f"cannot reach Grafana at {where}: {_why(exc)}") from exc


def _why(exc: BaseException) -> str:
    """The reason of a connection error in a few words, without the pool's wrapping."""
    text = str(exc)
    for needle, words in (("Failed to resolve", "the host name does not resolve"),
                          ("Connection refused", "connection refused"),
                          ("timed out", "timed out"),
                          ("CERTIFICATE_VERIFY_FAILED", "its TLS certificate does not verify")):
        if needle in text:
            return words
    return type(exc).__name__
