"""What every benchmark shares: a virtual Pi to measure against, percentiles, and the results file.

These machines are shared and noisy, so every script measures the rig and the alternative a user
would pick in the same run, and the figure that matters is their ratio.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import platform
import shlex
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from rig import heap, paths
from rig.bench import load_bench
from rig.dut import Dut, start_sim
from rig.virtual_pi import SimSettings, VirtualPi

RESULTS = Path(__file__).resolve().parent / "results"
log = logging.getLogger("benchmarks")


def stats_ms(samples_s: list[float]) -> dict[str, float]:
    """Median, p99 and the like of durations in seconds, in milliseconds (only ``n`` when none)."""
    if not samples_s:
        return {"n": 0}
    values = np.asarray(samples_s) * 1e3
    return {
        "n": len(values),
        "p50_ms": round(float(np.percentile(values, 50)), 3),
        "p99_ms": round(float(np.percentile(values, 99)), 3),
        "min_ms": round(float(values.min()), 3),
        "max_ms": round(float(values.max()), 3),
    }


def timed(samples: list[float]) -> contextlib.AbstractContextManager[None]:
    """``with timed(samples): ...`` appends the block's duration (perf_counter, seconds)."""

    @contextlib.contextmanager
    def block() -> Iterator[None]:
        started = time.perf_counter()
        yield
        samples.append(time.perf_counter() - started)

    return block()


@contextlib.contextmanager
def virtual_pi(form: str = "ssh", *, deploy: bool = True, **settings: Any) -> Iterator[VirtualPi]:
    """A fresh virtual Pi (the SSH form by default: an sshd on loopback, no root needed), with the
    reference firmware deployed to it when ``deploy``; stopped afterwards."""
    with tempfile.TemporaryDirectory(prefix="rig-bench-") as folder:
        pi = VirtualPi(Path(folder) / "pi", SimSettings(form=form, **settings))
        pi.up()
        try:
            if deploy and form != "local":
                pi.deploy()
            yield pi
        finally:
            pi.down()


def local_dut(state_dir: Path) -> Dut:
    """A booted virtual Pi of the local form, as the suite sees it: the firmware runs straight from
    the checkout, so a benchmark spends none of its two minutes on a deploy."""
    bench = load_bench(paths.SIM_BENCH)
    dut = start_sim(dataclasses.replace(bench, sim=dataclasses.replace(bench.sim, form="local")), state_dir)
    heap.freeze_setup()  # as the rig's pytest plugin does once the tests are collected
    return dut


def report(name: str, figures: dict[str, Any]) -> dict[str, Any]:
    """Print the figures as JSON and keep them in ``results/NAME.json`` with where they were
    measured and the command that measured them: a run with other arguments (fewer stimuli, one
    form) overwrites the same file, and its record must say so."""
    record = {
        "benchmark": name,
        "command": shlex.join(["python", "-m", f"benchmarks.{name}", *sys.argv[1:]]),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cpus": _cpus(), "python": platform.python_version(), "kernel": platform.release()},
        **figures,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    text = json.dumps(record, indent=2)
    (RESULTS / f"{name}.json").write_text(text + "\n")
    print(text)  # the benchmark's output is its figures (CLI output)
    return record


def _cpus() -> int:
    return len(os.sched_getaffinity(0))


def setup_logging() -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s: %(message)s")
