"""The latency benchmark's thread clock: CPU time runs only while the thread runs."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time

from benchmarks.thread_clock import ThreadStamp, idle_clock_loop


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


def test_the_loop_idle_clock_counts_waiting_for_input_and_not_work() -> None:
    """The benchmark subtracts the time the rig's loop sat in its selector (the rig's copy of an
    event had not arrived yet); the rig's own work must not count as idle."""

    async def wait_then_work() -> tuple[ThreadStamp, ThreadStamp, ThreadStamp]:
        start = ThreadStamp.now()
        reader, writer = await asyncio.open_connection(*server_address)
        try:
            await asyncio.wait_for(reader.read(1), timeout=5)  # the byte comes 50 ms later
        finally:
            writer.close()
        waited = ThreadStamp.now()
        for _ in range(200):  # turns of a busy loop: each polls its selector without waiting
            await asyncio.sleep(0)
        spin(0.05)
        return start, waited, ThreadStamp.now()

    listener = socket.create_server(("127.0.0.1", 0))
    server_address = listener.getsockname()

    def send_late() -> None:
        connection, _ = listener.accept()
        time.sleep(0.05)
        connection.sendall(b"x")
        connection.close()

    sender = threading.Thread(target=send_late)
    sender.start()
    try:
        with asyncio.Runner(loop_factory=idle_clock_loop) as runner:
            start, waited, worked = runner.run(wait_then_work())
    finally:
        sender.join()
        listener.close()
    assert waited.idle_since(start) >= 0.04
    assert worked.idle_since(waited) == 0.0
    assert worked.wall - waited.wall >= 0.05
    assert ThreadStamp.now().idle == 0.0  # the loop is closed: no stale total on this thread
