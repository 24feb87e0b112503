"""Queue-wait drift: one group's queued jobs waiting longer *against the rest of their class*.

Real traces are bursty: a whole priority band's waits can swing from seconds to minutes for an
hour and back. That is load, not inequity. One group's jobs waiting longer than the other
groups' comparable jobs *at the same time* is. Method, for a reviewer:

1. **Ranks within class and batch.** Every placed job that waited (queue wait > 0) is scored
   against the jobs of the *other* groups of the same attribute in its *class* (the same
   priority, placed on the same tier) placed in the same batch (the events between two
   evaluations): its score is the share of them that waited less, ties counting half (a
   Mann-Whitney score). A burst that hits the whole class moves every job's wait together and
   leaves the scores alone; ranks are blind to how heavy the tail is. The tier is part of the
   class because a job that waited and then went to on-demand was usually escalated at its
   deadline, after a long wait, while one dispatched to cheap capacity waited for it to free:
   mixing the two made a team's standing swing with its budget (over budget, its escalations
   are rejected instead of placed), which measured as false alarms on the fair simulator.
   Jobs placed without waiting carry nothing about how long queued jobs wait; whether a
   group's jobs queue at all is its ``queue_rate`` (equity drift).
2. **Reference.** A group's first ``warmup`` scored waits (over at least ``min_batches``
   batches) give its standing: its mean score, ``μ0`` (0.5 when it waits like the rest).
   Every later batch confirmed in control (the CUSUM back at zero) refines it.
3. **Variance and dependence.** A batch's summed deviation from ``μ0`` has, for independent
   exchangeable waits, the Mann-Whitney variance with its tie correction (mostly-equal waits
   carry less information and the variance says so). Waits of one group move together (a
   queue drains in a burst), so that variance is widened by the dispersion ``φ`` learned from
   batches confirmed in control (:class:`~detectors.dispersion.Dispersion`, shared with the
   other watches). Batches are pooled until they hold ``MIN_BATCH_WAITS`` scored waits.
4. **Sequential test.** A one-sided CUSUM adds each batch's Gaussian log-likelihood ratio of
   "mean score ``μ0 + shift``" against "``μ0``" (``shift`` 0.15: a job of the group now waits
   longer than a job of the rest 65% of the time instead of 50%; a ×1.5 wait is 0.11 at a
   log-wait spread of 1, 0.22 at 0.5). Its threshold is the family threshold every watch
   shares, so the false-alarm budget covers these watches too.
5. **Recovery.** After an alarm a mirror CUSUM tests the return from the shift estimated at
   detection to ``μ0``; when it signals the alert closes and the watch starts again.

For the alert's words the watch keeps the group's recent waits per class from before the
change and since, and each class keeps its latest waits of every group; the figures are
quantiles of those (``p50``/``p90``), for the class where the group's deviation was largest.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass
from typing import Final

from detectors.alarm import AlarmCycle
from detectors.cusum import gaussian_llr
from detectors.dispersion import Dispersion
from detectors.groups import OVERFLOW_GROUP

__all__ = ["MIN_BATCH_WAITS", "WaitDrift", "WaitSignal", "WaitWatch", "wait_scores"]

MIN_BATCH_WAITS: Final = 5
"""Scored waits a (pooled) batch holds at least before it is tested."""
MAX_CLASSES: Final = 32
"""Job classes (priority, tier) tracked per attribute (further classes are counted as untracked)."""
_RING: Final = 128
"""Recent waits kept per group and class (before the change, and since), for the words."""
_HELD_MAX: Final = 200
_CLASS_RING: Final = 1024
"""Recent waits kept per class (every group's), for the rest's figures."""


@dataclass(frozen=True, slots=True)
class WaitSignal:
    """``kind`` ``wait_drift`` (or ``recovered``) for one group; waits in seconds.

    ``before`` and ``since`` are the group's (p50, p90) in ``job_class`` before the change and
    since it, ``rest`` the other groups' in that class lately; ``score`` the group's mean
    score since the change and ``reference_score`` its standing (``μ0``)."""

    kind: str
    attribute: str
    group: str
    job_class: JobClass
    before: tuple[float, float]
    since: tuple[float, float]
    rest: tuple[float, float]
    score: float
    reference_score: float
    support: int
    threshold: float


class _Ring:
    """The latest ``size`` waits (an ``array``, compact in a snapshot), with an optional name
    each (the group, for a class's ring)."""

    __slots__ = ("data", "names", "pos", "size")

    def __init__(self, size: int, named: bool = False) -> None:
        self.data = array("d")
        self.names: list[str] | None = [] if named else None
        self.pos = 0
        self.size = size

    def extend(self, values: list[float], name: str | None = None) -> None:
        names = self.names
        for value in values:
            if len(self.data) < self.size:
                self.data.append(value)
                if names is not None:
                    names.append(name or "")
            else:
                self.data[self.pos] = value
                if names is not None:
                    names[self.pos] = name or ""
                self.pos = (self.pos + 1) % self.size

    def quantiles(self, without: str | None = None) -> tuple[float, float]:
        """p50 and p90 (of the waits not named ``without``); NaN when there are none."""
        values = list(self.data)
        if without is not None and self.names is not None:
            values = [v for v, name in zip(values, self.names, strict=True) if name != without]
        if not values:
            return (math.nan, math.nan)
        values.sort()
        return (_quantile(values, 0.5), _quantile(values, 0.9))


def _quantile(ordered: list[float], q: float) -> float:
    """The ``q`` quantile of sorted values, interpolated between neighbours (as numpy's
    default)."""
    at = (len(ordered) - 1) * q
    low = int(at)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (at - low)


class WaitWatch:
    """The sequential watch over one group's queue waits (state only; see :class:`WaitDrift`)."""

    __slots__ = ("before", "cycle", "dispersion", "held", "held_scores", "pending", "ref_n",
                 "ref_sum", "reference", "run", "run_n", "run_sum", "shift", "since", "warm")

    def __init__(self) -> None:
        self.reference: float | None = None
        """``μ0``: the group's mean score over its warm-up and every batch since confirmed in
        control (None: still warming up)."""
        self.ref_sum = 0.0
        self.ref_n = 0.0
        self.held_scores: list[tuple[float, float]] = []
        """Tested batches (summed score, scored waits) while the CUSUM is above zero: folded
        into ``μ0`` once it is back at zero, dropped if it alarms."""
        self.warm: list[tuple[float, float, float]] = []
        """Warm-up batches: (summed score, scored waits, null variance)."""
        self.pending = [0.0, 0.0, 0.0]  # summed scores, scored waits, null variance
        self.held: dict[JobClass, list[float]] = {}
        """The pending batch's waits per class, filed once it is tested."""
        self.dispersion = Dispersion()
        self.cycle = AlarmCycle(sides=1)
        self.shift = 0.0
        """The shift estimated at the alarm (the recovery test's alternative)."""
        self.run_n = 0.0
        self.run_sum = 0.0
        self.run: dict[JobClass, float] = {}
        """Summed deviation per class since the CUSUM last stood at zero."""
        self.before: dict[JobClass, _Ring] = {}
        """Recent waits per class while in control: the reference for the words."""
        self.since: dict[JobClass, _Ring] = {}
        """Waits per class since the CUSUM left zero (and through an alarm)."""

    @property
    def phi(self) -> float:
        return self.dispersion.value


JobClass = tuple[int, str]
"""What a job is compared within: its priority and the tier it was placed on."""
_Scored = tuple[float, float, float, list[float]]
"""One group's waits in one class and batch: summed score, count, null variance, the waits."""


def _tied_ranks(values: list[float]) -> tuple[list[int], list[int], int]:
    """For each value: how many are strictly less, how many are equal (itself included); and
    ``Σ(t³ − t)`` over the groups of ``t`` tied values."""
    order = sorted(range(len(values)), key=values.__getitem__)
    less = [0] * len(values)
    equal = [0] * len(values)
    ties = 0
    i = 0
    while i < len(order):
        j = i
        value = values[order[i]]
        while j < len(order) and values[order[j]] == value:
            j += 1
        for k in order[i:j]:
            less[k] = i
            equal[k] = j - i
        ties += (j - i) ** 3 - (j - i)
        i = j
    return less, equal, ties


def wait_scores(waits: list[float], groups: list[str]) -> tuple[list[float], float]:
    """Each wait's score against the waits of the *other* groups (the share below it, ties
    counting half; NaN when there are none), and the pooled tie correction
    ``Σ(t³ − t) / (N(N − 1))``.

    >>> scores, ties = wait_scores([1.0, 2.0, 3.0, 2.0], ["a", "a", "b", "b"])
    >>> scores, round(ties, 3)
    ([0.0, 0.25, 1.0, 0.75], 0.5)
    """
    n = len(waits)
    less_all, equal_all, ties = _tied_ranks(waits)
    members: dict[str, list[int]] = {}
    for i, group in enumerate(groups):
        members.setdefault(group, []).append(i)
    scores = [math.nan] * n
    for idx in members.values():
        rest = n - len(idx)
        if rest == 0:
            continue
        less_own, equal_own, _ = _tied_ranks([waits[i] for i in idx])
        for k, i in enumerate(idx):
            scores[i] = ((less_all[i] - less_own[k]) + 0.5 * (equal_all[i] - equal_own[k])) / rest
    return scores, ties / (n * (n - 1)) if n > 1 else 0.0


class WaitDrift:
    """Per (attribute, job class): the batch's waits; per (attribute, group): a watch."""

    def __init__(self, warmup: int, min_batches: int, shift: float) -> None:
        if warmup < MIN_BATCH_WAITS:
            raise ValueError(f"warmup must be >= {MIN_BATCH_WAITS}, got {warmup}")
        if min_batches < 2:
            raise ValueError(f"min_batches must be >= 2, got {min_batches}")
        if not 0 < shift < 0.5:
            raise ValueError(f"shift must be in (0, 0.5), got {shift!r}")
        self.warmup = warmup
        self.min_batches = min_batches
        self.shift = shift
        self.batch: dict[tuple[str, JobClass], tuple[list[str], list[float]]] = {}
        self.classes: dict[str, set[JobClass]] = {}
        self.recent: dict[tuple[str, JobClass], _Ring] = {}
        """Every group's latest waits per (attribute, class): the rest's figures."""
        self.watches: dict[tuple[str, str], WaitWatch] = {}
        self.untracked = 0
        """Waits of a class beyond :data:`MAX_CLASSES` of their attribute (not scored)."""

    def add(self, attribute: str, group: str, job_class: JobClass, wait: float) -> None:
        """One placed job that waited ``wait`` > 0 seconds (the group from the bounded ledger)."""
        cell = self.batch.get((attribute, job_class))
        if cell is None:
            classes = self.classes.setdefault(attribute, set())
            if job_class not in classes and len(classes) >= MAX_CLASSES:
                self.untracked += 1
                return
            classes.add(job_class)
            cell = self.batch[(attribute, job_class)] = ([], [])
        cell[0].append(group)
        cell[1].append(wait)

    def refresh(self, threshold: float) -> list[WaitSignal]:
        """Close the batch: score every class's waits, test every watch that has enough."""
        touched: dict[tuple[str, str], dict[JobClass, _Scored]] = {}
        for (attribute, job_class), (groups, waits) in self.batch.items():
            if groups:
                self._score(attribute, job_class, groups, waits, touched)
                groups.clear()
                waits.clear()
        signals = []
        for (attribute, group), per_class in touched.items():
            watch = self.watches.get((attribute, group))
            if watch is None:
                watch = self.watches[(attribute, group)] = WaitWatch()
            signal = self._step(attribute, group, watch, per_class, threshold)
            if signal is not None:
                signals.append(signal)
        return signals

    def _score(self, attribute: str, job_class: JobClass, groups: list[str], waits: list[float],
               touched: dict[tuple[str, str], dict[JobClass, _Scored]]) -> None:
        ring = self.recent.get((attribute, job_class))
        if ring is None:
            ring = self.recent[(attribute, job_class)] = _Ring(_CLASS_RING, named=True)
        for name, wait in zip(groups, waits, strict=True):
            ring.extend([wait], name)
        members: dict[str, list[int]] = {}
        for i, name in enumerate(groups):
            members.setdefault(name, []).append(i)
        if len(members) < 2:
            return  # no other group to rank against
        scores, ties = wait_scores(waits, groups)
        n_all = len(waits)
        for name, idx in members.items():
            if name == OVERFLOW_GROUP:
                continue
            n = len(idx)
            # Mann-Whitney: Var(U) = n m (N + 1 - ties) / 12, and the summed score is U / m
            variance = n * (n_all + 1 - ties) / (12.0 * (n_all - n))
            if variance <= 1e-12:
                continue  # every wait equal: nothing to rank
            touched.setdefault((attribute, name), {})[job_class] = (
                math.fsum(scores[i] for i in idx), float(n), variance, [waits[i] for i in idx])

    def _step(self, attribute: str, group: str, watch: WaitWatch,
              per_class: dict[JobClass, _Scored], threshold: float) -> WaitSignal | None:
        cycle = watch.cycle
        pending = watch.pending
        for job_class, (score, n, variance, waits) in per_class.items():
            pending[0] += score
            pending[1] += n
            pending[2] += variance
            watch.held.setdefault(job_class, []).extend(waits)
            if watch.reference is not None and not cycle.alarmed:
                watch.run[job_class] = watch.run.get(job_class, 0.0) + score - n * watch.reference
        score, n, variance = pending
        if n < MIN_BATCH_WAITS:
            return None
        watch.pending = [0.0, 0.0, 0.0]
        if watch.reference is None:
            self._keep(watch, watch.before)
            self._warm_up(watch, score, n, variance)
            return None
        mu0 = watch.reference
        cycle.threshold = threshold
        mean = score / n
        unit = watch.phi * variance / (n * n)  # variance of the batch's mean score
        if cycle.alarmed:
            self._keep(watch, watch.since)
            if not cycle.recover(gaussian_llr(mean, mu0 + watch.shift, mu0, unit)):
                return None
            signal = self._signal("recovered", attribute, group, watch, mean, int(n),
                                  threshold)
            watch.since.clear()
            watch.run.clear()
            return signal
        shift = min(self.shift, (1.0 - mu0) / 2)
        alarm = cycle.test(gaussian_llr(mean, mu0, mu0 + shift, unit))
        watch.dispersion.observe(score - n * mu0, variance, cycle.in_control)
        watch.held_scores.append((score, n))
        if cycle.in_control:
            for s, k in watch.held_scores:
                watch.ref_sum += s
                watch.ref_n += k
            watch.held_scores.clear()
            watch.reference = watch.ref_sum / watch.ref_n
            self._keep(watch, watch.before)
            watch.run_n = watch.run_sum = 0.0
            watch.run.clear()
            for job_class, ring in watch.since.items():  # a false start: back to the reference
                watch.before.setdefault(job_class, _Ring(_RING)).extend(ring.data.tolist())
            watch.since.clear()
            return None
        self._keep(watch, watch.since)
        if len(watch.held_scores) > _HELD_MAX:
            del watch.held_scores[0]
        watch.run_n += n
        watch.run_sum += score
        if not alarm:
            return None
        since = watch.run_sum / watch.run_n
        watch.shift = max(since - mu0, shift / 2)
        watch.dispersion.drop_held()  # those batches were part of the change
        watch.held_scores.clear()
        cycle.start_alarm()
        signal = self._signal("wait_drift", attribute, group, watch, since,
                              int(watch.run_n), threshold)
        watch.run_n = watch.run_sum = 0.0
        return signal

    @staticmethod
    def _keep(watch: WaitWatch, rings: dict[JobClass, _Ring]) -> None:
        """File the tested batch's waits with the reference (``before``) or the change."""
        for job_class, waits in watch.held.items():
            rings.setdefault(job_class, _Ring(_RING)).extend(waits)
        watch.held.clear()

    def _warm_up(self, watch: WaitWatch, score: float, n: float, variance: float) -> None:
        """A warm-up batch; with enough of them, ``μ0`` and the first dispersion."""
        watch.warm.append((score, n, variance))
        total = sum(b[1] for b in watch.warm)
        if total < self.warmup or len(watch.warm) < self.min_batches:
            return
        mu0 = sum(b[0] for b in watch.warm) / total
        for s, k, v in watch.warm:
            watch.dispersion.learn(s - k * mu0, v)
        watch.reference = mu0
        watch.ref_sum = mu0 * total
        watch.ref_n = total
        watch.warm.clear()

    def _signal(self, kind: str, attribute: str, group: str, watch: WaitWatch, score: float,
                support: int, threshold: float) -> WaitSignal:
        """The figures of the class where the group's deviation was largest."""
        run = watch.run or {p: 0.0 for p in watch.since}
        job_class = max(sorted(run), key=lambda c: run[c]) if run else min(watch.before)
        before = watch.before.get(job_class)
        since = watch.since.get(job_class)
        nan = (math.nan, math.nan)
        return WaitSignal(kind, attribute, group, job_class,
                          before.quantiles() if before else nan,
                          since.quantiles() if since else nan,
                          self.recent[(attribute, job_class)].quantiles(without=group),
                          score, watch.reference if watch.reference is not None else 0.5,
                          support, threshold)
