"""Deep audit: the shadow model's matrix form, the counterfactual search against brute force,
and group-flip rates that tell a drifting scheduler from a fair one."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from detectors import AuditCore, CoreConfig
from detectors.audit_work import AuditRequest, Explain
from detectors.counterfactual import SearchSpace, steps_between
from detectors.deep_audit import DeepAuditor
from detectors.job_inputs import JobInputs
from detectors.shadow import featurize
from simulator import SCENARIOS, Simulation


def _trained(scenario: str, events: int, seed: int, config: CoreConfig | None = None,
             space: SearchSpace | None = None, truth: dict[str, object] | None = None,
             records: list[dict[str, object]] | None = None,
             ) -> tuple[DeepAuditor, list[AuditRequest]]:
    """Run the core over a simulated stream, feeding an auditor; keep the audit requests.

    With ``records``, each request is also explained in stream order (as the service does).
    """
    core = AuditCore(config or CoreConfig())
    auditor = DeepAuditor(core.config.preferred_tiers, space)
    requests: list[AuditRequest] = []
    simulation = Simulation(SCENARIOS[scenario], events, seed=seed)
    for raw in simulation:
        core.process(raw)
        for item in core.drain().audit_work:
            if isinstance(item, Explain):
                request = auditor.builder.request(item)
                requests.append(request)
                if records is not None:
                    records.append(auditor.explain(request))
            else:
                auditor.apply(item)
    if truth is not None:
        truth.update(simulation.truth)
    return auditor, requests


@pytest.fixture(scope="module")
def trained() -> tuple[DeepAuditor, list[AuditRequest]]:
    return _trained("baseline", 30_000, seed=5)


def test_matrix_form_gives_rivers_own_probabilities(trained: tuple[DeepAuditor, list[AuditRequest]]
                                                    ) -> None:
    auditor, requests = trained
    assert auditor.shadow.version > 1000 and auditor.deadline.version > 500
    for item in requests[:50]:
        x = featurize(item.inputs)
        columns = sorted(x)
        row = np.array([[x[c] for c in columns]])
        reference = auditor.shadow.predict_proba(x)
        fast = auditor.shadow.scores(columns, row)[0]
        for label, p in zip(auditor.shadow.labels, fast, strict=True):
            assert math.isclose(p, reference[label], rel_tol=1e-9, abs_tol=1e-12)
        met = auditor.deadline.scores(columns, row)[0]
        assert math.isclose(met, auditor.deadline.probability(x), rel_tol=1e-9, abs_tol=1e-12)


def test_the_shadow_learns_exactly_as_rivers_own_softmax_regression() -> None:
    """The cheaper update (probabilities reused from the prequential score, one pass per
    label) gives River's ``SoftmaxRegression`` weights bit for bit, new labels and L2 included,
    so a replay by an earlier version's model reproduces the same digests."""
    from river import linear_model, optim

    from detectors.shadow import ShadowModel
    rng = np.random.default_rng(3)
    for l2 in (0.0, 0.01):
        ours = ShadowModel(0.1, l2)
        river = linear_model.SoftmaxRegression(optimizer=optim.SGD(0.1), l2=l2)
        for step in range(3000):
            x = {"bias": 1.0, "cpu": float(rng.normal()), f"attr:team={rng.integers(9)}": 1.0,
                 f"ctx:{rng.integers(40)}": float(rng.normal(0, 3))}
            label = f"tier{rng.integers(2 + min(step // 500, 4))}"  # labels keep appearing
            ours.update(x, label)
            river.learn_one(x, label)
        theirs = {label: dict(w) for label, w in river.weights.items()}
        assert {label: dict(w) for label, w in ours._model.weights.items()} == theirs
        assert list(ours._model.weights) == list(theirs)  # labels in the same order
        assert all(list(ours._model.weights[k]) == list(v) for k, v in theirs.items())


_SMALL = SearchSpace(cpu=(1.0, 2.0, 4.0, 8.0, 16.0), memory_gb=(4.0, 16.0, 64.0),
                     gpu=(0.0, 1.0, 2.0), deadline_h=(1.0, 4.0), max_changes=3, alternatives=3)


def _brute_force(auditor: DeepAuditor, inputs: JobInputs, classes: list[str]
                 ) -> tuple[int, int] | None:
    """Smallest (changed inputs, distance) over the whole grid, by River's own predictions."""
    best: tuple[int, int] | None = None
    slack = inputs.slack_h
    assert slack is not None and inputs.cpu is not None and inputs.memory_gb is not None
    assert inputs.gpu is not None
    deadlines = [(slack, 0)] + [(slack + ext, i + 1) for i, ext in enumerate(_SMALL.deadline_h)]
    for cpu, memory, gpu, (new_slack, d_steps), job_class in itertools.product(
            (*_SMALL.cpu, inputs.cpu), (*_SMALL.memory_gb, inputs.memory_gb),
            (*_SMALL.gpu, inputs.gpu), deadlines, classes):
        candidate = JobInputs(cpu, memory, gpu, new_slack, inputs.runtime_h, job_class,
                              inputs.priority, inputs.attributes, inputs.context)
        changed = [cpu != inputs.cpu, memory != inputs.memory_gb, gpu != inputs.gpu,
                   d_steps > 0, job_class != inputs.job_class]
        if not any(changed):
            continue
        label = auditor.shadow.predict(featurize(candidate))
        if label not in auditor.preferred:
            continue
        distance = (max(1, steps_between(_SMALL.cpu, inputs.cpu, cpu)) if changed[0] else 0) + \
            (max(1, steps_between(_SMALL.memory_gb, inputs.memory_gb, memory))
             if changed[1] else 0) + \
            (max(1, steps_between(_SMALL.gpu, inputs.gpu, gpu)) if changed[2] else 0) + \
            d_steps + (1 if changed[4] else 0)
        key = (sum(changed), distance)
        if best is None or key < best:
            best = key
    return best


def test_counterfactual_search_matches_brute_force_on_a_small_grid() -> None:
    auditor, requests = _trained("baseline", 30_000, seed=6, space=_SMALL)
    classes = sorted(auditor._classes)
    asked = found = 0
    for item in requests:
        request = item
        if request.preferred or request.inputs.slack_h is None:
            continue
        record = auditor.explain(request)
        answer = record["explanations"]["smallest_change"].get(  # type: ignore[index]
            "preferred_tier")
        if answer is None or answer["already"]:
            continue
        truth = _brute_force(auditor, request.inputs, classes)
        if truth is None:
            assert answer["alternatives"] == []  # nothing feasible: nothing claimed
            continue
        if truth[0] > _SMALL.max_changes:  # beyond the search's sparsity: nothing claimed
            assert answer["alternatives"] == [], (truth, answer)
            continue
        asked += 1
        assert answer["alternatives"], truth  # within it: found, and the smallest
        best = answer["alternatives"][0]
        found += (best["changed"], best["distance"]) == truth
    assert asked >= 40
    assert found == asked


def test_every_alternative_is_feasible_and_wanted() -> None:
    auditor, requests = _trained("baseline", 20_000, seed=7, space=_SMALL)
    checked = 0
    for item in requests:
        record = auditor.explain(item)
        answer = record["explanations"].get("smallest_change", {})  # type: ignore[union-attr]
        for alt in (answer.get("preferred_tier") or {}).get("alternatives", []):
            changes = alt["changes"]
            inputs = item.inputs
            values = {"cpu": inputs.cpu, "memory_gb": inputs.memory_gb, "gpu": inputs.gpu,
                      "job_class": inputs.job_class}
            slack = inputs.slack_h
            for name, (_, new) in changes.items():
                if name == "deadline":
                    extension = float(str(new).strip("+ h"))
                    assert extension in _SMALL.deadline_h
                    assert slack is not None
                    slack += extension
                else:
                    ladder = {"cpu": _SMALL.cpu, "memory_gb": _SMALL.memory_gb,
                              "gpu": _SMALL.gpu}.get(name)
                    assert ladder is None or new in ladder
                    values[name] = new
            changed = JobInputs(values["cpu"], values["memory_gb"], values["gpu"], slack,
                                inputs.runtime_h, values["job_class"], inputs.priority,
                                inputs.attributes, inputs.context)
            assert auditor.shadow.predict(featurize(changed)) in auditor.preferred
            assert len(changes) <= _SMALL.max_changes
            checked += 1
    assert checked >= 50


def _flip_rate(scenario: str, change: int | None = None) -> tuple[int, int, int]:
    """Favoured teams' sampled decisions after the change that flip when made genomics'.

    ``change``: the event index to count from (default: the scenario's own change point).
    """
    truth: dict[str, object] = {}
    records: list[dict[str, object]] = []
    _, requests = _trained(scenario, 100_000, seed=3, truth=truth, records=records)
    if change is None:
        change = int(truth["change"]["from_event_index"])  # type: ignore[index]
    flips = total = 0
    for item, record in zip(requests, records, strict=True):
        request = item
        team = dict(request.inputs.attributes).get("team")
        if request.event_index < change or team in (None, "genomics") \
                or "rate" not in request.reasons:
            continue
        explanations = record["explanations"]
        assert isinstance(explanations, dict)
        if not explanations["shadow"]["ready"]:
            continue
        total += 1
        flips += any(f["attribute"] == "team" and f["value"] == "genomics"
                     for f in explanations["group_flips"]["flipped"])
    return flips, total, change


def _wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


@pytest.mark.timeout(300)
def test_group_flips_tell_equity_drift_from_baseline() -> None:
    drift_flips, drift_n, change = _flip_rate("equity_drift")
    base_flips, base_n, _ = _flip_rate("baseline", change)
    assert base_n > 300 and drift_n > 300
    base_low, base_high = _wilson(base_flips, base_n)
    drift_low, drift_high = _wilson(drift_flips, drift_n)
    print(f"flip to genomics: baseline {base_flips}/{base_n} [{base_low:.3f}, {base_high:.3f}]"
          f"; equity_drift {drift_flips}/{drift_n} [{drift_low:.3f}, {drift_high:.3f}]")
    assert drift_low > base_high  # the 95% intervals do not overlap


def test_each_event_is_decoded_once_by_the_core_and_never_by_the_audit(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The audit work carries what the audit needs from the decoded event: a run with every
    record explained decodes exactly as many events as it was given."""
    import detectors.audit_work
    import detectors.deep_audit
    import detectors.events
    import detectors.pipeline

    decoded = [0]
    real = detectors.events.decode_event

    def counting(raw: bytes):  # type: ignore[no-untyped-def]
        decoded[0] += 1
        return real(raw)

    for module in (detectors.events, detectors.pipeline, detectors.audit_work,
                   detectors.deep_audit):
        monkeypatch.setattr(module, "decode_event", counting, raising=False)
    records: list[dict[str, object]] = []
    auditor, requests = _trained("equity_drift", 6_000, seed=2, records=records)
    assert len(records) == len(requests) > 50 and auditor.shadow.version > 500
    assert decoded[0] == 6_000
