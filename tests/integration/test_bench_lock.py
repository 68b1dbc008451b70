"""One run per bench (issue 7): real processes hold the lock, are killed, and outlive their lease."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rig.bench_lock import BenchBusy, BenchLock, Holder

from .conftest import inner_pytest

HOLD = """
import sys, time
from pathlib import Path
from rig.bench_lock import BenchLock
lock = BenchLock(sys.argv[1], Path(sys.argv[2]))
lock.acquire(wait=False)
print("held", flush=True)
time.sleep(float(sys.argv[3]))
lock.release()
"""


@pytest.fixture
def holders() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def hold(holders: list[subprocess.Popen[str]], name: str, folder: Path, seconds: float) -> subprocess.Popen[str]:
    """Another run holding ``name`` for ``seconds``, started once it holds it."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, name, str(folder), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    holders.append(process)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "held", "the holder could not take the lock"
    return process


def test_no_wait_fails_at_once_saying_who_holds_it(tmp_path: Path, holders: list) -> None:
    holder = hold(holders, "bench-a", tmp_path, 60)
    started = time.monotonic()
    with pytest.raises(BenchBusy) as busy:
        BenchLock("bench-a", tmp_path).acquire(wait=False)
    assert time.monotonic() - started < 5
    message = str(busy.value)
    assert f"bench 'bench-a' is in use by PID {holder.pid}" in message
    assert f"@{socket.gethostname()}" in message
    assert "lease" in message
    BenchLock("bench-b", tmp_path).acquire(wait=False)  # another bench is free


def test_a_second_run_waits_until_the_first_releases(tmp_path: Path, holders: list) -> None:
    holder = hold(holders, "bench-a", tmp_path, 1.5)
    seen: list[Holder] = []
    lock = BenchLock("bench-a", tmp_path)
    lock.acquire(wait=True, timeout=30, on_wait=seen.append)
    assert [h.pid for h in seen] == [holder.pid], "told once who holds it"
    assert holder.wait(timeout=10) == 0, "the first run released and ended normally"
    assert lock.recovered is None
    assert lock.holder() is not None
    assert lock.holder().pid == os.getpid()
    lock.release()
    assert lock.holder() is None


def test_waiting_has_a_timeout(tmp_path: Path, holders: list) -> None:
    hold(holders, "bench-a", tmp_path, 60)
    with pytest.raises(BenchBusy, match=r"gave up after waiting 0.5 s"):
        BenchLock("bench-a", tmp_path).acquire(wait=True, timeout=0.5)


def test_the_lock_of_a_killed_run_is_recovered(tmp_path: Path, holders: list) -> None:
    holder = hold(holders, "bench-a", tmp_path, 60)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    assert (tmp_path / "bench-a.lock").exists(), "SIGKILL left the lock behind"
    lock = BenchLock("bench-a", tmp_path)
    lock.acquire(wait=False)
    assert lock.recovered is not None
    assert f"its process {holder.pid} is gone" in lock.recovered
    lock.release()


def _foreign(folder: Path, lease_left_s: float) -> None:
    """A lock written by a run on another host of the lab (its PID cannot be checked from here)."""
    now = time.time()
    (folder / "bench-a.lock").write_text(
        json.dumps(
            {"pid": 1, "host": "lab-host-7", "user": "ci", "command": "pytest tests/hil", "since": now - 600,
             "lease_until": now + lease_left_s, "token": "theirs"}
        )
    )  # fmt: skip


def test_a_live_lease_from_another_host_is_respected_and_an_expired_one_taken_over(tmp_path: Path) -> None:
    _foreign(tmp_path, 30)
    with pytest.raises(BenchBusy, match=r"ci@lab-host-7: pytest tests/hil"):
        BenchLock("bench-a", tmp_path).acquire(wait=False)
    _foreign(tmp_path, -5)
    lock = BenchLock("bench-a", tmp_path)
    lock.acquire(wait=False)
    assert lock.recovered is not None
    assert "its lease ran out" in lock.recovered
    lock.release()


def test_the_holder_renews_its_lease(tmp_path: Path) -> None:
    lock = BenchLock("bench-a", tmp_path, lease_s=0.6)
    lock.acquire(wait=False)
    try:
        first = lock.holder()
        assert first is not None
        time.sleep(1.5)  # more than two leases: only renewal keeps it
        renewed = lock.holder()
        assert renewed is not None
        assert renewed.lease_until > first.lease_until
        with pytest.raises(BenchBusy):
            BenchLock("bench-a", tmp_path, lease_s=0.6).acquire(wait=False)
    finally:
        lock.release()


PROBE = """
def test_uses_the_dut(dut):
    assert dut.url
"""


def _pytest(folder: Path, locks: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (folder / "test_probe.py").write_text(PROBE)
    return inner_pytest(folder, "test_probe.py", "-rs", *args, env={"RIG_LOCK_DIR": str(locks)}, timeout=120)


def test_pytest_no_wait_stops_the_run_and_a_waiting_run_says_who_it_waits_for(tmp_path: Path, holders: list) -> None:
    """The lock is taken before the DUT is touched, so a virtual Pi that is not even there shows it."""
    state = tmp_path / "no-pi"
    locks = tmp_path / "locks"
    holder = hold(holders, f"sim-{state.resolve()}", locks, 8)  # outlives the first run, not the second
    busy = _pytest(tmp_path, locks, f"--sim-running={state}", "--no-wait")
    assert busy.returncode == 2, busy.stdout + busy.stderr
    assert f"bench error: bench 'sim-{state.resolve()}' is in use by PID {holder.pid}" in busy.stdout + busy.stderr
    waited = _pytest(tmp_path, locks, f"--sim-running={state}")
    assert f"rig: waiting for bench 'sim-{state.resolve()}': in use by PID {holder.pid}" in waited.stdout
    assert "no virtual Pi runs in" in waited.stdout, "after the wait the run went on to the (absent) DUT"
