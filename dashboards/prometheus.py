"""The part of Prometheus's HTTP API the dashboard pictures read: instant and range queries
and label values. Every failure (unreachable, refused, not JSON, not a series) is one
:class:`~streams.errors.PlacewatchError` naming the server.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any

from streams.errors import PlacewatchError

__all__ = ["Prometheus"]


class Prometheus:
    """The two query endpoints of Prometheus's HTTP API (``/api/v1/query``,
    ``/api/v1/query_range``) and label values; every failure is one clear error."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise PlacewatchError(f"--prometheus: {url!r} is not an http(s) URL, e.g. "
                                  "http://127.0.0.1:9090")
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _get(self, path: str, params: Sequence[tuple[str, str]], post: bool = True) -> Any:
        """``data`` of an API reply; queries are POSTed (long expressions), label values are
        read with GET (the only method Prometheus serves them with)."""
        encoded = urllib.parse.urlencode(params)
        request = (urllib.request.Request(f"{self.url}{path}", data=encoded.encode(),
                                          method="POST") if post
                   else urllib.request.Request(f"{self.url}{path}?{encoded}", method="GET"))
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                body = answer.read()
        except urllib.error.HTTPError as exc:
            try:
                detail = json.loads(exc.read()).get("error", exc.reason)
            except (ValueError, AttributeError, OSError, http.client.HTTPException):
                detail = exc.reason
            raise PlacewatchError(f"Prometheus at {self.url} refused {path}: HTTP {exc.code}: "
                                  f"{detail}") from exc
        except (OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", None) or exc.__class__.__name__
            raise PlacewatchError(f"cannot reach Prometheus at {self.url}: {reason}") from exc
        try:
            reply = json.loads(body)
        except ValueError:
            raise PlacewatchError(f"{self.url} answered {path} with something other than "
                                  "JSON: is it Prometheus?") from None
        if not isinstance(reply, dict) or reply.get("status") != "success":
            raise PlacewatchError(f"Prometheus at {self.url} answered {path} with an error: "
                                  f"{reply.get('error') if isinstance(reply, dict) else reply}")
        return reply.get("data")

    def _vectors(self, data: Any, path: str) -> list[dict[str, Any]]:
        """A query's result as a list of series; a scalar as one series without labels."""
        if isinstance(data, dict) and data.get("resultType") == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        if not isinstance(data, dict) or data.get("resultType") not in ("vector", "matrix") \
                or not isinstance(data.get("result"), list):
            kind = data.get("resultType") if isinstance(data, dict) else type(data).__name__
            raise PlacewatchError(f"Prometheus at {self.url} answered {path} with a {kind} "
                                  "result; a panel needs series")
        return list(data["result"])

    def instant(self, expr: str, at: float) -> list[dict[str, Any]]:
        path = "/api/v1/query"
        return self._vectors(self._get(path, [("query", expr), ("time", f"{at:.3f}")]), path)

    def range(self, expr: str, start: float, end: float, step: float
              ) -> list[dict[str, Any]]:
        path = "/api/v1/query_range"
        return self._vectors(self._get(path, [
            ("query", expr), ("start", f"{start:.3f}"), ("end", f"{end:.3f}"),
            ("step", f"{step:g}")]), path)

    def label_values(self, label: str, selector: str, start: float, end: float) -> list[str]:
        path = f"/api/v1/label/{urllib.parse.quote(label)}/values"
        data = self._get(path, [("match[]", selector), ("start", f"{start:.3f}"),
                                ("end", f"{end:.3f}")], post=False)
        if not isinstance(data, list):
            raise PlacewatchError(f"Prometheus at {self.url} answered {path} without a list")
        return sorted(str(v) for v in data)
