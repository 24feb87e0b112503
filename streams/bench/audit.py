"""Audit overhead benchmark: the decision path with deep audits on versus off, in one run.

The same simulated events go through two cores in alternating batches of 512 (so both see the
same machine load): one with every audit feature off (no sampling, no shadow-model training,
no stratified additions), one configured by default with its deep audits in a worker process
(:class:`~streams.audit.worker.ProcessAudits`), as a live run does. The latency of a decision
is the time the core takes to process its event; the event that closes a batch also pays for
handing the batch's effects on (dead letters, alerts, audit work to the worker), exactly as
the service loop does (audit work is handed to the worker once ``AUDIT_FLUSH_ITEMS`` items have
gathered, and finished records are appended to an audit store). Reported:
p50, p99, p99.9 and the longest event (garbage collections included; both cores are frozen
after start-up as a run's are, :func:`~streams.app.freeze_start_up`) for both, and their ratio.

Separately, every sampled decision of the run is explained inline and timed: the deep audit's
own cost per decision (shadow prediction, group flips, counterfactual searches, cost drivers,
model hashes).
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detectors.audit_work import Explain
from detectors.config import CoreConfig
from streams.app import BATCH_EVENTS, create_app, freeze_start_up
from streams.audit.worker import make_auditor
from streams.settings import Settings
from streams.sinks.audit_store import AuditStoreSink

__all__ = ["AuditBench", "run_audit_bench"]


@dataclass(frozen=True, slots=True)
class AuditBench:
    events: int
    off_ns: np.ndarray
    on_ns: np.ndarray
    explain_ns: np.ndarray
    collections_ns: dict[int, list[int]]
    """Every garbage collection during the interleaved loop, by generation: its duration."""
    audited: int
    deferred: int
    training_skipped: int

    @staticmethod
    def quantiles(values: np.ndarray) -> tuple[float, float, float, float, float]:
        """p50, p99, p99.9, mean and max, in microseconds."""
        p50, p99, p999 = np.percentile(values, [50, 99, 99.9]) / 1000.0
        return (float(p50), float(p99), float(p999), float(values.mean() / 1000.0),
                float(values.max() / 1000.0))


def run_audit_bench(lines: list[bytes], store_path: Path, config: CoreConfig | None = None,
                    backlog: int = 1000) -> AuditBench:
    """Run the comparison; the audit-on side appends its records to a store at ``store_path``.

    Both sides are built by :func:`~streams.app.create_app` and hand their batches on with
    :meth:`~streams.app.Placewatch.deliver`, the service loop's own step.
    """
    on_config = config or CoreConfig()
    off = create_app(Settings(core=on_config.without_audits(), audit_worker="inline"))
    on = create_app(Settings(core=on_config, audit_worker="process", audit_backlog=backlog))
    store = AuditStoreSink(store_path)
    off.start_audits(live=True)
    worker = on.start_audits(live=True)  # waits until the worker is ready
    off_ns = np.empty(len(lines), dtype=np.int64)
    on_ns = np.empty(len(lines), dtype=np.int64)
    clock = time.perf_counter_ns
    freeze_start_up()  # as replay and run do before their first event
    collections: dict[int, list[int]] = {0: [], 1: [], 2: []}
    started = [0]

    def timed(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = clock()
        else:
            collections[info["generation"]].append(clock() - started[0])

    gc.callbacks.append(timed)
    try:
        for start in range(0, len(lines), BATCH_EVENTS):
            batch = lines[start:start + BATCH_EVENTS]
            for app, out, sinks in ((off, off_ns, []), (on, on_ns, [store])):
                offer = app.core.offer
                first = app.core.events_in
                floor = app.core.sequencer.oldest_tag
                for i, raw in enumerate(batch, start):
                    t0 = clock()
                    offer(raw, 0, "bench")
                    out[i] = clock() - t0
                t0 = clock()
                app.deliver(sinks, first, len(batch), floor)  # as the service loop hands on
                out[start + len(batch) - 1] += clock() - t0
    finally:
        gc.callbacks.remove(timed)
        off.close_input([])
        on.close_input([store])
        store.close()
    # every sampled decision again, explained inline and timed one by one
    explainer = create_app(Settings(core=on_config, audit_worker="inline"))
    auditor = make_auditor(on_config, "USD")
    explain = []
    for raw in lines:
        explainer.core.process(raw)
        for item in explainer.core.drain().audit_work:
            t0 = clock()
            auditor.apply(item)
            if isinstance(item, Explain):
                explain.append(clock() - t0)
    return AuditBench(len(lines), off_ns, on_ns, np.array(explain, dtype=np.int64),
                      collections, on.core.audited, worker.status.deferred,
                      worker.status.training_skipped)
