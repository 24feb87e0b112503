"""Scheduling equity (the seed's "scheduling equity drift"): does a group wait longer than its
equals?

The seed alerts when the percentage difference in wait time passes 12%. Between *priority*
classes a difference is the policy itself (high priority is meant to wait less), and between
kinds of job it is the job mix (a 64-CPU training job waits for room a 1-CPU inference job
does not need). So placewatch measures the gap where it should be zero: a group's jobs against
the other groups' jobs of the *same class*, the same priority and the same ``job.job_class``.

Method, for a reviewer:

- **The wait** of a ``place`` decision is ``decided_at - submitted_at``; when the same job
  was preempted since it was submitted (a ``preempt`` decision with its ``job_id``), it is the
  time since that preemption instead, because the job was running, not waiting, before it
  (:mod:`detectors.requeue`; the core measures it once for every detector). Rejected jobs do
  not enter: a rejection is not a wait, and how often a group is rejected is the
  ``reject_rate`` equity watch's. A team over its budget has its long-waiting jobs rejected
  rather than placed, which shortens its own placed waits: that hides part of any gap against
  it, and, as it is part of the others' reference, makes the others look slower by that
  team's share of the rest. With many groups the share is small; with two or three (regions,
  say) the others' finding then comes with a ``reject_rate`` drift on the rejected team,
  and the runbook says to read them together.
- **The figure** per (attribute, class, group) compares the group's jobs with the rest of
  the attribute's groups' jobs of the same class *placed in the same batches* (of
  ``evaluate_every`` events), over the window (the last ``window`` batches). Only *matched*
  batches count: both the group and the rest placed a job of the class in it, and some job of
  the class waited. In batch ``b``, with ``n_g``, ``n_r`` placements and ``W_g``, ``W_r`` wait
  sums (``W = W_g + W_r``), ``A_b = W_g n_r / W`` and ``C_b = W_r n_g / W``: ``A_b / C_b`` is
  the batch's ratio of mean waits, and dividing by ``W`` makes a busy batch that slows every
  job of the class count no more than a quiet one. The ratio is ``sum(A) / sum(C)`` (the
  Mantel-Haenszel form): a weighted mean of the batches' own ratios, exactly the common ratio
  when one holds in every batch, and exactly 1 in expectation when the group's jobs are
  exchangeable with the rest's. The gap is the ratio less one: +0.30 means its jobs wait 30%
  longer than their equals placed at the same time. Means, not medians: most waits are often
  zero, and a median of zeros says nothing; a batch whose jobs all waited zero is left out.
- **Its interval** comes from the batches, not from single waits, which are far from
  independent: each matched batch is one observation ``(A_b, C_b)``, and the standard error
  of the log ratio is the ratio estimator's linearised (delta-method) error over those
  batches, which keeps the covariance of the two sides in the same batch. One-sided,
  Student's t with (matched batches - 1) degrees of freedom.
- **A finding** needs the lower end of that interval above ``log(1 + limit)`` at the
  configured confidence, Bonferroni-corrected across every comparison of that evaluation; and
  minimum support on both sides: ``min_support`` waited jobs (wait > 0) in the matched
  batches, and at least ``MIN_BATCHES`` matched batches. A class whose waits are mostly zero
  therefore needs enough waited jobs, and its wide interval keeps a mean resting on a few
  long waits from alarming; one burst of a group's jobs is one batch, never enough.
- It is re-tested at every evaluation; the alert's lifecycle is in
  :mod:`detectors.kinds.scheduling_equity`.

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
from typing import Final

from detectors.fairness import z_for_confidence

__all__ = ["MAX_CLASSES", "MIN_BATCHES", "WaitEquity", "WaitGap", "log_ratio_and_error",
           "t_quantile"]

JobClass = tuple[int, str]
"""(``job.priority``, ``job.job_class`` or ``""``)."""

MAX_CLASSES: Final = 16
"""Classes (priority, job class) scored, the first seen; later ones are counted, not scored."""
MIN_BATCHES: Final = 10
"""Matched batches (both the group and the rest placed a job of the class, and some waited)
in the window that a comparison needs."""
_RESYNC_EVERY: Final = 64
"""Batches between two exact recomputations of the running window sums (rounding)."""

# The running sums of one (attribute, class, group) over its matched batches in the window.
# Per batch b: A = W_g * n_r / W and C = W_r * n_g / W (W_g, W_r: the two sides' wait sums,
# n_g, n_r: their placements, W = W_g + W_r), whose ratio is the batch's ratio of mean waits.
_ROWS, _A, _C, _AA, _CC, _AC, _NG, _WG, _KG, _NR, _WR, _KR = range(12)
_WIDTH = 12


@lru_cache(maxsize=1024)
def t_quantile(p: float, df: int) -> float:
    """Student's t quantile (SciPy's ``stdtrit``, imported on first use)."""
    from scipy.special import stdtrit

    return float(stdtrit(df, p))


def _row_sums(sums: list[float], sign: float, ng: float, wg: float, kg: float,
              nr: float, wr: float, kr: float) -> None:
    """Add (sign 1) or remove (-1) one matched batch: the group's and the rest's placements,
    wait sum and waited count (``wg + wr`` > 0)."""
    total = wg + wr
    a = wg * nr / total
    c = wr * ng / total
    sums[_ROWS] += sign
    sums[_A] += sign * a
    sums[_C] += sign * c
    sums[_AA] += sign * a * a
    sums[_CC] += sign * c * c
    sums[_AC] += sign * a * c
    sums[_NG] += sign * ng
    sums[_WG] += sign * wg
    sums[_KG] += sign * kg
    sums[_NR] += sign * nr
    sums[_WR] += sign * wr
    sums[_KR] += sign * kr


def log_ratio_and_error(s: list[float]) -> tuple[float, float]:
    """The log of the time-matched ratio ``sum(A) / sum(C)`` over the matched batches, and its
    batch-linearised (delta-method) standard error, with the covariance of the two sides in
    the same batch: ``sqrt(B / (B - 1) * (AA / A² + CC / C² - 2 AC / (A C)))``."""
    a, c, rows = s[_A], s[_C], s[_ROWS]
    spread = s[_AA] / (a * a) + s[_CC] / (c * c) - 2 * s[_AC] / (a * c)
    return math.log(a / c), math.sqrt(max(spread, 0.0) * rows / (rows - 1))


@dataclass(frozen=True, slots=True)
class WaitGap:
    """One group against the rest of its attribute's groups in one class, over the matched
    batches of the window."""

    attribute: str
    job_class: JobClass
    group: str
    mean_wait_s: float
    rest_wait_s: float
    """The two sides' mean waits over the matched batches (seconds, as waited)."""
    gap: float
    """How much longer its jobs waited than the rest's placed in the same batches, relative:
    the time-matched ratio less one, a weighted mean of the batches' own ratios (not exactly
    ``mean_wait_s / rest_wait_s - 1`` when the two sides' volumes differ between busy and
    quiet batches)."""
    lower: float
    """Lower end of its one-sided interval, on the same scale."""
    limit: float
    placed: int
    waited: int
    """The group's placements in the class in the matched batches, and those that waited."""
    rest_waited: int
    batches: int
    """Matched batches: both sides placed a job of the class, and some job waited."""
    significant: bool


class _Cell:
    """One (attribute, class): the open batch, the window's batches, every group's sums."""

    __slots__ = ("open", "ring", "sums")

    def __init__(self) -> None:
        self.open: dict[str, list[float]] = {}
        """group -> [n, sum, waited] of the open batch."""
        self.ring: deque[tuple[int, float, float, float, dict[str, list[float]]]] = deque()
        """(batch index, class n, wait sum, waited, the groups' [n, wait sum, waited]) per
        batch in which some job of the class waited."""
        self.sums: dict[str, list[float]] = {}


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
        """Placements in classes beyond :data:`MAX_CLASSES` (not scored)."""
        self.batch = 0

    def limit_of(self, attribute: str) -> float:
        return self.limits.get(attribute, self.default_limit)

    def admit(self, job_class: JobClass) -> bool:
        """Whether the class is scored (the first :data:`MAX_CLASSES` seen are); call once
        per placement: a refused one is counted in :attr:`untracked`."""
        classes = self.classes
        if job_class in classes:
            return True
        if len(classes) >= MAX_CLASSES:
            self.untracked += 1
            return False
        classes.add(job_class)
        return True

    def add(self, attribute: str, group: str, job_class: JobClass, wait: float) -> None:
        """One placement's wait in an admitted class (the group names come from the bounded
        ledger)."""
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
        """End of a batch: every active cell's batch becomes a row of each of its groups
        matched in it, and batches older than the window leave."""
        self.batch += 1
        index = self.batch
        oldest = index - self.window
        resync = index % _RESYNC_EVERY == 0
        for cell in self.cells.values():
            ring = cell.ring
            while ring and ring[0][0] <= oldest:
                _, n, total, waited, groups = ring.popleft()
                _rows(cell.sums, -1.0, n, total, waited, groups)
            batch = cell.open
            if batch:
                cell.open = {}
                n = sum(v[0] for v in batch.values())
                total = sum(v[1] for v in batch.values())
                waited = sum(v[2] for v in batch.values())
                if total > 0:  # a batch in which nobody waited says nothing of who waits
                    ring.append((index, n, total, waited, batch))
                    _rows(cell.sums, 1.0, n, total, waited, batch)
            if resync:
                self._resync(cell)

    @staticmethod
    def _resync(cell: _Cell) -> None:
        """Recompute the running sums from the window's batches (bounds rounding drift)."""
        sums: dict[str, list[float]] = {}
        for _, n, total, waited, groups in cell.ring:
            _rows(sums, 1.0, n, total, waited, groups)
        cell.sums = {name: s for name, s in sums.items() if s[_ROWS] > 0.5}

    def evaluate(self, skip: frozenset[str] = frozenset()) -> list[WaitGap]:
        """Every comparison with support (groups in ``skip``, the overflow group, are only
        part of the rest); ``significant`` marks the findings."""
        tests = []
        need = self.min_support
        for (attribute, job_class), cell in sorted(self.cells.items()):
            for name, s in sorted(cell.sums.items()):
                if (name in skip or s[_ROWS] < MIN_BATCHES - 0.5 or s[_KG] < need
                        or s[_KR] < need or not (s[_A] > 0 and s[_C] > 0)):
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


def _rows(sums: dict[str, list[float]], sign: float, n: float, total: float, waited: float,
          groups: dict[str, list[float]]) -> None:
    """Add or remove one batch's rows: one per group matched in it (it and the rest both
    placed a job of the class; ``total`` > 0)."""
    for name, (ng, wg, kg) in groups.items():
        if ng >= n:
            continue  # nobody else placed a job of the class: nothing to match it with
        s = sums.get(name)
        if s is None:
            s = sums[name] = [0.0] * _WIDTH
        _row_sums(s, sign, ng, wg, kg, n - ng, total - wg, waited - kg)
