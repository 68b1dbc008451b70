"""Helpers for tests that drive the rig as a user does: its CLI, and pytest in a subprocess."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import pytest

from rig.net import free_port
from rig.procs import descendants
from rig.sshd import LocalSshd, current_user
from rig.virtual_pi import SimSettings, VirtualPi

from ..conftest import unavailable

RIG = Path(sys.executable).parent / "rig"


def require_root() -> None:
    """The namespace virtual Pi needs root: skipped as a user, a failure under CI (which runs as root)."""
    if os.geteuid() != 0:
        unavailable("the namespace virtual Pi needs root")


def inner_pytest(
    cwd: Path, *args: str, ci: bool | None = False, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """pytest in a subprocess, as a technician runs it: without CI (a bench error skips there),
    with ``CI=true`` when ``ci``, or with this run's own CI setting when ``ci`` is None."""
    environment = dict(os.environ) if ci is None else {k: v for k, v in os.environ.items() if k != "CI"}
    if ci:
        environment["CI"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
        cwd=cwd, env=environment | (env or {}), capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


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
    """Start virtual Pis (the local form unless a test asks otherwise) in this test's tmp folder;
    every one is stopped afterwards."""
    started: list[VirtualPi] = []

    def start(name: str = "pi", **settings: object) -> VirtualPi:
        options: dict[str, object] = {"form": "local", **settings}
        virtual_pi = VirtualPi(tmp_path / name, SimSettings(**options))  # type: ignore[arg-type]
        virtual_pi.up()
        started.append(virtual_pi)
        return virtual_pi

    yield start
    for virtual_pi in started:
        virtual_pi.down()


@pytest.fixture
def deployed_pi(virtual_pi_factory) -> VirtualPi:
    """A virtual Pi in the SSH form with the firmware deployed to it, as a bench Pi after ``rig deploy``."""
    virtual_pi = virtual_pi_factory(form="ssh")
    virtual_pi.deploy()
    return virtual_pi


class SshdUnderTest:
    """A real OpenSSH server on an ephemeral loopback port, as a virtual Pi runs it."""

    def __init__(self, folder: Path) -> None:
        self.server = LocalSshd(folder, "127.0.0.1", free_port(), current_user())
        self.target = self.server.prepare()
        self._processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        log = (self.server.folder / "sshd.log").open("ab")
        self._processes.append(subprocess.Popen(self.server.command, stdout=log, stderr=log, start_new_session=True))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.server.port), timeout=0.5):
                return
            time.sleep(0.02)
        pytest.fail(
            f"sshd did not listen on {self.server.port}: {(self.server.folder / 'sshd.log').read_text()[-500:]}"
        )

    def stop(self) -> None:
        """Kill sshd and every connection it serves, as a Pi's reboot does (each connection's
        sshd runs in a session of its own, so the process tree is walked, not the group)."""
        for process in self._processes:
            for pid in [*descendants(process.pid), process.pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            process.wait(timeout=10)
        self._processes.clear()


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[SshdUnderTest]:
    server = SshdUnderTest(tmp_path / "sshd")
    server.start()
    yield server
    server.stop()
