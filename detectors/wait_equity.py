"""Scheduling equity (the seed's "scheduling equity drift"): does a group wait longer than its
equals?

The seed alerts when the percentage difference in wait time passes 12%. Between *priority*
classes a difference is the policy itself (high priority is meant to wait less), and between
kinds of job it is the job mix (a 64-CPU training job waits for room a 1-CPU inference job
does not need). So placewatch measures the gap where it should be zero: a group's jobs against
the other groups' jobs of the *same class*, the same priority and the same ``job.job_class``.

Method, for a reviewer:

- **The wait** of a ``place`` decision is ``decided_at - submitted_at``; when the same job
  was preempted before (a ``preempt`` decision with its ``job_id``), it is the time since that
  preemption instead, because the time the job spent running before it was preempted is not
  waiting (:class:`RequeueClock`). Rejected jobs do not enter: a rejection is not a wait, and
  how often a group is rejected is the ``reject_rate`` equity watch's. Leaving them out is
  what makes the figure robust to budgets: a team over its budget has its long-waiting jobs
  rejected rather than placed, which shortens its placed waits but does not lengthen anyone
  else's.
- **The figure** per (attribute, class, group) compares the group's jobs with the rest of
  the attribute's groups' jobs of the same class *placed in the same batches* (of
  ``evaluate_every`` events), over the window (the last ``window`` batches). Each wait is
  divided by its batch's mean wait in the class, so a busy hour that slows every job of the
  class cancels out, and no single burst dominates the window. The gap is the group's mean
  of these time-matched waits over the rest's, less one: +0.30 means its jobs wait 30% longer
  than their equals placed at the same time. Means, not medians: most waits are often zero,
  and a median of zeros says nothing.
- **Its interval** comes from the batches, not from single waits, which are far from
  independent: each batch is one observation of (the group's waits, the rest's waits), and
  the standard error of the log of the gap is the ratio estimator's linearised
  (delta-method) error over those batches, which keeps the covariance of the two sides in
  the same batch. One-sided, Student's t with (batches - 1) degrees of freedom.
- **A finding** needs the lower end of that interval above ``log(1 + limit)`` at the
  configured confidence, Bonferroni-corrected across every comparison of that evaluation; and
  minimum support on both sides: ``min_support`` waited jobs (wait > 0) in the window, and at
  least ``MIN_BATCHES`` batches. A class whose waits are mostly zero therefore needs enough
  waited jobs, and its wide interval keeps a mean resting on a few long waits from alarming.
- It is re-tested at every evaluation. The point estimate back at or under the limit in
  every class with support closes the finding (:mod:`detectors.kinds.scheduling_equity`).

>>> tracker = WaitEquity(limits={}, default_limit=0.12, confidence=0.95, min_support=30,
...                      window=100)
>>> for batch in range(20):
...     for i in range(40):
...         tracker.add("team", "a", (1, "batch"), 100.0 + (batch + i) % 7)
...         tracker.add("team", "b", (1, "batch"), 150.0 + (batch * i) % 5)
...         tracker.add("team", "c", (1, "batch"), 100.0 + (batch * i) % 3)
...     tracker.close_batch()
>>> [(g.attribute, g.job_class, g.group, round(g.gap, 2)) for g in tracker.evaluate()
...  if g.significant]
[('team', (1, 'batch'), 'b', 0.49)]
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from detectors.fairness import z_for_confidence

__all__ = ["MIN_BATCHES", "RequeueClock", "WaitEquity", "WaitGap", "log_ratio_and_error",
           "t_quantile"]

JobClass = tuple[int, str]
"""(``job.priority``, ``job.job_class`` or ``""``)."""

_MAX_CLASSES = 16
MIN_BATCHES = 10
"""Batches with a placement of the class, in the window, that a comparison needs."""
_RESYNC_EVERY = 64
"""Batches between two exact recomputations of the running window sums (rounding)."""

# The running sums of one (attribute, class, group) over its rows in the window; a row is one
# batch: the group's (n, sum, waited) and the rest's (n, sum, waited).
_ROWS, _NG, _SG, _KG, _NR, _SR, _KR = range(7)
_SGG, _SGN, _NGG, _SRR, _SRN, _NRR, _SGSR, _SGNR, _NGSR, _NGNR = range(7, 17)
_WG, _WR = 17, 18
"""The raw (unscaled) wait sums, for the means the alert quotes."""
_WIDTH = 19


@lru_cache(maxsize=1024)
def t_quantile(p: float, df: int) -> float:
    """Student's t quantile (SciPy's ``stdtrit``, imported on first use)."""
    from scipy.special import stdtrit

    return float(stdtrit(df, p))


def _row_sums(sums: list[float], sign: float, ng: float, wg: float, kg: float,
              nr: float, wr: float, kr: float, scale: float) -> None:
    """Add (sign 1) or remove (-1) one batch's row: the group's and the rest's count, wait
    sum and waited count; ``scale`` is 1 / the class's mean wait in that batch."""
    sums[_WG] += sign * wg
    sums[_WR] += sign * wr
    sg = wg * scale
    sr = wr * scale
    sums[_ROWS] += sign
    sums[_NG] += sign * ng
    sums[_SG] += sign * sg
    sums[_KG] += sign * kg
    sums[_NR] += sign * nr
    sums[_SR] += sign * sr
    sums[_KR] += sign * kr
    sums[_SGG] += sign * sg * sg
    sums[_SGN] += sign * sg * ng
    sums[_NGG] += sign * ng * ng
    sums[_SRR] += sign * sr * sr
    sums[_SRN] += sign * sr * nr
    sums[_NRR] += sign * nr * nr
    sums[_SGSR] += sign * sg * sr
    sums[_SGNR] += sign * sg * nr
    sums[_NGSR] += sign * ng * sr
    sums[_NGNR] += sign * ng * nr


def log_ratio_and_error(s: list[float]) -> tuple[float, float]:
    """The log of (group mean / rest mean) over the rows, and its batch-linearised standard
    error (the ratio estimator's, with the covariance of the two sides in the same batch)."""
    mg = s[_SG] / s[_NG]
    mr = s[_SR] / s[_NR]
    aa = s[_SGG] - 2 * mg * s[_SGN] + mg * mg * s[_NGG]
    cc = s[_SRR] - 2 * mr * s[_SRN] + mr * mr * s[_NRR]
    ac = s[_SGSR] - mr * s[_SGNR] - mg * s[_NGSR] + mg * mr * s[_NGNR]
    rows = s[_ROWS]
    spread = aa / (s[_SG] * s[_SG]) + cc / (s[_SR] * s[_SR]) - 2 * ac / (s[_SG] * s[_SR])
    return math.log(mg / mr), math.sqrt(max(spread, 0.0) * rows / (rows - 1))


@dataclass(frozen=True, slots=True)
class WaitGap:
    """One group against the rest of its attribute's groups in one class, over the window."""

    attribute: str
    job_class: JobClass
    group: str
    mean_wait_s: float
    rest_wait_s: float
    """The two mean waits over the window (seconds, as waited)."""
    gap: float
    """How much longer its jobs waited than the rest's placed in the same batches, relative
    (the time-matched ratio less one; not exactly ``mean_wait_s / rest_wait_s - 1`` when the
    two sides' volumes differ between busy and quiet batches)."""
    lower: float
    """Lower end of its one-sided interval, on the same scale."""
    limit: float
    placed: int
    waited: int
    """The group's placements in the class and window, and those that waited."""
    rest_waited: int
    batches: int
    significant: bool


class _Cell:
    """One (attribute, class): the open batch, the window's batches, every group's sums."""

    __slots__ = ("open", "ring", "since", "sums")

    def __init__(self) -> None:
        self.open: dict[str, list[float]] = {}
        """group -> [n, sum, waited] of the open batch."""
        self.ring: deque[tuple[int, float, float, float, dict[str, list[float]]]] = deque()
        """(batch index, class n, wait sum, waited, the groups' [n, wait sum, waited]) per
        batch in which some job of the class waited."""
        self.sums: dict[str, list[float]] = {}
        self.since: dict[str, int] = {}
        """The batch index a group's sums begin at (its first placement in the class)."""


class WaitEquity:
    """Per (attribute, class): the window's batches and each group's running sums."""

    def __init__(self, limits: Mapping[str, float], default_limit: float, confidence: float,
                 min_support: int, window: int) -> None:
        for name, limit in {"": default_limit, **limits}.items():
            if not limit > 0:
                raise ValueError(f"limit of {name or 'every attribute'} must be > 0, "
                                 f"got {limit!r}")
        z_for_confidence(confidence)
        if min_support < 2:
            raise ValueError(f"min_support must be >= 2, got {min_support}")
        if window < MIN_BATCHES:
            raise ValueError(f"window must be >= {MIN_BATCHES} batches, got {window}")
        self.limits = dict(limits)
        self.default_limit = default_limit
        self.confidence = confidence
        self.min_support = min_support
        self.window = window
        self.cells: dict[tuple[str, JobClass], _Cell] = {}
        self.classes: set[JobClass] = set()
        self.untracked = 0
        self.batch = 0

    def limit_of(self, attribute: str) -> float:
        return self.limits.get(attribute, self.default_limit)

    def add(self, attribute: str, group: str, job_class: JobClass, wait: float) -> None:
        """One placement's wait (the group names come from the bounded ledger)."""
        if job_class not in self.classes:
            if len(self.classes) >= _MAX_CLASSES:
                self.untracked += 1
                return
            self.classes.add(job_class)
        key = (attribute, job_class)
        cell = self.cells.get(key)
        if cell is None:
            cell = self.cells[key] = _Cell()
        slot = cell.open.get(group)
        if slot is None:
            slot = cell.open[group] = [0, 0.0, 0]
        slot[0] += 1
        slot[1] += wait
        slot[2] += wait > 0

    def close_batch(self) -> None:
        """End of a batch: every active cell's batch becomes a row of each of its groups, and
        batches older than the window leave."""
        self.batch += 1
        index = self.batch
        oldest = index - self.window
        resync = index % _RESYNC_EVERY == 0
        for cell in self.cells.values():
            ring = cell.ring
            while ring and ring[0][0] <= oldest:
                gone, n, total, waited, groups = ring.popleft()
                scale = n / total
                for name, sums in cell.sums.items():
                    if cell.since[name] <= gone:
                        row = groups.get(name)
                        ng, sg, kg = row if row is not None else (0, 0.0, 0)
                        _row_sums(sums, -1.0, ng, sg, kg, n - ng, total - sg, waited - kg,
                                  scale)
            batch = cell.open
            if batch:
                cell.open = {}
                self._append(cell, index, batch)
            if resync:
                self._resync(cell)

    @staticmethod
    def _append(cell: _Cell, index: int, batch: dict[str, list[float]]) -> None:
        """A closed batch becomes a row of every group of the cell (a batch in which nobody
        waited says nothing of who waits longer, and is left out)."""
        n = sum(v[0] for v in batch.values())
        total = sum(v[1] for v in batch.values())
        waited = sum(v[2] for v in batch.values())
        if not total > 0:
            return
        scale = n / total
        cell.ring.append((index, n, total, waited, batch))
        for name in batch:
            if name not in cell.sums:
                cell.sums[name] = [0.0] * _WIDTH
                cell.since[name] = index
        for name, sums in cell.sums.items():
            row = batch.get(name)
            ng, sg, kg = row if row is not None else (0, 0.0, 0)
            _row_sums(sums, 1.0, ng, sg, kg, n - ng, total - sg, waited - kg, scale)

    @staticmethod
    def _resync(cell: _Cell) -> None:
        """Recompute the running sums from the window's batches (bounds rounding drift)."""
        for name, sums in cell.sums.items():
            sums[:] = [0.0] * _WIDTH
            since = cell.since[name]
            for at, n, total, waited, groups in cell.ring:
                if at >= since:
                    row = groups.get(name)
                    ng, sg, kg = row if row is not None else (0, 0.0, 0)
                    _row_sums(sums, 1.0, ng, sg, kg, n - ng, total - sg, waited - kg,
                              n / total)
        for name in [g for g, s in cell.sums.items() if s[_ROWS] <= 0.5]:
            del cell.sums[name]  # nothing of it left in the window
            del cell.since[name]

    def evaluate(self, skip: frozenset[str] = frozenset()) -> list[WaitGap]:
        """Every comparison with support (groups in ``skip``, the overflow group, are only
        part of the rest); ``significant`` marks the findings."""
        tests = []
        need = self.min_support
        for (attribute, job_class), cell in sorted(self.cells.items()):
            for name, s in sorted(cell.sums.items()):
                if (name in skip or s[_ROWS] < MIN_BATCHES or s[_KG] < need or s[_KR] < need
                        or not s[_SG] > 0):
                    continue
                log_ratio, error = log_ratio_and_error(s)
                tests.append((attribute, job_class, name, s, log_ratio, error))
        if not tests:
            return []
        p = 1 - (1 - self.confidence) / len(tests)
        out = []
        for attribute, job_class, name, s, log_ratio, error in tests:
            rows = round(s[_ROWS])
            lower = log_ratio - t_quantile(p, rows - 1) * error
            limit = self.limit_of(attribute)
            out.append(WaitGap(
                attribute, job_class, name, s[_WG] / s[_NG], s[_WR] / s[_NR],
                math.exp(log_ratio) - 1, math.exp(lower) - 1, limit, round(s[_NG]),
                round(s[_KG]), round(s[_KR]), rows, lower > math.log1p(limit)))
        return out


class RequeueClock:
    """When each preempted job was preempted, until it is placed again (bounded, oldest out).

    >>> clock = RequeueClock(capacity=2)
    >>> clock.preempted("j1", 100.0); clock.preempted("j2", 110.0); clock.preempted("j3", 120.0)
    >>> clock.placed("j1"), clock.placed("j3"), clock.placed("j3"), clock.forgotten
    (None, 120.0, None, 1)
    """

    __slots__ = ("at", "capacity", "forgotten")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.at: dict[str, float] = {}
        self.forgotten = 0

    def preempted(self, job_id: str, when: float) -> None:
        at = self.at
        at.pop(job_id, None)
        at[job_id] = when
        if len(at) > self.capacity:
            del at[next(iter(at))]
            self.forgotten += 1

    def placed(self, job_id: str) -> float | None:
        """The time the job was last preempted, if it was (and forget it)."""
        return self.at.pop(job_id, None)
