"""The latency benchmark's split of the cores: the virtual Pi on cores of its own, the rig on the rest.

It runs in a process of its own: pinning the test process (or a virtual Pi another test left
running) would slow the rest of the run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from rig import paths

SPLIT_IN_A_CHILD = textwrap.dedent(
    """
    import json, os, subprocess, sys, threading
    from benchmarks.cores import split_cores

    pi = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        split = split_cores()
        started_after = {}
        thread = threading.Thread(target=lambda: started_after.update(cores=sorted(os.sched_getaffinity(0))))
        thread.start()
        thread.join()
        print(json.dumps({
            "split": split,
            "pi": sorted(os.sched_getaffinity(pi.pid)),
            "rig": sorted(os.sched_getaffinity(0)),
            "thread_started_after": started_after["cores"],
        }))
    finally:
        pi.kill()
        pi.wait()
    """
)


def test_the_virtual_pi_and_the_rig_get_cores_of_their_own() -> None:
    cores = sorted(os.sched_getaffinity(0))
    done = subprocess.run(
        [sys.executable, "-c", SPLIT_IN_A_CHILD], cwd=paths.PROJECT_ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    if len(cores) < 2:
        assert seen["split"] is None, "one core: nothing to split"
        assert seen["pi"] == seen["rig"] == cores
        return
    rig, pi = cores[: len(cores) // 2], cores[len(cores) // 2 :]
    assert seen["split"] == {"virtual_pi": pi, "rig": rig}
    assert seen["pi"] == pi, "a process the benchmark had started goes to the virtual Pi's cores"
    assert seen["rig"] == rig
    assert seen["thread_started_after"] == rig, "the rig's later threads inherit its cores"
