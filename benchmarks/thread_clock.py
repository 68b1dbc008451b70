"""What the calling thread did between two moments: wall time, CPU time, and preemptions.

The latency benchmark compares two clients served by one event loop, one thread: the rig's
observer hands an event over some time after a bare client did. On two cores shared with the
firmware, that wall-clock difference also holds whatever time the kernel gave to another process
in between, or the hypervisor to another machine. The thread's own CPU clock does not move
while it is not running, and its count of involuntary context switches says whether the kernel
took the core away, so the two together split the rig's own work from the machine's scheduling.
"""

from __future__ import annotations

import dataclasses
import resource
import time


@dataclasses.dataclass(frozen=True)
class ThreadStamp:
    """One moment of the calling thread: wall clock (s), its CPU clock (s), its involuntary switches."""

    wall: float
    cpu: float
    preemptions: int

    @classmethod
    def now(cls) -> ThreadStamp:
        return cls(time.time(), time.thread_time(), resource.getrusage(resource.RUSAGE_THREAD).ru_nivcsw)

    def cpu_since(self, earlier: ThreadStamp) -> float:
        """CPU seconds this thread ran since ``earlier`` (a stamp taken on the same thread)."""
        return self.cpu - earlier.cpu

    def preempted_since(self, earlier: ThreadStamp) -> bool:
        """Whether the kernel took this thread's core away since ``earlier`` (same thread)."""
        return self.preemptions > earlier.preemptions
