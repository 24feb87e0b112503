"""POSTing JSON to a configured receiver: credentials out of the URL, no redirects, and
what counts as a failure to retry versus a refusal (used by :mod:`streams.sinks.outbox`)."""

from __future__ import annotations

import base64
import hashlib
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from streams.settings import endpoint_of

__all__ = ["TIMEOUT_S", "Rejected", "Target", "post", "reason", "targets"]

TIMEOUT_S: Final = 10.0
_PERMANENT: Final = frozenset({400, 422})
"""Answers that say the payload itself is wrong: retrying it cannot help. Every other
failure (401, 403, 404, 413, 5xx, a redirect, no answer) is a configuration or availability
problem that an operator can fix, so it is retried and counted as a failure."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is a failure: following it would turn the POST into a GET and could carry
    the credentials to another host."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER: Final = urllib.request.build_opener(_NoRedirect)


@dataclass(frozen=True, slots=True)
class Target:
    """One configured receiver. ``key`` (a hash of the configured URL) names its rows in the
    outbox, so no credential is stored there."""

    kind: str
    name: str
    url: str
    endpoint: str
    authorization: str | None
    key: str


def targets(alertmanager_urls: Sequence[str], webhook_urls: Sequence[str]) -> list[Target]:
    """The configured receivers, credentials moved from the URL into a header.

    >>> [(t.name, t.url, t.endpoint, t.authorization) for t in targets(
    ...     ["https://u:p@am.example:9093/"], ["http://[::1]:8080/hook/T000/SECRET"])]
    ... # doctest: +NORMALIZE_WHITESPACE
    [('alertmanager-1', 'https://am.example:9093/', 'https://am.example:9093', 'Basic dTpw'),
     ('webhook-1', 'http://[::1]:8080/hook/T000/SECRET', 'http://[::1]:8080', None)]
    """
    out = []
    for kind, urls in (("alertmanager", alertmanager_urls), ("webhook", webhook_urls)):
        for number, configured in enumerate(urls, start=1):
            parts = urllib.parse.urlsplit(configured)
            auth = None
            if parts.username is not None:
                pair = f"{urllib.parse.unquote(parts.username)}:" \
                       f"{urllib.parse.unquote(parts.password or '')}"
                auth = "Basic " + base64.b64encode(pair.encode()).decode()
            netloc = parts.netloc.rsplit("@", 1)[-1]
            url = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query,
                                           parts.fragment))
            # rows are keyed by the URL without its credentials: a rotated password keeps them
            out.append(Target(kind, f"{kind}-{number}", url, endpoint_of(configured), auth,
                              hashlib.sha256(url.encode()).hexdigest()[:16]))
    return out


class Rejected(Exception):
    """A permanent refusal: the target says the payload is invalid (400, 422)."""

    def __init__(self, status: int, answer: str) -> None:
        super().__init__(f"HTTP {status}: {answer}")
        self.status = status
        self.answer = answer


def post(target: Target, url: str, payload: bytes, headers: Mapping[str, str]) -> None:
    """POST ``payload`` (never following a redirect); raises :class:`Rejected` when the
    target says the payload is invalid (400, 422), ``OSError`` or
    ``http.client.HTTPException`` (or ``ValueError``) on anything worth retrying."""
    sent = {"Content-Type": "application/json", "User-Agent": "placewatch", **headers}
    if target.authorization is not None:
        sent["Authorization"] = target.authorization
    request = urllib.request.Request(url, data=payload, method="POST", headers=sent)
    try:
        with _OPENER.open(request, timeout=TIMEOUT_S) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        answer = exc.read(2000).decode("utf-8", "replace") if exc.fp else ""
        if exc.code in _PERMANENT:
            raise Rejected(exc.code, answer.strip() or str(exc.reason)) from exc
        raise


def reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return f"{type(exc).__name__}: {exc}"
