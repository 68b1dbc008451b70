"""The rig's pytest plugin: options, the seed suite's fixtures, contract findings, and the summary.

Loaded through the ``pytest11`` entry point, so a technician's plain ``pytest`` gets it. Nothing
starts until a test asks for ``dut``: unit tests never boot a virtual Pi.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from _pytest import junitxml  # its LogXML takes suite properties known only at the end
from _pytest.runner import runtestprotocol

from device_drivers.audio import AudioPort
from device_drivers.gpio import Gpio
from device_drivers.nfc import Nfc, TagShelf
from device_drivers.power import Power
from device_drivers.serial import SerialConsole

from . import __version__, heap, paths, spectrogram
from .audio_socket import AudioSocket
from .bench import BenchConfig, BenchFileError, load_bench
from .bench_check import CheckReport, run_check
from .bench_lock import BenchBusy, BenchLock, Holder
from .contract import ContractError, ContractValidator
from .dut import BenchError, Dut, attach, attach_bench, attach_sim, start_sim
from .health import get_health
from .http import timeline_client
from .inventory import load_inventory
from .journal import JournalFollower, parse_line
from .lab_place import DEFAULT_COORDINATOR, LabPlace, PlaceError, bench_for_place
from .live_progress import LiveProgress
from .manifest import build_manifest
from .observer import Finding, WebSocketTestClient
from .summary import Summary, count_outcomes, is_bench_error, render_summary
from .timeline import Measurement, Timeline, summarize

log = logging.getLogger(__name__)

OBSERVERS = pytest.StashKey[list[WebSocketTestClient | AudioSocket]]()  # whose findings fail the test
TIMELINE = pytest.StashKey[Timeline]()
AUDIO = pytest.StashKey[AudioPort]()


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


@dataclass
class RigSession:
    """Per-run state shared by fixtures, hooks and the summary."""

    config: pytest.Config
    started: float = field(default_factory=time.time)
    dut: Dut | None = None
    bench: BenchConfig | None = None
    validator: ContractValidator | None = None
    bench_error: str | None = None
    check: CheckReport | None = None  # the bench check at the session's start
    measurements: list[tuple[str, Measurement]] = field(default_factory=list)
    findings: dict[str, list[Finding]] = field(default_factory=dict)
    live_timeline: Timeline | None = None  # the running test's, for lines that arrive on other threads
    reconnects: list[str] = field(default_factory=list)  # SSH reconnects during the run, in one line each
    results: list[dict[str, Any]] = field(default_factory=list)  # one per test, for tests.json and the report
    retried: list[str] = field(default_factory=list)  # tests retried after a bench error
    flaky: list[str] = field(default_factory=list)  # ... that then passed
    inventory: list[BenchConfig] = field(default_factory=list)  # --inventory: the lab's benches
    worker_summaries: list[dict[str, Any]] = field(default_factory=list)  # the controller's, from each worker
    # The JUnit suite properties this session recorded: an xdist worker writes no JUnit file, so
    # it hands them to the controller, which records them per bench.
    suite_properties: dict[str, str] = field(default_factory=dict)
    place: LabPlace | None = None  # --lg-place: the labgrid place this run holds
    place_lock: BenchLock | None = None  # ... and this host's lock on it, taken first
    live: LiveProgress | None = None  # the live panel, on an interactive terminal only
    _artifacts: Path | None = None

    @property
    def artifacts(self) -> Path:
        if self._artifacts is None:
            chosen = self.config.getoption("rig_artifacts")
            if chosen:
                self._artifacts = Path(chosen).resolve()
            else:
                stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(self.started))
                self._artifacts = self.config.rootpath / "artifacts" / f"run-{stamp}"
            self._artifacts.mkdir(parents=True, exist_ok=True)
        return self._artifacts


RIG = pytest.StashKey[RigSession]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rig", "hardware-in-the-loop rig")
    group.addoption("--sim", action="store_true", dest="rig_sim", help="run against a virtual Pi (the default)")
    group.addoption("--bench", dest="rig_bench", metavar="FILE", help="bench file (rig.toml) describing the DUT")
    group.addoption("--attach", dest="rig_attach", metavar="URL", help="test a firmware that already runs at URL")
    group.addoption("--contract", dest="rig_contract", metavar="PATH", help="Socket.IO contract file to validate with")
    group.addoption("--artifacts", dest="rig_artifacts", metavar="DIR", help="where timelines and logs are kept")
    group.addoption(
        "--sim-running",
        dest="rig_sim_running",
        metavar="DIR",
        nargs="?",
        const=str(paths.state_home() / "sim"),
        help="test the virtual Pi that 'rig sim up' left running (its state folder; default the CLI's)",
    )
    group.addoption(
        "--inventory",
        dest="rig_inventory",
        metavar="FILE",
        help="a lab's benches (TOML): one pytest-xdist worker per bench, results merged",
    )
    group.addoption(
        "--lg-place",
        dest="rig_lg_place",
        metavar="NAME",
        help="acquire this labgrid place and test the Pi its resources describe (--bench: the lab's base bench file)",
    )
    group.addoption(
        "--lg-coordinator",
        dest="rig_lg_coordinator",
        metavar="HOST:PORT",
        default=os.environ.get("LG_COORDINATOR", DEFAULT_COORDINATOR),
        help=f"the lab's labgrid-coordinator (default $LG_COORDINATOR, else {DEFAULT_COORDINATOR})",
    )
    group.addoption(
        "--no-bench-retry",
        action="store_false",
        dest="rig_bench_retry",
        help="do not retry a failed test when the bench check after it finds a bench error",
    )
    group.addoption(
        "--no-live",
        action="store_false",
        dest="rig_live",
        help="no live panel (running test, last events, deploy) on the terminal; CI never gets one",
    )
    group.addoption(
        "--no-wait", action="store_true", dest="rig_no_wait", help="fail at once when another run holds the bench"
    )
    group.addoption(
        "--lock-timeout",
        dest="rig_lock_timeout",
        type=float,
        default=3600.0,
        metavar="S",
        help="how long to wait for a bench another run holds (default 3600)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Check the user's files before any test runs, so a mistake is one line, not one error per test."""
    if config.getoption("rig_attach") and config.getoption("rig_sim"):
        raise pytest.UsageError("--attach and --sim exclude each other: attach tests a firmware that already runs")
    lg_place = config.getoption("rig_lg_place")
    if lg_place and any(config.getoption(o) for o in ("rig_inventory", "rig_attach", "rig_sim_running", "rig_sim")):
        raise pytest.UsageError(
            "--lg-place takes its bench from the lab: drop --inventory, --attach, --sim-running and --sim"
        )
    rig = RigSession(config)
    try:
        if inventory := config.getoption("rig_inventory"):
            _configure_inventory(config, rig, load_inventory(Path(inventory)))
        # With --lg-place, --bench is the lab's base file: read with the place, at session start.
        elif (bench_file := config.getoption("rig_bench")) and not lg_place:
            rig.bench = load_bench(Path(bench_file))
        if contract := config.getoption("rig_contract"):
            rig.validator = ContractValidator(Path(contract))
    except (BenchFileError, ContractError) as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[RIG] = rig
    config.pluginmanager.register(ResultRecorder(rig), "rig-results")
    if LiveProgress.wanted(config, in_ci()):
        rig.live = LiveProgress.open(config, lambda: rig.live_timeline)
        config.pluginmanager.register(rig.live, "rig-live")


@pytest.hookimpl(wrapper=True)
def pytest_cmdline_main(config: pytest.Config) -> Iterator[Any]:
    """``--inventory``: as many xdist workers as benches, test files kept together on one bench."""
    inventory = config.getoption("rig_inventory")
    if config.getoption("rig_lg_place") and getattr(config.option, "numprocesses", None):
        raise pytest.UsageError("--lg-place is one bench: drop -n (a lab spreads over places with one run each)")
    if inventory and not hasattr(config, "workerinput"):
        if not hasattr(config.option, "numprocesses"):
            raise pytest.UsageError("--inventory runs one pytest-xdist worker per bench: install pytest-xdist")
        if config.getoption("rig_bench") or config.getoption("rig_attach") or config.getoption("rig_sim_running"):
            raise pytest.UsageError("--inventory names the benches itself: drop --bench, --attach and --sim-running")
        try:
            benches = load_inventory(Path(inventory))
        except BenchFileError as exc:
            raise pytest.UsageError(str(exc)) from None
        config.option.numprocesses = len(benches)
        if config.option.dist == "no":
            config.option.dist = "loadfile"
    return (yield)


def pytest_sessionstart(session: pytest.Session) -> None:
    """A SIGTERM ends the run as Ctrl-C would; ``--lg-place``: this host's lock on the place,
    then the place itself from the lab's coordinator."""
    _interrupt_on_sigterm()
    config = session.config
    name = config.getoption("rig_lg_place")
    if not name or hasattr(config, "workerinput"):
        return
    rig = _session(config)
    rig.place_lock = _lock_bench(config, f"lg-{name}")
    rig.place = LabPlace(config.getoption("rig_lg_coordinator"), name)
    try:
        recovered = rig.place.acquire(
            wait=not config.getoption("rig_no_wait"),
            timeout=config.getoption("rig_lock_timeout"),
            on_wait=lambda holder: _tell(
                config, f"rig: waiting for labgrid place {name!r}: acquired by {holder} (--no-wait: fail instead)"
            ),
        )
        if recovered:
            _tell(config, f"rig: {recovered}")
        tables, resources = rig.place.tables()
        base = config.getoption("rig_bench")
        rig.bench = bench_for_place(name, tables, Path(base) if base else None)
    except BenchFileError as exc:
        pytest.exit(str(exc), returncode=pytest.ExitCode.USAGE_ERROR)
    except PlaceError as exc:
        pytest.exit(f"bench error: {exc}", returncode=pytest.ExitCode.INTERRUPTED)
    record = {"place": name, "coordinator": rig.place.coordinator, "resources": resources, "tables": tables}
    (rig.artifacts / "lab-place.json").write_text(json.dumps(record, indent=2))
    _tell(config, f"rig: acquired labgrid place {name!r}: Pi at {rig.bench.ssh.host if rig.bench.ssh else '?'}")


def pytest_collection_finish(session: pytest.Session) -> None:
    """Every test module is imported: the heap the whole run keeps leaves the collector's view."""
    heap.freeze_setup()


def _interrupt_on_sigterm() -> None:
    """A cancelled CI job is sent SIGTERM, which would end Python without its cleanups: as an
    interrupt instead, the run ends like Ctrl-C, takes its virtual Pis down (their namespace,
    PulseAudio, sshd and firmware would otherwise run on) and gives a place back to the lab."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)


def pytest_unconfigure(config: pytest.Config) -> None:
    """The place goes back to the lab whatever happened to the run (a failed run included)."""
    rig = config.stash.get(RIG, None)
    if rig is None:
        return
    if rig.live is not None:
        rig.live.close()
    if rig.place is not None:
        rig.place.release()
    if rig.place_lock is not None:
        rig.place_lock.release()


def _configure_inventory(config: pytest.Config, rig: RigSession, benches: list[BenchConfig]) -> None:
    """A worker takes its bench (gw0 the first) and an artifacts folder of that bench's name."""
    worker = getattr(config, "workerinput", None)
    rig.inventory = benches
    if worker is None:
        return
    rig.bench = benches[int(str(worker["workerid"]).removeprefix("gw"))]
    rig._artifacts = Path(worker["rig_artifacts"]) / rig.bench.name
    rig._artifacts.mkdir(parents=True, exist_ok=True)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """Every worker writes under the controller's artifacts folder (one run, one folder)."""
    node.workerinput["rig_artifacts"] = str(_session(node.config).artifacts)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    summary = getattr(node, "workeroutput", {}).get("rig_summary")
    if summary is not None:
        _session(node.config).worker_summaries.append(summary)


def pytest_runtest_setup(item: pytest.Item) -> None:
    rig = _session(item.config)
    if rig.inventory and rig.bench is not None:
        item.user_properties.append(("bench", rig.bench.name))  # which bench of the lab ran it


def _session(config: pytest.Config) -> RigSession:
    return config.stash[RIG]


# -- session fixtures ----------------------------------------------------------------------------
@pytest.fixture(scope="session")
def bench(pytestconfig: pytest.Config) -> BenchConfig:
    """The bench file in use: ``--bench FILE``, else the example sim bench."""
    rig = _session(pytestconfig)
    if rig.bench is None:
        rig.bench = load_bench(paths.SIM_BENCH)
    return rig.bench


@pytest.fixture(scope="session")
def dut(pytestconfig: pytest.Config, bench: BenchConfig, record_testsuite_property: Any) -> Iterator[Dut]:
    """The device under test, booted or reached once per session."""
    rig = _session(pytestconfig)

    def suite_property(name: str, value: str) -> None:
        rig.suite_properties[name] = value
        record_testsuite_property(name, value)

    attach_url = pytestconfig.getoption("rig_attach")
    running = pytestconfig.getoption("rig_sim_running")
    # A labgrid place is locked with the place, at session start.
    lock = None if rig.place else _lock_bench(pytestconfig, _lock_name(bench, attach_url, running, rig))
    try:
        yield from _dut(rig, pytestconfig, bench, attach_url, running, suite_property)
    finally:
        if lock is not None:
            lock.release()


def _lock_name(bench: BenchConfig, attach_url: str | None, running: str | None, rig: RigSession) -> str:
    """What the lock guards: a bench's Pi by its name; a virtual Pi by its state folder (so runs
    with their own virtual Pis never wait for each other); an attached firmware by its URL."""
    if attach_url:
        return f"attach-{attach_url}"
    if running:
        return f"sim-{Path(running).resolve()}"
    if bench.is_sim:
        return f"sim-{rig.artifacts / 'virtual-pi'}"
    return bench.name


def _lock_bench(config: pytest.Config, name: str) -> BenchLock:
    """One run per bench: wait for the holder (saying who it is), or stop the run with ``--no-wait``."""
    lock = BenchLock(name)

    def say(holder: Holder) -> None:
        _tell(config, f"rig: waiting for bench {name!r}: in use by {holder.describe()} (--no-wait: fail instead)")

    try:
        lock.acquire(
            wait=not config.getoption("rig_no_wait"), timeout=config.getoption("rig_lock_timeout"), on_wait=say
        )
    except BenchBusy as exc:
        pytest.exit(f"bench error: {exc}", returncode=pytest.ExitCode.INTERRUPTED)
    if lock.recovered:
        _tell(config, f"rig: {lock.recovered}")
    return lock


def _tell(config: pytest.Config, line: str) -> None:
    """A line on the terminal now, even from inside a fixture while output is captured."""
    log.warning("%s", line)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return
    with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
        reporter.ensure_newline()
        reporter.write_line(line)


def _dut(
    rig: RigSession,
    pytestconfig: pytest.Config,
    bench: BenchConfig,
    attach_url: str | None,
    running: str | None,
    suite_property: Callable[[str, str], None],
) -> Iterator[Dut]:
    try:
        if attach_url:
            device = attach(attach_url, bench)
        elif running:
            device = attach_sim(Path(running), bench)
        elif bench.is_sim:
            _stage(rig, "booting the virtual Pi")
            device = start_sim(bench, rig.artifacts / "virtual-pi", rig.live.deploy_progress if rig.live else None)
        else:
            device = attach_bench(bench)
    except BenchError as exc:
        _session_bench_error(rig, str(exc), fail=in_ci() and not attach_url)
    rig.dut = device
    for name, value in (
        ("bench", bench.name),
        ("dut_mode", device.mode),
        ("dut_url", device.url),
        ("firmware_version", device.firmware_version),
        ("firmware_tree_hash", "" if device.mode == "attach" else build_manifest(bench.firmware.path).tree_hash),
        ("rig_version", __version__),
        ("lg_place", rig.place.name if rig.place else ""),
    ):
        suite_property(name, value)
    if device.ssh is not None:
        device.ssh.on_reconnect = lambda message: _note_reconnect(rig, message)
    follower = _follow_journal(rig, device)
    if "console" in device.capabilities:
        # A console that does not open is the bench check's console part: it skips what needs it.
        with contextlib.suppress(BenchError):
            _open_console(rig, device)
    _stage(rig, "checking the bench")
    rig.check = run_check(device)
    _stage(rig, None)
    (rig.artifacts / "bench-check.json").write_text(json.dumps(rig.check.as_dict(), indent=2))
    suite_property("bench_check", "ok" if rig.check.ok else "failed: " + ", ".join(p.part for p in rig.check.failed))
    firmware = next(p for p in rig.check.parts if p.part == "firmware")
    try:
        if firmware.ok is False:
            _session_bench_error(rig, f"firmware: {firmware.detail}", fail=in_ci() and device.is_sim)
        yield device
    finally:
        if follower is not None:
            follower.stop()
        device.stop()


def _stage(rig: RigSession, stage: str | None) -> None:
    """What the session is doing between tests, on the live panel (when there is one)."""
    if rig.live is not None:
        rig.live.set_stage(stage)


def _session_bench_error(rig: RigSession, reason: str, *, fail: bool) -> None:
    """The DUT cannot be reached at all: every test that uses it is skipped with this one reason
    (failed under CI, where the virtual Pi must work)."""
    rig.bench_error = reason
    message = reason if reason.startswith("bench error") else f"bench error: {reason}"
    if fail:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _note_reconnect(rig: RigSession, message: str) -> None:
    """A reboot or link drop mid-session is part of the story: on the running test's timeline and in the summary."""
    rig.reconnects.append(message)
    if rig.live_timeline is not None:
        rig.live_timeline.record("ssh", "rig", "reconnected", message=message)


def _open_console(rig: RigSession, device: Dut) -> SerialConsole:
    """Read the serial console from the start of the run: into console.log and onto each test's timeline."""

    def on_line(line: Any) -> None:
        if rig.live_timeline is not None:
            rig.live_timeline.record("console", "dut", line.text[:160])

    return device.console(rig.artifacts / "console.log", on_line)


def _follow_journal(rig: RigSession, device: Dut) -> JournalFollower | None:
    """Follow the firmware's journal into the artifacts and onto each running test's timeline."""
    if device.ssh is None or device.service is None:
        return None

    def on_line(line: str) -> None:
        message, level = parse_line(line)
        if rig.live_timeline is not None:
            rig.live_timeline.record("journal", "fw", message[:160], level=level)

    follower = JournalFollower(device.ssh, device.service.follow, rig.artifacts / "journal.log", on_line)
    follower.start()
    return follower


@pytest.fixture(scope="session")
def contract_validator(pytestconfig: pytest.Config, bench: BenchConfig) -> ContractValidator:
    """``--contract PATH``, else the bench file's contract."""
    rig = _session(pytestconfig)
    if rig.validator is None:
        rig.validator = ContractValidator(bench.firmware.contract)
    return rig.validator


# -- per-test fixtures ---------------------------------------------------------------------------
def _test_dir(rig: RigSession, nodeid: str) -> Path:
    return rig.artifacts / "tests" / re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid).strip("_")[:150]


@pytest.fixture
def timeline(request: pytest.FixtureRequest) -> Iterator[Timeline]:
    """Every HTTP call, event and stimulus of this test, on one monotonic clock; saved as JSONL."""
    line = Timeline(request.node.nodeid)
    request.node.stash[TIMELINE] = line
    rig = _session(request.config)
    rig.live_timeline = line
    yield line
    rig.live_timeline = None
    described: set[str] = set()
    for measurement in line.measurements:
        # JUnit properties are name/value pairs: the value, then its unit and limit once per name.
        request.node.user_properties.append((measurement.name, f"{measurement.value:.3f}"))
        if measurement.name not in described:
            described.add(measurement.name)
            request.node.user_properties.append((f"{measurement.name}.unit", measurement.unit))
            if measurement.limit is not None:
                request.node.user_properties.append((f"{measurement.name}.limit", f"{measurement.limit:g}"))
        rig.measurements.append((request.node.nodeid, measurement))
    for name, values, unit in line.repeated_measurements():
        stats = summarize(values)
        for key in ("p50", "p99"):
            request.node.user_properties.append((f"{name}.{key}", f"{stats[key]:.3f} {unit} n={len(values)}"))
    line.write_jsonl(_test_dir(rig, request.node.nodeid) / "timeline.jsonl")


@pytest.fixture(autouse=True)
def _rig_needs(request: pytest.FixtureRequest) -> None:
    """Honour ``@pytest.mark.needs(...)``: skip when the bench lacks it, fail in CI on a virtual Pi."""
    marker = request.node.get_closest_marker("needs")
    if marker is None:
        return
    needed = tuple(marker.args)
    device: Dut = request.getfixturevalue("dut")
    check = _session(request.config).check
    bench_error = check.bench_error_for(needed) if check is not None else None
    reason = bench_error or device.missing(needed)
    if reason is None:
        return
    if bench_error is not None:
        request.node.user_properties.append(("bench_error", bench_error))
    if in_ci() and device.is_sim:
        why = reason if bench_error else f"the virtual Pi {reason}"
        pytest.fail(f"CI runs the full sim suite, but {why}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def backend_ready(dut: Dut, bench: BenchConfig) -> bool:
    """The firmware answers /api/health right now."""
    try:
        response = get_health(dut.url, bench.timeouts.http_s)
    except httpx.HTTPError as exc:
        pytest.fail(f"Backend not reachable at {dut.url}: {exc}", pytrace=False)
    assert response.status_code == 200, f"Backend at {dut.url} unhealthy: HTTP {response.status_code}"
    return True


@pytest_asyncio.fixture
async def http_client(dut: Dut, timeline: Timeline, bench: BenchConfig) -> AsyncIterator[httpx.AsyncClient]:
    async with timeline_client(dut.url, timeline, timeout=bench.timeouts.http_s) as client:
        yield client


async def _observer(
    request: pytest.FixtureRequest,
    dut: Dut,
    validator: ContractValidator,
    timeline: Timeline,
    validate: bool,
    name: str,
) -> WebSocketTestClient:
    client = WebSocketTestClient(
        dut.url,
        validator,
        auto_validate=validate,
        timeline=timeline,
        name=name,
        default_timeout=dut.bench.timeouts.event_s,
    )
    await client.connect()
    if validate:
        request.node.stash.setdefault(OBSERVERS, []).append(client)
    return client


@pytest_asyncio.fixture
async def websocket_client(
    request: pytest.FixtureRequest, dut: Dut, contract_validator: ContractValidator, timeline: Timeline
) -> AsyncIterator[WebSocketTestClient]:
    """A connected observer; its contract findings fail the test."""
    client = await _observer(request, dut, contract_validator, timeline, True, "ws0")
    yield client
    await client.disconnect()


@pytest_asyncio.fixture
async def websocket_client_no_validation(
    request: pytest.FixtureRequest, dut: Dut, contract_validator: ContractValidator, timeline: Timeline
) -> AsyncIterator[WebSocketTestClient]:
    """An observer whose findings are recorded but do not fail the test (to study broken firmware)."""
    client = await _observer(request, dut, contract_validator, timeline, False, "raw")
    yield client
    await client.disconnect()


@pytest_asyncio.fixture
async def multiple_websocket_clients(
    request: pytest.FixtureRequest, dut: Dut, contract_validator: ContractValidator, timeline: Timeline
) -> AsyncIterator[list[WebSocketTestClient]]:
    """``count`` observers (``indirect`` parametrisation; 2 by default)."""
    count = int(getattr(request, "param", 2))
    clients = [await _observer(request, dut, contract_validator, timeline, True, f"ws{i}") for i in range(count)]
    yield clients
    for client in clients:
        await client.disconnect()


@pytest.fixture
def gpio(dut: Dut, timeline: Timeline) -> Iterator[Gpio]:
    """The bench's GPIO lines by name (``[gpio]`` wiring map); each stimulus is on this test's timeline.
    Tests that use it declare ``@pytest.mark.needs("gpio")``."""
    driver = Gpio(
        dut.gpio_backend(),
        dut.bench.gpio.wiring,
        stamp=lambda name, detail: timeline.record("stimulus", "gpio", name, **detail),
    )
    yield driver
    driver.close()


@pytest.fixture
def nfc(dut: Dut, timeline: Timeline) -> Iterator[Nfc]:
    """Named tags (``fixtures/tags/``, or the bench's ``[nfc] tags``) presented to the DUT's reader;
    each tap, placement and removal is on this test's timeline. Declare ``needs("nfc")``."""
    driver = Nfc(
        dut.nfc_backend(),
        TagShelf(dut.bench.nfc.tags),
        stamp=lambda name, detail: timeline.record("stimulus", "nfc", name, **detail),
    )
    yield driver
    driver.close()  # a tag a test left lying there would turn the next test's first tap into nothing


@pytest.fixture
def console(dut: Dut, pytestconfig: pytest.Config) -> SerialConsole:
    """The DUT's serial console, read since the session started. Declare ``needs("console")``."""
    return dut.console(_session(pytestconfig).artifacts / "console.log")


@pytest.fixture
def power(dut: Dut, timeline: Timeline) -> Power:
    """The DUT's power switch; each off and on is on this test's timeline. Declare ``needs("power")``."""
    return Power(dut.power_switch(), stamp=lambda name, detail: timeline.record("stimulus", "power", name, **detail))


@pytest.fixture
def audio(request: pytest.FixtureRequest, dut: Dut, timeline: Timeline) -> AudioPort:
    """The bench's audio interface: ``play`` feeds the DUT's microphone, ``listening`` hears its
    speaker. Every recording is kept as a WAV in the test's artifacts (with a spectrogram PNG
    when the test fails). Declare ``needs("audio_in")`` and/or ``needs("audio_out")``."""
    port = dut.audio_port(
        _test_dir(_session(request.config), request.node.nodeid),
        stamp=lambda name, detail: timeline.record("stimulus", "audio", name, **detail),
    )
    request.node.stash[AUDIO] = port
    return port


@pytest_asyncio.fixture
async def audio_socket(
    request: pytest.FixtureRequest, dut: Dut, timeline: Timeline, contract_validator: ContractValidator
) -> AsyncIterator[AudioSocket]:
    """A front end's ``/ws/audio`` connection (the seed's flow), stamped on this test's timeline;
    what the firmware sends on it is checked against the contract, and violations fail the test."""
    client = AudioSocket(dut.url, timeline, timeout=dut.bench.timeouts.event_s, validator=contract_validator)
    await client.connect()
    request.node.stash.setdefault(OBSERVERS, []).append(client)
    yield client
    await client.close()


# -- hooks ---------------------------------------------------------------------------------------
class ContractFindings(AssertionError):
    """The test's own assertions passed, but the firmware broke its contract meanwhile."""


def _findings(item: pytest.Item) -> list[Finding]:
    found = [
        Finding(f.kind, f"{client.name}: {f.message}")
        for client in item.stash.get(OBSERVERS, [])
        for f in client.findings()
    ]
    line = item.stash.get(TIMELINE, None)
    for entry in line.entries if line is not None else []:
        status = entry.detail.get("status")
        # 503 is the honest answer when a device the request needs is missing (the NFC reader
        # unplugged), 507 when the disk is full; every other 5xx means the firmware failed.
        if entry.kind == "http" and isinstance(status, int) and status >= 500 and status not in (503, 507):
            found.append(Finding("HTTP 5xx (a firmware defect)", f"{entry.name} answered HTTP {status}"))
    return found


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Contract findings fail the test; when the test failed anyway, they lead its message,
    since broken firmware is the cause and the test's own error only the symptom."""
    header = "the firmware broke its contract during this test:\n"
    try:
        result = yield
    except Exception as exc:
        findings = _findings(item)
        if not findings:
            raise
        symptom = (str(exc).splitlines() or [""])[0]
        raise ContractFindings(
            header
            + "\n".join(f.message for f in findings)
            + f"\n(the test then failed with {type(exc).__name__}: {symptom})"
        ) from exc
    findings = _findings(item)
    if findings:
        raise ContractFindings(header + "\n".join(f.message for f in findings))
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    report: pytest.TestReport = yield
    if report.when == "call":
        findings = _findings(item)
        if findings:
            _session(item.config).findings[item.nodeid] = findings
        line = item.stash.get(TIMELINE, None)
        if report.failed and line is not None:
            report.sections.append(("rig timeline (last entries)", line.describe_tail(20)))
            rig = _session(item.config)
            if rig.dut is not None and rig.dut.virtual_pi is not None:
                report.sections.append(("firmware log (last lines)", rig.dut.virtual_pi.journal_tail(15)))
        port = item.stash.get(AUDIO, None)
        if report.failed and port is not None and port.saved:
            report.sections.append(("recorded audio (WAV, spectrogram PNG)", _attach_audio(port.saved)))
    return report


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
    """Run a test; when it failed and the bench check after it finds a bench error (a cable came
    loose mid-test), the failure is reported as a rerun and the test runs once more, where a part
    still broken skips it as a bench error. A retry that passes counts as flaky."""
    rig = _session(item.config)
    if not item.config.getoption("rig_bench_retry") or "dut" not in getattr(item, "fixturenames", ()):
        return None  # the rig's own unit tests: pytest's protocol as is
    item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    reports = runtestprotocol(item, nextitem=nextitem, log=False)
    if rig.dut is not None and any(r.failed for r in reports if r.when == "call"):
        check = run_check(rig.dut)
        if not check.ok:
            rig.check = check
            broken = "; ".join(f"{p.part}: {p.detail}" for p in check.failed)
            _tell(item.config, f"rig: {item.nodeid} failed and the bench check then found {broken}: retrying it once")
            # Only the failed call is told, as a rerun: its setup and teardown would make the JUnit
            # report a second, passing test case of the same name.
            failed = next(r for r in reports if r.when == "call")
            failed.outcome = "rerun"  # type: ignore[assignment]
            failed.sections.append(("rig bench check after the failure", "\n".join(check.table())))
            item.ihook.pytest_runtest_logreport(report=failed)
            item._initrequest()  # type: ignore[attr-defined]  # a fresh request for the second run
            reports = runtestprotocol(item, nextitem=nextitem, log=False)
            if all(r.passed for r in reports if r.when == "call") and any(r.when == "call" for r in reports):
                rig.flaky.append(item.nodeid)
            if not rig.check.ok:
                rig.check = run_check(rig.dut)  # the part may be back: later tests see the bench as it is
    for report in reports:
        item.ihook.pytest_runtest_logreport(report=report)
    item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True


def pytest_report_teststatus(report: pytest.TestReport) -> tuple[str, str, str] | None:
    if report.outcome == "rerun":
        return "rerun", "R", "RERUN (bench error)"
    return None


class ResultRecorder:
    """Each test's outcome, wall-clock span and failure text, kept for ``rig report``: the call
    phase, or the setup phase of a test that never got there (a skip, a bench error)."""

    def __init__(self, rig: RigSession) -> None:
        self.rig = rig

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        rig = self.rig
        if report.outcome == "rerun":
            rig.retried.append(report.nodeid)
            return
        if not (report.when == "call" or (report.when == "setup" and not report.passed)):
            return
        outcome = "error" if report.when == "setup" and report.failed else report.outcome
        if not report.passed and is_bench_error(report):
            outcome = "bench_error"
        skipped = isinstance(report.longrepr, tuple) and report.skipped
        text = str(report.longrepr[2]) if skipped else report.longreprtext  # type: ignore[index]
        kept = ("rig", "firmware", "recorded")
        rig.results.append(
            {
                "nodeid": report.nodeid,
                "outcome": outcome,
                "duration_s": round(report.duration, 3),
                "start": getattr(report, "start", None),
                "stop": getattr(report, "stop", None),
                "message": "\n".join(text.splitlines()[-40:]),
                "sections": [{"title": t, "text": b} for t, b in report.sections if t.startswith(kept)],
                "dir": str(_test_dir(rig, report.nodeid).relative_to(rig.artifacts)),
            }
        )


def _attach_audio(wavs: list[Path]) -> str:
    lines = []
    for wav in wavs:
        try:
            lines.append(f"{wav}  {spectrogram.render(wav)}")
        except (OSError, ValueError) as exc:
            lines.append(f"{wav}  (no spectrogram: {exc})")
    return "\n".join(lines)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Bench errors and device failures as two numbers in the JUnit report (written after this hook)."""
    rig = _session(session.config)
    if hasattr(session.config, "workerinput") and (rig.dut or rig.bench_error):
        summary = _write_summary(rig)
        session.config.workeroutput["rig_summary"] = {
            "lines": summary.lines,
            "counts": summary.data["counts"],
            "properties": rig.suite_properties,
        }
    xml = session.config.stash.get(junitxml.xml_key, None)
    if xml is None:
        return
    if rig.worker_summaries:  # --inventory: the lab's totals over every bench
        counts = {
            key: sum(w["counts"].get(key, 0) for w in rig.worker_summaries) for key in rig.worker_summaries[0]["counts"]
        }
        xml.add_global_property("benches", ", ".join(b.name for b in rig.inventory))
        for worker in rig.worker_summaries:  # each bench's own: "virtual-pi-a.firmware_version", ...
            properties = worker.get("properties", {})
            for name, value in properties.items():
                if name != "bench":
                    xml.add_global_property(f"{properties.get('bench', 'bench')}.{name}", value)
    elif rig.dut or rig.bench_error:
        counts = count_outcomes(rig)
    else:
        return
    xml.add_global_property("device_failures", str(counts["failed"]))
    xml.add_global_property("bench_errors", str(counts["bench_errors"]))
    xml.add_global_property("retried", str(counts["retried"]))
    xml.add_global_property("flaky", str(counts["flaky"]))


def _write_summary(rig: RigSession) -> Summary:
    summary = render_summary(rig, time.time() - rig.started)
    (rig.artifacts / "summary.json").write_text(json.dumps(summary.data, indent=2, default=str))
    (rig.artifacts / "tests.json").write_text(json.dumps(rig.results, indent=1, default=str))
    return summary


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    rig = config.stash.get(RIG, None)
    if rig is None:
        return
    if rig.worker_summaries:  # --inventory: one block per bench, then the merged artifacts
        terminalreporter.write_sep("=", f"HIL rig summary: {len(rig.worker_summaries)} benches")
        for worker in rig.worker_summaries:
            for line in worker["lines"][:-1]:  # each worker's last line is its own artifacts folder
                terminalreporter.write_line(line)
            terminalreporter.write_line("")
        terminalreporter.write_line(f"artifacts {rig.artifacts} (one folder per bench; rig report merges them)")
        return
    if not (rig.dut or rig.bench_error or rig.findings or rig.measurements):
        return  # no HIL work in this session (unit tests only): nothing to summarise
    summary = _write_summary(rig)
    terminalreporter.write_sep("=", "HIL rig summary")
    for line in summary.lines:
        terminalreporter.write_line(line)
