"""Which decisions get a deep audit.

The choice is a keyed hash of ``decision_id`` (BLAKE2b with the configured key): the same
decision is always picked or always skipped, on every replay and every worker, and an auditor
who holds the key can recompute the sample and check that it is complete. Stratified additions
(overrides always, by default) are recorded as separate reasons.

>>> sampler = AuditSampler(rate=0.5, key="k", always_overrides=True)
>>> sampler.reasons("d-1", overridden=False) == sampler.reasons("d-1", overridden=False)
True
>>> sampler.reasons("d-never", overridden=True)[-1]
'override'
>>> picked = sum(bool(AuditSampler(0.02, "k", False).reasons(f"d-{i}", False))
...              for i in range(100_000))
>>> 1870 < picked < 2130     # within 3 sd of 2,000
True
"""

from __future__ import annotations

import hashlib

__all__ = ["AuditSampler"]

_SCALE = float(1 << 64)


class AuditSampler:
    """Deterministic one-in-N sampler with stratified additions."""

    __slots__ = ("_always_overrides", "_key", "_threshold")

    def __init__(self, rate: float, key: str, always_overrides: bool) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate must be in [0, 1], got {rate!r}")
        if not key:
            raise ValueError("key must be a non-empty string")
        self._threshold = rate
        self._key = hashlib.blake2b(key.encode("utf-8"), digest_size=32).digest()
        self._always_overrides = always_overrides

    def draw(self, decision_id: str) -> float:
        """The decision's uniform draw in [0, 1); it is sampled when below the rate."""
        digest = hashlib.blake2b(decision_id.encode("utf-8"), key=self._key, digest_size=8)
        return int.from_bytes(digest.digest(), "big") / _SCALE

    def reasons(self, decision_id: str, overridden: bool) -> tuple[str, ...]:
        """Why the decision is audited (empty when it is not)."""
        sampled = self.draw(decision_id) < self._threshold
        if overridden and self._always_overrides:
            return ("rate", "override") if sampled else ("override",)
        return ("rate",) if sampled else ()
