"""A discrete-event model of a cost-aware scheduler that emits v1 contract events.

Jobs arrive (Poisson), the scheduler places each on reserved capacity, then spot (if the job is
interruptible), then on-demand for urgent work, and queues the rest; queued jobs are dispatched
when capacity frees, and promoted to on-demand when their deadline is at risk. Spot capacity is
reclaimed now and then, evicting one running spot job (a ``preempt`` decision and a
``preempted`` outcome); the job is then scheduled again. Teams over their on-demand budget
get low-priority work rejected. Runtimes are forecast with noise; a job running past 1.5× its
forecast is killed as ``timeout``. Older hardware runs jobs slower. Outcomes are reported 5 s to
10 min after the job ends, so they arrive after their placement, interleaved with later events.

Everything random comes from one ``random.Random(seed)``: the same seed gives the same bytes.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterator
from typing import Any

import orjson

from simulator import world
from simulator.jobs import START, Job, outcome_event, placement_event, timestamp
from simulator.scenarios import Scenario

__all__ = ["LIVE_CHANGE_AT", "START", "Simulation"]

BURN_IN_S = 86400.0
"""The cluster runs a day unobserved first, so the output starts in steady state: events are
emitted from ``START + BURN_IN_S`` (2026-11-02) on."""
_ARRIVAL, _FINISH, _RECLAIM, _SWEEP, _EMIT, _RETRY, _HOLD = range(7)
_SLOWDOWN = {4: 1.25, 5: 1.1, 6: 1.0, 7: 1.0}
_SWEEP_S = 300.0
_MAX_QUEUE_S = 4 * 3600.0
_SPEND_WINDOW_S = 6 * 3600.0
_LOOP_SEED = 0.05
"""Deferral score an incident leaves on the target team in ``feedback_loop``."""
_LOOP_GAIN = 0.005
LIVE_CHANGE_AT = 20_000
"""Event index of the change in an endless (live) run (a scenario changed from its first
event, ``change_fraction`` 0, changes at 0 there too)."""


class Simulation:
    """Iterate to get encoded events (bytes, one JSON object each); then read :attr:`truth`."""

    def __init__(self, scenario: Scenario, events: int | None, seed: int,
                 revert_at: int | None = None) -> None:
        if events is not None and events < 1:
            raise ValueError(f"events must be >= 1, got {events}")
        self.scenario = scenario
        self.limit = events
        self.seed = seed
        self.rng = random.Random(seed)
        self.change_at: int | None = None
        if scenario.name != "baseline":
            # a live (endless) run changes at LIVE_CHANGE_AT, unless from the first event
            self.change_at = (int(events * scenario.change_fraction) if events is not None
                              else LIVE_CHANGE_AT if scenario.change_fraction else 0)
        if revert_at is not None and (self.change_at is None or revert_at <= self.change_at):
            raise ValueError(f"revert_at must come after the change at event {self.change_at} "
                             f"(the {scenario.name} scenario), got {revert_at}")
        self.revert_at = revert_at
        """Event index from which the scenario's change is undone (None: it never is)."""
        self.revert_index: int | None = None
        self.revert_time: float | None = None
        self.active = False
        self.now = 0.0
        self._heap: list[tuple[float, int, int, Any]] = []
        self._seq = 0
        self._decisions = 0
        self._jobs = 0
        self.emitted = 0
        self._out: list[bytes] = []
        self.reserved_free = world.RESERVED_CPUS
        self.spot_free = world.SPOT_CPUS
        self._running_spot: dict[str, tuple[Job, str, bool]] = {}
        self._cancelled: set[str] = set()
        self._queue: list[tuple[int, int, Job]] = []
        self._deferral = {t.name: 0.0 for t in world.TEAMS}
        self._spend: dict[str, float] = {t.name: 0.0 for t in world.TEAMS}
        self._spent_at = 0.0
        self._market = {r: 1.0 for r in world.REGIONS}
        self._leak_expires = 0.0
        self._measured: dict[str, dict[str, dict[str, int]]] = {"before": {}, "after": {}}
        self._team_weights = [t.share for t in world.TEAMS]
        self._class_weights = [c.share for c in world.CLASSES]
        self.change_index: int | None = None
        self.change_time: float | None = None

    # -- heap ----------------------------------------------------------------------------

    def _push(self, at: float, kind: int, payload: Any) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, kind, payload))

    def _emit(self, event: dict[str, Any]) -> None:
        if self.now < BURN_IN_S:
            return
        line = orjson.dumps(event)
        self._out.append(line)
        if self.rng.random() < world.DUPLICATE_RATE:
            self._out.append(line)

    # -- the main loop -------------------------------------------------------------------

    def __iter__(self) -> Iterator[bytes]:
        self._push(0.0, _ARRIVAL, None)
        self._push(self.rng.expovariate(1 / world.SPOT_RECLAIM_MEAN_S), _RECLAIM, None)
        self._push(_SWEEP_S, _SWEEP, None)
        while self.limit is None or self.emitted < self.limit:
            if not self._out:
                at, _, kind, payload = heapq.heappop(self._heap)
                self.now = at
                self._step(kind, payload)
                continue
            for line in self._out:
                if self.limit is not None and self.emitted >= self.limit:
                    break
                if self.change_at is not None and not self.active and \
                        self.emitted >= self.change_at and self.revert_index is None:
                    self._activate()
                elif self.active and self.revert_at is not None and \
                        self.emitted >= self.revert_at:
                    self._revert()
                self.emitted += 1
                yield line
            self._out.clear()

    def _activate(self) -> None:
        self.active = True
        self.change_index = self.emitted
        self.change_time = self.now
        if self.scenario.feedback_gain:
            # the one-off incident the loop then amplifies
            self._deferral[self.scenario.target_team] = _LOOP_SEED
        if self.scenario.leak_override:
            self._leak_expires = self.now + 6 * 3600.0

    def _revert(self) -> None:
        """The change is undone: the scheduler treats the target team as before (a loop's
        deferral score is cleared; a leaked override stops being applied)."""
        self.active = False
        self.revert_index = self.emitted
        self.revert_time = self.now
        self._deferral[self.scenario.target_team] = 0.0

    def _step(self, kind: int, payload: Any) -> None:
        if kind == _ARRIVAL:
            self._arrival()
        elif kind == _FINISH:
            self._finish(*payload)
        elif kind == _RECLAIM:
            self._reclaim()
        elif kind == _SWEEP:
            self._sweep()
        elif kind == _RETRY:
            self._escalate(payload)
        elif kind == _HOLD:
            self._place(*payload, held=True)
        else:
            self._out.append(payload)

    # -- scheduling ----------------------------------------------------------------------

    def _arrival(self) -> None:
        rng = self.rng
        self._push(self.now + rng.expovariate(1 / world.MEAN_INTERARRIVAL_S), _ARRIVAL, None)
        # on-demand spend is rolling: an exponential average with a 6 h time constant
        fade = math.exp((self._spent_at - self.now) / _SPEND_WINDOW_S)
        self._spent_at = self.now
        for name in self._spend:
            self._spend[name] *= fade
        for region in self._market:
            self._market[region] = min(1.6, max(0.6, self._market[region]
                                                * math.exp(rng.gauss(0, 0.01))))
        team = rng.choices(world.TEAMS, self._team_weights)[0]
        cls = rng.choices(world.CLASSES, self._class_weights)[0]
        runtime = cls.median_runtime_s * math.exp(rng.gauss(0, cls.runtime_sigma))
        deadline = self.now + runtime * rng.uniform(*cls.slack) + 600.0
        self._jobs += 1
        job = Job(f"j-{self._jobs:07d}", team, cls, rng.choice(cls.priorities),
                   rng.choice(cls.cpus), rng.choice(cls.gpus), self.now, runtime, deadline)
        self._decide(job)

    def _targeted(self, job: Job) -> bool:
        return self.active and job.team.name == self.scenario.target_team


    def _denied(self, job: Job) -> bool:
        """Whether the changed policy withholds cheap capacity from this job (a fixed shift,
        or one growing with the events since the change: ``ramp_events``)."""
        deny = self.scenario.deny_cheap if self._targeted(job) else 0.0
        ramp = self.scenario.ramp_events
        if deny > 0 and ramp and self.change_index is not None:  # a slow drift: it grows
            deny *= min((self.emitted - self.change_index) / ramp, 1.0)
        return deny > 0 and self.rng.random() < deny

    def _hold_back(self, job: Job) -> bool:
        """History-aware policy (``feedback_loop``): park jobs of teams it learned to defer.

        The scheduler keeps a per-team deferral score and parks a job with that probability
        until its deadline is at risk, when it goes to on-demand (or is rejected, over
        budget). Every parked job "saved money", so the score rises by ``gain``; every job
        placed normally lowers it by ``gain × score / 2``. The expected drift is about
        ``gain × score / 2`` per job: zero for a team never deferred, and growing
        geometrically once an incident has seeded it.
        """
        name = job.team.name
        score = self._deferral[name]
        if score <= 0.0:
            return False
        gain = _LOOP_GAIN * self.scenario.feedback_gain
        if self.rng.random() >= min(0.9, score):
            self._deferral[name] = score - 0.5 * gain * score
            return False
        self._deferral[name] = min(0.9, score + gain)
        self._mark_queued(job)
        at_risk = job.deadline - job.runtime * 1.5
        self._push(min(max(at_risk, self.now + 60.0), self.now + _MAX_QUEUE_S), _RETRY, job)
        return True

    def _mark_queued(self, job: Job) -> None:
        if not job.queued:
            job.queued = True
            self._decision(job, "queue", None, predicted_wait=60.0 * (1 + len(self._queue)))

    def _cheap_tier(self, job: Job) -> str | None:
        if self.reserved_free >= job.cpu:
            return "reserved"
        if job.cls.interruptible and self.spot_free >= job.cpu:
            return "spot"
        return None

    def _decide(self, job: Job) -> None:
        rng = self.rng
        if self.scenario.leak_override and self._targeted(job):
            override = {"by": "ops-oncall", "reason": f"capacity pin: {job.team.name}",
                        "expires_at": timestamp(self._leak_expires)}
            tier = "reserved" if self.reserved_free >= job.cpu else "on_demand"
            self._place(job, tier, override)
            return
        if rng.random() < world.OVERRIDE_RATE:
            override = {"by": "ops-oncall", "reason": f"deadline rescue {job.job_id}",
                        "expires_at": timestamp(self.now + 6 * 3600.0)}
            self._place(job, "on_demand", override)
            return
        if self._denied(job):
            self._escalate(job)
            return
        at_risk = job.deadline - self.now < job.runtime * 1.5
        if not at_risk and self._hold_back(job):
            return
        cheap = self._cheap_tier(job)
        if cheap is not None:
            self._place(job, cheap)
            return
        if at_risk or job.attempts >= 3 or job.priority >= 2:
            self._escalate(job)
            return
        self._mark_queued(job)
        heapq.heappush(self._queue, (-job.priority, self._seq, job))
        self._seq += 1

    def _escalate(self, job: Job) -> None:
        """On-demand, unless the team is over its daily budget and the job is low priority."""
        if self._spend[job.team.name] > job.team.budget and job.priority < 2:
            self._decision(job, "reject", None)
        else:
            self._place(job, "on_demand")

    def _dispatch(self) -> None:
        while self._queue:
            entry = self._queue[0]
            job = entry[2]
            tier = self._cheap_tier(job)
            if tier is None:
                break
            heapq.heappop(self._queue)
            self._place(job, tier)

    def _sweep(self) -> None:
        self._push(self.now + _SWEEP_S, _SWEEP, None)
        keep = []
        for entry in self._queue:
            job = entry[2]
            at_risk = job.deadline - self.now < job.runtime * 1.2
            if at_risk or self.now - job.submitted > _MAX_QUEUE_S:
                job.attempts = 3
                self._escalate(job)
            else:
                keep.append(entry)
        if len(keep) != len(self._queue):
            heapq.heapify(keep)
            self._queue = keep

    def _reclaim(self) -> None:
        rng = self.rng
        self._push(self.now + rng.expovariate(1 / world.SPOT_RECLAIM_MEAN_S), _RECLAIM, None)
        if not self._running_spot:
            return
        ids = list(self._running_spot)
        if self.active and self.scenario.preemption_focus and \
                rng.random() < self.scenario.preemption_focus:
            target = self.scenario.target_team
            focused = [d for d in ids if self._running_spot[d][0].team.name == target]
            ids = focused or ids
        victim_id = ids[rng.randrange(len(ids))]
        job, node, observed = self._running_spot.pop(victim_id)
        self._cancelled.add(victim_id)
        self.spot_free += job.cpu
        self._decision(job, "preempt", "spot", node=node)
        if observed:
            self._outcome(victim_id, job, "preempted", self.now, deadline_met=None)
        job.attempts += 1
        self._decide(job)

    # -- events --------------------------------------------------------------------------

    def _count(self, job: Job, key: str) -> None:
        phase = "after" if self.active else ("reverted" if self.revert_index is not None
                                             else "before")
        team = self._measured.setdefault(phase, {}).setdefault(job.team.name, {})
        team[key] = team.get(key, 0) + 1

    def _decision(self, job: Job, action: str, tier: str | None, *, node: str | None = None,
                  predicted_wait: float | None = None, extra: dict[str, Any] | None = None,
                  override: dict[str, str] | None = None) -> str:
        self._decisions += 1
        decision_id = f"d-{self.seed}-{self._decisions:08d}"
        team = job.team
        decision: dict[str, Any] = {"action": action}
        if tier is not None:
            decision["tier"] = tier
        if node is not None:
            decision["node"] = node
        decision["region"] = world.REGIONS[team.region]
        if extra:
            decision.update(extra)
        if predicted_wait is not None:
            decision["predicted_wait_s"] = round(predicted_wait, 1)
        event = placement_event(decision_id, job, self.now, decision, self._market[team.region],
                                len(self._queue), self.reserved_free + self.spot_free, override)
        self._count(job, "decisions")
        self._count(job, action)
        if action == "place" and tier in ("spot", "reserved"):
            self._count(job, "preferred")
        self._emit(event)
        return decision_id

    def _hold(self, job: Job, tier_name: str, override: dict[str, str] | None) -> bool:
        """``wait_drift``: a queued job of the target team is started ``wait_factor`` times as
        late as it would have been. The capacity it was given is taken now and left idle until
        then, so its tier is the one it got: only its wait changes (× the factor exactly)."""
        factor = self.scenario.wait_factor
        wait = self.now - job.submitted
        if factor == 1.0 or wait <= 0 or not self._targeted(job):
            return False
        if tier_name == "reserved":
            self.reserved_free -= job.cpu
        elif tier_name == "spot":
            self.spot_free -= job.cpu
        self._push(self.now + (factor - 1.0) * wait, _HOLD, (job, tier_name, override))
        return True

    def _place(self, job: Job, tier_name: str, override: dict[str, str] | None = None, *,
               held: bool = False) -> None:
        if not held and self._hold(job, tier_name, override):
            return
        rng = self.rng
        tier = world.TIERS[tier_name]
        generation = rng.choice(tier.generations)
        market = self._market[job.team.region] if tier_name == "spot" else 1.0
        price = (job.cpu * tier.cpu_hour + job.gpu * tier.gpu_hour) * market
        factor = self.scenario.runtime_forecast_factor if self._targeted(job) else 1.0
        predicted = job.runtime * math.exp(rng.gauss(0, 0.15)) / factor
        node = f"node-{rng.randrange(2000):04d}"
        decision_id = self._decision(job, "place", tier_name, node=node, override=override, extra={
            "instance_type": f"c{generation}.{job.cpu}x{job.gpu}g",
            "hardware_generation": generation,
            "price_per_hour": round(price, 6),
            "predicted_runtime_s": round(predicted, 1),
            "predicted_cost": round(price * predicted / 3600.0, 6),
        })
        name = job.team.name
        if tier_name == "reserved":
            if not held:  # a held job's capacity was taken when it was held
                self.reserved_free -= job.cpu
        elif tier_name == "spot":
            if not held:
                self.spot_free -= job.cpu
            self._running_spot[decision_id] = (job, node, self.now >= BURN_IN_S)
        else:
            self._spend[name] += price * job.runtime / 3600.0
        actual = job.runtime * _SLOWDOWN[generation]
        limit = predicted * 1.5
        status = "timeout" if actual > limit else "failed" if rng.random() < 0.03 else "succeeded"
        run = min(actual, limit)
        self._push(self.now + run, _FINISH,
                   (decision_id, job, tier_name, status, price, run, self.now >= BURN_IN_S))

    def _finish(self, decision_id: str, job: Job, tier: str, status: str, price: float,
                run: float, observed: bool) -> None:
        if decision_id in self._cancelled:
            self._cancelled.discard(decision_id)
            return
        if tier == "reserved":
            self.reserved_free += job.cpu
        elif tier == "spot":
            self.spot_free += job.cpu
            self._running_spot.pop(decision_id, None)
        if status == "timeout":
            self._count(job, "timeout")
        if observed:
            self._outcome(decision_id, job, status, self.now - run, self.now <= job.deadline,
                          cost=price * run / 3600.0)
        self._dispatch()

    def _outcome(self, decision_id: str, job: Job, status: str, started: float,
                 deadline_met: bool | None, cost: float | None = None) -> None:
        line = orjson.dumps(outcome_event(decision_id, job, self.now, started, status,
                                          deadline_met, cost))
        self._push(self.now + self.rng.uniform(*world.OUTCOME_LAG_S), _EMIT, line)

    # -- ground truth --------------------------------------------------------------------

    @property
    def truth(self) -> dict[str, Any]:
        """What changed, for whom, from which event index, and what it did (measured)."""
        s = self.scenario
        change = None
        if s.name != "baseline":
            change = {
                "attribute": "team",
                "group": s.target_team,
                "metric": s.metric,
                "expected_kinds": list(s.expected_kinds),
                "from_event_index": self.change_index,
                "from_time": None if self.change_time is None else timestamp(self.change_time),
                "reverted_at_event_index": self.revert_index,
                "reverted_at_time": (None if self.revert_time is None
                                     else timestamp(self.revert_time)),
            }
        return {
            "scenario": s.name,
            "description": s.description,
            "seed": self.seed,
            "events": self.emitted,
            "start": timestamp(BURN_IN_S),
            "end": timestamp(self.now),
            "change": change,
            "team_shares": {t.name: t.share for t in world.TEAMS},
            "measured": self._measured,
        }
