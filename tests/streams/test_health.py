"""A live run's chain check: a store that verifies reads 1, an edited one 0, and says why."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from streams.audit.store import SqliteAuditStore
from streams.health import ChainWatch, LiveHealth


def test_the_chain_check_notices_an_edited_record(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "audit.sqlite"
    store = SqliteAuditStore(path)
    store.append_bodies([(f"d-{i}", "2026-11-02T08:15:00Z",
                          b'{"decision_id":"d-%d","n":%d}' % (i, i)) for i in range(5)])
    health = LiveHealth()
    watch = ChainWatch(path, health, interval_s=0)
    watch.check()
    assert (health.chain_ok, health.chain_records, health.chain_problem) == (True, 5, "")
    checked = health.chain_checked_at
    assert checked is not None
    db = sqlite3.connect(path)
    with db:
        db.execute("UPDATE records SET body = ? WHERE seq = 3", (b'{"decision_id":"d-2","n":99}',))
    db.close()
    with caplog.at_level(logging.ERROR, logger="placewatch"):
        watch.check()
    assert health.chain_ok is False and health.chain_problem
    assert health.chain_checked_at is not None and health.chain_checked_at >= checked
    assert "audit chain does not verify" in caplog.text
    store.close()


def test_a_missing_store_is_a_failed_check_not_a_crash(tmp_path: Path) -> None:
    health = LiveHealth()
    watch = ChainWatch(tmp_path / "nowhere.sqlite", health, interval_s=0).start()
    watch.close()
    assert health.chain_ok is False and "no audit store" in health.chain_problem


def test_the_chain_check_is_not_fooled_by_a_writer_appending_meanwhile(tmp_path: Path) -> None:
    """Records and checkpoints are read from one snapshot: a checkpoint written between two
    reads would otherwise look like records cut from the end."""
    import threading

    path = tmp_path / "audit.sqlite"
    store = SqliteAuditStore(path, checkpoint_every=10)
    store.append_bodies([(f"d-{i}", "2026-11-02T08:15:00Z",
                          b'{"decision_id":"d-%d","pad":"%s"}' % (i, b"x" * 400))
                         for i in range(20_000)])
    store.close()
    stop = threading.Event()
    started = threading.Event()

    def write() -> None:
        own = SqliteAuditStore(path, checkpoint_every=10)
        i = 20_000
        try:
            while not stop.is_set():
                own.append_bodies([(f"d-{i}", "2026-11-02T08:15:00Z",
                                    b'{"decision_id":"d-%d"}' % i)])
                i += 1
                started.set()
        finally:
            own.close()

    writer = threading.Thread(target=write)
    writer.start()
    assert started.wait(60)
    health = LiveHealth()
    watch = ChainWatch(path, health, interval_s=0)
    try:
        for _ in range(5):
            watch.check()
            assert health.chain_ok, health.chain_problem
    finally:
        stop.set()
        writer.join(timeout=60)
