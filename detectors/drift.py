"""Equity drift: a change in a group's rate *relative to the other groups*, detected sequentially.

Method, in sentences a reviewer can follow. Observations are taken per *batch*: the events
between two evaluations (``evaluate_every`` events), pooled with the following ones until the
batch expects at least ``MIN_EXPECTED`` events and non-events (so a rare rate, such as
preemptions, is judged on enough data for the normal approximation).

1. **Contrast, not level.** In each batch, a group's expected rate is its reference ratio times
   the rate of the *rest* of that attribute's groups in the same batch. A change that hits every
   group alike moves the expectation with it and is not reported.
2. **Reference.** The ratio and an overdispersion factor ``φ`` are learned once, from the
   group's first batches holding at least ``warmup`` observations of that rate (and at least
   ``min_batches`` batches). The ratio is shrunk towards parity by ``prior`` pseudo-observations.
   ``φ`` is the mean squared Pearson residual of the batches. Real schedulers are bursty
   (budgets run out, spot capacity is reclaimed in waves), so a group's events are not
   independent; ``φ`` (:class:`~detectors.dispersion.Dispersion`) widens the test by as much
   as the data show, measured per batch and per block of four batches, from batches confirmed
   in control. The test uses its 95% upper confidence bound and waits for
   ``MIN_DISPERSION_BATCHES`` of them.
3. **Sequential test.** Each batch adds the binomial log-likelihood ratio of "rate is
   ``factor × expected``" against "rate is as expected" to a one-sided CUSUM, as a
   quasi-likelihood: divided by ``φ`` and by how much the noise that the expectation inherits
   from the rest's own rate widens the batch's variance beyond ``p(1−p)/n``. ``factor`` is a
   fall for the cheap-tier share, a rise for queueing, rejection, preemption and deadline
   misses.
4. **False alarms.** Every CUSUM's threshold is ``ln(D × B / budget)``. ``D`` is the number of
   sequential tests that can alarm (watches whose reference is learned: one still warming up
   cannot), ``B`` the batches per million events, and ``budget`` the allowed false alarms per
   million events for the whole family. By Lorden's bound each detector then
   alarms in control at most once per ``D × B / budget`` batches, so the family stays within the
   budget (a Bonferroni split).
5. **Recovery.** While an alarm is open, the mirror CUSUM tests for the return to the expected
   rate; when it signals, the alarm closes and the watch starts again
   (:class:`~detectors.alarm.AlarmCycle`, shared with forecast drift).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from detectors.alarm import AlarmCycle
from detectors.amplification import GapTrend
from detectors.dispersion import Dispersion
from detectors.groups import OVERFLOW_GROUP, EquityLedger, GroupStats
from detectors.rates import RATE_BY_NAME, RATES, RateSpec
from detectors.river_cycle import RiverCycle, parse_detector

__all__ = ["MIN_EXPECTED", "DriftSignal", "EquityDrift", "RateWatch"]

_EPS: Final = 1e-6
MIN_EXPECTED: Final = 5.0
"""Events and non-events a pooled batch expects at least."""
_HELD_MAX: Final = 200
RIVER_EVIDENCE_BATCHES: Final = 8
"""Batches a River watch reports as the evidence of its alarm (River gives no change point)."""


@dataclass(frozen=True, slots=True)
class DriftSignal:
    """What a watch found: ``kind`` is ``equity_drift``, ``recovered`` or ``amplification``.

    For ``amplification``, ``observed`` and ``expected`` are the shortfall after the alarm and
    at detection, ``support`` the observations both cover, ``detail`` the growth;
    otherwise ``observed`` is the rate since the estimated change, ``expected`` the rate its
    reference predicts, ``support`` the observations since the change, ``detail`` the
    threshold.
    """

    kind: str
    attribute: str
    group: str
    metric: str
    observed: float
    expected: float
    support: int
    detail: float


def _deviation_variance(n: int, p0: float, ratio: float, rest: float, rest_n: int) -> float:
    """Variance of ``k − n·p0`` if events were independent: the group's binomial noise plus
    the noise of the rest's rate that ``p0 = ratio × rest`` inherits."""
    return n * p0 * (1 - p0) + n * n * ratio * ratio * max(rest * (1 - rest), _EPS) / rest_n


class RateWatch:
    """The sequential watch over one rate of one group (state only; see :class:`EquityDrift`)."""

    __slots__ = (
        "cycle",
        "dispersion",
        "factor",
        "last_k",
        "last_n",
        "metric",
        "pending",
        "ratio",
        "recent",
        "rest_mark",
        "run",
        "run_expected",
        "run_k",
        "run_n",
        "trend",
        "trend_growth",
        "warm",
    )

    def __init__(self, metric: str, detector: str = "cusum") -> None:
        self.metric = metric
        self.factor = RATE_BY_NAME[metric].design_factor
        self.ratio: float | None = None
        self.dispersion = Dispersion()
        self.warm: list[tuple[int, int, float, int]] = []
        self.pending = [0, 0]  # the group's k and n since its pooled batch began
        self.rest_mark: tuple[int, int] | None = None
        """The attribute's (k, n) over all its groups when the pooled batch began (None: the
        watch is new); the rest's counts since then are the attribute's growth less the
        group's own."""
        self.last_k = 0
        self.last_n = 0
        self.cycle: AlarmCycle | RiverCycle = (
            AlarmCycle(sides=1) if detector == "cusum" else RiverCycle(detector))
        """The sequential test; the CUSUM's family threshold is set on every batch."""
        self.recent: list[tuple[int, int, float]] = []
        """A River watch's latest batches (k, n, expected k): its evidence at an alarm."""
        self.run_k = 0
        self.run_n = 0
        self.run_expected = 0.0
        self.run: list[tuple[float, int, float]] = []
        """Batches since the CUSUM last stood at zero: (shortfall, n, unit variance)."""
        self.trend: GapTrend | None = None
        self.trend_growth: float | None = None
        """The growth test's final growth, kept while the alarm lasts (None: not tested)."""

    @property
    def growth(self) -> float | None:
        """Shortfall since detection minus shortfall at detection while in alarm: so far,
        then final once the growth test has its window (None outside an alarm)."""
        if self.trend is not None:
            return self.trend.growth_so_far
        return self.trend_growth

    @property
    def phi(self) -> float:
        """Overdispersion used by the test (see :class:`Dispersion`)."""
        return self.dispersion.value


class EquityDrift:
    """Runs the watches of every (attribute, group, rate) once per batch."""

    def __init__(self, warmup: int, min_batches: int, prior: float, trend_window: int,
                 trend_alpha: float, trend_min_growth: float, detector: str = "cusum") -> None:
        if warmup < 1:
            raise ValueError(f"warmup must be >= 1, got {warmup}")
        if min_batches < 2:
            raise ValueError(f"min_batches must be >= 2 (phi needs a spread), got {min_batches}")
        if prior < 0:
            raise ValueError(f"prior must be >= 0, got {prior}")
        if detector != "cusum":
            parse_detector(detector)  # a ValueError names what is wrong
        self.detector = detector
        self.warmup = warmup
        self.min_batches = min_batches
        self.prior = prior
        self._trend = (trend_window, trend_alpha, trend_min_growth)
        GapTrend(*self._trend)  # validates
        self._totals: dict[str, dict[str, tuple[int, int]]] = {}
        """Per attribute and rate: (k, n) summed over all its groups, as of the last batch."""
        self.watches = 0
        """Watches whose reference is learned: the ones that can alarm, and so the ones the
        family false-alarm budget is spread over (a sparse group still warming up, or one
        that never finishes, costs the others nothing)."""

    def refresh(self, ledger: EquityLedger, threshold: float) -> list[DriftSignal]:
        """Close the batch: feed every watch its batch, return what they found.

        Only the groups with new decisions or outcomes since the last batch are visited (a
        sparse group costs nothing while it is quiet): the attribute's running totals give
        every visited group the rest's counts since its pooled batch began. A quiet group's
        pooled batch goes on until its next event.
        """
        signals: list[DriftSignal] = []
        for attribute, table in ledger.groups.items():
            touched = []
            for stats in table.values():
                seen = stats.decisions + stats.deadline_n
                if stats.drift is None:
                    stats.drift = {spec.name: RateWatch(spec.name, self.detector)
                                   for spec in RATES}
                elif seen == stats.drift_seen:
                    continue
                stats.drift_seen = seen
                touched.append(stats)
            totals = self._totals.setdefault(attribute, {spec.name: (0, 0) for spec in RATES})
            for spec in RATES:
                self._batch(spec, touched, totals, threshold, signals)
        return signals

    def _batch(self, spec: RateSpec, touched: list[GroupStats],
               totals: dict[str, tuple[int, int]], threshold: float,
               signals: list[DriftSignal]) -> None:
        metric = spec.name
        rows = []
        before = totals[metric]
        total_k, total_n = before
        for stats in touched:
            watch = stats.drift[metric]  # type: ignore[index]
            k, n = spec.counts(stats)
            kb, nb = k - watch.last_k, n - watch.last_n
            watch.last_k, watch.last_n = k, n
            total_k += kb
            total_n += nb
            if stats.name != OVERFLOW_GROUP:
                rows.append((stats, watch, kb, nb))
        totals[metric] = now = (total_k, total_n)
        for stats, watch, kb, nb in rows:
            pending = watch.pending
            pending[0] += kb
            pending[1] += nb
            mark = watch.rest_mark
            if mark is None:  # a new watch: the rest counts from this batch on
                mark = watch.rest_mark = before
            k, n = pending
            rest_k = now[0] - mark[0] - k
            rest_n = now[1] - mark[1] - n
            if n == 0 or rest_n == 0:
                continue
            rest = rest_k / rest_n
            guess = k / n if watch.ratio is None else min(watch.ratio * rest, 1.0)
            if n * guess < MIN_EXPECTED or n * (1.0 - guess) < MIN_EXPECTED:
                continue
            watch.pending = [0, 0]
            watch.rest_mark = now
            if watch.ratio is None:
                self._warm_up(watch, k, n, rest_k, rest_n)
                continue
            signal = self._step(stats, watch, k, n, rest, rest_n, threshold)
            if signal is not None:
                signals.append(signal)

    def _warm_up(self, watch: RateWatch, kb: int, nb: int, rest_k: int, rest_n: int) -> None:
        watch.warm.append((kb, nb, rest_k / rest_n, rest_n))
        n = sum(b[1] for b in watch.warm)
        if n < self.warmup or len(watch.warm) < self.min_batches:
            return
        k = sum(b[0] for b in watch.warm)
        rest = sum(b[1] * b[2] for b in watch.warm) / n  # rest's rate weighted like the group
        if rest <= 0 or rest >= 1:
            watch.warm.clear()  # nothing to compare with yet: start the warm-up again
            return
        ratio = (k + self.prior * rest) / (n + self.prior) / rest
        for bk, bn, brest, brest_n in watch.warm:
            p = min(max(ratio * brest, _EPS), 1 - _EPS)
            watch.dispersion.learn(bk - bn * p, _deviation_variance(bn, p, ratio, brest,
                                                                    brest_n))
        watch.ratio = ratio
        watch.warm.clear()
        self.watches += 1  # it can alarm from now on: it joins the family budget

    def _river_step(self, stats: GroupStats, watch: RateWatch, alarm: bool, kb: int, nb: int,
                    p0: float, batch: tuple[float, int, float], threshold: float
                    ) -> DriftSignal | None:
        """A River watch: its evidence is its latest :data:`RIVER_EVIDENCE_BATCHES` batches."""
        watch.recent.append((kb, nb, p0 * nb))
        watch.run.append(batch)
        if len(watch.recent) > RIVER_EVIDENCE_BATCHES:
            del watch.recent[0]
            del watch.run[0]
        if not alarm:
            return None
        k = sum(b[0] for b in watch.recent)
        n = sum(b[1] for b in watch.recent)
        expected = sum(b[2] for b in watch.recent)
        signal = DriftSignal("equity_drift", stats.attribute, stats.name, watch.metric,
                             k / n, expected / n, n, float("nan"))  # no CUSUM threshold
        watch.dispersion.drop_held()
        watch.cycle.start_alarm()
        watch.trend = GapTrend(*self._trend)
        watch.trend.start(watch.run)
        watch.run = []
        watch.recent = []
        return signal

    def _step(self, stats: GroupStats, watch: RateWatch, kb: int, nb: int, rest: float,
              rest_n: int, threshold: float) -> DriftSignal | None:
        assert watch.ratio is not None
        p0 = min(max(watch.ratio * rest, _EPS), 1 - _EPS)
        # the alternative: ``factor ×`` expected, but a rise never past halfway to certainty
        # (a high base rate cannot triple; the ratio would then point the wrong way)
        p1 = p0 * watch.factor if watch.factor < 1 else min(p0 * watch.factor, (1 + p0) / 2)
        p1 = min(max(p1, _EPS), 1 - _EPS)
        deviation = kb - nb * p0
        deviation_variance = _deviation_variance(nb, p0, watch.ratio, rest, rest_n)
        observed = kb / nb
        # the batch's binomial log-likelihood ratio, as a quasi-likelihood: divided by the
        # overdispersion and by how much the rest's own noise widens the expectation
        inflation = deviation_variance / (nb * p0 * (1 - p0))
        llr = (kb * math.log(p1 / p0) + (nb - kb) * math.log((1 - p1) / (1 - p0))) \
            / (watch.phi * inflation)
        # how much *worse* than expected, whichever direction is worse for this rate
        batch = ((p0 - observed) if watch.factor < 1 else (observed - p0), nb,
                 watch.phi * p0 * (1 - p0))
        trend = watch.trend
        if trend is not None:
            trend.update_batch(*batch)
            if trend.done:
                watch.trend = None
                watch.trend_growth = trend.growth
                if trend.amplifying:
                    return DriftSignal("amplification", stats.attribute, stats.name,
                                       watch.metric, trend.after, trend.before,
                                       trend.before_n + trend.window, trend.growth)
        cycle = watch.cycle
        cycle.threshold = threshold
        river = cycle.takes == "z"
        # River's detectors take the batch's adverse deviation in standard deviations
        z = (-deviation if watch.factor < 1 else deviation) \
            / math.sqrt(deviation_variance * watch.phi) if river else 0.0
        if cycle.alarmed:
            if cycle.recover(z if river else -llr):  # the mirror test: back to expected
                watch.trend = None
                watch.trend_growth = None
                return DriftSignal("recovered", stats.attribute, stats.name, watch.metric,
                                   observed, p0, nb, threshold)
            return None
        if not watch.dispersion.ready:  # still learning how bursty this group is
            watch.dispersion.learn(deviation, deviation_variance)
            return None
        alarm = cycle.test(z if river else llr)
        watch.dispersion.observe(deviation, deviation_variance, cycle.in_control)
        if river:
            return self._river_step(stats, watch, alarm, kb, nb, p0, batch, threshold)
        if cycle.in_control:
            watch.run_k = watch.run_n = 0
            watch.run_expected = 0.0
            watch.run.clear()
            return None
        watch.run.append(batch)
        if len(watch.run) > _HELD_MAX:
            del watch.run[0]
        watch.run_k += kb
        watch.run_n += nb
        watch.run_expected += p0 * nb
        if not alarm:
            return None
        signal = DriftSignal("equity_drift", stats.attribute, stats.name, watch.metric,
                             watch.run_k / watch.run_n, watch.run_expected / watch.run_n,
                             watch.run_n, threshold)
        watch.dispersion.drop_held()  # those batches were part of the change
        cycle.start_alarm()
        watch.run_k = watch.run_n = 0
        watch.run_expected = 0.0
        # the growth test compares what follows with the evidence since the change point
        watch.trend = GapTrend(*self._trend)
        watch.trend.start(watch.run)
        watch.run = []
        return signal
