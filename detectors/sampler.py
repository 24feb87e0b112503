"""Which decisions get a deep audit.

The choice is a keyed hash of ``decision_id`` (BLAKE2b with the configured key): the same
decision is always picked or always skipped, on every replay and every worker, and an auditor
who holds the key can recompute the sample and check that it is complete. Stratified additions
are recorded as separate reasons: ``override`` (overridden decisions, by default),
``cost`` (forecast cost at or above a threshold) and ``open_alert`` (a group of the decision has
an alert open, and the same draw is below the higher ``alert_rate``). A second, independent
draw from the same hash picks the placements the shadow model learns from
(:meth:`AuditSampler.draws`).

>>> sampler = AuditSampler(rate=0.5, key="k", always_overrides=True)
>>> sampler.reasons("d-1", overridden=False) == sampler.reasons("d-1", overridden=False)
True
>>> sampler.reasons("d-never", overridden=True, costly=True)[-2:]
('override', 'cost')
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

    __slots__ = ("_alert_rate", "_always_overrides", "_hasher", "_key", "_threshold", "_train")

    def __init__(self, rate: float, key: str, always_overrides: bool,
                 train_rate: float = 0.0, alert_rate: float = 0.0) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate must be in [0, 1], got {rate!r}")
        if not key:
            raise ValueError("key must be a non-empty string")
        self._threshold = rate
        self._key = hashlib.blake2b(key.encode("utf-8"), digest_size=32).digest()
        self._hasher = hashlib.blake2b(key=self._key, digest_size=16)
        """Keyed once; each decision hashes a copy (cheaper than keying again)."""
        self._always_overrides = always_overrides
        if not 0.0 <= train_rate <= 1.0:
            raise ValueError(f"train_rate must be in [0, 1], got {train_rate!r}")
        self._train = train_rate
        if not 0.0 <= alert_rate <= 1.0:
            raise ValueError(f"alert_rate must be in [0, 1], got {alert_rate!r}")
        self._alert_rate = alert_rate

    def __getstate__(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.__slots__ if name != "_hasher"}

    def __setstate__(self, state: dict[str, object]) -> None:
        for name, value in state.items():
            setattr(self, name, value)
        self._hasher = hashlib.blake2b(key=self._key, digest_size=16)

    def _digest(self, decision_id: str) -> bytes:
        hasher = self._hasher.copy()
        hasher.update(decision_id.encode("utf-8"))
        return hasher.digest()

    def draw(self, decision_id: str) -> float:
        """The decision's uniform draw in [0, 1); it is sampled when below the rate."""
        return int.from_bytes(self._digest(decision_id)[:8], "big") / _SCALE

    def draws(self, decision_id: str) -> tuple[float, bool]:
        """The audit draw and whether the shadow model learns from it, from one hash.

        With every rate at zero no hash is computed (the draw is then 1.0: never sampled).
        """
        if not (self._threshold or self._train or self._alert_rate):
            return 1.0, False
        digest = self._digest(decision_id)
        return (int.from_bytes(digest[:8], "big") / _SCALE,
                int.from_bytes(digest[8:], "big") / _SCALE < self._train)

    def reasons(self, decision_id: str, overridden: bool, costly: bool = False,
                alerted: bool = False) -> tuple[str, ...]:
        """Why the decision is audited (empty when it is not)."""
        return self.reasons_for(self.draw(decision_id), overridden, costly, alerted)

    def reasons_for(self, draw: float, overridden: bool, costly: bool = False,
                    alerted: bool = False) -> tuple[str, ...]:
        """:meth:`reasons` for a draw already made."""
        out = ["rate"] if draw < self._threshold else []
        if overridden and self._always_overrides:
            out.append("override")
        if costly:
            out.append("cost")
        if alerted and draw < self._alert_rate:
            out.append("open_alert")
        return tuple(out)
