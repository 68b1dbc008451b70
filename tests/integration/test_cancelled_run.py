"""A nightly job that is cancelled (SIGTERM) takes its virtual Pi down, as Ctrl-C does."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from rig import paths

from .conftest import pid_alive, run_rig

MID_TEST = """
import json, os, time
from pathlib import Path

def test_still_running(dut):
    info = dut.virtual_pi.info()
    Path(os.environ["RIG_TEST_READY"]).write_text(json.dumps({"pid": info.supervisor_pid, "ns": info.namespace}))
    time.sleep(120)
"""


def _namespaces() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10, check=False).stdout


def test_sigterm_mid_test_takes_the_virtual_pi_down(tmp_path: Path) -> None:
    (tmp_path / "test_mid.py").write_text(MID_TEST)
    ready = tmp_path / "ready.json"
    command = [sys.executable, "-m", "pytest", str(tmp_path / "test_mid.py"), "-p", "no:cacheprovider", "-q",
               f"--artifacts={tmp_path / 'run'}", f"--rootdir={tmp_path}"]  # fmt: skip
    env = {**os.environ, "RIG_TEST_READY": str(ready)}
    try:
        with subprocess.Popen(command, cwd=paths.PROJECT_ROOT, env=env, stdout=subprocess.PIPE, text=True) as run:
            deadline = time.monotonic() + 180
            while not ready.exists():
                assert run.poll() is None, f"the run ended before its test started: {run.communicate()[0][-2000:]}"
                assert time.monotonic() < deadline, "the virtual Pi did not come up within 180 s"
                time.sleep(0.2)
            pi = json.loads(ready.read_text())
            assert pid_alive(pi["pid"])
            run.send_signal(signal.SIGTERM)
            out, _ = run.communicate(timeout=120)
        assert run.returncode != 0, out[-2000:]
        assert not pid_alive(pi["pid"]), f"supervisord {pi['pid']} outlived the cancelled run:\n{out[-2000:]}"
        if pi["ns"]:
            assert pi["ns"] not in _namespaces(), f"namespace {pi['ns']} outlived the cancelled run"
    finally:  # whatever the run left, this test does not leave it to the next
        run_rig("sim", "down", "--state-dir", str(tmp_path / "run" / "virtual-pi"))
