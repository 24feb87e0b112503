"""River's drift detectors in place of placewatch's CUSUM, on the same standardised contrast.

With ``drift_detector = "adwin"`` or ``"page_hinkley"`` each equity-drift watch feeds River's
detector, instead of its CUSUM, one value per batch: the batch's deviation from the rate its
reference ratio expects given the other groups, divided by its standard deviation under the
learned overdispersion ``φ``, and signed so that a change against the group is positive. The
contrast, the reference, ``φ`` and the amplification test are the same as with the CUSUM; only
the sequential test differs. River's thresholds are its own, so the false-alarm budget
(``false_alarms_per_million``) does not apply to it: ``placewatch bench detection`` measures
what it gives.

- **ADWIN** (either direction): an alarm when it drops its older window and the mean of the
  window it keeps is adverse (> 0); the alarm ends when a fresh ADWIN, started at the alarm,
  drops its older window again and the mean it keeps is below half the alarm's level.
- **Page-Hinkley**: ``mode="up"`` raises the alarm; a fresh ``mode="down"`` one, started at the
  alarm, ends it.

River is imported only when such a watch is made, so the default event path never loads it.

>>> cycle = RiverCycle("page_hinkley")
>>> any(cycle.test(0.0) for _ in range(100))            # in control
False
>>> next(i for i in range(100) if cycle.test(4.0))      # batches of a shift until the alarm
13
>>> cycle.start_alarm()
>>> any(cycle.recover(4.0) for _ in range(50))          # the shift holds
False
>>> next(i for i in range(100) if cycle.recover(0.0)) > 0, cycle.alarmed   # and reverts
(True, False)
"""

from __future__ import annotations

from typing import Any, Final

__all__ = ["RIVER_DETECTORS", "RiverCycle"]

RIVER_DETECTORS: Final = ("adwin", "page_hinkley")


def _detector(kind: str, up: bool) -> Any:
    from river import drift  # deferred: only a configured River watch needs River

    if kind == "adwin":
        # one value per batch: test every update (its default, clock=32, is for event streams)
        return drift.ADWIN(clock=1)  # type: ignore[no-untyped-call]
    return drift.PageHinkley(mode="up" if up else "down")


class RiverCycle:
    """The alarm / recovery cycle of :class:`~detectors.alarm.AlarmCycle`, run by River."""

    __slots__ = ("_alarm", "_back", "alarmed", "kind", "level")

    takes = "z"
    """It is fed the standardised contrast (the CUSUM takes log-likelihood ratios)."""

    def __init__(self, kind: str) -> None:
        if kind not in RIVER_DETECTORS:
            raise ValueError(f"kind must be one of {', '.join(RIVER_DETECTORS)}, got {kind!r}")
        self.kind = kind
        self._alarm = _detector(kind, up=True)
        self._back: Any = None
        self.alarmed = False
        self.level = 0.0
        """ADWIN's mean of the adverse window when the alarm was raised."""

    @property
    def threshold(self) -> float:
        """River's detectors carry their own thresholds; the family threshold is ignored."""
        return float("nan")

    @threshold.setter
    def threshold(self, value: float) -> None:
        return None

    @property
    def in_control(self) -> bool:
        return not self.alarmed

    def test(self, z: float) -> bool:
        """In control: one batch's adverse standardised deviation; True when it raises the
        alarm."""
        if self.alarmed:
            raise RuntimeError("test() while alarmed: call recover()")
        self._alarm.update(z)
        if not self._alarm.drift_detected:
            return False
        if self.kind == "adwin":
            if self._alarm.estimation <= 0.0:  # a change in the group's favour
                return False
            self.level = float(self._alarm.estimation)
        self.alarmed = True
        return True

    def start_alarm(self) -> None:
        """Begin the alarmed phase: a fresh detector watches for the way back."""
        self._back = _detector(self.kind, up=False)

    def recover(self, z: float) -> bool:
        """Alarmed: one batch's value; True when the alarm ends."""
        if not self.alarmed:
            raise RuntimeError("recover() while in control: call test()")
        if self._back is None:
            self.start_alarm()
        self._back.update(z)
        if not self._back.drift_detected:
            return False
        if self.kind == "adwin" and self._back.estimation > self.level / 2:
            return False
        self.alarmed = False
        self._alarm = _detector(self.kind, up=True)
        self._back = None
        return True
