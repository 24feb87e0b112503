"""Deep audit of one sampled decision: the shadow scheduler's view, counterfactuals, cost drivers.

The core does not explain decisions itself: it queues work items in stream order
(:mod:`detectors.audit_work`). A :class:`DeepAuditor` applies them in that order, inline
(file replay) or in a worker beside the main flow (live), and in both cases an ``Explain`` is
answered by the models as they stood after exactly the items before it,
so a replay of the same events writes the same record. Everything here is pure and
deterministic; the record names the models' version (examples learned) and weight hash.

Each record answers three questions for its decision:

- **Group flip.** The same job with each other known value of each audited attribute: would the
  shadow scheduler decide differently? Flips are listed.
- **Smallest change** (:mod:`detectors.counterfactual`): the least change to the job's own
  inputs that the shadow scheduler would have answered with a preferred tier, and, when the
  deadline model expects a miss, that it expects to meet the deadline.
- **Cost drivers.** The decision's forecast cost split into runtime, size and rate, each set
  against the typical (geometric mean) placement, largest first, in plain words.
"""


from __future__ import annotations

import math
from typing import Final

import numpy as np

from detectors.audit_work import (
    AuditRequest,
    Learn,
    LearnOutcome,
    RequestBuilder,
    WorkItem,
)
from detectors.counterfactual import Alternative, SearchSpace, smallest_changes
from detectors.job_inputs import JobInputs
from detectors.shadow import (
    MAX_NAME,
    OVERFLOW_FEATURE,
    DeadlineModel,
    ShadowModel,
    Vocabulary,
    featurize,
    input_columns,
)

__all__ = ["DeepAuditor", "base_record", "deferred_record"]

RECORD_VERSION: Final = 2
_FIXED_COLUMNS: Final = ("cpu", "mem", "gpu", "slack", "late", "slack_ratio")
_MAX_CLASSES: Final = 32
_MAX_LABELS: Final = 64
"""Decision labels (tiers and actions) the shadow model tells apart; later ones share
``__other__``, which is never a preferred tier."""
_PENDING_OUTCOMES: Final = 100_000
"""Learned placements remembered while their outcome is awaited (oldest forgotten first)."""
_PENDING_BYTES: Final = 64 << 20
"""What those may take together, at most (each charged its event's
:func:`~detectors.events.held_bytes`, more than its job inputs take)."""


def base_record(request: AuditRequest) -> dict[str, object]:
    """The record fields that need no model: what was decided, why sampled, in which state."""
    return {
        "record_version": RECORD_VERSION,
        "decision_id": request.decision_id,
        "event_index": request.event_index,
        "decided_at": request.decided_at,
        "sampled_because": list(request.reasons),
        "sample_draw": request.sample_draw,
        "event_sha256": request.event_sha256,
        "event": request.event,
        "redacted_fields": list(request.redacted),
        "decision": {"action": request.action, "label": request.label,
                     "preferred": request.preferred},
        "group_state": request.group_state,
        "open_alerts": [list(key) for key in request.open_alerts],
        "config_hash": request.config_hash,
        "versions": dict(request.versions),
    }


def deferred_record(request: AuditRequest, backlog: int) -> dict[str, object]:
    """The record written when the deep-audit backlog is full: complete except explanations.

    ``audit replay`` can still derive the explanations from the archived events later.
    """
    record = base_record(request)
    record["deferred"] = {"reason": "deep-audit backlog full", "backlog": backlog}
    return record


def _money(value: float, currency: str) -> str:
    return f"{value:,.2f} {currency}" if value >= 0.01 else f"{value:.4f} {currency}"


class _Typical:
    """Running geometric mean of a positive quantity."""

    __slots__ = ("n", "total")

    def __init__(self) -> None:
        self.n = 0
        self.total = 0.0

    def add(self, value: float | None) -> None:
        if value is not None and value > 0 and math.isfinite(value):
            self.n += 1
            self.total += math.log(value)

    @property
    def value(self) -> float | None:
        return math.exp(self.total / self.n) if self.n else None


class DeepAuditor:
    """Owns the shadow and deadline models and answers :class:`Explain` items.

    Parameters: the tiers that count as preferred, the counterfactual :class:`SearchSpace`,
    the currency used in plain-words text, the least examples a model needs before it is used
    (``min_examples``), how many values per attribute it remembers (``max_values``) and tries in
    a group flip (``flip_values``), the models' SGD learning rate, and how many named
    feature columns they have at most (``max_features``, :class:`~detectors.shadow.Vocabulary`).
    """

    def __init__(self, preferred_tiers: tuple[str, ...], space: SearchSpace | None = None,
                 currency: str = "USD", min_examples: int = 200, max_values: int = 64,
                 flip_values: int = 8, learning_rate: float = 0.1,
                 builder: RequestBuilder | None = None, max_features: int = 1024) -> None:
        if not preferred_tiers:
            raise ValueError("preferred_tiers must name at least one tier")
        if min_examples < 1 or max_values < 1 or flip_values < 1:
            raise ValueError("min_examples, max_values and flip_values must be >= 1")
        self.preferred = frozenset(preferred_tiers)
        self.space = space or SearchSpace()
        self.currency = currency
        self.min_examples = min_examples
        self.max_values = max_values
        self.flip_values = flip_values
        self.shadow = ShadowModel(learning_rate)
        self.deadline = DeadlineModel(learning_rate)
        self.vocabulary = Vocabulary(max_features)
        self._labels: set[str] = set()
        self._values: dict[str, dict[str, int]] = {}
        self._classes: dict[str, int] = {}
        self._cpu = _Typical()
        self._runtime = _Typical()
        self._rate = _Typical()
        self.explained = 0
        self.failed = 0
        """Sampled decisions whose explanation failed (recorded with the error instead)."""
        self.builder = builder or RequestBuilder(preferred_tiers)
        self._awaiting: dict[str, tuple[JobInputs, int]] = {}
        self._awaiting_bytes = 0
        self._flips: dict[tuple[str, str], list[int]] = {}
        """(attribute, tracked group) -> [decisions whose prediction flipped with that
        attribute's value, decisions checked], since :meth:`take_flip_counts` last ran."""

    # -- learning ------------------------------------------------------------------------

    def apply(self, item: WorkItem) -> dict[str, object] | None:
        """Apply one work item; an :class:`Explain` returns its finished record."""
        if isinstance(item, Learn):
            inputs = item.inputs
            self.learn(inputs, item.label, item.price_per_hour)
            awaiting = self._awaiting
            size = item.held
            old = awaiting.pop(item.decision_id, None)
            if old is not None:
                self._awaiting_bytes -= old[1]
            awaiting[item.decision_id] = (inputs, size)
            self._awaiting_bytes += size
            while len(awaiting) > _PENDING_OUTCOMES or (
                    self._awaiting_bytes > _PENDING_BYTES and len(awaiting) > 1):
                self._awaiting_bytes -= awaiting.pop(next(iter(awaiting)))[1]
            return None
        if isinstance(item, LearnOutcome):
            held = self._awaiting.pop(item.decision_id, None)
            if held is not None:
                self._awaiting_bytes -= held[1]
                self.deadline.update(featurize(held[0], self.vocabulary), item.met)
            return None
        request = self.builder.request(item)
        try:
            return self.explain(request)
        except (ArithmeticError, ValueError) as exc:  # one odd event must not stop the audit
            self.failed += 1
            record = base_record(request)
            record["explanations"] = {"error": f"{type(exc).__name__}: {exc}"}
            return record

    def learn(self, inputs: JobInputs, label: str, price_per_hour: float | None) -> None:
        labels = self._labels
        if label not in labels:
            if len(labels) < _MAX_LABELS and len(label) <= MAX_NAME:
                labels.add(label)
            else:
                label = OVERFLOW_FEATURE
        self.shadow.update(featurize(inputs, self.vocabulary, admit=True), label)
        for key, value in inputs.attributes:
            values = self._values.setdefault(key, {})
            if value in values or len(values) < self.max_values:
                values[value] = values.get(value, 0) + 1
        if inputs.job_class is not None and (inputs.job_class in self._classes or (
                len(self._classes) < _MAX_CLASSES and len(inputs.job_class) <= MAX_NAME)):
            self._classes[inputs.job_class] = self._classes.get(inputs.job_class, 0) + 1
        if price_per_hour is not None and inputs.cpu:
            self._cpu.add(inputs.cpu)
            self._runtime.add(inputs.runtime_h)
            self._rate.add(price_per_hour / inputs.cpu)

    # -- explaining ----------------------------------------------------------------------

    def _flip_values(self, attribute: str) -> list[str]:
        """The attribute's most frequent learned values that have a column of their own."""
        counts = self._values.get(attribute, {})
        held = self.vocabulary.holds
        ranked = sorted(((value, n) for value, n in counts.items()
                         if held(f"attr:{attribute}={value}")), key=lambda kv: (-kv[1], kv[0]))
        return [value for value, _ in ranked[:self.flip_values]]

    def _classes_held(self) -> list[str]:
        """Learned job classes with a column of their own (the search's candidate classes)."""
        held = self.vocabulary.holds
        return sorted(c for c in self._classes if held(f"class={c}"))

    def explain(self, request: AuditRequest) -> dict[str, object]:
        self.explained += 1
        record = base_record(request)
        record["shadow_model"] = {"version": self.shadow.version, "sha256": self.shadow.digest(),
                                  "accuracy": _round(self.shadow.accuracy),
                                  "labels": sorted(self.shadow.labels)}
        record["deadline_model"] = {"version": self.deadline.version,
                                    "sha256": self.deadline.digest(),
                                    "accuracy": _round(self.deadline.accuracy)}
        record["explanations"] = explanations = self._explanations(request)
        self._count_flips(request, explanations.get("group_flips"))
        return record

    def _count_flips(self, request: AuditRequest, flips: object) -> None:
        """A decision is checked for every attribute of its event that has a tracked group
        (pairs of attributes are never flipped, so never counted), once a group flip was tried
        at all; it counts as flipped for an attribute whose other values change the shadow's
        answer (the report's group-flip rate, docs/report.md)."""
        if not isinstance(flips, dict) or not flips.get("checked"):
            return
        flipped = {f["attribute"] for f in flips.get("flipped", ())}
        keys = {key for key, _ in request.inputs.attributes}
        for attribute, held in request.group_state.items():
            group = held.get("group")
            if group is None or attribute not in keys:
                continue
            cell = self._flips.setdefault((attribute, str(group)), [0, 0])
            cell[0] += attribute in flipped
            cell[1] += 1

    def take_flip_counts(self) -> list[tuple[str, str, int, int]]:
        """``(attribute, group, flipped, checked)`` counted since the last call, then reset:
        small deltas for the metrics, so the worker process never sends whole tables."""
        out = [(a, g, k, n) for (a, g), (k, n) in sorted(self._flips.items())]
        self._flips.clear()
        return out

    def _explanations(self, request: AuditRequest) -> dict[str, object]:
        inputs = request.inputs
        vocabulary = self.vocabulary
        x = featurize(inputs, vocabulary)
        flips = [(key, value, alt) for key, value in inputs.attributes
                 for alt in self._flip_values(key) if alt != value]
        classes = self._classes_held()
        columns = list(dict.fromkeys([*x, *_FIXED_COLUMNS, *(f"class={c}" for c in classes),
                                      *(f"attr:{k}={a}" for k, _, a in flips)]))
        index = {c: i for i, c in enumerate(columns)}
        base = np.zeros(len(columns))
        for column, value in x.items():
            base[index[column]] = value
        out: dict[str, object] = {"cost_drivers": self._cost_drivers(request)}
        if self.shadow.version < self.min_examples:
            out["shadow"] = {"ready": False,
                             "note": f"the shadow model has learned {self.shadow.version} "
                                     f"decisions; it answers from {self.min_examples}"}
            return out
        labels = self.shadow.labels
        preferred = np.array([label in self.preferred for label in labels])
        weights = self.shadow.matrix(columns)
        probabilities = ShadowModel.probabilities(base[None, :], weights)[0]
        predicted = labels[int(np.argmax(probabilities))]
        out["shadow"] = {
            "ready": True, "predicted": predicted, "actual": request.label,
            "agrees": predicted == request.label,
            "probability": _round(float(probabilities.max())),
            "preferred_probability": _round(float(probabilities[preferred].sum())),
        }
        out["group_flips"] = self._group_flips(weights, index, base, flips, predicted)
        wants: dict[str, object] = {}
        inputs_map: dict[str, object] = {
            "cpu": inputs.cpu, "memory_gb": inputs.memory_gb, "gpu": inputs.gpu,
            "deadline": inputs.slack_h, "job_class": inputs.job_class}

        def columns_of(name: str, value: object) -> dict[str, float]:
            found = input_columns(name, value, inputs.runtime_h)
            if name != "job_class":
                return found
            return {vocabulary.column(c, "class=", admit=False): v for c, v in found.items()}

        if not request.preferred:
            if predicted in self.preferred:
                wants["preferred_tier"] = {"already": True, "alternatives": []}
            else:
                found = smallest_changes(
                    self.space, inputs_map, classes, columns_of, columns, base, weights,
                    lambda logits: preferred[np.argmax(logits, axis=1)],
                    lambda logits: _softmax(logits)[:, preferred].sum(axis=1))
                wants["preferred_tier"] = {"already": False, "alternatives": _alts(found)}
        if self.deadline.version >= self.min_examples and inputs.slack_h is not None:
            vector = self.deadline.vector(columns)
            met = float(self.deadline.scores(columns, base[None, :], vector)[0])
            if met < 0.5:
                intercept = self.deadline.intercept

                def met_probability(logits: np.ndarray) -> np.ndarray:
                    z = np.clip(logits[:, 0] + intercept, -30.0, 30.0)
                    out: np.ndarray = 1.0 / (1.0 + np.exp(-z))
                    return out

                found = smallest_changes(
                    self.space, inputs_map, classes, columns_of, columns, base,
                    vector[None, :], lambda logits: logits[:, 0] + intercept >= 0.0,
                    met_probability)
                wants["deadline_met"] = {"probability_now": _round(met),
                                         "alternatives": _alts(found)}
        out["smallest_change"] = wants
        return out

    def _group_flips(self, weights: np.ndarray, index: dict[str, int], base: np.ndarray,
                     flips: list[tuple[str, str, str]], predicted: str) -> dict[str, object]:
        if not flips:
            return {"checked": 0, "flipped": []}
        rows = np.repeat(base[None, :], len(flips), axis=0)
        for row, (key, value, alt) in enumerate(flips):
            own = index.get(self.vocabulary.column(f"attr:{key}={value}", f"attr:{key}=",
                                                   admit=False))
            if own is not None:
                rows[row, own] = 0.0
            rows[row, index[f"attr:{key}={alt}"]] = 1.0
        scores = ShadowModel.probabilities(rows, weights)
        labels = self.shadow.labels
        best = scores.argmax(axis=1)
        flipped = []
        for changed in np.flatnonzero(np.array(labels)[best] != predicted):
            key, _, alt = flips[changed]
            flipped.append({"attribute": key, "value": alt, "predicted": labels[best[changed]],
                            "probability": _round(float(scores[changed, best[changed]]))})
        return {"checked": len(flips), "flipped": flipped}

    def _cost_drivers(self, request: AuditRequest) -> list[str]:
        if request.action != "place":
            verb = {"queue": "queued", "reject": "rejected", "preempt": "preempted"}
            return [f"No cost: the job was {verb.get(request.action, request.action)}, "
                    "not placed."]
        inputs = request.inputs
        price, runtime, cpu = request.price_per_hour, inputs.runtime_h, inputs.cpu
        if not (price and runtime and cpu and price > 0 and runtime > 0 and cpu > 0
                and math.isfinite(price * runtime * cpu)):
            return ["Cost not split: the event lacks a positive price_per_hour, runtime "
                    "forecast or cpu request."]
        cost = request.predicted_cost if request.predicted_cost is not None else price * runtime
        typical_runtime, typical_cpu, typical_rate = (
            self._runtime.value, self._cpu.value, self._rate.value)
        if typical_runtime is None or typical_cpu is None or typical_rate is None:
            return [f"Forecast cost {_money(cost, self.currency)}; no typical placement to "
                    "compare with yet."]
        rate = price / cpu
        gpu = " (GPUs included)" if inputs.gpu else ""
        factors = [
            (runtime / typical_runtime,
             f"Runtime: forecast {runtime:.2f} h, {{f}} the typical {typical_runtime:.2f} h"),
            (cpu / typical_cpu, f"Size: {cpu:g} CPUs, {{f}} the typical {typical_cpu:.1f}"),
            (rate / typical_rate,
             f"Rate: {rate:.4f} {self.currency} per CPU-hour on {request.label}{gpu}, "
             f"{{f}} the typical {typical_rate:.4f}"),
        ]
        if not all(0 < f[0] < math.inf for f in factors) or not cost > 0:
            return [f"Forecast cost {_money(max(cost, 0.0), self.currency)}; too far from a "
                    "typical placement to split."]
        factors.sort(key=lambda f: -abs(math.log(f[0])))
        out = []
        for factor, text in factors:
            times = f"{factor:.1f}×" if factor >= 1 else f"{factor:.2f}×"
            alt = cost / factor
            out.append(text.format(f=times) + f": at the typical value it would cost "
                       f"{_money(alt, self.currency)} instead of {_money(cost, self.currency)}.")
        return out


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    out: np.ndarray = z
    return out


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _alts(found: list[Alternative]) -> list[dict[str, object]]:
    return [{"changes": a.changes, "changed": len(a.changes), "distance": a.distance,
             "probability": a.score} for a in found]
