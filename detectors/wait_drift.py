"""Queue-wait drift: one group's queued jobs falling behind the other groups of their class.

Real traces are bursty: a whole priority band's waits can swing from seconds to minutes for an
hour and back. That is load, not inequity. One group's jobs waiting longer than the other
groups' comparable jobs *at the same time*, where they did not before, is. Method, for a
reviewer:

1. **Scores within class and batch.** Every placed job that waited (queue wait > 0) is
   compared with the jobs of each *other* group of the same attribute in its *class* (the same
   priority, placed on the same tier) placed in the same batch (the events between two
   evaluations): against one other group, its score is the share of that group's jobs that
   waited less, ties counting half (a Mann-Whitney score); its score is the mean over the
   other groups present, each weighted alike, so that one group sending more jobs does not
   move everyone else's scores. A burst that hits the whole class moves every wait together
   and leaves the scores alone; ranks are blind to how heavy the tail is. The tier is part of
   the class because a job that waited and then went to on-demand was usually escalated at
   its deadline, after a long wait, while one dispatched to cheap capacity waited for it to
   free: mixing the two made a team's standing swing with its budget (over budget, its
   escalations are rejected instead of placed). Jobs placed without waiting carry nothing
   about how long queued jobs wait; whether a group's jobs queue at all is its
   ``queue_rate`` (equity drift).
2. **Reference.** After a warm-up of ``warmup`` scored waits over at least ``min_batches``
   batches, the group's standing in each class, ``μ0(class)``, is its mean score there, shrunk
   towards its mean over all classes by ``_PRIOR`` pseudo-waits (0.5 when it waits like the
   rest). Every batch later confirmed in control (the CUSUM back at zero) refines it. The
   standing is per class, so a group moving work between classes where it stands differently
   is not a change.
3. **Variance and dependence.** A batch's summed score has, for exchangeable waits, a known
   variance (the Mann-Whitney variances of the comparisons and their covariances through the
   shared jobs, with the pooled tie correction; mostly-equal waits carry less information and
   the variance says so). Waits of one group move together (a queue drains in a burst), so
   that variance is widened by the dispersion ``φ`` learned from batches confirmed in control
   (:class:`~detectors.dispersion.Dispersion`, shared with the other watches); the test waits
   until ``φ`` has its minimum of batches. Batches are pooled until they hold
   ``MIN_BATCH_WAITS`` scored waits.
4. **Sequential test.** A one-sided CUSUM adds each batch's Gaussian log-likelihood ratio of
   "mean score ``μ0 + shift``" against "``μ0``" (``shift`` 0.15: a job of the group now waits
   longer than one of another group 65% of the time instead of 50%; a ×1.5 wait is 0.11 at
   a log-wait spread of 1, 0.22 at 0.5). A standing already near the top keeps its
   alternative below certainty: the shift is at most half the distance from ``μ0`` to 1. Its
   threshold is the family threshold every watch shares, so the false-alarm budget covers
   these watches too.
5. **Recovery.** After an alarm a mirror CUSUM tests the return from the shift estimated at
   detection to ``μ0``; when it signals the alert closes and the watch starts again.

For the alert's words the watch keeps, in each class, the group's recent waits while in
control (``before``) and, since the CUSUM last left zero, its waits and the other groups'
waits of the same batches (``since``, ``rest``); the figures are their p50/p90, in the class
where the group's deviation was largest among those it has a ``before`` in. Classes are the
first ``MAX_CLASSES`` (priority, tier) pairs an attribute's waits bring; later ones are
counted as untracked.
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

__all__ = ["MAX_CLASSES", "MIN_BATCH_WAITS", "JobClass", "WaitDrift", "WaitSignal",
           "WaitWatch", "group_scores"]

MIN_BATCH_WAITS: Final = 5
"""Scored waits a (pooled) batch holds at least before it is tested."""
MAX_CLASSES: Final = 32
"""Job classes (priority, tier) tracked per attribute (further classes are counted as
untracked)."""
_PRIOR: Final = 20.0
"""Pseudo-waits a class's standing is shrunk with towards the group's overall standing."""
_RING: Final = 128
"""Recent waits of the group kept per class (before the change, and since), for the words."""
_REST_RING: Final = 1024
"""The other groups' waits of the same batches kept per class since the change."""
_HELD_MAX: Final = 200

JobClass = tuple[int, str]
"""What a job is compared within: its priority and the tier it was placed on."""


@dataclass(frozen=True, slots=True)
class WaitSignal:
    """``kind`` ``wait_drift`` (or ``recovered``) for one group; waits in seconds.

    ``before`` is the group's (p50, p90) in ``job_class`` while in control; ``since`` its own
    and ``rest`` the other groups' over the same batches since the estimated change (for a
    recovery: since the alarm); ``score`` its mean score over those batches (for a recovery:
    the latest batch) and ``reference_score`` its standing."""

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
    """The latest ``size`` waits (an ``array``, compact in a snapshot)."""

    __slots__ = ("data", "pos", "size")

    def __init__(self, size: int) -> None:
        self.data = array("d")
        self.pos = 0
        self.size = size

    def extend(self, values: list[float]) -> None:
        for value in values:
            if len(self.data) < self.size:
                self.data.append(value)
            else:
                self.data[self.pos] = value
                self.pos = (self.pos + 1) % self.size

    def quantiles(self) -> tuple[float, float]:
        """p50 and p90; NaN when empty."""
        values = sorted(self.data)
        if not values:
            return (math.nan, math.nan)
        return (_quantile(values, 0.5), _quantile(values, 0.9))


def _quantile(ordered: list[float], q: float) -> float:
    """The ``q`` quantile of sorted values, interpolated between neighbours (as numpy's
    default)."""
    at = (len(ordered) - 1) * q
    low = int(at)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (at - low)


def _rings(rings: dict[JobClass, _Ring], job_class: JobClass, size: int = _RING) -> _Ring:
    ring = rings.get(job_class)
    if ring is None:
        ring = rings[job_class] = _Ring(size)
    return ring


class WaitWatch:
    """The sequential watch over one group's queue waits (state only; see :class:`WaitDrift`)."""

    __slots__ = ("alarm_class", "before", "cycle", "dispersion", "held", "pending", "ref",
                 "rest", "run", "shift", "since", "tested", "warm")

    def __init__(self) -> None:
        self.ref: dict[JobClass, list[float]] | None = None
        """Per class, summed score and scored waits of the reference (None: warming up)."""
        self.warm: list[tuple[dict[JobClass, tuple[float, float]], float]] = []
        """Warm-up batches: per class (summed score, scored waits), and the null variance."""
        self.pending: dict[JobClass, list[float]] = {}
        """The pooled batch so far, per class: summed score, scored waits, null variance."""
        self.held: list[tuple[JobClass, str, dict[str, list[float]]]] = []
        """The pooled batch's waits: class, the group, and that class's waits of the batch by
        group (shared by every watch; the other groups' are picked out only when needed)."""
        self.tested: list[dict[JobClass, tuple[float, float]]] = []
        """Tested batches while the CUSUM is above zero: folded into the reference once it is
        back at zero, dropped if it alarms."""
        self.dispersion = Dispersion()
        self.cycle = AlarmCycle(sides=1)
        self.shift = 0.0
        """The shift estimated at the alarm (the recovery test's alternative)."""
        self.run: dict[JobClass, list[float]] = {}
        """Per class since the CUSUM last stood at zero: summed score, scored waits and
        summed deviation from the class's standing."""
        self.alarm_class: JobClass | None = None
        self.before: dict[JobClass, _Ring] = {}
        self.since: dict[JobClass, _Ring] = {}
        self.rest: dict[JobClass, _Ring] = {}

    @property
    def phi(self) -> float:
        return self.dispersion.value

    @property
    def reference(self) -> float | None:
        """The group's standing over all its classes (None: still warming up)."""
        if self.ref is None:
            return None
        total = sum(s for s, _ in self.ref.values())
        n = sum(k for _, k in self.ref.values())
        return total / n if n else 0.5

    def standing(self, job_class: JobClass) -> float:
        """``μ0`` of one class, shrunk towards the overall standing."""
        assert self.ref is not None
        overall = self.reference
        assert overall is not None
        s, k = self.ref.get(job_class, (0.0, 0.0))
        return (s + _PRIOR * overall) / (k + _PRIOR)


def group_scores(waits: dict[str, list[float]]) -> dict[str, tuple[float, float]]:
    """Per group of one class and batch: its summed score against the other groups, each
    weighted alike whatever its number of waits, and that sum's variance if every wait were
    exchangeable.

    With ``n`` waits of its own and ``m_h`` of each of the ``H`` other groups, the summed
    score is ``(1/H) Σ_h U_h / m_h`` (``U_h`` the Mann-Whitney count against ``h``), with
    variance ``n / (12 H²) · (Σ_h (n + m_h + 1) / m_h + H² − H)`` (the comparisons share the
    group's jobs, a covariance of ``n / 12`` each) times the pooled tie correction
    ``1 − Σ(t³ − t) / (N³ − N)``.

    >>> out = group_scores({"a": [1.0, 2.0], "b": [3.0, 2.0]})
    >>> {g: round(s, 3) for g, (s, _) in out.items()}
    {'a': 0.25, 'b': 1.75}
    >>> round(out["a"][1], 3)  # 2·5/(12·2) = 0.417, ties 1 - 6/60
    0.375
    """
    groups = {g: w for g, w in waits.items() if w}
    if len(groups) < 2:
        return {}
    others = len(groups) - 1
    # one pass over the pooled waits, in order, each weighted 1 / (its group's size): the
    # weight below a wait, less its own group's share, is its summed per-group score
    weight = {g: 1.0 / len(w) for g, w in groups.items()}
    pooled = sorted((w, g) for g, ws in groups.items() for w in ws)
    n_all = len(pooled)
    below: dict[str, float] = dict.fromkeys(groups, 0.0)  # running own count below
    total = dict.fromkeys(groups, 0.0)
    ties = 0
    passed = 0.0  # weight of every wait strictly below the current value
    i = 0
    while i < n_all:
        value = pooled[i][0]
        j = i
        level = 0.0
        own_level: dict[str, int] = {}
        while j < n_all and pooled[j][0] == value:
            g = pooled[j][1]
            level += weight[g]
            own_level[g] = own_level.get(g, 0) + 1
            j += 1
        ties += (j - i) ** 3 - (j - i)
        for g, count in own_level.items():
            # per wait of g at this value: the other groups' weight below it, ties half
            own_below = below[g] * weight[g]
            own_equal = count * weight[g]
            total[g] += count * ((passed - own_below) + 0.5 * (level - own_equal))
            below[g] += count
        passed += level
        i = j
    correction = 1.0 - ties / (n_all ** 3 - n_all)
    inverse_sizes = sum(weight.values())
    out = {}
    for group, mine in groups.items():
        n = len(mine)
        # Σ over the other groups of (n + m_h + 1) / m_h
        spread = (n + 1) * (inverse_sizes - weight[group]) + others
        variance = n * (spread + others * (others - 1)) / (12.0 * others * others) * correction
        out[group] = (total[group] / others, variance)
    return out


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
        self.batch: dict[tuple[str, JobClass], dict[str, list[float]]] = {}
        self.classes: dict[str, set[JobClass]] = {}
        self.watches: dict[tuple[str, str], WaitWatch] = {}
        self.armed = 0
        """Watches whose standing is learned: the ones that can alarm."""
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
            cell = self.batch[(attribute, job_class)] = {}
        waits = cell.get(group)
        if waits is None:
            waits = cell[group] = []
        waits.append(wait)

    def refresh(self, threshold: float) -> list[WaitSignal]:
        """Close the batch: score every class's waits, test every watch that has enough."""
        touched: dict[tuple[str, str], WaitWatch] = {}
        for (attribute, job_class), cell in sorted(self.batch.items()):
            if not cell:
                continue
            self.batch[(attribute, job_class)] = {}  # the held watches keep this one
            for group, (score, variance) in group_scores(cell).items():
                if group == OVERFLOW_GROUP or variance <= 1e-12:
                    continue  # the overflow group is a reference only; equal waits tell nothing
                watch = self.watches.get((attribute, group))
                if watch is None:
                    watch = self.watches[(attribute, group)] = WaitWatch()
                mine = cell[group]
                part = watch.pending.setdefault(job_class, [0.0, 0.0, 0.0])
                part[0] += score
                part[1] += len(mine)
                part[2] += variance
                watch.held.append((job_class, group, cell))
                touched[(attribute, group)] = watch
        signals = []
        for (attribute, group), watch in sorted(touched.items()):
            signal = self._step(attribute, group, watch, threshold)
            if signal is not None:
                signals.append(signal)
        return signals

    def _step(self, attribute: str, group: str, watch: WaitWatch, threshold: float
              ) -> WaitSignal | None:
        pending = watch.pending
        n = sum(p[1] for p in pending.values())
        if n < MIN_BATCH_WAITS:
            return None
        variance = sum(p[2] for p in pending.values())
        parts = {c: (p[0], p[1]) for c, p in pending.items()}
        watch.pending = {}
        if watch.ref is None:
            self._file(watch, before=True)
            self._warm_up(watch, parts, variance)
            return None
        cycle = watch.cycle
        cycle.threshold = threshold
        score = sum(s for s, _ in parts.values())
        mu0 = sum(k * watch.standing(c) for c, (_, k) in parts.items()) / n
        deviation = score - n * mu0
        mean = score / n
        unit = watch.phi * variance / (n * n)  # variance of the batch's mean score
        if cycle.alarmed:
            self._file(watch, before=False)
            if not cycle.recover(gaussian_llr(mean, mu0 + watch.shift, mu0, unit)):
                return None
            signal = self._signal("recovered", attribute, group, watch, (mean, mu0), int(n),
                                  threshold)
            watch.since.clear()
            watch.rest.clear()
            watch.run.clear()
            watch.alarm_class = None
            return signal
        if not watch.dispersion.ready:  # still learning how bursty this group's waits are
            watch.dispersion.learn(deviation, variance)
            self._fold(watch, [parts])
            self._file(watch, before=True)
            return None
        shift = min(self.shift, (1.0 - mu0) / 2)
        alarm = cycle.test(gaussian_llr(mean, mu0, mu0 + shift, unit))
        watch.dispersion.observe(deviation, variance, cycle.in_control)
        watch.tested.append(parts)
        if cycle.in_control:
            self._fold(watch, watch.tested)
            watch.tested.clear()
            self._file(watch, before=True)
            for job_class, ring in watch.since.items():  # a false start: back to the reference
                _rings(watch.before, job_class).extend(ring.data.tolist())
            watch.since.clear()
            watch.rest.clear()
            watch.run.clear()
            return None
        self._file(watch, before=False)
        if len(watch.tested) > _HELD_MAX:
            del watch.tested[0]
        for job_class, (s, k) in parts.items():
            cell = watch.run.setdefault(job_class, [0.0, 0.0, 0.0])
            cell[0] += s
            cell[1] += k
            cell[2] += s - k * watch.standing(job_class)
        if not alarm:
            return None
        # the shift since the change, each class against its own standing
        support = sum(c[1] for c in watch.run.values())
        watch.shift = max(sum(c[2] for c in watch.run.values()) / support, shift / 2)
        watch.dispersion.drop_held()  # those batches were part of the change
        watch.tested.clear()
        cycle.start_alarm()
        signal = self._signal("wait_drift", attribute, group, watch, None, int(support),
                              threshold)
        # what follows the alarm is what a recovery is described with
        watch.since.clear()
        watch.rest.clear()
        return signal

    @staticmethod
    def _file(watch: WaitWatch, before: bool) -> None:
        """File the tested batch's waits with the reference (``before``, the group's only) or
        with the change (the group's and the other groups' of the same batches)."""
        for job_class, group, cell in watch.held:
            if before:
                _rings(watch.before, job_class).extend(cell[group])
            else:
                _rings(watch.since, job_class).extend(cell[group])
                _rings(watch.rest, job_class, _REST_RING).extend(
                    [w for other, ws in cell.items() if other != group for w in ws])
        watch.held.clear()

    @staticmethod
    def _fold(watch: WaitWatch, batches: list[dict[JobClass, tuple[float, float]]]) -> None:
        assert watch.ref is not None
        for parts in batches:
            for job_class, (s, k) in parts.items():
                cell = watch.ref.setdefault(job_class, [0.0, 0.0])
                cell[0] += s
                cell[1] += k

    def _warm_up(self, watch: WaitWatch, parts: dict[JobClass, tuple[float, float]],
                 variance: float) -> None:
        """A warm-up batch; with enough of them, the standing and the first dispersion."""
        watch.warm.append((parts, variance))
        total = sum(k for batch, _ in watch.warm for _, k in batch.values())
        if total < self.warmup or len(watch.warm) < self.min_batches:
            return
        watch.ref = {}
        self.armed += 1  # it can alarm from now on: it joins the family budget
        self._fold(watch, [batch for batch, _ in watch.warm])
        for batch, v in watch.warm:
            deviation = sum(s - k * watch.standing(c) for c, (s, k) in batch.items())
            watch.dispersion.learn(deviation, v)
        watch.warm.clear()

    @staticmethod
    def _signal(kind: str, attribute: str, group: str, watch: WaitWatch,
                scores: tuple[float, float] | None, support: int, threshold: float
                ) -> WaitSignal:
        """The figures of the class where the group's deviation was largest (among those it
        has a reference in), and its score there against its standing there (``scores``, the
        latest batch's mean and standing, for a recovery)."""
        job_class = watch.alarm_class
        if job_class is None:
            known = [c for c in watch.run if c in watch.before] or list(watch.before)
            job_class = max(sorted(known), key=lambda c: watch.run.get(c, [0.0, 0.0, 0.0])[2])
            watch.alarm_class = job_class
        if scores is None:
            s, k, _ = watch.run.get(job_class, [0.0, 0.0, 0.0])
            scores = (s / k if k else math.nan, watch.standing(job_class))
        nan = (math.nan, math.nan)
        before = watch.before.get(job_class)
        since = watch.since.get(job_class)
        rest = watch.rest.get(job_class)
        return WaitSignal(kind, attribute, group, job_class,
                          before.quantiles() if before else nan,
                          since.quantiles() if since else nan,
                          rest.quantiles() if rest else nan,
                          scores[0], scores[1], support, threshold)
