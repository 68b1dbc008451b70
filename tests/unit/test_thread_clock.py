"""The latency benchmark's thread clock: CPU time runs only while the thread runs."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

from benchmarks.thread_clock import ThreadStamp


def spin(seconds: float) -> None:
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        pass


def test_cpu_time_counts_work_and_not_sleep() -> None:
    start = ThreadStamp.now()
    spin(0.05)
    worked = ThreadStamp.now()
    time.sleep(0.05)
    slept = ThreadStamp.now()
    assert worked.cpu_since(start) >= 0.02  # a busy thread on a shared core still runs part of it
    assert slept.cpu_since(worked) < 0.01
    assert slept.wall - worked.wall >= 0.05


def test_cpu_time_is_the_calling_threads_own() -> None:
    """Another thread's work does not move this thread's clock: the benchmark's stimulus threads
    must not count as the loop thread's."""
    start = ThreadStamp.now()
    other = threading.Thread(target=spin, args=(0.05,))
    other.start()
    other.join()
    assert ThreadStamp.now().cpu_since(start) < 0.01


def test_a_core_shared_with_a_busy_process_counts_as_preemption() -> None:
    """Two runnable tasks on one core: the kernel takes it from this thread in turns, and the
    thread's CPU clock stops meanwhile; what the benchmark reads as "preempted"."""
    cores = os.sched_getaffinity(0)
    core = min(cores)
    os.sched_setaffinity(0, {core})  # pid 0: the calling thread
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        os.sched_setaffinity(hog.pid, {core})
        time.sleep(0.05)  # the hog is running
        start = ThreadStamp.now()
        spin(0.3)
        end = ThreadStamp.now()
    finally:
        hog.kill()
        hog.wait()
        os.sched_setaffinity(0, cores)
    assert end.preempted_since(start)
    assert end.cpu_since(start) < 0.8 * (end.wall - start.wall)
