"""Audit overhead benchmark: the decision path with deep audits on versus off, in one run.

The same simulated events go through two cores in alternating batches of 512 (so both see the
same machine load): one with every audit feature off (no sampling, no shadow-model training,
no stratified additions), one configured by default with its deep audits in a worker process
(:class:`~streams.audit.worker.ProcessAudits`), as a live run does. The latency of a decision
is the time the core takes to process its event; the event that closes a batch also pays for
handing the batch's effects on (dead letters, alerts, audit work to the worker), exactly as
the service loop does (audit work is handed to the worker once ``AUDIT_FLUSH_ITEMS`` items have
gathered, and finished records are appended to an audit store). Reported:
p50, p99 and p99.9 per event for both, and their ratio.

Separately, every sampled decision of the run is explained inline and timed: the deep audit's
own cost per decision (shadow prediction, group flips, counterfactual searches, cost drivers,
model hashes).
"""

from __future__ import annotations

import dataclasses
import gc
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detectors.audit_work import Explain, WorkItem
from detectors.config import CoreConfig
from detectors.pipeline import AuditCore
from streams.app import AUDIT_FLUSH_ITEMS
from streams.audit.store import SqliteAuditStore
from streams.audit.worker import AuditorParams, ProcessAudits, make_auditor

__all__ = ["AuditBench", "run_audit_bench"]

_BATCH = 512


@dataclass(frozen=True, slots=True)
class AuditBench:
    events: int
    off_ns: np.ndarray
    on_ns: np.ndarray
    explain_ns: np.ndarray
    audited: int
    deferred: int
    training_skipped: int

    @staticmethod
    def quantiles(values: np.ndarray) -> tuple[float, float, float, float]:
        """p50, p99, p99.9 and mean, in microseconds."""
        p50, p99, p999 = np.percentile(values, [50, 99, 99.9]) / 1000.0
        return float(p50), float(p99), float(p999), float(values.mean() / 1000.0)


def off_config(config: CoreConfig) -> CoreConfig:
    return dataclasses.replace(config, audit_sample_rate=0.0, audit_always_overrides=False,
                               audit_cost_threshold=0.0, audit_open_alert_rate=0.0,
                               shadow_train_rate=0.0)


def run_audit_bench(lines: list[bytes], store_path: Path, config: CoreConfig | None = None,
                    backlog: int = 1000) -> AuditBench:
    """Run the comparison; the audit-on side appends its records to a store at ``store_path``."""
    on_config = config or CoreConfig()
    off = AuditCore(off_config(on_config))
    on = AuditCore(on_config)
    store = SqliteAuditStore(store_path)
    worker = ProcessAudits(AuditorParams.from_config(on_config, "USD"), backlog)  # waits ready
    off_ns = np.empty(len(lines), dtype=np.int64)
    on_ns = np.empty(len(lines), dtype=np.int64)
    work: list[WorkItem] = []
    pending: list[WorkItem] = []
    clock = time.perf_counter_ns
    gc.collect()
    try:
        for start in range(0, len(lines), _BATCH):
            batch = lines[start:start + _BATCH]
            for core, out in ((off, off_ns), (on, on_ns)):
                process = core.process
                for i, raw in enumerate(batch, start):
                    t0 = clock()
                    process(raw)
                    out[i] = clock() - t0
                t0 = clock()
                effects = core.drain()
                if core is on:
                    work.extend(effects.audit_work)
                    pending.extend(effects.audit_work)
                    if len(pending) >= AUDIT_FLUSH_ITEMS:  # as the service loop hands it on
                        store.append_bodies(worker.submit(pending))
                        pending = []
                out[start + len(batch) - 1] += clock() - t0
    finally:
        store.append_bodies(worker.submit(pending) + worker.close())
        store.close()
    auditor = make_auditor(on_config, "USD")
    explain = []
    for item in work:
        if isinstance(item, Explain):
            t0 = clock()
            auditor.apply(item)
            explain.append(clock() - t0)
        else:
            auditor.apply(item)
    return AuditBench(len(lines), off_ns, on_ns, np.array(explain, dtype=np.int64),
                      on.audited, worker.status.deferred, worker.status.training_skipped)
