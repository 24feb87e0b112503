"""Counterfactuals: the smallest feasible change to a job that gets the wanted outcome.

The X-Sched question (seed 002): "what is the least I could change about my job so that it
would have been placed on cheap compute, or met its deadline?" A change may touch only the
inputs the job's owner controls (requested cpu, memory and gpu, the deadline and the job
class), and only to allowed values (:class:`SearchSpace`: instance sizes, deadline extensions,
job classes seen). Candidates are every combination of one, then two, then up to
``max_changes`` changed inputs, each scored in numpy without building a row (each input owns
its own feature columns and the models are linear, so a candidate's logits are the job's
logits plus each changed input's logit delta: a precomputed template). The search stops at
the smallest number of changed inputs that has any feasible candidate, which makes the answer
exact on the grid: no feasible change with fewer changed inputs, or the same number and a
shorter distance, exists. Distance (proximity) counts
steps along each input's ladder of allowed values (one step for a job class). Up to
``alternatives`` answers are kept, preferring ones that change different inputs (diversity).

A toy linear model whose one output is the number of cpus requested, and a wanted outcome of
two or fewer:

>>> space = SearchSpace(cpu=(1, 2, 4, 8), memory_gb=(4, 8), gpu=(0, 1), deadline_h=(1, 4))
>>> inputs = {"cpu": 8.0, "memory_gb": 8.0, "gpu": 0.0, "deadline": 2.0, "job_class": "batch"}
>>> wanted = lambda out: out[:, 0] <= 2
>>> columns_of = lambda name, v: {"c": float(v)} if name == "cpu" else {}
>>> found = smallest_changes(space, inputs, ["a", "b"], columns_of, ["c"], np.array([8.0]),
...                          np.array([[1.0]]), wanted, lambda out: np.ones(len(out)))
>>> [(a.changes, a.distance) for a in found]
[({'cpu': [8.0, 2]}, 2), ({'cpu': [8.0, 1]}, 3)]
"""

from __future__ import annotations

import bisect
import functools
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Alternative", "SearchSpace", "smallest_changes", "steps_between"]

_SHORTLIST = 256
"""Nearest feasible candidates considered when picking diverse alternatives."""
_SLACK = 4
"""Steps beyond the nearest feasible distance within which alternatives are still offered."""


@dataclass(frozen=True, slots=True)
class SearchSpace:
    """Allowed values of each controllable input (feasibility) and the search's limits."""

    cpu: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 64)
    memory_gb: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256)
    gpu: tuple[float, ...] = (0, 1, 2, 4, 8)
    deadline_h: tuple[float, ...] = (0.5, 1, 2, 4, 8, 24)
    """Deadline extensions in hours (a deadline is only ever moved later)."""
    max_changes: int = 3
    alternatives: int = 3

    def __post_init__(self) -> None:
        for name in ("cpu", "memory_gb", "gpu", "deadline_h"):
            ladder = getattr(self, name)
            if not ladder or any(not v >= 0 for v in ladder) or list(ladder) != sorted(ladder):
                raise ValueError(f"{name}: must be a non-empty ascending list of numbers >= 0, "
                                 f"got {ladder!r}")
        if not 1 <= self.max_changes <= 5:
            raise ValueError(f"max_changes must be in 1..5, got {self.max_changes!r}")
        if not self.alternatives >= 1:
            raise ValueError(f"alternatives must be >= 1, got {self.alternatives!r}")


@dataclass(frozen=True, slots=True)
class Alternative:
    """One feasible change: ``changes`` maps each changed input to ``[from, to]``."""

    changes: dict[str, list[object]]
    distance: int
    score: float
    """The model's probability of the wanted outcome for the changed job."""


def steps_between(ladder: Sequence[float], start: float, end: float) -> int:
    """Steps along a ladder of allowed values from ``start`` (snapped to it) to ``end``.

    >>> steps_between((1, 2, 4, 8), 3.0, 8)
    2
    """
    return abs(_position(ladder, start) - _position(ladder, end))


def _position(ladder: Sequence[float], value: float) -> int:
    """Index of the allowed value nearest to ``value`` (the lower one on a tie)."""
    right = bisect.bisect_left(ladder, value)
    if right == 0:
        return 0
    if right == len(ladder):
        return len(ladder) - 1
    return right - 1 if value - ladder[right - 1] <= ladder[right] - value else right


def _options(space: SearchSpace, inputs: Mapping[str, object],
             job_classes: Sequence[str]) -> dict[str, list[tuple[object, object, int]]]:
    """Per input: the allowed new values as (value passed to the model, value shown, steps)."""
    out: dict[str, list[tuple[object, object, int]]] = {}
    for name in ("cpu", "memory_gb", "gpu"):
        current = inputs.get(name)
        if current is None:
            continue
        ladder = getattr(space, name)
        now = float(current)  # type: ignore[arg-type]
        out[name] = [(v, v, max(1, steps_between(ladder, now, v))) for v in ladder if v != now]
    slack = inputs.get("deadline")
    if slack is not None:
        out["deadline"] = [(float(slack) + ext, f"+{ext:g} h", i + 1)  # type: ignore[arg-type]
                           for i, ext in enumerate(space.deadline_h) if ext > 0]
    current_class = inputs.get("job_class")
    if current_class is not None:
        out["job_class"] = [(c, c, 1) for c in job_classes if c != current_class]
    return {k: v for k, v in out.items() if v}


def smallest_changes(space: SearchSpace, inputs: Mapping[str, object], job_classes: Sequence[str],
                     columns_of: Callable[[str, object], Mapping[str, float]],
                     columns: list[str], base_row: np.ndarray, weights: np.ndarray,
                     wanted: Callable[[np.ndarray], np.ndarray],
                     score: Callable[[np.ndarray], np.ndarray]) -> list[Alternative]:
    """The feasible changes with the fewest changed inputs, nearest first (see module doc).

    The model is linear in the feature columns: ``weights`` is an (outputs × columns) matrix;
    ``wanted`` maps a matrix of candidate outputs (rows × outputs, without any intercept: add
    it there) to a boolean mask, and ``score`` maps the rows kept to the probability shown.
    ``columns_of(name, value)`` gives an input's feature columns (:func:`input_columns`);
    ``columns`` and ``base_row`` are the model's feature columns and the job's row. Because the
    model is linear and inputs own disjoint columns, a candidate's outputs are the job's outputs
    plus each changed input's output delta, so no candidate row is ever built.
    """
    index = {c: i for i, c in enumerate(columns)}
    options = _options(space, inputs, job_classes)
    base_out = weights @ base_row
    delta_out: dict[str, np.ndarray] = {}
    for name, values in options.items():
        base = columns_of(name, inputs.get(name))
        matrix = np.zeros((len(values), len(columns)))
        for row, (value, _, _) in enumerate(values):
            new = columns_of(name, value)
            for column in set(base) | set(new):
                if column in index:
                    matrix[row, index[column]] = new.get(column, 0.0) - base.get(column, 0.0)
        delta_out[name] = matrix @ weights.T
    names = list(options)
    if not names:
        return []
    deltas = np.vstack([delta_out[n] for n in names])  # one row per (input, allowed value)
    steps = np.concatenate([np.array([o[2] for o in options[n]]) for n in names])
    owner, pick = _owners(tuple(len(options[n]) for n in names))
    for rows in _combinations(tuple(len(options[n]) for n in names), space.max_changes):
        total = base_out + deltas[rows].sum(axis=0)  # candidates × outputs
        mask = wanted(total)
        if not mask.any():
            continue
        distances = steps[rows].sum(axis=0)
        feasible = np.flatnonzero(mask)
        nearest = feasible[distances[feasible] <= distances[feasible].min() + _SLACK]
        scores = score(total[nearest])
        order = np.lexsort((-scores, distances[nearest]))[:_SHORTLIST]
        found: list[tuple[int, tuple[str, ...], tuple[int, ...], float]] = []
        for position, probability in zip(nearest[order], scores[order], strict=True):
            chosen = rows[:, position]
            found.append((int(distances[position]), tuple(names[owner[r]] for r in chosen),
                          tuple(int(pick[r]) for r in chosen), float(probability)))
        return _diverse(found, options, inputs, space.alternatives)
    return []


@functools.lru_cache(maxsize=256)
def _owners(counts: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """For each option row: which input it changes, and which of that input's values it is."""
    owner = np.repeat(np.arange(len(counts)), counts)
    pick = np.concatenate([np.arange(c) for c in counts])
    return owner, pick


@functools.lru_cache(maxsize=256)
def _combinations(counts: tuple[int, ...], max_changes: int) -> tuple[np.ndarray, ...]:
    """Per number of changed inputs (1, 2, ...): an index table (size × candidates) of option
    rows, one row per changed input, every combination of distinct inputs and their values.

    Depends only on how many values each input has, so it is cached across searches.
    """
    starts = np.cumsum((0, *counts))
    tables = []
    for size in range(1, min(max_changes, len(counts)) + 1):
        columns = []
        for combo in itertools.combinations(range(len(counts)), size):
            grids = np.meshgrid(*[np.arange(starts[i], starts[i + 1]) for i in combo],
                                indexing="ij")
            columns.append(np.stack([g.reshape(-1) for g in grids]))
        table = np.concatenate(columns, axis=1)
        table.setflags(write=False)
        tables.append(table)
    return tuple(tables)


def _diverse(found: list[tuple[int, tuple[str, ...], tuple[int, ...], float]],
             options: Mapping[str, list[tuple[object, object, int]]],
             inputs: Mapping[str, object], k: int) -> list[Alternative]:
    """The nearest answer, then nearest ones changing other inputs, then the next nearest."""
    chosen: list[tuple[int, tuple[str, ...], tuple[int, ...], float]] = []
    for candidate in found:
        if len(chosen) == k:
            break
        if all(candidate[1] != c[1] for c in chosen):
            chosen.append(candidate)
    for candidate in found:
        if len(chosen) == k:
            break
        if candidate not in chosen:
            chosen.append(candidate)
    chosen.sort(key=lambda f: (f[0], -f[3]))
    out = []
    for distance, combo, picks, probability in chosen:
        changes: dict[str, list[object]] = {}
        for name, pick in zip(combo, picks, strict=True):
            shown = options[name][pick][1]
            before = inputs.get(name)
            if name == "deadline":
                before = f"{float(before):.2f} h to deadline"  # type: ignore[arg-type]
            changes[name] = [before, shown]
        out.append(Alternative(changes, distance, round(probability, 6)))
    return out
