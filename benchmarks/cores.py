"""Cores of its own for the virtual Pi, as a Pi has a CPU of its own.

On the bench the firmware runs on the Pi and the rig on its host. A virtual Pi runs on the rig's
host, and the kernel schedules both on the same cores: when the firmware writes a broadcast to
one client's socket, the woken client's process can take the firmware's core, and the firmware
writes the next client's copy only once it has the core back (seen in the latency benchmark:
writing the third of four copies took the firmware 1.1 ms, while the rig's loop, served
fourth, sat idle). That delay is the virtual Pi's, not the rig's. Splitting the cores gives each
side its own, as on the bench; with one core there is nothing to split.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from rig.procs import descendants

log = logging.getLogger(__name__)


def _pin(pid: int, cores: set[int]) -> None:
    """Every thread of ``pid``: a process's affinity is per thread, set when each was created."""
    for task in Path(f"/proc/{pid}/task").glob("[0-9]*"):
        with contextlib.suppress(ProcessLookupError, FileNotFoundError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(task.name), cores)


def split_cores() -> dict[str, list[int]] | None:
    """Put every process this one has started (the virtual Pi, and whatever else it started by
    now) on the upper half of this process's cores, and this process on the lower half; threads
    and processes started later inherit their starter's. None with a single core."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return None
    rig, pi = set(cores[: len(cores) // 2]), set(cores[len(cores) // 2 :])
    for pid in descendants(os.getpid()):
        try:
            _pin(pid, pi)
        except PermissionError:
            log.warning("cannot move process %d to the virtual Pi's cores (another user's): it keeps its own", pid)
    _pin(os.getpid(), rig)
    return {"virtual_pi": sorted(pi), "rig": sorted(rig)}
