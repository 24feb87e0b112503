"""Valid-but-hostile input and a hostile data directory: bounded memory for a huge line, a
clear rejection for an integer no JSON reader holds, one owner per directory, and no symbolic
link followed out of it. Each ran into a crash, a blow-up or a silent corruption before."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.sinks.directory import DirectoryLock
from streams.sinks.files import TEMP_SUFFIX, write_atomically
from streams.sources.files import file_events
from tests.helpers import line, outcome, placement, placewatch


def _events(path: Path, extra: list[bytes] | None = None, n: int = 50) -> None:
    lines = [line(placement(f"d-{i}")) for i in range(n)] + (extra or [])
    lines += [line(outcome(f"d-{i}")) for i in range(n)]
    path.write_bytes(b"\n".join(lines) + b"\n")


def _said(words: str, stderr: str) -> bool:
    """Whether the error says ``words`` (the console wraps lines anywhere, even in a path)."""
    return "".join(words.split()) in "".join(stderr.split())


def _peak_rss_kib(events: Path, out: Path, config: Path | None = None) -> int:
    """The replay's peak resident memory (KiB), measured in a child of its own."""
    more = "" if config is None else f", '--config', {str(config)!r}"
    code = ("import resource, subprocess, sys\n"
            "subprocess.run([sys.executable, '-m', 'streams.cli', '--quiet', 'replay', "
            f"{str(events)!r}, '--out', {str(out)!r}{more}], check=True)\n"
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=600)
    return int(done.stdout.strip().splitlines()[-1])


def test_a_huge_line_is_never_read_whole_and_its_dead_letter_says_what_it_was(
        tmp_path: Path) -> None:
    huge = b'{"event_type": "placement", "pad": "' + b"x" * (96 << 20) + b'"}'
    _events(tmp_path / "small.jsonl")
    _events(tmp_path / "huge.jsonl", [huge])
    small = _peak_rss_kib(tmp_path / "small.jsonl", tmp_path / "o1")
    peak = _peak_rss_kib(tmp_path / "huge.jsonl", tmp_path / "o2")
    # a 96 MiB line read whole (and copied into its dead letter) costs far more than this
    assert peak - small < 32 << 10, (small, peak)
    letters = [json.loads(x) for x in (tmp_path / "o2/dead_letter.jsonl").read_text().splitlines()]
    assert len(letters) == 1
    letter = letters[0]
    assert letter["reason"] == "too_large" and letter["raw_truncated"] is True
    assert letter["length"] == len(huge)
    assert letter["sha256"] == hashlib.sha256(huge).hexdigest()
    assert huge.startswith(letter["raw"].encode()) and len(letter["raw"]) == 4096
    summary = json.loads((tmp_path / "o2/summary.json").read_text())
    assert summary["rejected"] == 1 and summary["placements"] == 50
    assert summary["events_in"] == 101


def test_large_placements_without_outcomes_are_held_within_the_byte_caps(tmp_path: Path) -> None:
    """150 placements of ~600 KB that never get an outcome: before, the whole batch, the join
    and the audit hand-off held them all (RSS grew by far more than the file)."""
    big = [line(placement(f"d-{i}", at=f"2026-11-02T09:{i // 60:02d}:{i % 60:02d}Z",
                          features={f"k{j}-{i}-" + "x" * 2300: 1.0 for j in range(256)}))
           for i in range(150)]
    (tmp_path / "big.jsonl").write_bytes(b"\n".join(big) + b"\n")
    _events(tmp_path / "small.jsonl")
    config = tmp_path / "caps.toml"
    config.write_text("join_max_mb = 16\nreorder_max_mb = 16\n")
    small = _peak_rss_kib(tmp_path / "small.jsonl", tmp_path / "o1", config)
    peak = _peak_rss_kib(tmp_path / "big.jsonl", tmp_path / "o2", config)
    # the budget over a small run: both caps plus 128 MiB (docs/configuration.md, "Memory")
    assert peak - small < (16 + 16 + 128) << 10, (small, peak)
    summary = json.loads((tmp_path / "o2/summary.json").read_text())
    assert summary["placements"] == 150 and summary["unmatched_placements"] >= 100
    assert summary["shadow_features"] <= 1024


def test_an_integer_beyond_what_json_readers_hold_is_rejected_not_fatal(tmp_path: Path) -> None:
    big = [line(placement(f"big-{i}", job={"priority": 10 ** 30})) for i in range(20)]
    _events(tmp_path / "ev.jsonl", big)
    done = placewatch("--quiet", "replay", str(tmp_path / "ev.jsonl"), "--out",
                      str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "out/summary.json").read_text())
    assert summary["rejected_by_reason"]["out_of_range"] == 20
    assert (tmp_path / "out/metrics.prom").is_file()


def test_a_second_writer_of_a_directory_fails_at_once_and_the_first_keeps_it(
        tmp_path: Path) -> None:
    _events(tmp_path / "ev.jsonl")
    out = tmp_path / "out"
    assert placewatch("--quiet", "replay", str(tmp_path / "ev.jsonl"), "--out",
                      str(out)).returncode == 0
    def outputs() -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in out.iterdir()
                if p.is_file() and p.name != ".placewatch.lock"}

    before = outputs()
    lock = DirectoryLock(out)  # another placewatch is writing this directory
    try:
        done = placewatch("--quiet", "replay", str(tmp_path / "ev.jsonl"), "--out", str(out),
                          timeout=120)
    finally:
        lock.release()
    assert done.returncode != 0
    assert _said(f"is in use by another placewatch (pid {os.getpid()})", done.stderr)
    assert outputs() == before


def test_a_symbolic_link_in_the_data_directory_is_refused_not_followed(tmp_path: Path) -> None:
    _events(tmp_path / "ev.jsonl")
    out = tmp_path / "out"
    out.mkdir()
    outside = tmp_path / "precious.txt"
    outside.write_text("not placewatch's\n")
    (out / "alerts.jsonl").symlink_to(outside)
    done = placewatch("--quiet", "replay", str(tmp_path / "ev.jsonl"), "--out", str(out))
    assert done.returncode != 0
    assert _said("alerts.jsonl is a symbolic link", done.stderr)
    assert outside.read_text() == "not placewatch's\n"


def test_the_final_files_are_replaced_in_one_step_and_a_link_is_not_followed(
        tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    path.write_bytes(b'{"placements": 50}')
    reader = path.open("rb")
    write_atomically(path, b'{"placements": 60}')
    assert reader.read() == b'{"placements": 50}'  # a reader keeps the whole old file
    reader.close()
    assert path.read_bytes() == b'{"placements": 60}'
    outside = tmp_path / "precious.txt"
    outside.write_text("not placewatch's\n")
    link = tmp_path / "metrics.prom"
    link.symlink_to(outside)
    write_atomically(link, b"# new\n")
    assert outside.read_text() == "not placewatch's\n" and not link.is_symlink()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(TEMP_SUFFIX)]


def test_line_limits_hold_at_their_boundaries_and_in_gzip(tmp_path: Path) -> None:
    import gzip

    from detectors.events import MAX_EVENT_BYTES, OversizedLine

    at_limit = b"x" * MAX_EVENT_BYTES
    over = b"y" * (MAX_EVENT_BYTES + 1)
    body = b"\n".join([b"a", at_limit, over, b"b", over]) + b"\n" + over  # last: no newline
    (tmp_path / "plain.jsonl").write_bytes(body)
    with gzip.open(tmp_path / "packed.jsonl.gz", "wb") as handle:
        handle.write(body)
    for name in ("plain.jsonl", "packed.jsonl.gz"):
        got = [raw for _, raw in file_events([tmp_path / name])]
        assert [bytes(r[:1]) for r in got] == [b"a", b"x", b"y", b"b", b"y", b"y"], name
        assert got[1] == at_limit and not isinstance(got[1], OversizedLine)
        for raw in (got[2], got[4], got[5]):
            assert isinstance(raw, OversizedLine) and raw.length == len(over)
            assert raw.sha256 == hashlib.sha256(over).hexdigest()


def test_a_crashed_writer_s_temporary_files_do_not_block_the_next_run(tmp_path: Path) -> None:
    _events(tmp_path / "ev.jsonl")
    out = tmp_path / "out"
    out.mkdir()
    stale = out / f".summary.json.abcd1234{TEMP_SUFFIX}"
    stale.write_bytes(b"half a summ")
    done = placewatch("--quiet", "replay", str(tmp_path / "ev.jsonl"), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert not stale.exists()
    assert json.loads((out / "summary.json").read_text())["placements"] == 50


def test_a_link_inside_history_is_refused_at_the_start(tmp_path: Path) -> None:
    _events(tmp_path / "ev.jsonl")
    out = tmp_path / "out"
    (out / "history").mkdir(parents=True)
    outside = tmp_path / "precious.txt"
    outside.write_text("not placewatch's\n")
    (out / "history" / "2026-11-02.jsonl").symlink_to(outside)
    done = placewatch("--quiet", "replay", str(tmp_path / "ev.jsonl"), "--out", str(out))
    assert done.returncode != 0
    assert _said("2026-11-02.jsonl is a symbolic link", done.stderr)
    assert outside.read_text() == "not placewatch's\n"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB filesystem of its own (tmpfs; the suite runs as root here, see .ci/run)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.fail(f"cannot mount a small tmpfs for the disk-full cases: {mounted.stderr}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _verifies(store: Path) -> None:
    checked = placewatch("audit", "verify", "--store", str(store))
    assert checked.returncode == 0 and checked.stdout.startswith("OK:"), checked


def test_a_full_disk_stops_replay_and_run_with_the_cause_and_the_file(
        tmp_path: Path, small_disk: Path) -> None:
    """Before: ``cannot rollback - no transaction is active`` (hiding ENOSPC) or a raw
    traceback from the history file."""
    events = tmp_path / "events.jsonl"
    done = placewatch("--quiet", "simulate", "--out", str(events), "--events", "20000")
    assert done.returncode == 0, done.stderr
    replay = placewatch("--quiet", "replay", str(events), "--out", str(small_disk / "o"),
                        timeout=120)
    assert replay.returncode == 5, replay.stderr
    # the file or store, and the cause by name (the OS's or SQLite's words for it)
    assert _said("ENOSPC)", replay.stderr) and _said(str(small_disk / "o"), replay.stderr)
    assert "Traceback" not in replay.stderr and "rollback" not in replay.stderr
    _verifies(small_disk / "o" / "audit.sqlite")
    shutil.rmtree(small_disk / "o")  # room for the run
    run = subprocess.run(
        [sys.executable, "-m", "streams.cli", "--quiet", "run", "--metrics-port", "0",
         "--out", str(small_disk / "r"), "--speedup", "1000000"],
        capture_output=True, text=True, timeout=120, check=False)  # stops, never hangs
    assert run.returncode == 5, run.stderr
    assert _said("ENOSPC)", run.stderr) and _said(str(small_disk / "r"), run.stderr)
    assert "Traceback" not in run.stderr and "rollback" not in run.stderr
    _verifies(small_disk / "r" / "audit.sqlite")


def test_a_purge_on_a_full_disk_is_exit_5_with_the_cause_and_changes_nothing(
        tmp_path: Path, small_disk: Path) -> None:
    """Before: exit 4 (``purge failed: database or disk is full``), as if the store were
    unreadable."""
    events = tmp_path / "events.jsonl"
    done = placewatch("--quiet", "simulate", "--out", str(events), "--events", "3000")
    assert done.returncode == 0, done.stderr
    out = tmp_path / "o"
    assert placewatch("--quiet", "replay", str(events), "--out", str(out)).returncode == 0
    store = small_disk / "audit.sqlite"
    shutil.copyfile(out / "audit.sqlite", store)
    fd = os.open(small_disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:  # take every byte that is left
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    purged = placewatch("audit", "purge", "--store", str(store), "--retention-days", "1",
                        "--now", "2026-12-01T00:00:00Z",
                        env={"PLACEWATCH_AUDIT_RETENTION_DAYS": "1"})
    assert purged.returncode == 5, purged.stderr
    assert _said("ENOSPC)", purged.stderr) and _said(str(store), purged.stderr)
    assert "Traceback" not in purged.stderr
    (small_disk / "filler").unlink()
    _verifies(store)
    db = sqlite3.connect(store)
    try:  # nothing was purged: no purge record, no emptied body
        assert db.execute("SELECT count(*) FROM records WHERE decision_id = '__purge__' "
                          "OR body IS NULL").fetchone() == (0,)
    finally:
        db.close()


def test_sqlite_failures_are_told_apart_writing_from_a_damaged_store(tmp_path: Path) -> None:
    from streams.errors import sqlite_write_failure

    path = tmp_path / "s.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    read_only = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    with pytest.raises(sqlite3.Error) as caught:
        read_only.execute("INSERT INTO t VALUES (1)")
    read_only.close()
    why = sqlite_write_failure(caught.value, path)
    assert "SQLITE_READONLY" in why and "ENOSPC" not in why  # the disk is not full
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(sqlite3.Error) as damaged:
        sqlite3.connect(junk).execute("SELECT * FROM sqlite_master").fetchall()
    assert sqlite_write_failure(damaged.value, junk) == ""  # exit 4, not 5
