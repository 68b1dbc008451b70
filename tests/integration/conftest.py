"""Helpers for tests that drive the rig as a user does: its CLI, and pytest in a subprocess."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import pytest

from rig.virtual_pi import SimSettings, VirtualPi

RIG = Path(sys.executable).parent / "rig"


def run_rig(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(RIG), *args], capture_output=True, text=True, timeout=timeout, check=False)


class LineReader:
    """Reads a process's stdout on a thread, so waiting for a line can time out (select() on the
    pipe would miss lines already buffered by Python)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, args=(process.stdout,), daemon=True)
        self._thread.start()

    def _pump(self, stream: TextIO) -> None:
        for line in stream:
            self._lines.put(line)
        self._lines.put(None)

    def until(self, needle: str, timeout: float) -> list[str]:
        """Lines up to the first that contains ``needle``; fails with what came instead."""
        lines: list[str] = []
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:
                break
            lines.append(line)
            if needle in line:
                return lines
        pytest.fail(f"no line with {needle!r} within {timeout}s; got instead:\n{''.join(lines[-10:])}")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().split()[2] if Path(f"/proc/{pid}/stat").exists() else "X"
    return state not in ("Z", "X")


@pytest.fixture
def virtual_pi_factory(tmp_path: Path) -> Iterator:
    """Start virtual Pis in this test's tmp folder; every one is stopped afterwards."""
    started: list[VirtualPi] = []

    def start(name: str = "pi", **settings: object) -> VirtualPi:
        virtual_pi = VirtualPi(tmp_path / name, SimSettings(**settings))  # type: ignore[arg-type]
        virtual_pi.up()
        started.append(virtual_pi)
        return virtual_pi

    yield start
    for virtual_pi in started:
        virtual_pi.down()
