"""Importer: Alibaba cluster-trace-gpu-v2023 pod list → v1 contract events.

Mapping (docs/importers.md has the full table):

* each pod is one decision, ``decision_id = "alibaba-<name>"``, ``job_id = <name>``;
* ``attributes = {"qos": qos}`` (LS, BE, Burstable, Guaranteed): the audited attribute;
* ``submitted_at`` = epoch + ``creation_time``; a scheduled pod is a ``place`` decision at
  ``scheduled_time`` (so queue wait = scheduled − creation); a pod never scheduled is a
  ``queue`` decision at ``creation_time``;
* requested resources: ``cpu_milli/1000`` CPUs, ``memory_mib/1024`` GB, and
  ``num_gpu × gpu_milli/1000`` GPUs; ``job_class`` is ``cpu``, ``gpu-shared`` (a fraction of one
  GPU) or ``gpu``; the trace records no node, tier or price, so none is invented;
* outcomes from ``pod_phase`` and ``deletion_time``: Succeeded → ``succeeded``, Failed →
  ``failed`` (both finished at deletion, runtime = deletion − scheduled); a Pending pod that was
  deleted → ``killed``; Running pods were still running when the trace ended: no outcome.

Times in the trace are seconds from its start, which the trace does not date; ``epoch``
(default 2023-07-01T00:00:00Z) anchors them. Events are written in time order.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from streams.errors import InputError

__all__ = ["COLUMNS", "DEFAULT_EPOCH", "convert_pod_list"]

COLUMNS = ("name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli", "gpu_spec", "qos",
           "pod_phase", "creation_time", "deletion_time", "scheduled_time")
DEFAULT_EPOCH = dt.datetime(2023, 7, 1, tzinfo=dt.UTC)
_STATUS = {"Succeeded": "succeeded", "Failed": "failed"}


def _ts(epoch: float, seconds: float) -> str:
    moment = dt.datetime.fromtimestamp(epoch + seconds, dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _number(row: dict[str, str], key: str, required: bool = True) -> float | None:
    text = (row.get(key) or "").strip()
    if not text:
        if required:
            raise ValueError(f"{key} is empty")
        return None
    value = float(text)
    if value != value or value < 0 or value in (float("inf"), float("-inf")):
        raise ValueError(f"{key} is not a non-negative number: {text!r}")
    return value


def _pod_events(row: dict[str, str], epoch: float) -> list[tuple[float, int, bytes]]:
    name = (row.get("name") or "").strip()
    qos = (row.get("qos") or "").strip()
    phase = (row.get("pod_phase") or "").strip()
    if not name or not qos or not phase:
        raise ValueError("name, qos and pod_phase are required")
    cpu = _number(row, "cpu_milli")
    memory = _number(row, "memory_mib")
    num_gpu = _number(row, "num_gpu")
    gpu_milli = _number(row, "gpu_milli")
    created = _number(row, "creation_time")
    deleted = _number(row, "deletion_time", required=False)
    scheduled = _number(row, "scheduled_time", required=False)
    assert cpu is not None and memory is not None and num_gpu is not None
    assert gpu_milli is not None and created is not None
    if scheduled is not None and scheduled < created:
        raise ValueError("scheduled_time is before creation_time")
    if deleted is not None and deleted < (scheduled if scheduled is not None else created):
        raise ValueError("deletion_time is before the pod was created or scheduled")
    gpus = num_gpu * gpu_milli / 1000.0
    job_class = "cpu" if num_gpu == 0 else "gpu-shared" if gpu_milli < 1000 else "gpu"
    decided = scheduled if scheduled is not None else created
    decision_id = f"alibaba-{name}"
    placement: dict[str, Any] = {
        "event_type": "placement",
        "schema_version": 1,
        "decision_id": decision_id,
        "job_id": name,
        "decided_at": _ts(epoch, decided),
        "submitted_at": _ts(epoch, created),
        "scheduler": {"name": "alibaba-openb", "version": "trace-gpu-v2023"},
        "attributes": {"qos": qos},
        "job": {"job_class": job_class,
                "requested": {"cpu": cpu / 1000.0, "memory_gb": round(memory / 1024.0, 6),
                              "gpu": gpus}},
        "decision": {"action": "place" if scheduled is not None else "queue"},
    }
    spec = (row.get("gpu_spec") or "").strip()
    if spec:  # an extra field: v1 readers ignore it, the audit record keeps it
        placement["job"]["gpu_spec"] = spec
    events = [(decided, 0, orjson.dumps(placement))]
    status = _STATUS.get(phase) if scheduled is not None else (
        "killed" if phase == "Pending" else None)
    if status is not None and deleted is not None:
        outcome: dict[str, Any] = {
            "event_type": "outcome",
            "schema_version": 1,
            "decision_id": decision_id,
            "job_id": name,
            "finished_at": _ts(epoch, deleted),
            "status": status,
        }
        if scheduled is not None:
            outcome["started_at"] = _ts(epoch, scheduled)
            outcome["actual_runtime_s"] = deleted - scheduled
        events.append((deleted, 1, orjson.dumps(outcome)))
    return events


def convert_pod_list(path: Path, epoch: dt.datetime = DEFAULT_EPOCH
                     ) -> tuple[Iterator[bytes], list[dict[str, Any]]]:
    """Events in time order, and the rows that could not be converted (with reasons)."""
    try:
        handle = path.open(newline="", encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"no such file: {path}") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc
    base = epoch.timestamp()
    with handle:
        reader = csv.DictReader(handle)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(f"{path} is not an Alibaba GPU 2023 pod list: missing column(s) "
                             f"{', '.join(missing)}")
        timed: list[tuple[float, int, int, bytes]] = []
        rejected: list[dict[str, Any]] = []
        try:
            for number, row in enumerate(reader, start=2):
                try:
                    for at, order, line in _pod_events(row, base):
                        timed.append((at, order, number, line))
                except (ValueError, TypeError) as exc:
                    rejected.append({"line": number, "reason": str(exc), "row": row})
        except (csv.Error, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: not a readable CSV file: {exc}") from exc
    timed.sort()
    return (line for _, _, _, line in timed), rejected
