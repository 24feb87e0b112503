"""Structured logging: human-readable text, or one JSON object per line (``--log-format json``)."""

from __future__ import annotations

import datetime as dt
import logging
import sys
from typing import Any

import orjson

__all__ = ["configure_logging", "log_event"]

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def _timestamp(record: logging.LogRecord) -> str:
    """UTC, to the millisecond: ``2026-12-01T03:04:05.678Z``."""
    return dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg", ...extra fields}``."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


class TextFormatter(logging.Formatter):
    """``TIME LEVEL message key=value ...``, readable at 3 a.m."""

    def format(self, record: logging.LogRecord) -> str:
        extra = " ".join(f"{k}={v}" for k, v in vars(record).items()
                         if k not in _STANDARD and not k.startswith("_"))
        text = f"{_timestamp(record)} {record.levelname:<7} {record.getMessage()}"
        return f"{text}  {extra}" if extra else text


class _CurrentStderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is now, so a live status display can redirect it."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def configure_logging(fmt: str, level: str, quiet: bool) -> None:
    """Log to stderr; ``quiet`` keeps warnings and errors only."""
    handler = _CurrentStderr()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger("placewatch")
    root.handlers[:] = [handler]
    root.setLevel("WARNING" if quiet else level)
    root.propagate = False


def log_event(logger: logging.Logger, level: int, msg: str, **fields: Any) -> None:
    """Log with structured fields (become JSON keys, or ``key=value`` in text)."""
    logger.log(level, msg, extra=fields)
