"""The alarm / recovery cycle every sequential watch shares.

A watch is *in control* or *alarmed*. In control, one or more one-sided CUSUMs (one per
direction of change watched) accumulate the log-likelihood ratio of "changed" against "as
expected"; the first to cross the threshold raises the alarm. Alarmed, a mirror CUSUM
accumulates the ratio of "back to expected" against "still changed"; when it crosses the same
threshold the alarm ends and every CUSUM starts afresh. Both tests use the family threshold set
on every batch (Lorden's bound, :func:`~detectors.cusum.threshold_for`), so a recovery is as
well supported as the alarm it ends.

>>> cycle = AlarmCycle(sides=1)
>>> cycle.threshold = 4.0
>>> [cycle.test(1.5) for _ in range(3)]          # 1.5, 3.0, 4.5: alarm on the third batch
[False, False, True]
>>> cycle.alarmed, [cycle.recover(2.5) for _ in range(2)], cycle.alarmed
(True, [False, True], False)
"""

from __future__ import annotations

from detectors.cusum import Cusum

__all__ = ["AlarmCycle"]


class AlarmCycle:
    """Alarm CUSUMs (one per watched direction) and the mirror recovery CUSUM."""

    __slots__ = ("alarmed", "recovery", "sides")

    takes = "llr"
    """It is fed log-likelihood ratios (River's detectors take the standardised contrast)."""

    def __init__(self, sides: int = 1) -> None:
        if sides < 1:
            raise ValueError(f"sides must be >= 1, got {sides!r}")
        self.sides = tuple(Cusum(threshold=1.0) for _ in range(sides))
        """One CUSUM per direction of change; :meth:`test` takes their increments in order."""
        self.recovery = Cusum(threshold=1.0)
        self.alarmed = False

    @property
    def threshold(self) -> float:
        return self.recovery.threshold

    @threshold.setter
    def threshold(self, value: float) -> None:
        for cusum in self.sides:
            cusum.threshold = value
        self.recovery.threshold = value

    @property
    def statistic(self) -> float:
        """The evidence now, against :attr:`threshold`: in control, the largest alarm CUSUM
        (the alarm fires above the threshold); alarmed, the recovery CUSUM (the alarm ends
        above it)."""
        if self.alarmed:
            return self.recovery.statistic
        return max(cusum.statistic for cusum in self.sides)

    @property
    def in_control(self) -> bool:
        """No evidence of a change: every alarm CUSUM stands at zero."""
        return all(cusum.at_zero for cusum in self.sides)

    def test(self, *llrs: float) -> bool:
        """In control: add one increment per side; True (and alarmed) when one crossed."""
        if self.alarmed:
            raise RuntimeError("test() while alarmed: call recover()")
        for cusum, llr in zip(self.sides, llrs, strict=True):
            cusum.update(llr)
        if not any(cusum.drift_detected for cusum in self.sides):
            return False
        self.alarmed = True
        return True

    def start_alarm(self) -> None:
        """Begin the alarmed phase: every CUSUM starts afresh."""
        for cusum in self.sides:
            cusum.reset()
        self.recovery.reset()

    def recover(self, llr: float) -> bool:
        """Alarmed: add one increment of "back to expected"; True when the alarm ends."""
        if not self.alarmed:
            raise RuntimeError("recover() while in control: call test()")
        if not self.recovery.update(llr).drift_detected:
            return False
        self.alarmed = False
        for cusum in self.sides:
            cusum.reset()
        self.recovery.reset()
        return True
