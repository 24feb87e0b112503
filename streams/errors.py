"""The shell's error hierarchy. The CLI prints these as one clear line and exits non-zero."""

from __future__ import annotations

import errno
import os
import sqlite3

__all__ = ["AuditStoreError", "ConfigError", "InputError", "OutputError", "PlacewatchError",
           "cause", "sqlite_write_failure"]


def cause(exc: BaseException) -> str:
    """An I/O failure's cause in words and by name, for an error line.

    >>> cause(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    'No space left on device (ENOSPC)'
    """
    if isinstance(exc, OSError) and exc.errno is not None:
        name = errno.errorcode.get(exc.errno, f"errno {exc.errno}")
        return f"{exc.strerror or os.strerror(exc.errno)} ({name})"
    if isinstance(exc, sqlite3.Error):
        code: str | None = getattr(exc, "sqlite_errorname", None)
        text = str(exc)
        if code == "SQLITE_FULL":
            return f"{text}: no space left on device ({code}, ENOSPC)"
        return f"{text} ({code})" if code else text
    return str(exc) or type(exc).__name__


def sqlite_write_failure(exc: BaseException, path: os.PathLike[str] | str) -> str:
    """Why SQLite could not write ``path`` (disk full, an I/O error, a read-only file or
    directory), as :func:`cause` gives it and naming a full filesystem, which SQLite's
    ``disk I/O error`` does not; ``""`` for any other error (a damaged store, a bug)."""
    code = str(getattr(exc, "sqlite_errorname", ""))
    if code in ("SQLITE_IOERR_READ", "SQLITE_IOERR_SHORT_READ") or not code.startswith(
            ("SQLITE_FULL", "SQLITE_IOERR", "SQLITE_READONLY", "SQLITE_CANTOPEN")):
        return ""  # reading failed (bad media), or not an I/O failure at all
    text = cause(exc)
    if code.startswith("SQLITE_IOERR"):  # SQLite's words do not say the disk is full
        try:
            stat = os.statvfs(os.path.dirname(os.path.abspath(path)))
        except OSError:
            return text
        # every block taken, the reserved ones too, on a filesystem that can be written
        if not stat.f_flag & os.ST_RDONLY and stat.f_bfree * stat.f_frsize < 64 * 1024:
            text += "; its filesystem has no space left (ENOSPC)"
    return text


class PlacewatchError(Exception):
    """Base of every error placewatch reports to a user."""

    exit_code = 1


class ConfigError(PlacewatchError):
    """A configuration value is missing, malformed or out of range (names the key)."""

    exit_code = 2


class InputError(PlacewatchError):
    """An input file cannot be read (missing, unreadable, wrong format)."""

    exit_code = 3


class AuditStoreError(PlacewatchError):
    """The audit store cannot be opened, or failed verification."""

    exit_code = 4


class OutputError(PlacewatchError):
    """An output (a file, a store, a topic) cannot be written; the message names it and the
    cause (``No space left on device (ENOSPC)``, ``Permission denied (EACCES)``, ...)."""

    exit_code = 5
