"""Keep the garbage collector's full passes off the latencies a test measures.

By the time tests run, a test process holds a large heap that lives as long as it does: the
imported libraries (numpy, paramiko, jsonschema, python-socketio), the contract's schemas, the
test modules. CPython's full collection walks all of it every time, and a pass that lands on a
broadcast's delivery becomes that broadcast's latency: with 500 observers, two full passes of
60-180 ms fell inside 15 events' delivery (``benchmarks/fanout.py``). Freezing the set-up's heap
once takes it out of every later collection (``gc.freeze``); what tests allocate afterwards is
collected as before.
"""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger(__name__)


def freeze_setup() -> None:
    """Collect once, then move every object that survived out of later collections."""
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    log.debug(
        "froze %d objects out of later collections in %.0f ms",
        gc.get_freeze_count(),
        (time.perf_counter() - started) * 1000,
    )
