"""The bench file (``rig.toml``), loaded into typed configuration.

A technician edits this file by hand, so every mistake gets one line naming the file, the key
and what was expected, and unknown keys are errors (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from device_drivers.gpio.wiring import Line, Wiring
from device_drivers.nfc.actuator import TagMount

from . import paths

KINDS = ("sim", "pi")
SIM_FORMS = ("auto", "netns", "ssh", "local")


class BenchFileError(ValueError):
    """A bench file that cannot be used; ``str()`` is the one-line explanation."""


@dataclass(frozen=True)
class DutConfig:
    url: str | None = None
    boot_timeout_s: float = 20.0


@dataclass(frozen=True)
class SshConfig:
    host: str
    known_hosts: Path
    port: int = 22
    user: str = "pi"
    key_file: Path | None = None  # None: ssh-agent keys only
    connect_timeout_s: float = 10.0
    io_timeout_s: float = 20.0  # unacknowledged data older than this drops the connection (a pulled cable)
    password_env: str | None = None  # names the variable holding a first-provisioning password


@dataclass(frozen=True)
class DeployConfig:
    root: str = "musicbox"  # on the Pi; relative to the login's home unless absolute
    python: str = "python3"  # the Pi's Python, which builds the firmware's venv
    packages: str = "wheelhouse"  # "wheelhouse": the host pushes wheels (offline bench); "online": the Pi pip-installs
    unit: str = "musicbox"  # the systemd unit that runs the firmware
    health_timeout_s: float = 60.0


@dataclass(frozen=True)
class FirmwareConfig:
    path: Path = paths.FIRMWARE_DIR
    contract: Path = paths.DEFAULT_CONTRACT


@dataclass(frozen=True)
class SimConfig:
    faults: tuple[str, ...] = ()
    position_interval_ms: int = 500
    # "netns": a network namespace host (root); "ssh": an sshd on loopback; both get the firmware by a
    # real deploy. "local": the firmware runs straight from its tree. "auto": netns as root, else ssh.
    form: str = "auto"
    heartbeat_s: float = 1.0  # the firmware's system:health interval (a Pi's default is 10 s)
    upload_timeout_s: float = 5.0  # an upload session idle this long expires (a Pi's default is 600 s)
    # The namespace form's SD card: a tmpfs of this many MiB, so storage can run low for real.
    # 0: the host's disk. The other forms run without root, cannot mount, and ignore it.
    disk_mb: int = 0


@dataclass(frozen=True)
class TimeoutsConfig:
    event_s: float = 3.0
    http_s: float = 5.0


@dataclass(frozen=True)
class GpioConfig:
    """``backend``: "sim" (a virtual Pi's mock pins), "local" (the rig host's pins), "pigpio" (a
    helper Pi's daemon) or "none". Lines default to the music box wiring, straight to the DUT pins."""

    backend: str = "none"
    pigpio_host: str | None = None
    wiring: Wiring = field(default_factory=Wiring)
    # Two lines of the wiring map joined by a jumper on the bench (an "out" and an "in"): the bench
    # check drives one and reads the other back, which proves the rig's GPIO path without the DUT.
    loopback: tuple[str, str] | None = None


@dataclass(frozen=True)
class NfcConfig:
    """``backend``: "sim" (the virtual Pi's field), "card" (nfcpy card emulation on the rig's own
    reader at ``device``), "actuator" (real tags moved by gpiozero devices) or "none"."""

    backend: str = "none"
    device: str = "usb"  # nfcpy path of the rig's reader, e.g. "usb:054c:06c1" (RC-S380)
    tags: Path = paths.TAGS
    servo_pin: int | None = None
    rest_angle: float = 0.0
    active_high: bool = True
    mounts: dict[str, TagMount] = field(default_factory=dict)


@dataclass(frozen=True)
class SerialConfig:
    port: str | None = None  # the USB-UART on the Pi's console, e.g. /dev/ttyUSB0 (a virtual Pi: its pty)
    baudrate: int = 115200


@dataclass(frozen=True)
class AudioConfig:
    """``backend``: "sim" (the virtual Pi's PulseAudio cables), "device" (a USB audio interface:
    ``output`` feeds the Pi's microphone, ``input`` listens to its speaker; PortAudio device
    names or parts of them, as ``python -m sounddevice`` lists them) or "none"."""

    backend: str = "none"
    output: str | None = None
    input: str | None = None
    sample_rate: int = 48000
    loopback: str | None = None  # an input wired straight to ``output``: the bench check's tone is heard there


@dataclass(frozen=True)
class PowerConfig:
    backend: str = "none"  # "sim" (a virtual Pi), "relay" (gpiozero on relay_pin) or "none"
    relay_pin: int | None = None
    active_high: bool = True
    off_s: float = 2.0  # long enough for a Pi's capacitors to drain


@dataclass(frozen=True)
class BenchConfig:
    name: str
    kind: str
    source: Path | None = None
    dut: DutConfig = field(default_factory=DutConfig)
    firmware: FirmwareConfig = field(default_factory=FirmwareConfig)
    sim: SimConfig = field(default_factory=SimConfig)
    timeouts: TimeoutsConfig = field(default_factory=TimeoutsConfig)
    ssh: SshConfig | None = None
    deploy: DeployConfig = field(default_factory=DeployConfig)
    gpio: GpioConfig = field(default_factory=GpioConfig)
    nfc: NfcConfig = field(default_factory=NfcConfig)
    serial: SerialConfig = field(default_factory=SerialConfig)
    power: PowerConfig = field(default_factory=PowerConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)

    @property
    def is_sim(self) -> bool:
        return self.kind == "sim"


@dataclass(frozen=True)
class Origin:
    """Where bench settings came from, as an error names it (a file, or a labgrid place over a base
    file), and the folder that relative paths in them start from."""

    label: str
    folder: Path

    def __str__(self) -> str:
        return self.label


class _Table:
    """One TOML table being read; records the keys used so leftovers can be reported."""

    def __init__(self, file: Origin, name: str, data: Any) -> None:
        if not isinstance(data, dict):
            raise BenchFileError(f"{file}: [{name}] must be a table, got {type(data).__name__}")
        self.file, self.name, self.data = file, name, data
        self.used: set[str] = set()

    def _where(self, key: str) -> str:
        return f"{self.file}: [{self.name}] {key}"

    def _get(self, key: str, default: Any) -> Any:
        self.used.add(key)
        return self.data.get(key, default)

    def string(self, key: str, default: str | None = None, *, choices: tuple[str, ...] = ()) -> str | None:
        value = self._get(key, default)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise BenchFileError(f"{self._where(key)}: expected a non-empty string, got {value!r}")
        if choices and value not in choices:
            raise BenchFileError(f"{self._where(key)}: expected one of {', '.join(choices)}, got {value!r}")
        return value

    def number(self, key: str, default: float, *, lo: float, hi: float) -> float:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
            raise BenchFileError(f"{self._where(key)}: expected a number from {lo} to {hi}, got {value!r}")
        return float(value)

    def integer(self, key: str, default: int, *, lo: int, hi: int) -> int:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise BenchFileError(f"{self._where(key)}: expected an integer from {lo} to {hi}, got {value!r}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key, default)
        if not isinstance(value, bool):
            raise BenchFileError(f"{self._where(key)}: expected true or false, got {value!r}")
        return value

    def table(self, key: str) -> dict[str, Any] | None:
        """A sub-table such as [gpio.lines], read as a whole by its caller."""
        value = self._get(key, None)
        if value is not None and not isinstance(value, dict):
            raise BenchFileError(f"{self._where(key)}: expected a table, got {value!r}")
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        value = self._get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise BenchFileError(f"{self._where(key)}: expected a list of strings, got {value!r}")
        return tuple(value)

    def path(self, key: str, default: Path | None, *, must_exist: bool = True) -> Path | None:
        value = self._get(key, None)
        if value is None:
            return default
        if not isinstance(value, str) or not value:
            raise BenchFileError(f"{self._where(key)}: expected a path string, got {value!r}")
        resolved = (self.file.folder / Path(value).expanduser()).resolve()
        if must_exist and not resolved.exists():
            raise BenchFileError(f"{self._where(key)}: {value!r} does not exist (resolved to {resolved})")
        if not must_exist and not resolved.parent.is_dir():
            raise BenchFileError(f"{self._where(key)}: folder {resolved.parent} does not exist")
        return resolved

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise BenchFileError(f"{self._where(unknown[0])}: unknown key (known: {', '.join(sorted(self.used))})")


def read_bench_tables(file: Path) -> dict[str, Any]:
    """A bench file's TOML tables, unchecked; raises BenchFileError with a one-line reason."""
    try:
        return tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BenchFileError(f"{file}: bench file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BenchFileError(f"{file}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise BenchFileError(f"{file}: invalid TOML: {exc}") from None


def load_bench(file: Path) -> BenchConfig:
    """Read and check a bench file; raises BenchFileError with a one-line reason."""
    return bench_from_tables(read_bench_tables(file), Origin(str(file), file.parent), source=file)


def bench_from_tables(raw: dict[str, Any], file: Origin, *, source: Path | None) -> BenchConfig:
    """Check bench tables, whether read from a file or assembled from a lab place's resources."""

    sections = {"bench", "dut", "firmware", "sim", "timeouts", "ssh", "deploy"}
    sections |= {"gpio", "nfc", "serial", "power", "audio"}
    for name in raw:
        if name not in sections:
            raise BenchFileError(f"{file}: [{name}]: unknown section (known: {', '.join(sorted(sections))})")
    if "bench" not in raw:
        raise BenchFileError(f"{file}: [bench]: missing section (it needs name and kind)")

    bench = _Table(file, "bench", raw["bench"])
    name = bench.string("name")
    kind = bench.string("kind", choices=KINDS)
    if name is None or kind is None:
        missing = "name" if name is None else "kind"
        raise BenchFileError(f"{file}: [bench] {missing}: required key is missing")
    bench.finish()

    dut_t = _Table(file, "dut", raw.get("dut", {}))
    dut = DutConfig(url=dut_t.string("url"), boot_timeout_s=dut_t.number("boot_timeout_s", 20.0, lo=1, hi=600))
    dut_t.finish()
    if dut.url is not None and not dut.url.startswith(("http://", "https://")):
        raise BenchFileError(f"{file}: [dut] url: expected an http:// or https:// URL, got {dut.url!r}")
    if kind == "pi" and dut.url is None:
        raise BenchFileError(f'{file}: [dut] url: required for kind = "pi" (the firmware\'s base URL)')

    fw_t = _Table(file, "firmware", raw.get("firmware", {}))
    firmware = FirmwareConfig(
        path=fw_t.path("path", paths.FIRMWARE_DIR) or paths.FIRMWARE_DIR,
        contract=fw_t.path("contract", paths.DEFAULT_CONTRACT) or paths.DEFAULT_CONTRACT,
    )
    fw_t.finish()

    ssh = _load_ssh(file, raw["ssh"]) if "ssh" in raw else None

    dep_t = _Table(file, "deploy", raw.get("deploy", {}))
    deploy = DeployConfig(
        root=dep_t.string("root", "musicbox") or "musicbox",
        python=dep_t.string("python", "python3") or "python3",
        packages=dep_t.string("packages", "wheelhouse", choices=("wheelhouse", "online")) or "wheelhouse",
        unit=dep_t.string("unit", "musicbox") or "musicbox",
        health_timeout_s=dep_t.number("health_timeout_s", 60.0, lo=1, hi=600),
    )
    dep_t.finish()

    sim_t = _Table(file, "sim", raw.get("sim", {}))
    sim = SimConfig(
        faults=sim_t.strings("faults"),
        position_interval_ms=sim_t.integer("position_interval_ms", 500, lo=100, hi=10_000),
        form=sim_t.string("form", "auto", choices=SIM_FORMS) or "auto",
        heartbeat_s=sim_t.number("heartbeat_s", 1.0, lo=0.2, hi=3600),
        upload_timeout_s=sim_t.number("upload_timeout_s", 5.0, lo=1, hi=86_400),
        disk_mb=sim_t.integer("disk_mb", 0, lo=0, hi=65_536),
    )
    sim_t.finish()

    to_t = _Table(file, "timeouts", raw.get("timeouts", {}))
    timeouts = TimeoutsConfig(
        event_s=to_t.number("event_s", 3.0, lo=0.1, hi=600), http_s=to_t.number("http_s", 5.0, lo=0.1, hi=600)
    )
    to_t.finish()
    return BenchConfig(
        name=name,
        kind=kind,
        source=source,
        dut=dut,
        firmware=firmware,
        sim=sim,
        timeouts=timeouts,
        ssh=ssh,
        deploy=deploy,
        gpio=_load_gpio(file, raw.get("gpio", {}), kind),
        nfc=_load_nfc(file, raw.get("nfc", {}), kind),
        serial=_load_serial(file, raw.get("serial", {})),
        audio=_load_audio(file, raw.get("audio", {}), kind),
        power=_load_power(file, raw.get("power", {}), kind),
    )


NFC_BACKENDS = ("sim", "card", "actuator", "none")


def _load_nfc(file: Origin, data: Any, kind: str) -> NfcConfig:
    table = _Table(file, "nfc", data)
    default_backend = "sim" if kind == "sim" else "none"
    backend = table.string("backend", default_backend, choices=NFC_BACKENDS) or default_backend
    device = table.string("device", "usb") or "usb"
    tags = table.path("tags", paths.TAGS) or paths.TAGS
    servo_pin = table.integer("servo_pin", 0, lo=0, hi=53) if "servo_pin" in data else None
    rest_angle = table.number("rest_angle", 0.0, lo=-90, hi=90)
    active_high = table.boolean("active_high", True)
    mounts_data = table.table("mounts") or {}
    table.finish()
    mounts = {}
    for name, mount_data in mounts_data.items():
        mount_t = _Table(file, f"nfc.mounts.{name}", mount_data)
        mount = TagMount(
            solenoid_pin=mount_t.integer("solenoid_pin", 0, lo=0, hi=53) if "solenoid_pin" in mount_data else None,
            angle=mount_t.number("angle", 0.0, lo=-90, hi=90) if "angle" in mount_data else None,
        )
        mount_t.finish()
        if (mount.solenoid_pin is None) == (mount.angle is None):
            raise BenchFileError(f"{file}: [nfc.mounts.{name}]: give exactly one of solenoid_pin or angle")
        if mount.angle is not None and servo_pin is None:
            raise BenchFileError(f"{file}: [nfc.mounts.{name}] angle: needs [nfc] servo_pin")
        if not (tags / f"{name}.toml").is_file():
            raise BenchFileError(f"{file}: [nfc.mounts.{name}]: no tag file {tags / (name + '.toml')}")
        mounts[name] = mount
    if backend == "actuator" and not mounts:
        raise BenchFileError(f'{file}: [nfc.mounts]: backend = "actuator" needs at least one mounted tag')
    if backend == "sim" and kind != "sim":
        raise BenchFileError(f'{file}: [nfc] backend: "sim" needs kind = "sim" (a virtual Pi)')
    return NfcConfig(backend, device, tags, servo_pin, rest_angle, active_high, mounts)


def _load_serial(file: Origin, data: Any) -> SerialConfig:
    table = _Table(file, "serial", data)
    config = SerialConfig(port=table.string("port"), baudrate=table.integer("baudrate", 115200, lo=300, hi=4_000_000))
    table.finish()
    return config


def _load_audio(file: Origin, data: Any, kind: str) -> AudioConfig:
    table = _Table(file, "audio", data)
    default_backend = "sim" if kind == "sim" else "none"
    backend = table.string("backend", default_backend, choices=("sim", "device", "none")) or default_backend
    config = AudioConfig(
        backend=backend,
        output=table.string("output"),
        input=table.string("input"),
        sample_rate=table.integer("sample_rate", 48000, lo=8000, hi=192000),
        loopback=table.string("loopback"),
    )
    table.finish()
    if backend == "device" and not (config.output and config.input):
        raise BenchFileError(
            f'{file}: [audio] backend = "device" needs output and input (device names, see python -m sounddevice)'
        )
    if backend == "sim" and kind != "sim":
        raise BenchFileError(f'{file}: [audio] backend: "sim" needs kind = "sim" (a virtual Pi)')
    return config


def _load_power(file: Origin, data: Any, kind: str) -> PowerConfig:
    table = _Table(file, "power", data)
    default_backend = "sim" if kind == "sim" else "none"
    backend = table.string("backend", default_backend, choices=("sim", "relay", "none")) or default_backend
    relay_pin = table.integer("relay_pin", 0, lo=0, hi=53) if "relay_pin" in data else None
    config = PowerConfig(
        backend=backend,
        relay_pin=relay_pin,
        active_high=table.boolean("active_high", True),
        off_s=table.number("off_s", 2.0, lo=0, hi=60),
    )
    table.finish()
    if backend == "relay" and relay_pin is None:
        raise BenchFileError(f'{file}: [power] relay_pin: required for backend = "relay"')
    if backend == "sim" and kind != "sim":
        raise BenchFileError(f'{file}: [power] backend: "sim" needs kind = "sim" (a virtual Pi)')
    return config


GPIO_BACKENDS = ("sim", "local", "pigpio", "none")


def _load_gpio(file: Origin, data: Any, kind: str) -> GpioConfig:
    table = _Table(file, "gpio", data)
    default_backend = "sim" if kind == "sim" else "none"
    backend = table.string("backend", default_backend, choices=GPIO_BACKENDS) or default_backend
    pigpio_host = table.string("pigpio_host")
    if backend == "pigpio" and pigpio_host is None:
        raise BenchFileError(f'{file}: [gpio] pigpio_host: required for backend = "pigpio"')
    lines_data = table.table("lines")
    encoders_data = table.table("encoders")
    loopback = table.strings("loopback") or None
    table.finish()
    wiring = Wiring()
    if lines_data is not None:
        if not lines_data:
            raise BenchFileError(f"{file}: [gpio.lines]: expected a table of lines, got {lines_data!r}")
        lines = {}
        for name, line_data in lines_data.items():
            line_t = _Table(file, f"gpio.lines.{name}", line_data)
            lines[name] = Line(
                dut_pin=line_t.integer("dut_pin", -1, lo=0, hi=53),
                host_pin=line_t.integer("host_pin", 0, lo=0, hi=53) if "host_pin" in line_data else None,
                active_high=line_t.boolean("active_high", False),
                direction=line_t.string("direction", "out", choices=("out", "in")) or "out",
            )
            line_t.finish()
            if backend in ("local", "pigpio") and lines[name].host_pin is None:
                raise BenchFileError(f"{file}: [gpio.lines.{name}] host_pin: required for backend = {backend!r}")
        wiring = Wiring(lines=lines, encoders={})
    if encoders_data is not None:
        encoders = {}
        for name, pair in encoders_data.items():
            if not (isinstance(pair, list) and len(pair) == 2 and all(p in wiring.lines for p in pair)):
                raise BenchFileError(
                    f'{file}: [gpio.encoders] {name}: expected ["A line", "B line"] naming lines of [gpio.lines], '
                    f"got {pair!r}"
                )
            encoders[name] = (pair[0], pair[1])
        wiring = Wiring(lines=wiring.lines, encoders=encoders)
    if loopback is not None:
        ends = [wiring.lines.get(name) for name in loopback]
        if (
            len(loopback) != 2
            or ends[0] is None
            or ends[1] is None
            or (ends[0].direction, ends[1].direction) != ("out", "in")
        ):
            raise BenchFileError(
                f'{file}: [gpio] loopback: expected ["out line", "in line"] naming a jumpered pair of [gpio.lines], '
                f"got {list(loopback)!r}"
            )
    return GpioConfig(
        backend=backend,
        pigpio_host=pigpio_host,
        wiring=wiring,
        loopback=(loopback[0], loopback[1]) if loopback else None,
    )


def _load_ssh(file: Origin, data: Any) -> SshConfig:
    table = _Table(file, "ssh", data)
    host = table.string("host")
    known_hosts = table.path("known_hosts", None, must_exist=False)
    if host is None or known_hosts is None:
        missing = "host" if host is None else "known_hosts"
        raise BenchFileError(f"{file}: [ssh] {missing}: required key is missing")
    password_env = table.string("password_env")
    if password_env is not None and not password_env.isidentifier():
        raise BenchFileError(f"{file}: [ssh] password_env: expected an environment variable NAME, got {password_env!r}")
    config = SshConfig(
        host=host,
        known_hosts=known_hosts,
        port=table.integer("port", 22, lo=1, hi=65535),
        user=table.string("user", "pi") or "pi",
        key_file=table.path("key_file", None),
        connect_timeout_s=table.number("connect_timeout_s", 10.0, lo=0.5, hi=120),
        io_timeout_s=table.number("io_timeout_s", 20.0, lo=1, hi=600),
        password_env=password_env,
    )
    table.finish()
    return config
