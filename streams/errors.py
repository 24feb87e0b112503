"""The shell's error hierarchy. The CLI prints these as one clear line and exits non-zero."""

from __future__ import annotations

__all__ = ["AuditStoreError", "ConfigError", "InputError", "PlacewatchError"]


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
