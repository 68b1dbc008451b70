"""The bench check (issue 7): each part of a running namespace virtual Pi is broken in turn, and a
technician's pytest run against it (``--sim-running``) must skip exactly the tests that need that
part, each with the part's bench error as its one reason, and run the rest. ``rig check`` prints
the same verdict as a table and exit status."""

from __future__ import annotations

import json
import os
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from device_drivers.nfc.field_service import RemoteField
from rig.bench_check import PART_GATES
from rig.report import render_report
from rig.virtual_pi import SimSettings, VirtualPi

from .conftest import inner_pytest, require_root, run_rig

# One probe per capability the bench check gates; each asserts the part it needs is really there.
PROBES = """
import pytest

@pytest.mark.needs("http")
def test_http(dut):
    assert dut.url.startswith("http://")

@pytest.mark.needs("journal")
def test_journal(dut):
    assert dut.ssh.run("echo up").stdout == "up\\n"

@pytest.mark.needs("socketio")
def test_socketio(dut):
    assert "socketio" in dut.capabilities

@pytest.mark.needs("gpio")
def test_gpio(gpio):
    assert gpio is not None

@pytest.mark.needs("nfc")
def test_nfc(dut):
    assert "nfc" in dut.capabilities

@pytest.mark.needs("audio_in")
def test_audio_in(dut):
    assert "audio_in" in dut.capabilities

@pytest.mark.needs("console")
def test_console(console):
    assert console.error is None
"""
PROBE_NEEDS = {
    "http": "http",
    "journal": "journal",
    "socketio": "socketio",
    "gpio": "gpio",
    "nfc": "nfc",
    "audio_in": "audio_in",
    "console": "console",
}


@pytest.fixture(scope="module")
def pi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VirtualPi]:
    """A deployed namespace virtual Pi, shared by the break tests (each repairs what it broke)."""
    require_root()
    virtual_pi = VirtualPi(tmp_path_factory.mktemp("checked") / "pi", SimSettings(form="netns"))
    virtual_pi.up()
    try:
        virtual_pi.deploy()
        yield virtual_pi
    finally:
        virtual_pi.down()


def run_probes(folder: Path, state_dir: Path, *, ci: bool = False) -> dict[str, tuple[str, str]]:
    """Run the probes against the running Pi; per test, its outcome and message from the JUnit XML."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "test_probes.py").write_text(PROBES)
    junit = folder / "junit.xml"
    done = inner_pytest(
        folder, "test_probes.py", f"--sim-running={state_dir}", f"--artifacts={folder / 'artifacts'}",
        f"--junitxml={junit}", ci=ci,
    )  # fmt: skip
    assert junit.exists(), f"the inner run wrote no JUnit report:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    outcomes = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = case.attrib["name"].removeprefix("test_")
        mark = next((child for child in case if child.tag in ("skipped", "failure", "error")), None)
        outcomes[name] = ("passed", "") if mark is None else (mark.tag, mark.attrib.get("message", ""))
    return outcomes


def _swap_host_key(pi: VirtualPi) -> Callable[[], None]:
    """Pin a different key for the Pi: what a reinstalled (or impostor) host looks like."""
    info = pi.info()
    assert info is not None
    known_hosts = Path(info.known_hosts)
    original = known_hosts.read_text()
    other = known_hosts.parent / "impostor"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True, timeout=30)
    impostor = other.with_suffix(".pub").read_text().split()[:2]
    lines = [" ".join([line.split()[0], *impostor]) for line in original.splitlines() if line.strip()]
    known_hosts.write_text("\n".join(lines) + "\n")
    return lambda: known_hosts.write_text(original)


def _stop_firmware(pi: VirtualPi) -> Callable[[], None]:
    pi._supervisorctl("stop", "firmware")

    def repair() -> None:
        pi._supervisorctl("start", "firmware")
        info = pi.info()
        assert info is not None
        pi._wait_healthy(info.url, info.supervisor_pid)

    return repair


def _unplug_gpio(pi: VirtualPi) -> Callable[[], None]:
    aside = pi.gpio_socket.with_name(pi.gpio_socket.name + ".unplugged")
    pi.gpio_socket.rename(aside)
    return lambda: aside.rename(pi.gpio_socket)


def _pull_reader(pi: VirtualPi) -> Callable[[], None]:
    pi.set_reader(False)

    def repair() -> None:
        pi.set_reader(True)
        RemoteField(pi.nfc_control).wait_for_poll(10.0)

    return repair


def _kill_device(name: str, restart: Callable[[VirtualPi], object]) -> Callable[[VirtualPi], Callable[[], None]]:
    """Kill one of the bench's own processes (the audio server, the console cable); the repair
    starts it again, as a technician replugs the audio interface or the USB-UART."""

    def breaker(pi: VirtualPi) -> Callable[[], None]:
        pid = json.loads((pi.state_dir / f"{name}.pid").read_text())["pid"]
        os.kill(pid, 15)
        deadline = time.monotonic() + 5
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        return lambda: restart(pi)

    return breaker


BREAKS: list[tuple[str, Callable[[VirtualPi], Callable[[], None]], str]] = [
    ("ssh", _swap_host_key, "host key"),
    ("firmware", _stop_firmware, "unreachable"),
    ("gpio", _unplug_gpio, "mock pins"),
    ("nfc", _pull_reader, "did not poll"),
    ("audio", _kill_device("pulseaudio", VirtualPi._start_audio), "audio"),
    ("console", _kill_device("console", VirtualPi._start_console), "serial console"),
]


def test_a_sound_bench_runs_every_probe_and_rig_check_passes(pi: VirtualPi, tmp_path: Path) -> None:
    outcomes = run_probes(tmp_path, pi.state_dir)
    assert outcomes == {name: ("passed", "") for name in PROBE_NEEDS}, outcomes
    checked = run_rig("check", "--state-dir", str(pi.state_dir))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "bench ok" in checked.stdout
    assert [line.split()[:2] for line in checked.stdout.splitlines()[1:8]] == [
        [part, "ok"] for part in ("ssh", "firmware", "socketio", "gpio", "nfc", "audio", "console")
    ]


@pytest.mark.parametrize(("part", "breaker", "said"), BREAKS, ids=[b[0] for b in BREAKS])
def test_a_broken_part_skips_only_what_needs_it(
    pi: VirtualPi, tmp_path: Path, part: str, breaker: Callable[[VirtualPi], Callable[[], None]], said: str
) -> None:
    repair = breaker(pi)
    try:
        outcomes = run_probes(tmp_path / "run", pi.state_dir)
        checked = run_rig("check", "--json", "--state-dir", str(pi.state_dir))
    finally:
        repair()
    page = render_report(tmp_path / "run" / "artifacts").read_text()
    assert f"bench error: {part}" in page, "the report shows the bench error"
    gated = set(PART_GATES[part]) if part != "firmware" else set(PROBE_NEEDS.values())
    for probe, capability in PROBE_NEEDS.items():
        outcome, message = outcomes[probe]
        if capability in gated:
            assert outcome == "skipped", f"{probe} should be skipped when {part} is broken: {outcomes[probe]}"
            assert message.startswith(f"bench error: {part}") or part == "firmware", message
            assert said in message, message
        else:
            assert outcome == "passed", f"{probe} does not need {part}, yet: {outcomes[probe]}"
    if part == "firmware":
        assert {message for _, message in outcomes.values()} == {outcomes["http"][1]}, "one reason for all"
        return
    assert checked.returncode == 1, checked.stdout + checked.stderr
    report = json.loads(checked.stdout)
    failed = [p["part"] for p in report["parts"] if p["ok"] is False]
    assert failed == [part], report


def test_a_bench_error_fails_under_ci_on_a_virtual_pi(pi: VirtualPi, tmp_path: Path) -> None:
    """CI must not hide a broken virtual Pi behind skips."""
    repair = _unplug_gpio(pi)
    try:
        outcomes = run_probes(tmp_path, pi.state_dir, ci=True)
    finally:
        repair()
    assert outcomes["gpio"][0] == "error", outcomes["gpio"]  # in the setup, before the test ran
    assert "CI runs the full sim suite, but bench error: gpio: " in outcomes["gpio"][1]
    assert outcomes["http"] == ("passed", "")


def _restart_firmware(pi: VirtualPi) -> None:
    pi._supervisorctl("restart", "firmware")
    info = pi.info()
    assert info is not None
    pi._wait_healthy(info.url, info.supervisor_pid)


def test_a_pi_that_booted_without_its_microphone_fails_the_audio_part(pi: VirtualPi) -> None:
    """The firmware started while the audio interface was out; it is back, so the rig's tone
    goes through the cable, but the firmware never found its microphone (PortAudio lists its
    devices once, at start). The audio part says so, instead of the voice tests failing one by one."""
    restore_audio = _kill_device("pulseaudio", VirtualPi._start_audio)(pi)
    try:
        _restart_firmware(pi)
    finally:
        restore_audio()
    try:
        checked = run_rig("check", "--json", "--state-dir", str(pi.state_dir))
    finally:
        _restart_firmware(pi)  # it finds the microphone now
    assert checked.returncode == 1, checked.stdout + checked.stderr
    parts = {p["part"]: p for p in json.loads(checked.stdout)["parts"]}
    assert [name for name, p in parts.items() if p["ok"] is False] == ["audio"], parts
    assert parts["audio"]["detail"] == "the firmware says its microphone is down (audio_in: false in /api/health)"
    again = run_rig("check", "--json", "--state-dir", str(pi.state_dir))
    assert again.returncode == 0, again.stdout + again.stderr


def test_socketio_that_never_answers_is_a_bench_error(tmp_path: Path) -> None:
    """A firmware whose Socket.IO stays silent (``drop:client_pong``), in the local form."""
    local = VirtualPi(tmp_path / "quiet", SimSettings(form="local", faults=("drop:client_pong",)))
    local.up()
    try:
        outcomes = run_probes(tmp_path / "run", local.state_dir)
    finally:
        local.down()
    assert outcomes["socketio"][0] == "skipped", outcomes
    assert outcomes["socketio"][1].startswith("bench error: socketio: no client_pong within"), outcomes["socketio"]
    assert outcomes["http"] == ("passed", "")
    assert outcomes["gpio"] == ("passed", "")


RETRY = """
import os
import time
from pathlib import Path

import httpx

MARK = Path(os.environ["RETRY_MARK"])


def reader_back(dut):
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if httpx.get(dut.url + "/api/health", timeout=2).json()["data"]["services"]["nfc"]:
            return
        time.sleep(0.1)
    raise AssertionError("the reader did not come back")


def test_a_firmware_bug(dut):
    raise AssertionError("wrong track")  # the bench is sound: no retry


def test_a_cable_works_loose(dut):
    if not MARK.exists():
        MARK.write_text("pulled")
        dut.set_reader(False)  # the reader's cable works loose mid-test: a bench error
        raise AssertionError("no tag seen")
    dut.set_reader(True)  # plugged back in: the retry runs on a sound bench
    reader_back(dut)

"""


def test_a_failure_is_retried_once_only_when_the_bench_check_after_it_finds_a_bench_error(
    pi: VirtualPi, tmp_path: Path
) -> None:
    (tmp_path / "test_retry.py").write_text(RETRY)
    junit = tmp_path / "junit.xml"
    done = inner_pytest(
        tmp_path, "test_retry.py", f"--sim-running={pi.state_dir}", f"--artifacts={tmp_path / 'artifacts'}",
        f"--junitxml={junit}", env={"RETRY_MARK": str(tmp_path / "mark")},
    )  # fmt: skip
    verdicts = {"failure", "error", "skipped"}
    cases = {
        case.attrib["name"]: [child.tag for child in case if child.tag in verdicts]
        for case in ET.parse(junit).getroot().iter("testcase")
    }
    assert cases == {"test_a_cable_works_loose": [], "test_a_firmware_bug": ["failure"]}, done.stdout[-3000:]
    properties = {p.attrib["name"]: p.attrib["value"] for p in ET.parse(junit).getroot().iter("property")}
    assert (properties["retried"], properties["flaky"], properties["device_failures"]) == ("1", "1", "1"), done.stdout[
        -4000:
    ]
    assert "1 retried after a bench error (1 flaky)" in done.stdout
    assert "bench error: nfc" not in done.stdout.split("HIL rig summary")[1], "the reader is back: bench check ok"
    summary = json.loads((tmp_path / "artifacts" / "summary.json").read_text())
    assert summary["flaky_tests"] == ["test_retry.py::test_a_cable_works_loose"]
