"""A shared lab (issue 7): ``--lg-place`` against a real ``labgrid-coordinator`` and
``labgrid-exporter`` on loopback. The exporter publishes a virtual Pi (SSH form, firmware deployed)
as a lab bench would publish a Pi: its SSH address as labgrid's ``NetworkService``, its wiring as
the rig's ``Rig*`` resources. The run acquires the place, builds its bench from those resources,
and gives the place back at the end, a failed run included."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from rig.lab_place import PlaceError, labgrid_client
from rig.net import free_port
from rig.virtual_pi import VirtualPi

from ..conftest import unavailable
from .conftest import LineReader, inner_pytest

PLACE = "lab-bench-1"

EXPORTER = """
{place}:
  NetworkService:
    address: 127.0.0.1
    username: {user}
    port: {port}
  firmware:
    cls: RigDut
    port: {http_port}
  next:
    cls: RigGpioLine
    dut_pin: 16
  console:
    cls: RigSerial
    port: {console}
    baudrate: 115200
"""

BASE = """
# The lab's base bench file: what every place shares (pinned host keys, the rig's SSH key).
[ssh]
known_hosts = "{known_hosts}"
key_file = "{key}"
"""

PLACE_TESTS = """
import subprocess
import sys

def test_the_place_is_the_bench(dut, bench):
    assert bench.name == "{place}" and bench.kind == "pi"
    assert (bench.ssh.host, bench.ssh.port, bench.ssh.user) == ("127.0.0.1", {port}, "{user}")
    assert bench.dut.url == "http://127.0.0.1:{http_port}"
    assert bench.gpio.wiring.lines["next"].dut_pin == 16
    assert bench.serial.port == "{console}"
    assert dut.ssh.run("echo on the pi").stdout == "on the pi\\n"
    shown = subprocess.run(
        ["{client}", "-x", "{coordinator}", "-p", "{place}", "show"], capture_output=True, text=True, timeout=30
    ).stdout
    assert "acquired: None" not in shown, shown

def test_a_device_failure(dut):
    assert dut.firmware_version == "not this one", "the firmware misbehaved"
"""


def labgrid_bin() -> Path:
    """The folder of labgrid's programs (make test's bootstrap installs them)."""
    try:
        return labgrid_client().parent
    except PlaceError as exc:
        unavailable(str(exc))


@dataclass
class Lab:
    coordinator: str
    folder: Path

    def client(self, *args: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {"PATH": "/usr/bin:/bin"} | ({"LG_USERNAME": user} if user else {})
        return subprocess.run(
            [str(labgrid_bin() / "labgrid-client"), "-x", self.coordinator, *args],
            capture_output=True, text=True, timeout=30, check=False, env=env,
        )  # fmt: skip

    def holder(self) -> str:
        shown = self.client("-p", PLACE, "show")
        assert shown.returncode == 0, shown.stderr
        return next(line.split(":", 1)[1].strip() for line in shown.stdout.splitlines() if "acquired:" in line)


def _start(command: list[str], cwd: Path, ready: str, processes: list[subprocess.Popen[str]]) -> None:
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    processes.append(process)
    LineReader(process).until(ready, timeout=30)


@pytest.fixture
def lab(tmp_path: Path, deployed_pi: VirtualPi) -> Iterator[Lab]:
    """A coordinator on an ephemeral loopback port, an exporter publishing the virtual Pi, and the
    place an admin would create for it (``create`` and ``add-match``)."""
    bin_ = labgrid_bin()
    info = deployed_pi.info()
    assert info is not None
    folder = tmp_path / "lab"
    folder.mkdir()
    coordinator = f"127.0.0.1:{free_port()}"
    (folder / "exporter.yaml").write_text(
        EXPORTER.format(
            place=PLACE, user=info.ssh_user, port=info.ssh_port, http_port=info.url.rsplit(":", 1)[1],
            console=info.console,
        )
    )  # fmt: skip
    processes: list[subprocess.Popen[str]] = []
    try:
        _start([str(bin_ / "labgrid-coordinator"), "-l", coordinator], folder, "listening on", processes)
        exporter = [str(bin_ / "labgrid-exporter"), "-c", coordinator, "-n", "rig-host", "exporter.yaml"]
        _start(exporter, folder, "Exporter ready", processes)
        lab = Lab(coordinator, folder)
        for args in (("create",), ("add-match", f"rig-host/{PLACE}/*")):
            done = lab.client("-p", PLACE, *args)
            assert done.returncode == 0, done.stderr
        deadline = time.monotonic() + 15
        while PLACE not in (listed := lab.client("resources")).stdout and time.monotonic() < deadline:
            time.sleep(0.2)
        assert PLACE in listed.stdout, f"the exporter's resources never reached the coordinator: {listed}"
        yield lab
    finally:
        for process in processes[::-1]:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def run_place(lab: Lab, folder: Path, virtual_pi: VirtualPi, *extra: str) -> subprocess.CompletedProcess[str]:
    info = virtual_pi.info()
    assert info is not None
    (folder / "base.toml").write_text(BASE.format(known_hosts=info.known_hosts, key=info.ssh_key))
    (folder / "test_place.py").write_text(
        PLACE_TESTS.format(
            place=PLACE, port=info.ssh_port, user=info.ssh_user, http_port=info.url.rsplit(":", 1)[1],
            console=info.console, client=labgrid_bin() / "labgrid-client", coordinator=lab.coordinator,
        )
    )  # fmt: skip
    return inner_pytest(
        folder, "test_place.py", "-rs", f"--lg-place={PLACE}", f"--lg-coordinator={lab.coordinator}",
        "--bench=base.toml", f"--artifacts={folder / 'artifacts'}", *extra,
        env={"RIG_LOCK_DIR": str(folder / "locks")}, timeout=180,
    )  # fmt: skip


def test_the_run_holds_the_place_and_gives_it_back_after_a_failure(
    tmp_path: Path, lab: Lab, deployed_pi: VirtualPi
) -> None:
    result = run_place(lab, tmp_path, deployed_pi)
    output = result.stdout + result.stderr
    assert "1 failed, 1 passed" in output, output
    assert f"acquired labgrid place {PLACE!r}: Pi at 127.0.0.1" in output
    assert lab.holder() == "None", "the place must be released after a failed run"
    record = (tmp_path / "artifacts" / "lab-place.json").read_text()
    assert "RigGpioLine/next" in record
    assert f"lab       labgrid place {PLACE} at {lab.coordinator}" in output
    assert json.loads((tmp_path / "artifacts" / "summary.json").read_text())["lg_place"] == PLACE


def test_a_place_another_user_holds_fails_at_once_with_no_wait(
    tmp_path: Path, lab: Lab, deployed_pi: VirtualPi
) -> None:
    taken = lab.client("-p", PLACE, "acquire", user="alice")
    assert taken.returncode == 0, taken.stderr
    started = time.monotonic()
    result = run_place(lab, tmp_path, deployed_pi, "--no-wait")
    assert time.monotonic() - started < 60
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"bench error: labgrid place {PLACE!r} is acquired by " in result.stdout + result.stderr
    assert lab.holder().endswith("/alice"), "a refused run must leave the holder's acquisition alone"


def test_a_wait_says_who_holds_the_place_and_gives_up_at_the_timeout(
    tmp_path: Path, lab: Lab, deployed_pi: VirtualPi
) -> None:
    lab.client("-p", PLACE, "acquire", user="alice")
    result = run_place(lab, tmp_path, deployed_pi, "--lock-timeout=3")
    output = result.stdout + result.stderr
    assert f"waiting for labgrid place {PLACE!r}: acquired by " in output, output
    assert "/alice (--no-wait: fail instead)" in output
    assert "(waited 3 s)" in output, output
    assert result.returncode == 2


def test_a_place_left_acquired_by_a_killed_run_on_this_host_is_taken_over(
    tmp_path: Path, lab: Lab, deployed_pi: VirtualPi
) -> None:
    """A run killed with SIGKILL cannot release; the next run on the host (which holds the host's
    lock on the place, so the earlier run is gone) releases it and carries on."""
    taken = lab.client("-p", PLACE, "acquire")
    assert taken.returncode == 0, taken.stderr
    result = run_place(lab, tmp_path, deployed_pi, "-k", "the_place_is")
    output = result.stdout + result.stderr
    assert "left acquired by a killed run" in output, output
    assert "1 passed" in output
    assert lab.holder() == "None"


def test_a_cancelled_run_gives_the_place_back(tmp_path: Path, lab: Lab, deployed_pi: VirtualPi) -> None:
    """CI cancels a job with SIGTERM: the run ends as if interrupted, and releases the place."""
    run_place(lab, tmp_path, deployed_pi, "--co")  # writes the files; collects only
    (tmp_path / "test_slow.py").write_text("import time\n\ndef test_slow(dut):\n    time.sleep(120)\n")
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-s", "test_slow.py"]
    command += [f"--lg-place={PLACE}", f"--lg-coordinator={lab.coordinator}", "--bench=base.toml"]
    process = subprocess.Popen(
        command, cwd=tmp_path, env=os.environ | {"RIG_LOCK_DIR": str(tmp_path / "locks")},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        LineReader(process).until("acquired labgrid place", timeout=60)
        assert lab.holder() != "None"
        time.sleep(3)  # into the test
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    assert lab.holder() == "None", "a cancelled run must release the place"


def test_an_unreachable_coordinator_is_one_line(tmp_path: Path) -> None:
    labgrid_bin()
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    (tmp_path / "test_nothing.py").write_text("def test_nothing(dut):\n    pass\n")
    result = inner_pytest(
        tmp_path, f"--lg-place={PLACE}", f"--lg-coordinator=127.0.0.1:{port}",
        env={"RIG_LOCK_DIR": str(tmp_path / "locks")}, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert f"bench error: labgrid coordinator 127.0.0.1:{port}: unreachable" in result.stdout + result.stderr
    with contextlib.suppress(FileNotFoundError):
        assert not list((tmp_path / "locks").iterdir()), "the host's lock on the place must be released"
