"""The shadow scheduler: an online model of the scheduler's decisions, learned from the stream.

:class:`ShadowModel` predicts what the scheduler decides (its tier when it places a job, else
its action) from the job's own inputs, the audited attributes and the decision context the
scheduler reported (``features``). It is River's multinomial logistic regression
(``SoftmaxRegression``, plain SGD), trained in stream order on a keyed-hash subsample of
placements, so the same events give the same model bit for bit. Its prequential accuracy
(predict, then learn) over the last 1,000 examples says how far its "what if" answers can be
trusted. :class:`DeadlineModel` is the same idea for outcomes: the probability that a job meets
its deadline, learned from joined outcomes.

Their columns are capped (:class:`Vocabulary`): the first ``cap`` distinct category values,
attribute values and context keys they learn from get a column of their own; later ones share
their family's overflow column (``class=__other__``, ``attr:KEY=__other__``, ...), so the
models' size and their cost per event stay bounded whatever the input.

Both expose their weights as a matrix (:meth:`ShadowModel.scores`), so the counterfactual
search can evaluate hundreds of candidate jobs in one numpy product; a test shows the matrix
gives River's own probabilities to 1e-9.

>>> model = ShadowModel()
>>> fast = JobInputs(cpu=2, memory_gb=8, gpu=0, slack_h=5.0, runtime_h=1.0, job_class="batch")
>>> big = JobInputs(cpu=32, memory_gb=128, gpu=4, slack_h=0.2, runtime_h=4.0,
...                 job_class="training")
>>> for _ in range(200):
...     _ = model.update(featurize(fast), "spot").update(featurize(big), "on_demand")
>>> model.predict(featurize(fast)), model.predict(featurize(big)), model.version
('spot', 'on_demand', 400)
>>> model.accuracy > 0.99
True
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from typing import Any, Final

import numpy as np
import orjson
from river import linear_model, metrics, optim, utils

from detectors.job_inputs import JobInputs, label_of

__all__ = ["CONTROLLABLE", "OVERFLOW_FEATURE", "DeadlineModel", "JobInputs", "ShadowModel",
           "Vocabulary", "featurize", "input_columns", "label_of"]

CONTROLLABLE: Final = ("cpu", "memory_gb", "gpu", "deadline", "job_class")
"""Inputs a job's owner controls: the counterfactual search may change these only."""
_ACCURACY_WINDOW: Final = 1000
MAX_NAME: Final = 256
"""Characters a feature name (or a decision label) may have and get a column of its own."""
OVERFLOW_FEATURE: Final = "__other__"
"""The value (or context key) of a family's overflow column: ``class=__other__``, ..."""


def _log2p(value: float) -> float:
    return math.log2(1.0 + max(value, 0.0))


def input_columns(name: str, value: object, runtime_h: float | None) -> dict[str, float]:
    """The feature columns one input contributes (each input owns its own columns).

    ``name`` is one of :data:`CONTROLLABLE`; ``value`` is the input's value (for ``deadline``,
    the slack in hours). Because inputs never share columns, a change to several inputs is the
    sum of their separate column changes: the search relies on it.
    """
    if value is None:
        return {}
    if name == "cpu":
        return {"cpu": _log2p(float(value))}  # type: ignore[arg-type]
    if name == "memory_gb":
        return {"mem": _log2p(float(value))}  # type: ignore[arg-type]
    if name == "gpu":
        return {"gpu": _log2p(float(value))}  # type: ignore[arg-type]
    if name == "deadline":
        slack = float(value)  # type: ignore[arg-type]
        out = {"slack": math.log1p(max(slack, 0.0)), "late": 1.0 if slack <= 0 else 0.0}
        if runtime_h is not None and runtime_h > 0:
            ratio = max(slack, 1e-3) / runtime_h
            out["slack_ratio"] = max(-5.0, min(5.0, math.log(ratio)))
        return out
    if name == "job_class":
        return {f"class={value}": 1.0}
    raise ValueError(f"not a controllable input: {name!r}; valid: {', '.join(CONTROLLABLE)}")


class Vocabulary:
    """The named feature columns the models have, at most ``cap`` of them.

    Sizes, times and the bias are always columns of their own (they are a fixed few). A
    category value, an attribute value or a context key gets a column the first time the
    models learn from it, while fewer than ``cap`` are named; after that, a new one is folded
    into its family's overflow column (``class=__other__``, ``priority=__other__``,
    ``attr:KEY=__other__``, and ``ctx:__other__``, where folded context values add up).
    Admission is in learning order, which the stream fixes, so a re-derivation gets the same
    columns. When answering (``admit=False``) a name the models never learned keeps its own
    (all-zero) column while there is room, exactly as if it were new, and is folded once the
    vocabulary is full, as it would have been had they learned it. A name longer than
    :data:`MAX_NAME` characters is always folded, so the columns' text is bounded too.

    >>> v = Vocabulary(cap=2)
    >>> [v.column(f"class={c}", "class=", admit=True) for c in ("a", "b", "c", "a")]
    ['class=a', 'class=b', 'class=__other__', 'class=a']
    >>> v.folded, v.holds("class=c"), v.column("class=z", "class=", admit=False)
    (1, False, 'class=__other__')
    """

    __slots__ = ("_names", "cap", "folded")

    def __init__(self, cap: int) -> None:
        if cap < 1:
            raise ValueError(f"cap must be >= 1, got {cap!r}")
        self.cap = cap
        self._names: set[str] = set()
        self.folded = 0
        """Learned examples' columns that went to an overflow column (counted per column)."""

    def __len__(self) -> int:
        return len(self._names)

    def holds(self, name: str) -> bool:
        """Whether ``name`` is a column of its own (a learned name, or room for it)."""
        return name in self._names or (len(self._names) < self.cap and len(name) <= MAX_NAME)

    def column(self, name: str, family: str, admit: bool) -> str:
        """The column ``name`` (a value in ``family``, such as ``"class="``) goes to."""
        names = self._names
        if name in names:
            return name
        if len(names) < self.cap and len(name) <= MAX_NAME:
            if admit:
                names.add(name)
            return name
        if admit:
            self.folded += 1
        return family + OVERFLOW_FEATURE


def featurize(job: JobInputs, vocabulary: Vocabulary | None = None,
              admit: bool = False) -> dict[str, float]:
    """The model's feature dict for a job (logs for sizes and times, one-hot for categories),
    its categories and context keys named through ``vocabulary`` (admitting new ones when
    ``admit``; every name is its own column without one)."""
    def named(name: str, family: str) -> str:
        return name if vocabulary is None else vocabulary.column(name, family, admit)

    x: dict[str, float] = {"bias": 1.0}
    x.update(input_columns("cpu", job.cpu, None))
    x.update(input_columns("memory_gb", job.memory_gb, None))
    x.update(input_columns("gpu", job.gpu, None))
    x.update(input_columns("deadline", job.slack_h, job.runtime_h))
    if job.job_class is not None:
        x[named(f"class={job.job_class}", "class=")] = 1.0
    if job.runtime_h is not None:
        x["runtime"] = math.log1p(max(job.runtime_h, 0.0))
    if job.priority is not None:
        x[named(f"priority={job.priority}", "priority=")] = 1.0
    for key, value in job.attributes:
        x[named(f"attr:{key}={value}", f"attr:{key}=")] = 1.0
    for key, number in job.context:
        column = named(f"ctx:{key}", "ctx:")
        x[column] = x.get(column, 0.0) + math.copysign(math.log1p(abs(number)), number)
    return x


def _digest(tables: Iterable[tuple[object, Mapping[str, float]]], extra: float = 0.0) -> str:
    """SHA-256 of weight tables (keys in learning order, which the stream fixes)."""
    body = [[str(label), dict(weights)] for label, weights in tables]
    return hashlib.sha256(orjson.dumps([body, extra])).hexdigest()


class _Prequential:
    """An online River model scored before it learns each example (prequential accuracy)."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self._accuracy: Any = utils.Rolling(metrics.Accuracy, window_size=_ACCURACY_WINDOW)
        self._version = 0

    def _learn(self, x: dict[str, float], y: object, predicted: object) -> None:
        if self._version:
            self._accuracy.update(y, predicted)
        self._model.learn_one(x, y)
        self._version += 1

    @property
    def version(self) -> int:
        """Examples learned so far: the model a record names is the one after that many."""
        return self._version

    @property
    def accuracy(self) -> float | None:
        """Share of the last 1,000 examples the model predicted right before learning them."""
        return float(self._accuracy.get()) if self._version > 1 else None


class _ScoredSoftmax(linear_model.SoftmaxRegression):
    """River's ``SoftmaxRegression`` with plain SGD, learning from probabilities already at hand.

    River's ``learn_one`` computes the current probabilities, then one gradient dict per label,
    then an optimizer step that reads the learning rate through two calls per weight. The
    prequential score has just computed those probabilities, so :meth:`learn_scored` takes
    them and applies the same update in one pass: ``w[i] -= lr * (x[i] * g + l2 * w[i])`` for
    each label's loss gradient ``g`` (River's ``CrossEntropy``), the same floating-point
    operations in the same order, so the weights are River's bit for bit (a test checks it).
    """

    def __init__(self, learning_rate: float, l2: float) -> None:
        super().__init__(optimizer=optim.SGD(learning_rate), l2=l2)
        self.learning_rate = learning_rate  # River's repr and clone read the __init__ names
        self._rate = self.optimizer.learning_rate  # SGD's constant schedule: the same float

    def learn_scored(self, x: dict[str, float], y: str, y_pred: dict[Any, float]) -> None:
        """``learn_one(x, y)``, given ``y_pred = predict_proba_one(x)`` under these weights."""
        rate, l2, weights = self._rate, self.l2, self.weights
        gradient: dict[Any, float] = self.loss.gradient(y_true=y, y_pred=y_pred)
        for label, loss in gradient.items():
            w = weights[label]
            for i, xi in x.items():
                w[i] -= rate * (xi * loss + l2 * w.get(i, 0))


class ShadowModel(_Prequential):
    """Multinomial logistic regression of the scheduler's decision label (River).

    Parameters are the SGD learning rate and L2 penalty. ``update(x, label)`` first scores the
    current model on ``x`` (prequential accuracy), then learns from it with the probabilities
    that score computed (:class:`_ScoredSoftmax`), and returns self.
    """

    def __init__(self, learning_rate: float = 0.05, l2: float = 0.0) -> None:
        if not learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {learning_rate!r}")
        if not l2 >= 0:
            raise ValueError(f"l2 must be >= 0, got {l2!r}")
        self.learning_rate = learning_rate
        self.l2 = l2
        super().__init__(_ScoredSoftmax(learning_rate, l2))

    def update(self, x: dict[str, float], label: str) -> ShadowModel:
        proba = self._model.predict_proba_one(x)
        if self._version:
            self._accuracy.update(label, max(proba, key=proba.__getitem__) if proba else None)
        self._model.learn_scored(x, label, proba)
        self._version += 1
        return self

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self._model.weights)

    def predict_proba(self, x: dict[str, float]) -> dict[str, float]:
        """River's own probabilities (the reference the matrix form is tested against)."""
        return dict(self._model.predict_proba_one(x))

    def predict(self, x: dict[str, float]) -> str | None:
        proba = self.predict_proba(x)
        return max(proba, key=proba.__getitem__) if proba else None

    def matrix(self, columns: list[str]) -> np.ndarray:
        """The weights as a (labels × columns) matrix, rows in :attr:`labels` order."""
        weights = self._model.weights
        return np.array([[table.get(c, 0.0) for c in columns] for table in weights.values()],
                        dtype=np.float64).reshape(len(weights), len(columns))

    @staticmethod
    def probabilities(rows: np.ndarray, matrix: np.ndarray) -> np.ndarray:
        """Softmax probabilities (rows × labels) of feature rows under a weight matrix."""
        logits = rows @ matrix.T
        logits -= logits.max(axis=1, keepdims=True)
        np.exp(logits, out=logits)
        logits /= logits.sum(axis=1, keepdims=True)
        out: np.ndarray = logits
        return out

    def scores(self, columns: list[str], rows: np.ndarray) -> np.ndarray:
        """Probabilities (rows × labels, in :attr:`labels` order) for a feature matrix."""
        return self.probabilities(rows, self.matrix(columns))

    def digest(self) -> str:
        """SHA-256 of the weights: two models with the same digest answer the same."""
        return _digest(self._model.weights.items())


class DeadlineModel(_Prequential):
    """Logistic regression of ``deadline_met`` on the job's inputs (River), with its accuracy."""

    def __init__(self, learning_rate: float = 0.05) -> None:
        if not learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {learning_rate!r}")
        super().__init__(linear_model.LogisticRegression(optimizer=optim.SGD(learning_rate)))

    def update(self, x: dict[str, float], met: bool) -> DeadlineModel:
        self._learn(x, met, self.probability(x) >= 0.5 if self._version else None)
        return self

    def probability(self, x: dict[str, float]) -> float:
        return float(self._model.predict_proba_one(x)[True])

    @property
    def intercept(self) -> float:
        return float(self._model.intercept)

    def vector(self, columns: list[str]) -> np.ndarray:
        weights = self._model.weights
        return np.array([weights.get(c, 0.0) for c in columns], dtype=np.float64)

    def scores(self, columns: list[str], rows: np.ndarray,
               vector: np.ndarray | None = None) -> np.ndarray:
        """P(deadline met) for each row of a feature matrix (River's sigmoid, vectorised)."""
        if vector is None:
            vector = self.vector(columns)
        logit = rows @ vector + self._model.intercept
        out: np.ndarray = 1.0 / (1.0 + np.exp(-np.clip(logit, -30.0, 30.0)))
        out[logit < -30] = 0.0
        out[logit > 30] = 1.0
        return out

    def digest(self) -> str:
        return _digest([("met", self._model.weights)], float(self._model.intercept))
