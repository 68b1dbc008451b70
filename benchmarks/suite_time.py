"""Figure 5 (suite): the whole sim HIL suite's wall time, as ``make demo`` runs it (one virtual
Pi) and in the lab form (``--inventory fixtures/benches/inventory.sim.toml``: two virtual Pis,
one pytest-xdist worker each, on the same host). Target: the suite within 120 s.

Each run is a fresh pytest process from nothing, so it includes booting the Pi and the first
deploy, as a user's run does. Most of the suite is deliberate waiting (timeouts that must expire,
power cycles, clips that play for seconds), which a second Pi halves while the two cores idle.
By default only the one-Pi run: both take about three minutes, over the two a benchmark may take.

    python -m benchmarks.suite_time [--forms one two]
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rig import paths

from .common import report, setup_logging

log = logging.getLogger("benchmarks.suite_time")
FORMS = {"one": [], "two": ["--inventory", str(paths.FIXTURES / "benches" / "inventory.sim.toml")]}
RUN_TIMEOUT_S = 900


def run_suite(form: str, folder: Path) -> dict[str, Any]:
    """One run of tests/hil; its wall time and pytest's counts. Raises if any test did not pass,
    with pytest's summary of each failure and the run's artifacts folder."""
    artifacts = folder / form
    command = [sys.executable, "-m", "pytest", "tests/hil", "-p", "no:cacheprovider", "-q",
               f"--artifacts={artifacts}", *FORMS[form]]  # fmt: skip
    log.warning("the sim HIL suite on %s virtual Pi(s): about %s", form, "2 min" if form == "one" else "1.5 min")
    started = time.perf_counter()
    wide = {**os.environ, "COLUMNS": "400"}  # pytest cuts its one-line failure summaries to the terminal's width
    with subprocess.Popen(
        command, cwd=paths.PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=wide
    ) as pytest_run:
        try:
            out, err = pytest_run.communicate(timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            # SIGTERM, not the kill subprocess.run would send: the rig's plugin ends the run
            # like Ctrl-C, so its virtual Pis are taken down.
            pytest_run.terminate()
            out, err = pytest_run.communicate(timeout=120)
    wall = time.perf_counter() - started
    counts = {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|failed|skipped|errors?)\b", out)}
    if pytest_run.returncode != 0 or counts.get("failed") or counts.get("error") or counts.get("errors"):
        tail = "\n".join(out.splitlines()[-15:] + err.splitlines()[-5:])
        raise SystemExit(
            f"suite_time: the suite did not pass on {form} Pi(s) (exit {pytest_run.returncode}; "
            f"its artifacts are kept in {artifacts}):\n{tail}"
        )
    return {"wall_s": round(wall, 1), "passed": counts.get("passed", 0), "skipped": counts.get("skipped", 0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--forms", nargs="+", choices=list(FORMS), default=["one"], help="one (default), two, or both")
    args = parser.parse_args()
    setup_logging()
    folder = Path(tempfile.mkdtemp(prefix="rig-suite-"))
    runs = {form: run_suite(form, folder) for form in args.forms}  # a failed run keeps the folder
    shutil.rmtree(folder)
    report(
        "suite_time",
        {
            "virtual_pis": {"one": "make demo", "two": "--inventory fixtures/benches/inventory.sim.toml"},
            "runs": runs,
            "targets": {f"suite_wall_s_{form} <= 120": run["wall_s"] for form, run in runs.items()},
        },
    )


if __name__ == "__main__":
    main()
