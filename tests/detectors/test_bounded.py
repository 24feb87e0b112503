"""Bounded state on valid but hostile input: attribute keys admitted by their share of events,
the shadow's feature columns capped, and the join and the sequencer capped in bytes as well as
in count. Before, one event's junk keys took every attribute slot, every distinct key or value
grew the shadow (and each record's weight hash) without end, and the buffers were capped in
count only."""

from __future__ import annotations

import math
import random

import pytest

from detectors import AuditCore, CoreConfig, EquityLedger, OutcomeJoiner
from detectors.audit_work import Explain
from detectors.deep_audit import DeepAuditor
from detectors.events import decode_event, held_bytes
from detectors.groups import AttributeAdmission, GroupStats
from detectors.sequencer import EventTimeSequencer
from detectors.shadow import OVERFLOW_FEATURE, JobInputs, Vocabulary, featurize
from simulator import SCENARIOS, Simulation
from tests.helpers import line, outcome, placement


def _ledger(min_events: int = 20, share: float = 0.05, capacity: int = 64,
            max_attributes: int = 8) -> EquityLedger:
    return EquityLedger(None, (), 64, max_attributes,
                        AttributeAdmission(min_events, share, 64, capacity))


def _count(ledger: EquityLedger, attributes: dict[str, str]) -> list[GroupStats]:
    """Resolve one placement and count it where the core would: in every group returned and
    in every group of a key awaiting admission."""
    groups = ledger.resolve(attributes)
    for stats in groups + ledger.pending_groups:
        stats.decisions += 1
    return groups


def test_a_key_on_one_event_never_takes_a_slot_and_real_keys_count_from_their_first() -> None:
    ledger = _ledger()
    groups = _count(ledger, {f"junk{i}": "x" for i in range(8)} | {"team": "a"})
    assert groups == [] and [s.tracked for s in ledger.pending_groups] == [False] * 9
    for i in range(1, 200):
        _count(ledger, {"team": "ab"[i % 2], "region": "eu"})
    assert ledger.attribute_names == ("team", "region")
    team = ledger.groups["team"]
    # counted from the first event although admitted at the twentieth
    assert team["a"].decisions + team["b"].decisions == 200
    assert ledger.groups["region"]["eu"].decisions == 199
    assert all(s.tracked for s in team.values())
    assert ledger.admission is not None and "junk0" not in ledger.admission.admitted
    assert ledger.admission.awaiting == 8 + 19 + 19


def test_under_a_churn_of_new_keys_a_key_on_most_events_is_still_admitted() -> None:
    """Space-Saving: 31 fresh junk keys on every event, 64 counters."""
    ledger = _ledger()
    for i in range(400):
        _count(ledger, {f"junk{i}-{j}": "x" for j in range(31)} | {"team": "ab"[i % 2]})
    assert ledger.attribute_names == ("team",)
    assert ledger.admission is not None and len(ledger.admission.candidates(100)) <= 64
    assert len(ledger.pending) <= 64
    team = ledger.groups["team"]
    assert sum(s.decisions for s in team.values()) == 400  # it held its counter throughout


def test_at_the_end_junk_on_the_last_event_takes_no_slot_and_admitted_means_audited() -> None:
    ledger = _ledger()
    for i in range(2000):
        _count(ledger, {"team": "ab"[i % 2]})
    _count(ledger, {f"junk{j}": "x" for j in range(8)})
    ledger.admit_at_end()
    assert ledger.attribute_names == ("team",)
    one = _ledger(max_attributes=1)
    for i in range(5):  # too few for admission: both wait, and one slot is left at the end
        _count(one, {"team": "ab"[i % 2], "region": "eu"})
    one.admit_at_end()
    assert one.attribute_names == ("team",)  # seen as often, first seen first
    assert one.admission is not None and one.admission.admitted == ("team",)


def test_rare_and_long_keys_are_refused_and_counted() -> None:
    ledger = _ledger(min_events=5, share=0.2)
    for i in range(1000):
        attributes = {"team": "a"}
        if i % 10 == 0:
            attributes["rare"] = "r"  # on 10% of events: below the share
        if i == 3:
            attributes["k" * 65] = "long"
        _count(ledger, attributes)
    assert ledger.attribute_names == ("team",)
    assert ledger.admission is not None
    assert ledger.admission.too_long == 1 and ledger.admission.awaiting >= 100 + 4
    assert [c["key"] for c in ledger.admission.candidates()] == ["rare"]


def test_an_input_too_short_for_admission_still_has_its_attributes_audited() -> None:
    core = AuditCore(CoreConfig())
    for i in range(5):
        core.process(line(placement(f"d-{i}", team="ab"[i % 2])))
    core.process(line(placement("d-junk", attributes={"junk": "x"})))
    for i in range(5, 200):
        core.process(line(placement(f"d-{i}", team="ab"[i % 2])))
    assert "team" in core.ledger.groups  # admitted at its 20th event
    core.finish()
    assert set(core.ledger.attribute_names) == {"team", "region"}  # junk: 1 in 201, refused
    short = AuditCore(CoreConfig())
    for i in range(5):
        short.process(line(placement(f"d-{i}")))
    assert short.ledger.attribute_names == ()
    short.finish()
    assert set(short.ledger.attribute_names) == {"team", "region"}
    assert short.ledger.groups["team"]["a"].decisions == 5


def test_one_event_with_junk_keys_does_not_blind_equity_drift() -> None:
    def alerts(junk: bool) -> list[tuple[str, str, str]]:
        core = AuditCore(CoreConfig())
        if junk:
            core.offer(line(placement("d-junk", attributes={f"junk{i}": "x" for i in range(8)},
                                      at="2023-06-30T23:59:00Z")))
        found = []
        for raw in Simulation(SCENARIOS["equity_drift"], 30_000, seed=1):
            core.offer(raw)
            found += [(a.kind, a.attribute, a.group) for a in core.drain().alerts
                      if a.state == "firing" and a.kind == "equity_drift"]
        core.finish()
        return found

    clean = alerts(junk=False)
    assert clean, "the scenario's drift must be found"
    assert alerts(junk=True) == clean


def test_the_vocabulary_folds_new_names_once_full_and_answers_as_it_learned() -> None:
    vocabulary = Vocabulary(cap=4)
    rng = random.Random(3)
    for i in range(500):
        job = JobInputs(cpu=4, memory_gb=8, slack_h=2.0, runtime_h=1.0, job_class=f"c{i % 50}",
                        priority=i % 7, attributes=(("team", f"t{i}"),),
                        context=tuple((f"k{i}-{j}", rng.random()) for j in range(3)))
        x = featurize(job, vocabulary, admit=True)
        assert {"bias", "cpu", "mem", "slack", "late", "slack_ratio", "runtime"} <= set(x)
    assert len(vocabulary) == 4 and vocabulary.folded > 0
    unseen = featurize(JobInputs(job_class="new", attributes=(("team", "zz"),),
                                 context=(("fresh", 1.0), ("other", 2.0))), vocabulary)
    assert f"class={OVERFLOW_FEATURE}" in unseen and f"attr:team={OVERFLOW_FEATURE}" in unseen
    assert unseen[f"ctx:{OVERFLOW_FEATURE}"] == pytest.approx(
        math.log1p(1.0) + math.log1p(2.0))


def test_long_names_never_get_a_column_so_the_columns_text_is_bounded_too() -> None:
    """Before, 1,024 names of ~900 KB each were kept for good (the cap counted names)."""
    auditor = DeepAuditor(("spot",), max_features=1024, min_examples=1)
    for i in range(40):
        job = JobInputs(cpu=4, memory_gb=8, job_class=f"c{i}-" + "x" * 50_000,
                        context=((f"k{i}-" + "y" * 50_000, 1.0),))
        auditor.learn(job, f"tier-{i}-" + "z" * 50_000, None)
    names = auditor.vocabulary._names
    assert all(len(name) <= 256 for name in names) and auditor.vocabulary.folded >= 80
    assert all(len(label) <= 256 for label in auditor.shadow.labels)
    assert all(len(c) <= 256 for c in auditor._classes)


def test_the_shadow_stays_small_and_still_explains_whatever_the_keys() -> None:
    """Every placement brings 200 new feature keys and a new team: the models keep at most
    ``max_features`` named columns and every sampled decision is still explained."""
    core = AuditCore(CoreConfig(attributes=("team",), shadow_train_rate=1.0,
                                audit_sample_rate=0.1))
    auditor = DeepAuditor(core.config.preferred_tiers, max_features=64, min_examples=50)
    records = []
    for i in range(1500):
        features = {f"f{i}-{j}": float(j) for j in range(200)}
        core.process(line(placement(f"d-{i}", team=f"t{i}", tier=("spot", "on_demand")[i % 2],
                                    features=features, at=f"2026-11-02T08:{i // 60 % 60:02d}:"
                                                         f"{i % 60:02d}Z")))
        for item in core.drain().audit_work:
            if isinstance(item, Explain):
                records.append(auditor.explain(auditor.builder.request(item)))
            else:
                auditor.apply(item)
    assert len(auditor.vocabulary) == 64 and auditor.vocabulary.folded > 10_000
    weights = auditor.shadow._model.weights
    fixed = {"bias", "cpu", "mem", "gpu", "slack", "late", "slack_ratio", "runtime"}
    assert all(len(set(table) - fixed) <= 64 + 4 for table in weights.values())
    assert len(records) > 50
    assert all("error" not in r["explanations"] for r in records)  # type: ignore[operator]
    assert records[-1]["explanations"]["shadow"]["ready"] is True  # type: ignore[index]


def test_the_join_is_capped_in_bytes_as_well_as_in_count() -> None:
    joiner: OutcomeJoiner[str, str] = OutcomeJoiner(60, 3600, capacity=100, max_bytes=1000)
    for i in range(10):
        assert joiner.add_placement(f"d{i}", f"p{i}", watermark=0.0, size=300) is None
    assert joiner.waiting_placements == 3 and joiner.waiting_bytes == 900
    assert joiner.unmatched_placements == 7
    assert joiner.add_outcome("d9", "o9", watermark=1.0, size=300) == "p9"
    assert joiner.waiting_bytes == 600
    one = OutcomeJoiner[str, str](60, 3600, capacity=100, max_bytes=10)
    assert one.add_placement("big", "p", watermark=0.0, size=5000) is None
    assert one.waiting_placements == 1  # one alone over the cap still waits
    for i in range(5):
        one.add_outcome(f"o{i}", f"out{i}", watermark=0.0, size=50)
    assert one.waiting_outcomes == 1 and one.advance(0.0) == ["out0", "out1", "out2", "out3"]


def test_the_sequencer_releases_the_oldest_once_over_its_bytes() -> None:
    raws = [line(placement(f"d-{i}", at=f"2026-11-02T08:15:{i:02d}Z", pad="x" * 5000))
            for i in range(20)]
    charge = held_bytes(decode_event(raws[0]), raws[0]) + len(raws[0])
    sequencer = EventTimeSequencer(lateness_s=3600.0, outcome_settle_s=0.0, capacity=1000,
                                   max_bytes=5 * charge + 50)
    released = []
    for raw in raws:
        sequencer.offer(decode_event(raw), raw)
        released += [tag for tag, _, _ in sequencer.ready()]
        assert len(sequencer) <= 5 and sequencer.held_bytes <= 5 * charge + 50
    assert released == list(range(15)) and sequencer.forced == 15


def test_a_placement_s_charge_covers_what_it_takes_decoded() -> None:
    import tracemalloc

    for event in (placement("d-1"), placement("d-2", features={str(j): 1 for j in range(256)}),
                  placement("d-3", attributes={f"a{j}": "v" * 256 for j in range(32)}),
                  placement("d-5", features={f"\U0001F600{j}" + "x" * 2000: 1.0
                                             for j in range(64)}),
                  placement("d-6", features={f"\u0100{j}" + "x" * 2000: 1.0
                                             for j in range(64)}),
                  outcome("d-4")):
        raws = [line(dict(event, decision_id=f"{event['decision_id']}-{i}")) for i in range(300)]
        tracemalloc.start()
        held = [decode_event(raw) for raw in raws]
        taken, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        charged = sum(held_bytes(e, r) for e, r in zip(held, raws, strict=True))
        assert taken <= charged, (event["decision_id"], taken, charged)
