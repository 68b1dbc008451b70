"""What the calling thread did between two moments: wall time, CPU time, preemptions, and how
long its event loop sat waiting for input.

The latency benchmark compares two clients served by one event loop, one thread: the rig's
observer hands an event over some time after a bare client did. On two cores shared with the
firmware, that wall-clock difference also holds whatever time the kernel gave to another process
in between, or the hypervisor to another machine. The thread's own CPU clock does not move
while it is not running, and its count of involuntary context switches says whether the kernel
took the core away, so the two together split the rig's own work from the machine's scheduling.

The wall-clock difference can also hold time when the rig had nothing to do: the firmware writes
a broadcast to one client's socket, then to the next, and when the rig's copy is not there yet
the loop blocks in its selector. A loop made by ``idle_clock_loop`` keeps the time it spent
blocked there, and each stamp taken on its thread carries that total, so the wait for the
firmware's next write can be told from the rig's own time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import resource
import selectors
import threading
import time

_this_thread = threading.local()  # .selector: the IdleSelector of the loop this thread runs, if any


class IdleSelector(selectors.DefaultSelector):
    """The loop's selector, keeping the wall time of the ``select`` calls that could block: the
    loop had no ready callback and waited for a socket (or a timer). A poll with a zero timeout,
    made while callbacks are ready, is the loop's own per-turn cost and does not count."""

    def __init__(self) -> None:
        super().__init__()
        self.idle = 0.0

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is not None and timeout <= 0:
            return super().select(timeout)
        started = time.perf_counter()
        try:
            return super().select(timeout)
        finally:
            self.idle += time.perf_counter() - started

    def close(self) -> None:
        if getattr(_this_thread, "selector", None) is self:
            del _this_thread.selector  # the loop is closed: later stamps on this thread carry no idle time
        super().close()


def idle_clock_loop() -> asyncio.AbstractEventLoop:
    """An event loop whose stamps (taken on the thread that calls this and then runs the loop)
    carry the loop's idle time: for ``asyncio.Runner(loop_factory=idle_clock_loop)``."""
    selector = IdleSelector()
    _this_thread.selector = selector
    return asyncio.SelectorEventLoop(selector)


@dataclasses.dataclass(frozen=True)
class ThreadStamp:
    """One moment of the calling thread: wall clock (s), its CPU clock (s), its involuntary
    switches, and the seconds its loop (one made by ``idle_clock_loop``; 0 otherwise) sat idle."""

    wall: float
    cpu: float
    preemptions: int
    idle: float = 0.0

    @classmethod
    def now(cls) -> ThreadStamp:
        selector: IdleSelector | None = getattr(_this_thread, "selector", None)
        return cls(
            time.time(),
            time.thread_time(),
            resource.getrusage(resource.RUSAGE_THREAD).ru_nivcsw,
            selector.idle if selector is not None else 0.0,
        )

    def cpu_since(self, earlier: ThreadStamp) -> float:
        """CPU seconds this thread ran since ``earlier`` (a stamp taken on the same thread)."""
        return self.cpu - earlier.cpu

    def idle_since(self, earlier: ThreadStamp) -> float:
        """Seconds this thread's loop sat waiting for input since ``earlier`` (same thread)."""
        return self.idle - earlier.idle

    def preempted_since(self, earlier: ThreadStamp) -> bool:
        """Whether the kernel took this thread's core away since ``earlier`` (same thread)."""
        return self.preemptions > earlier.preemptions
