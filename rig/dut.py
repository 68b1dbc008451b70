"""The device under test as the suite sees it: a URL, how it was reached, and what the bench can do.

Three ways in: a virtual Pi the rig boots (sim), a bench file's Pi, or ``--attach URL`` to a
firmware that already runs. Tests declare capabilities with ``@pytest.mark.needs(...)``; a DUT
that lacks one says exactly why.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from device_drivers.audio import AudioError, AudioPort
from device_drivers.gpio import GpioError, PinBackend
from device_drivers.gpio.host import GpiozeroBackend
from device_drivers.gpio.sim import MockPinsBackend
from device_drivers.nfc import NfcBackend
from device_drivers.nfc.actuator import Actuator, ActuatorError
from device_drivers.nfc.card import CardEmulationError, CardEmulator
from device_drivers.nfc.field_service import FieldServiceError, RemoteField
from device_drivers.power import Power, PowerSwitch, RelaySwitch
from device_drivers.power.relay import RelayError
from device_drivers.serial import ConsoleError, SerialConsole

from .bench import BenchConfig
from .bench_remote import bench_deploy_target, bench_session
from .deploy import Deployer, DeployError, DeployResult, Progress, ServiceControl
from .health import get_health, wait_healthy
from .ssh import SshError, SshSession
from .tls import tls
from .virtual_pi import SimError, SimInfo, SimSettings, VirtualPi, resolve_form

# What each kind of DUT offers. "fixture_library" means the rig seeded the music folder itself,
# so tests may delete and move tracks and the rig can put them back; "journal" means the
# firmware's journal is followed onto each test's timeline (a virtual Pi reached over SSH);
# "power" means the rig can cut the DUT's power and boot it again; "gpio" that it drives the
# DUT's buttons and encoder through the bench's wiring map; "nfc" that it presents tags to the
# DUT's reader; "nfc_reader_pull" that it can unplug that reader (a namespace virtual Pi);
# "console" that it reads the DUT's serial console; "audio_out" that it hears the DUT's speaker
# and "audio_in" that it plays into the DUT's microphone; "audio_devices" that it sees which
# streams hold the DUT's sound devices (a virtual Pi's PulseAudio server).
SIM_CAPABILITIES = frozenset({"http", "socketio", "fixture_library", "power", "gpio", "nfc"})
REMOTE_CAPABILITIES = frozenset({"http", "socketio"})

log = logging.getLogger(__name__)

WHY_MISSING = {
    "attach": "--attach runs against a firmware the rig did not deploy or wire",
    "bench": "this bench file does not provide it",
}


class BenchError(RuntimeError):
    """The bench itself is broken (unreachable, unhealthy): an infrastructure error, not a device failure."""


@dataclass
class Dut:
    mode: str  # "sim", "bench" or "attach"
    url: str
    bench: BenchConfig
    capabilities: frozenset[str]
    virtual_pi: VirtualPi | None = None
    firmware_version: str = "unknown"
    boot_s: float | None = None
    ssh: SshSession | None = None
    deployed: DeployResult | None = None
    service: ServiceControl | None = None  # how the firmware's journal is read over ``ssh``
    borrowed: bool = False  # a virtual Pi someone else started: left running at the end
    _nfc: NfcBackend | None = None
    _console: SerialConsole | None = None
    _relay: RelaySwitch | None = None

    @property
    def is_sim(self) -> bool:
        return self.mode == "sim"

    def missing(self, needed: tuple[str, ...]) -> str | None:
        """None when every capability is present, else the one-line reason."""
        absent = [c for c in needed if c not in self.capabilities]
        if not absent:
            return None
        return f"needs {', '.join(absent)}: {WHY_MISSING.get(self.mode, 'the virtual Pi does not provide it yet')}"

    def reseed_library(self) -> list[Path]:
        """Put back fixture tracks that a test deleted or moved, and have the firmware rescan."""
        if self.virtual_pi is None:
            raise BenchError("only a virtual Pi's library can be reseeded by the rig")
        written = self.virtual_pi.reseed_library()
        if written:
            sync = f"{self.url}/api/playlists/sync"
            httpx.post(sync, timeout=self.bench.timeouts.http_s, verify=tls()).raise_for_status()
        return written

    def gpio_backend(self) -> PinBackend:
        """The bench's GPIO backend (``needs("gpio")`` guarantees there is one)."""
        config = self.bench.gpio
        if self.virtual_pi is not None:
            return MockPinsBackend(self.virtual_pi.gpio_socket)
        if config.backend in ("local", "pigpio"):
            try:
                return GpiozeroBackend(config.pigpio_host if config.backend == "pigpio" else None)
            except GpioError as exc:
                raise BenchError(str(exc)) from None
        raise BenchError(f"bench {self.bench.name!r} has no GPIO backend ([gpio] backend = {config.backend!r})")

    def nfc_backend(self) -> NfcBackend:
        """The bench's NFC backend, opened once per session (``needs("nfc")`` guarantees there is one).
        On a virtual Pi it is the Pi's field service; the first call waits until the firmware's
        reader has polled it, so a first tap cannot fall before the reader is up."""
        config = self.bench.nfc
        try:
            if self._nfc is None:
                self._nfc = self._open_nfc()
                if isinstance(self._nfc, RemoteField):
                    self._nfc.wait_for_poll(self.bench.dut.boot_timeout_s)
        except (FieldServiceError, CardEmulationError, ActuatorError) as exc:
            self._nfc = None
            raise BenchError(str(exc)) from None
        if self._nfc is None:
            raise BenchError(f"bench {self.bench.name!r} has no NFC backend ([nfc] backend = {config.backend!r})")
        return self._nfc

    def _open_nfc(self) -> NfcBackend | None:
        config = self.bench.nfc
        if self.virtual_pi is not None:
            return RemoteField(self.virtual_pi.nfc_control)
        if config.backend == "card":
            return CardEmulator(config.device)
        if config.backend == "actuator":
            return Actuator(
                config.mounts,
                servo_pin=config.servo_pin,
                rest_angle=config.rest_angle,
                active_high=config.active_high,
                pin_factory=self._pin_factory(),
            )
        return None

    def set_reader(self, present: bool) -> None:
        """Unplug the DUT's NFC reader or plug it back (``needs("nfc_reader_pull")``)."""
        if self.virtual_pi is None:
            raise BenchError("only a virtual Pi's reader can be unplugged by the rig")
        try:
            self.virtual_pi.set_reader(present)
        except SimError as exc:
            raise BenchError(str(exc)) from None

    def console(self, log_path: Path | None, on_line: Any = None) -> SerialConsole:
        """The DUT's serial console, opened once per session (``needs("console")``)."""
        if self._console is not None:
            return self._console
        port, baudrate = self.bench.serial.port, self.bench.serial.baudrate
        if self.virtual_pi is not None:
            info = self.virtual_pi.info()
            port = info.console if info is not None and info.console else None
            if port is None:
                raise BenchError("this virtual Pi has no console: install socat, then 'rig sim down' and 'up'")
        if port is None:
            raise BenchError(f"bench {self.bench.name!r} has no serial console ([serial] port)")
        try:
            self._console = SerialConsole(port, baudrate, log_path, on_line)
        except ConsoleError as exc:
            raise BenchError(str(exc)) from None
        return self._console

    def audio_port(self, artifacts: Path | None, stamp: Any = None) -> AudioPort:
        """The bench's audio interface (``needs("audio_in")`` or ``needs("audio_out")``): on a
        virtual Pi, ALSA's pulse device pointed at its cables; on a bench, [audio] by name."""
        config = self.bench.audio
        env: dict[str, str] = {}
        if self.virtual_pi is not None:
            info = self.virtual_pi.info()
            if info is None or not info.pulse_server:
                raise BenchError("this virtual Pi has no audio: install pulseaudio, then 'rig sim down' and 'up'")
            output, input_, env = "pulse", "pulse", self.virtual_pi.audio_env("rig")
        elif config.backend == "device" and config.output and config.input:
            output, input_ = config.output, config.input
        else:
            raise BenchError(f"bench {self.bench.name!r} has no audio interface ([audio] backend = {config.backend!r})")
        try:
            return AudioPort(output, input_, config.sample_rate, env=env, stamp=stamp, artifacts=artifacts)
        except AudioError as exc:
            raise BenchError(str(exc)) from None

    def power_switch(self) -> PowerSwitch:
        """What cuts the DUT's power (``needs("power")``): the virtual Pi itself, or a relay, whose
        line is claimed once per session."""
        if self.virtual_pi is not None:
            return VirtualPiSwitch(self.virtual_pi)
        if self._relay is not None:
            return self._relay
        config = self.bench.power
        if config.backend != "relay" or config.relay_pin is None:
            raise BenchError(f"bench {self.bench.name!r} has no power control ([power] backend = {config.backend!r})")
        try:
            self._relay = RelaySwitch(config.relay_pin, active_high=config.active_high, pin_factory=self._pin_factory())
        except RelayError as exc:
            raise BenchError(str(exc)) from None
        return self._relay

    def _pin_factory(self) -> Any:
        """gpiozero's factory for the rig host's own pins, or a helper Pi's pigpio daemon ([gpio])."""
        if self.bench.gpio.backend != "pigpio":
            return None
        from gpiozero.pins.pigpio import PiGPIOFactory

        return PiGPIOFactory(host=self.bench.gpio.pigpio_host)

    def wait_healthy(self) -> float:
        """Block until the firmware answers health and Socket.IO again (after power came back)."""
        started = time.monotonic()
        last = wait_healthy(self.url, self.bench.dut.boot_timeout_s, socketio=True)
        if last is not None:
            raise BenchError(
                f"the firmware was not healthy {self.bench.dut.boot_timeout_s:g} s after power came back (last: {last})"
            )
        return time.monotonic() - started

    def power_cycle(self, off_s: float = 1.0) -> float:
        """Cut the DUT's power and boot it again, then wait until the firmware is healthy; returns
        the seconds from the cut to healthy. SSH sessions are cut too and reconnect on next use."""
        power = Power(self.power_switch())
        started = time.monotonic()
        try:
            power.cycle(off_s)
        except SimError as exc:
            raise BenchError(str(exc)) from None
        self.wait_healthy()
        return time.monotonic() - started

    def stop(self) -> None:
        for resource in (self._nfc, self._console, self._relay):
            if resource is not None:
                resource.close()
        if self.ssh is not None:
            self.ssh.close()
        if self.virtual_pi is not None and not self.borrowed:
            self.virtual_pi.down()


class VirtualPiSwitch:
    """A virtual Pi's power: its processes stop and start (VirtualPi.power_off/power_on)."""

    def __init__(self, virtual_pi: VirtualPi) -> None:
        self.virtual_pi = virtual_pi

    def off(self) -> None:
        self.virtual_pi.power_off()

    def on(self) -> None:
        self.virtual_pi.power_on()


def _health(url: str, timeout: float) -> dict:
    try:
        response = get_health(url, timeout)
    except httpx.HTTPError as exc:
        raise BenchError(f"firmware at {url} is unreachable: {type(exc).__name__}: {exc}") from None
    if response.status_code != 200:
        raise BenchError(f"firmware at {url} answered /api/health with HTTP {response.status_code}")
    try:
        return response.json().get("data") or {}
    except ValueError:
        raise BenchError(f"firmware at {url} answered /api/health with non-JSON") from None


def sim_settings(bench: BenchConfig) -> SimSettings:
    return SimSettings(
        firmware_dir=bench.firmware.path,
        faults=bench.sim.faults,
        position_interval_ms=bench.sim.position_interval_ms,
        boot_timeout_s=bench.dut.boot_timeout_s,
        form=bench.sim.form,
        heartbeat_s=bench.sim.heartbeat_s,
        upload_timeout_s=bench.sim.upload_timeout_s,
        disk_mb=bench.sim.disk_mb if resolve_form(bench.sim.form) == "netns" else 0,
    )


def start_sim(bench: BenchConfig, state_dir: Path, progress: Progress | None = None) -> Dut:
    """Boot a fresh virtual Pi; in the SSH form the firmware reaches it only through a real deploy
    (``progress`` is told of every file sent)."""
    virtual_pi = VirtualPi(state_dir, sim_settings(bench))
    # Each session boots a fresh virtual Pi: no library or player state leaks between runs.
    if virtual_pi.down() is not None:
        log.warning("stopped a virtual Pi that an earlier run left running in %s", state_dir)
    shutil.rmtree(state_dir, ignore_errors=True)
    try:
        info = virtual_pi.up()
    except Exception as exc:
        raise BenchError(f"virtual Pi did not boot: {exc}") from exc
    ssh: SshSession | None = None
    deployed: DeployResult | None = None
    service: ServiceControl | None = None  # how the firmware's journal is read over ``ssh``
    try:
        if info.form != "local":
            ssh = SshSession(virtual_pi.ssh_target(), enroll_hint="rig sim up", boot_timeout_s=bench.dut.boot_timeout_s)
            ssh.connect()
            target = virtual_pi.deploy_target()
            deployed, service = Deployer(ssh, target, progress).deploy(bench.firmware.path), target.service
        health = _health(info.url, bench.timeouts.http_s)
    except (BenchError, SshError, DeployError) as exc:
        if ssh is not None:
            ssh.close()
        virtual_pi.down()
        raise BenchError(f"virtual Pi did not come up: {exc}") from exc
    return Dut(
        "sim",
        info.url,
        bench,
        _sim_capabilities(info, ssh is not None),
        virtual_pi=virtual_pi,
        firmware_version=str(health.get("version", "unknown")),
        boot_s=info.boot_s,
        ssh=ssh,
        deployed=deployed,
        service=service,
    )


def _sim_capabilities(info: SimInfo, ssh: bool) -> frozenset[str]:
    capabilities = set(SIM_CAPABILITIES) | ({"journal"} if ssh else set())
    capabilities |= {"console"} if info.console else set()
    capabilities |= {"nfc_reader_pull"} if info.form == "netns" else set()
    capabilities |= {"audio_in", "audio_out", "audio_devices"} if info.pulse_server else set()
    capabilities |= {"disk_quota"} if info.disk_mb else set()
    return frozenset(capabilities)


def running_sim(state_dir: Path, bench: BenchConfig) -> Dut:
    """The virtual Pi that ``rig sim up`` left running, as a DUT, without touching it yet
    (``rig check`` reports each part itself); it is left running at the end."""
    running = VirtualPi.running(state_dir)
    if running is None:
        raise BenchError(f"no virtual Pi runs in {state_dir}; start one with 'rig sim up' and 'rig deploy'")
    virtual_pi, info = running
    capabilities = _sim_capabilities(info, info.form != "local")
    return Dut("sim", info.url, bench, capabilities, virtual_pi=virtual_pi, borrowed=True)


def attach_sim(state_dir: Path, bench: BenchConfig) -> Dut:
    """A running virtual Pi with all its parts (``--sim-running``): a suite run that should not boot its own."""
    device = running_sim(state_dir, bench)
    device.firmware_version = str(_health(device.url, bench.timeouts.http_s).get("version", "unknown"))
    assert device.virtual_pi is not None
    if device.virtual_pi.form != "local":
        ssh = SshSession(device.virtual_pi.ssh_target(), enroll_hint="rig sim up", boot_timeout_s=5.0)
        device.ssh, device.service = _soft_connect(ssh), device.virtual_pi.deploy_target().service
    return device


def _soft_connect(ssh: SshSession) -> SshSession | None:
    """The session, or None when SSH fails: then the bench check's ssh part fails with the reason
    and skips only the tests that need SSH, while the rest still run over HTTP."""
    try:
        ssh.connect()
    except SshError as exc:
        log.warning("SSH to %s failed: %s", ssh.where, exc)
        return None
    return ssh


def bench_capabilities(bench: BenchConfig) -> frozenset[str]:
    """What a Pi bench file wires up (a running check then says whether each part works)."""
    present = {
        "gpio": bench.gpio.backend != "none",
        "nfc": bench.nfc.backend != "none",
        "console": bench.serial.port is not None,
        "power": bench.power.backend == "relay",
        "audio_in": bench.audio.backend == "device",
        "audio_out": bench.audio.backend == "device",
        "journal": bench.ssh is not None,
    }
    return REMOTE_CAPABILITIES | {name for name, there in present.items() if there}


def attach(url: str, bench: BenchConfig, mode: str = "attach") -> Dut:
    url = url.rstrip("/")
    health = _health(url, bench.timeouts.http_s)
    return Dut(mode, url, bench, REMOTE_CAPABILITIES, firmware_version=str(health.get("version", "unknown")))


def attach_bench(bench: BenchConfig) -> Dut:
    """A bench file's Pi: its firmware over HTTP, and with an [ssh] section one SSH session for the
    run, which follows the unit's journal (``journalctl -f -o json``) onto each test's timeline."""
    assert bench.dut.url is not None  # load_bench guarantees it for kind = "pi"
    device = attach(bench.dut.url, bench, mode="bench")
    device.capabilities = bench_capabilities(bench) - {"journal"}
    if bench.ssh is None:
        return device
    device.ssh, device.service = _soft_connect(bench_session(bench)), bench_deploy_target(bench).service
    device.capabilities = device.capabilities | {"journal"}
    return device
