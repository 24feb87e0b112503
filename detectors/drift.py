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
   independent; ``φ`` (:class:`Dispersion`) widens the test by as much as the data show,
   measured per batch and per block of four batches, from batches confirmed in control. The
   test uses its 95% upper confidence bound and waits for ``MIN_DISPERSION_BATCHES`` of them.
3. **Sequential test.** Each batch adds the binomial log-likelihood ratio of "rate is
   ``factor × expected``" against "rate is as expected" to a one-sided CUSUM, as a
   quasi-likelihood: divided by ``φ`` and by how much the noise that the expectation inherits
   from the rest's own rate widens the batch's variance beyond ``p(1−p)/n``. ``factor`` is a
   fall for the cheap-tier share, a rise for queueing, rejection, preemption and deadline
   misses.
4. **False alarms.** Every CUSUM's threshold is ``ln(D × B / budget)``. ``D`` is the number of
   sequential detectors running, ``B`` the batches per million events, and ``budget`` the allowed
   false alarms per million events for the whole family. By Lorden's bound each detector then
   alarms in control at most once per ``D × B / budget`` batches, so the family stays within the
   budget (a Bonferroni split).
5. **Recovery.** While an alarm is open, the mirror CUSUM tests for the return to the expected
   rate; when it signals, the alarm closes and the watch starts again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from detectors.amplification import GapTrend
from detectors.cusum import Cusum
from detectors.groups import OVERFLOW_GROUP, EquityLedger, GroupStats
from detectors.rates import RATE_BY_NAME, RATES

__all__ = ["MIN_DISPERSION_BATCHES", "MIN_EXPECTED", "Dispersion",
           "DriftSignal", "EquityDrift", "RateWatch", "phi_upper"]

_EPS: Final = 1e-6
MIN_EXPECTED: Final = 5.0
"""Events and non-events a pooled batch expects at least."""
_PHI_MEMORY: Final = 0.98
_HELD_MAX: Final = 200
MIN_DISPERSION_BATCHES: Final = 5
"""In-control batches a detector learns its dispersion from before it may signal."""
_Z_PHI: Final = 1.6448536269514722  # one-sided 95%


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


def phi_upper(pearson_sum: float, batches: float) -> float:
    """95% upper confidence bound of a dispersion ``φ`` from a sum of squared Pearson residuals.

    ``pearson_sum / φ`` is about chi-square with ``batches − 1`` degrees of freedom; its 5%
    quantile comes from the Wilson–Hilferty approximation.

    >>> round(phi_upper(9.0, 10), 3)      # a point estimate of 1.0 from 10 batches
    2.715
    """
    df = max(batches - 1.0, 1.0)
    c = 2.0 / (9.0 * df)
    lower_quantile = df * (1.0 - c - _Z_PHI * math.sqrt(c)) ** 3
    return pearson_sum / max(lower_quantile, 1e-9)


def _deviation_variance(n: int, p0: float, ratio: float, rest: float, rest_n: int) -> float:
    """Variance of ``k − n·p0`` if events were independent: the group's binomial noise plus
    the noise of the rest's rate that ``p0 = ratio × rest`` inherits."""
    return n * p0 * (1 - p0) + n * n * ratio * ratio * max(rest * (1 - rest), _EPS) / rest_n


class Dispersion:
    """How much more a stream's batches vary than independent events would: ``φ``.

    Each batch brings its deviation from expectation and that deviation's variance under
    independence. Squared standardised deviations are averaged per batch, and also per block
    of ``BLOCK`` consecutive batches, which shows a dependence that outlasts one batch (a
    budget that stays exhausted, a load regime). :attr:`value` is the larger of the two
    95% upper bounds, never less than 1. Batches are held back while the detector's CUSUM is
    above zero and learned once it returns there (:meth:`observe`), or dropped on an alarm
    (:meth:`drop_held`), so a change in progress cannot inflate ``φ``.

    >>> d = Dispersion()
    >>> for dev in [1.0, -1.0] * 20:        # independent-looking: point estimate 1.0
    ...     d.observe(dev, 1.0, in_control=True)
    >>> d.ready, round(d.value, 2)         # the 95% bound from ~27 effective batches
    (True, 1.74)
    """

    __slots__ = ("block", "block_dev", "block_var", "held", "single", "size")

    BLOCK: Final = 4

    def __init__(self) -> None:
        self.single = [0.0, 0.0]  # decayed sum of squared standardised deviations, batches
        self.block = [0.0, 0.0]
        self.block_dev = 0.0
        self.block_var = 0.0
        self.size = 0
        self.held: list[tuple[float, float]] = []

    @property
    def ready(self) -> bool:
        """Whether enough in-control batches were seen for the test to run."""
        return self.single[1] >= MIN_DISPERSION_BATCHES

    @property
    def value(self) -> float:
        """``φ`` for the test: at least 1, the per-batch 95% bound, and the per-block estimate."""
        phi = 1.0
        total, count = self.single
        if count >= 2:
            phi = max(phi, phi_upper(total, count))
        total, count = self.block
        if count >= 3:
            phi = max(phi, total / count)
        return phi

    def observe(self, deviation: float, variance: float, in_control: bool) -> None:
        """One batch; learned (with any held ones) when the CUSUM stands at zero."""
        self.held.append((deviation, variance))
        if not in_control:
            if len(self.held) > _HELD_MAX:
                del self.held[0]
            return
        for dev, var in self.held:
            self._learn(self.single, dev * dev / var)
            self.block_dev += dev
            self.block_var += var
            self.size += 1
            if self.size == self.BLOCK:
                self._learn(self.block, self.block_dev ** 2 / self.block_var)
                self.block_dev = self.block_var = 0.0
                self.size = 0
        self.held.clear()

    def learn(self, deviation: float, variance: float) -> None:
        """A batch known to be in control (warm-up)."""
        self.observe(deviation, variance, in_control=True)

    def drop_held(self) -> None:
        """An alarm fired: the held batches were part of the change."""
        self.held.clear()

    @staticmethod
    def _learn(acc: list[float], value: float) -> None:
        acc[0] = acc[0] * _PHI_MEMORY + value
        acc[1] = acc[1] * _PHI_MEMORY + 1.0


class RateWatch:
    """The sequential watch over one rate of one group (state only; see :class:`EquityDrift`)."""

    __slots__ = (
        "alarmed",
        "cusum",
        "dispersion",
        "factor",
        "last_k",
        "last_n",
        "metric",
        "pending",
        "ratio",
        "recovery",
        "run",
        "run_expected",
        "run_k",
        "run_n",
        "trend",
        "warm",
    )

    def __init__(self, metric: str) -> None:
        self.metric = metric
        self.factor = RATE_BY_NAME[metric].design_factor
        self.ratio: float | None = None
        self.dispersion = Dispersion()
        self.warm: list[tuple[int, int, float, int]] = []
        self.pending = [0, 0, 0, 0]  # group k, group n, rest k, rest n
        self.last_k = 0
        self.last_n = 0
        self.cusum = Cusum(threshold=1.0)  # the family threshold is set on every batch
        self.recovery = Cusum(threshold=1.0)
        self.alarmed = False
        self.run_k = 0
        self.run_n = 0
        self.run_expected = 0.0
        self.run: list[tuple[float, int, float]] = []
        """Batches since the CUSUM last stood at zero: (shortfall, n, unit variance)."""
        self.trend: GapTrend | None = None

    @property
    def phi(self) -> float:
        """Overdispersion used by the test (see :class:`Dispersion`)."""
        return self.dispersion.value


class EquityDrift:
    """Runs the watches of every (attribute, group, rate) once per batch."""

    def __init__(self, warmup: int, min_batches: int, prior: float, trend_window: int,
                 trend_alpha: float, trend_min_growth: float) -> None:
        if warmup < 1:
            raise ValueError(f"warmup must be >= 1, got {warmup}")
        if min_batches < 2:
            raise ValueError(f"min_batches must be >= 2 (phi needs a spread), got {min_batches}")
        if prior < 0:
            raise ValueError(f"prior must be >= 0, got {prior}")
        self.warmup = warmup
        self.min_batches = min_batches
        self.prior = prior
        self._trend = (trend_window, trend_alpha, trend_min_growth)
        GapTrend(*self._trend)  # validates
        self.watches = 0

    def refresh(self, ledger: EquityLedger, threshold: float) -> list[DriftSignal]:
        """Close the batch: feed every watch its batch, return what they found."""
        signals: list[DriftSignal] = []
        for attribute, table in ledger.groups.items():
            for spec in RATES:
                self._batch(attribute, spec.name, table, threshold, signals)
        return signals

    def _batch(self, attribute: str, metric: str, table: dict[str, GroupStats],
               threshold: float, signals: list[DriftSignal]) -> None:
        rows = []
        total_k = total_n = 0
        for stats in table.values():
            watches = stats.drift
            if watches is None:
                watches = stats.drift = {spec.name: RateWatch(spec.name) for spec in RATES}
                self.watches += len(watches)
            watch = watches[metric]
            k, n = stats.rate_counts(metric)
            kb, nb = k - watch.last_k, n - watch.last_n
            watch.last_k, watch.last_n = k, n
            total_k += kb
            total_n += nb
            if stats.name != OVERFLOW_GROUP:
                rows.append((stats, watch, kb, nb))
        for stats, watch, kb, nb in rows:
            pending = watch.pending
            pending[0] += kb
            pending[1] += nb
            pending[2] += total_k - kb
            pending[3] += total_n - nb
            k, n, rest_k, rest_n = pending
            if n == 0 or rest_n == 0:
                continue
            rest = rest_k / rest_n
            guess = k / n if watch.ratio is None else min(watch.ratio * rest, 1.0)
            if n * guess < MIN_EXPECTED or n * (1.0 - guess) < MIN_EXPECTED:
                continue
            watch.pending = [0, 0, 0, 0]
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
                if trend.amplifying:
                    return DriftSignal("amplification", stats.attribute, stats.name,
                                       watch.metric, trend.after, trend.before,
                                       trend.before_n + trend.window, trend.growth)
        cusum, recovery = watch.cusum, watch.recovery
        cusum.threshold = recovery.threshold = threshold
        if watch.alarmed:
            if recovery.update(-llr).drift_detected:  # the mirror test: back to expected
                watch.alarmed = False
                cusum.reset()
                recovery.reset()
                watch.trend = None
                return DriftSignal("recovered", stats.attribute, stats.name, watch.metric,
                                   observed, p0, nb, threshold)
            return None
        if not watch.dispersion.ready:  # still learning how bursty this group is
            watch.dispersion.learn(deviation, deviation_variance)
            return None
        cusum.update(llr)
        watch.dispersion.observe(deviation, deviation_variance, cusum.at_zero)
        if cusum.at_zero:
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
        if not cusum.drift_detected:
            return None
        signal = DriftSignal("equity_drift", stats.attribute, stats.name, watch.metric,
                             watch.run_k / watch.run_n, watch.run_expected / watch.run_n,
                             watch.run_n, threshold)
        watch.alarmed = True
        watch.dispersion.drop_held()  # those batches were part of the change
        cusum.reset()
        recovery.reset()
        watch.run_k = watch.run_n = 0
        watch.run_expected = 0.0
        # the growth test compares what follows with the evidence since the change point
        watch.trend = GapTrend(*self._trend)
        watch.trend.start(watch.run)
        watch.run = []
        return signal
