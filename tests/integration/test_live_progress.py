"""The live panel (issue 7): on a terminal it shows the running test, its last events and the
deploy; in CI, or off a terminal, the output stays plain. pytest runs on a real pseudo-terminal."""

from __future__ import annotations

import io
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rig.live_progress import LiveProgress

TESTS = """
import time

def test_a_stimulus_and_its_event(timeline):
    timeline.record("stimulus", "rig", "press next")
    timeline.record("event", "ws0", "state:player", seq=7)
    time.sleep(1.5)  # several refreshes of the panel
"""

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def on_a_terminal(folder: Path, *, ci: bool) -> str:
    """pytest with its stdout on a pseudo-terminal, as a technician's shell runs it; what it drew."""
    (folder / "test_live.py").write_text(TESTS)
    env = {k: v for k, v in os.environ.items() if k != "CI"} | {"COLUMNS": "160", "TERM": "xterm"}
    if ci:
        env["CI"] = "true"
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "test_live.py", "--artifacts=artifacts"],
        cwd=folder, stdin=terminal, stdout=terminal, stderr=terminal, env=env,
    )  # fmt: skip
    os.close(terminal)
    drawn = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the terminal closed: pytest is done
                break
            if not chunk:
                break
            drawn += chunk
        elif process.poll() is not None:
            break
    os.close(controller)
    process.wait(timeout=30)
    assert process.returncode == 0, drawn.decode(errors="replace")[-2000:]
    return drawn.decode(errors="replace")


def test_a_terminal_shows_the_running_test_and_its_last_events(tmp_path: Path) -> None:
    drawn = on_a_terminal(tmp_path, ci=False)
    plain = ANSI.sub("", drawn)
    assert "▶ 0/1  0 passed, 0 failed, 0 skipped  test_live.py::test_a_stimulus_and_its_event" in plain
    assert "stimulus rig    press next" in plain
    assert "event    ws0    state:player seq=7" in plain
    assert "\x1b[1A\x1b[2K" in drawn, "the panel redraws in place"
    assert "1 passed" in plain.splitlines()[-1]


def test_ci_output_stays_plain(tmp_path: Path) -> None:
    drawn = on_a_terminal(tmp_path, ci=True)
    assert "▶" not in drawn
    assert "state:player" not in drawn


def test_the_deploy_shows_files_and_bytes_then_the_pis_part(pytestconfig: pytest.Config) -> None:
    live = LiveProgress(pytestconfig, io.StringIO(), lambda: None)
    live.deploy_progress("musicbox/app.py", 12, 31, 80_000, 189_000)
    assert "deploy: 12/31 files, 80/189 kB  musicbox/app.py" in str(live.render().renderables[1])
    live.deploy_progress("requirements.txt", 31, 31, 189_000, 189_000)
    assert "31 files sent (189 kB); the Pi sets up the release" in str(live.render().renderables[1])
    live.set_stage("checking the bench")
    assert str(live.render().renderables[1]).strip() == "checking the bench"
