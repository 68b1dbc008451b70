"""The bench check: is the bench itself sound, part by part, before a test blames the firmware?

A failed part is a *bench error* (a loose cable, a dead reader, a wrong host key), not a device
failure: the tests that need that part are skipped with the part's one-line reason instead of
failing one by one. ``rig check`` prints the same parts as a table; the pytest plugin runs it at
the start of every session, and again after a failed test to tell a bench fault from a firmware one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from device_drivers.audio import AudioError, AudioPort, analysis
from device_drivers.gpio import GpioError
from device_drivers.nfc.field_service import FieldServiceError, RemoteField
from device_drivers.serial import ConsoleError, ConsoleTimeout

from .audio_clips import VOICE_SETTLE_S
from .bench_remote import bench_session
from .dut import BenchError, Dut
from .health import get_health
from .observer import EventTimeout, WebSocketTestClient
from .ssh import SshError, SshSession

log = logging.getLogger(__name__)

# Which capabilities (``@pytest.mark.needs``) each part carries. The firmware part carries every
# test, since nothing can be asserted against a firmware that does not answer.
PART_GATES: dict[str, frozenset[str]] = {
    "ssh": frozenset({"journal"}),
    "firmware": frozenset({"http"}),
    "socketio": frozenset({"socketio"}),
    "gpio": frozenset({"gpio"}),
    "nfc": frozenset({"nfc", "nfc_reader_pull"}),
    "audio": frozenset({"audio_in", "audio_out", "audio_devices"}),
    "console": frozenset({"console"}),
}
TONE_HZ = 1000.0


@dataclass(frozen=True)
class PartResult:
    """One row of the check: ``ok`` is None when the bench has no such part (nothing to check)."""

    part: str
    ok: bool | None
    detail: str
    value: float | None = None  # the figure, e.g. a round trip
    unit: str = ""

    @property
    def figure(self) -> str:
        return "" if self.value is None else f"{self.value:.1f} {self.unit}"

    @property
    def status(self) -> str:
        return {True: "ok", False: "FAIL", None: "n/a"}[self.ok]


@dataclass(frozen=True)
class CheckReport:
    parts: list[PartResult]
    seconds: float

    @property
    def ok(self) -> bool:
        return all(p.ok is not False for p in self.parts)

    @property
    def failed(self) -> list[PartResult]:
        return [p for p in self.parts if p.ok is False]

    def bench_error_for(self, needed: tuple[str, ...]) -> str | None:
        """The one reason a test that needs ``needed`` cannot run on this bench, or None."""
        for result in self.failed:
            if result.part == "firmware" or PART_GATES[result.part] & set(needed):
                return f"bench error: {result.part}: {result.detail}"
        return None

    def table(self) -> list[str]:
        rows = [("part", "result", "figure", "detail")]
        rows += [(p.part, p.status, p.figure, p.detail) for p in self.parts]
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}" for r in rows]
        verdict = "bench ok" if self.ok else f"BENCH ERROR in {', '.join(p.part for p in self.failed)}"
        lines.append(f"{verdict} ({self.seconds:.2f} s)")
        return lines

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "seconds": round(self.seconds, 3), "parts": [asdict(p) for p in self.parts]}


def _timed(action: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = action()
    return result, (time.perf_counter() - started) * 1000


# -- the parts -----------------------------------------------------------------------------------
def check_ssh(dut: Dut) -> PartResult:
    """A new connection, so the pinned host key is verified now, and one command's round trip."""
    if dut.virtual_pi is not None:
        if dut.virtual_pi.form == "local":
            return PartResult("ssh", None, "this virtual Pi has no sshd (local form)")
        try:
            session = SshSession(dut.virtual_pi.ssh_target(), enroll_hint="rig sim up", boot_timeout_s=3.0)
        except Exception as exc:
            return PartResult("ssh", False, str(exc))
    elif dut.bench.ssh is not None:
        session = bench_session(dut.bench)
        session.boot_timeout_s = dut.bench.ssh.connect_timeout_s
    else:
        return PartResult("ssh", None, "the bench file has no [ssh] section")
    try:
        with session:
            session.connect()
            result, ms = _timed(lambda: session.run("true", timeout=10.0))
    except SshError as exc:
        return PartResult("ssh", False, str(exc).splitlines()[0])
    if not result.ok:
        return PartResult("ssh", False, f"'true' exited {result.exit_code} on {session.where}")
    return PartResult("ssh", True, f"{session.where}, host key pinned", ms, "ms")


def check_firmware(dut: Dut) -> PartResult:
    try:
        response, ms = _timed(lambda: get_health(dut.url, dut.bench.timeouts.http_s))
    except httpx.HTTPError as exc:
        return PartResult("firmware", False, f"{dut.url} unreachable: {type(exc).__name__}: {exc}")
    if response.status_code != 200:
        return PartResult("firmware", False, f"{dut.url}/api/health answered HTTP {response.status_code}")
    try:
        data = response.json()["data"]
        status, version = data["status"], data.get("version", "?")
    except (ValueError, KeyError, TypeError):
        return PartResult("firmware", False, f"{dut.url}/api/health answered without data.status")
    down = sorted(
        k for k, v in (data.get("services") or {}).items() if v is False and k in data.get("enabled_services", [])
    )
    detail = f"version {version}, {status}" + (f" ({', '.join(down)} down)" if down else "")
    return PartResult("firmware", True, detail, ms, "ms")


def check_socketio(dut: Dut) -> PartResult:
    """Connect, then a ``client_ping`` answered by ``client_pong``: the round trip is the figure."""
    timeout = dut.bench.timeouts.event_s

    async def ping() -> float:
        client = WebSocketTestClient(dut.url, None, name="check", default_timeout=timeout)
        try:
            await client.connect()
            started = time.perf_counter()
            await client.emit("client_ping", {"timestamp": time.time()})
            try:
                await client.wait_for_event("client_pong", timeout=timeout)
            except EventTimeout:
                raise TimeoutError(f"no client_pong within {timeout:g} s of a client_ping (connected)") from None
            return (time.perf_counter() - started) * 1000
        finally:
            await client.disconnect()

    try:
        ms = asyncio.run(ping())
    except (ConnectionError, TimeoutError, AssertionError) as exc:
        return PartResult("socketio", False, str(exc).splitlines()[0])
    return PartResult("socketio", True, "client_ping answered by client_pong", ms, "ms")


def check_gpio(dut: Dut) -> PartResult:
    """Read back every rig-driven line at its idle level: through the bench's loopback jumper on a
    real bench (``[gpio] loopback``), through the virtual Pi's pins (what its firmware reads)."""
    if "gpio" not in dut.capabilities:
        return PartResult("gpio", None, "the bench has no GPIO backend")
    wiring = dut.bench.gpio.wiring
    loopback = dut.bench.gpio.loopback
    try:
        backend = dut.gpio_backend()
    except BenchError as exc:
        return PartResult("gpio", False, str(exc))
    try:
        started = time.perf_counter()
        if loopback is not None and dut.virtual_pi is None:
            out, back = wiring.line(loopback[0]), wiring.line(loopback[1])
            for level in (1, 0, 1):
                backend.drive(out, level)
                time.sleep(0.005)
                if backend.sense(back) != level:
                    return PartResult(
                        "gpio", False, f"jumper {loopback[0]}→{loopback[1]}: drove {level}, read back the other level"
                    )
            what = f"loopback jumper {loopback[0]}→{loopback[1]} read back"
        else:
            outs = {name: line for name, line in wiring.lines.items() if line.direction == "out"}
            for name, line in outs.items():
                idle = 0 if line.active_high else 1
                backend.drive(line, idle)
                if backend.sense(line) != idle:
                    return PartResult(
                        "gpio", False, f"line {name} (GPIO{line.dut_pin}) did not read back its idle level {idle}"
                    )
            what = f"{len(outs)} lines read back"
        ms = (time.perf_counter() - started) * 1000
    except (GpioError, KeyError) as exc:
        return PartResult("gpio", False, str(exc).splitlines()[0])
    finally:
        backend.close()
    return PartResult("gpio", True, what, ms, "ms")


def check_nfc(dut: Dut) -> PartResult:
    """The DUT's reader polls the field (virtual Pi), or the rig's reader opens (bench); either
    way the firmware must say its reader is up."""
    if "nfc" not in dut.capabilities:
        return PartResult("nfc", None, "the bench has no NFC backend")
    started = time.perf_counter()
    if dut.virtual_pi is not None:
        field = RemoteField(dut.virtual_pi.nfc_control, timeout=2.0)
        try:
            field.wait_for_poll(2.0)
        except FieldServiceError as exc:
            return PartResult("nfc", False, str(exc).splitlines()[0])
        detail = "the DUT's reader polls the field"
    else:
        try:
            dut.nfc_backend()
        except BenchError as exc:
            return PartResult("nfc", False, str(exc))
        detail = f"rig reader open ({dut.bench.nfc.backend})"
    ms = (time.perf_counter() - started) * 1000
    try:
        services = get_health(dut.url, dut.bench.timeouts.http_s).json()["data"]["services"]
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        return PartResult("nfc", False, f"cannot read the firmware's reader state: {exc}")
    if not services.get("nfc"):
        return PartResult("nfc", False, "the firmware says its NFC reader is down")
    return PartResult("nfc", True, detail, ms, "ms")


# The firmware's health services behind the audio capabilities: the DUT's microphone hears what
# the rig plays ("audio_in"), its speaker plays what the rig records ("audio_out").
FIRMWARE_AUDIO = {"audio_in": ("audio_in", "microphone"), "audio_out": ("audio", "speaker")}


def firmware_audio_down(dut: Dut) -> str | None:
    """Why the audio part fails on the Pi's side, or None: the cable may be sound while the Pi
    lost its USB microphone. Only a device the bench uses counts, and only when the firmware's
    health reports it (a service in ``enabled_services``); a firmware whose health names no
    services has no say."""
    try:
        data = get_health(dut.url, dut.bench.timeouts.http_s).json()["data"]
        services, enabled = data.get("services") or {}, set(data.get("enabled_services") or ())
    except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return f"cannot read the firmware's audio state: {exc}"
    for capability, (service, device) in FIRMWARE_AUDIO.items():
        if capability in dut.capabilities and service in enabled and services.get(service) is False:
            return f"the firmware says its {device} is down ({service}: false in /api/health)"
    return None


def check_audio(dut: Dut) -> PartResult:
    """A 1 kHz tone played on the rig's output is heard on the loopback input: the virtual Pi's
    microphone cable, read back from its monitor; on a bench, ``[audio] loopback`` (a second input
    wired to the output). Then the firmware's own word on its microphone and speaker."""
    if not {"audio_in", "audio_out"} & dut.capabilities:
        return PartResult("audio", None, "the bench has no audio interface")
    config = dut.bench.audio
    if dut.virtual_pi is not None:
        info = dut.virtual_pi.info()
        if info is None or not info.pulse_server:
            return PartResult("audio", False, "the virtual Pi has no audio server")
        env = {**dut.virtual_pi.audio_env("rig"), "PULSE_SOURCE": "dut_mic.monitor"}
        output, input_ = "pulse", "pulse"
    elif config.loopback:
        env, output, input_ = {}, config.output or "", config.loopback
    else:
        return PartResult("audio", None, "no [audio] loopback input to hear the tone on")
    try:
        port = AudioPort(output, input_, config.sample_rate, env=env)
        tone = analysis.sine(TONE_HZ, 0.3, config.sample_rate)
        with port.listening("check", keep_s=5.0) as listener:
            listener.wait(lambda heard: True, 0, 3.0, "audio from the loopback input")
            start = time.monotonic_ns()
            port.play(tone, config.sample_rate, "check tone")
            heard = listener.wait(
                lambda rec: rec.samples if analysis.tone_present(rec.samples, rec.sample_rate, TONE_HZ) else None,
                start,
                3.0,
                f"a {TONE_HZ:g} Hz tone",
            )
        time.sleep(VOICE_SETTLE_S)  # the DUT heard the tone too: the tests' words must not join it
    except (AudioError, AssertionError) as exc:
        return PartResult("audio", False, str(exc).splitlines()[0])
    finally:
        if dut.virtual_pi is not None:  # the suite's own audio fixture listens to the speaker again
            os.environ.update(dut.virtual_pi.audio_env("rig"))
    # The tone's own level: its loudest 50 ms, not diluted by the quiet recorded around it.
    frame = config.sample_rate // 20
    level = max(analysis.dbfs(heard[i : i + frame]) for i in range(0, max(1, len(heard) - frame + 1), frame))
    down = firmware_audio_down(dut)
    if down is not None:
        return PartResult("audio", False, down)
    return PartResult("audio", True, f"{TONE_HZ:g} Hz tone heard at {level:.1f} dBFS", level, "dBFS")


def check_console(dut: Dut) -> PartResult:
    """A line through the console cable: a virtual Pi's board writes one into its end of the pty
    pair; on a bench, Enter is sent and the Pi's console must answer (a login prompt)."""
    if "console" not in dut.capabilities:
        return PartResult("console", None, "the bench has no serial console")
    try:
        console = dut.console(None)
    except BenchError as exc:
        return PartResult("console", False, str(exc))
    if console.error is not None:
        return PartResult("console", False, console.error)
    mark = console.mark()
    started = time.perf_counter()
    try:
        if dut.virtual_pi is not None:
            # A console may drop a line (as a UART drops bytes): three lines, 0.7 s each, before failing.
            for attempt in range(3):
                nonce = f"rig-check-{uuid.uuid4().hex[:8]}"
                dut.virtual_pi.console_line(nonce)
                try:
                    console.expect(nonce, 0.7, mark)
                    break
                except ConsoleTimeout:
                    if attempt == 2:
                        raise
        else:
            console.write(b"\r\n")
            console.expect(r"\S", 3.0, mark)
    except (ConsoleTimeout, ConsoleError) as exc:
        arrived = [line.text for line in console.lines[mark:]][-3:]
        seen = f"; arrived instead: {' | '.join(arrived)}" if arrived else "; nothing arrived"
        return PartResult("console", False, str(exc).splitlines()[0].removesuffix("; last lines:") + seen)
    ms = (time.perf_counter() - started) * 1000
    return PartResult("console", True, f"{console.port} answers", ms, "ms")


PARTS: dict[str, Callable[[Dut], PartResult]] = {
    "ssh": check_ssh,
    "firmware": check_firmware,
    "socketio": check_socketio,
    "gpio": check_gpio,
    "nfc": check_nfc,
    "audio": check_audio,
    "console": check_console,
}


PART_TIMEOUT_S = 15.0  # each part has its own waits; this catches a driver stuck in C (a suspended audio sink)


def _run_part(name: str, check: Callable[[Dut], PartResult], dut: Dut) -> PartResult:
    """One part in a daemon thread, so a driver that never returns costs a failed part, not the run."""
    outcome: queue.Queue[PartResult] = queue.Queue()

    def work() -> None:
        try:
            outcome.put(check(dut))
        except Exception as exc:  # a check must never take the run down with it
            log.exception("bench check %s crashed", name)
            outcome.put(PartResult(name, False, f"the check itself failed: {type(exc).__name__}: {exc}"))

    threading.Thread(target=work, name=f"bench-check-{name}", daemon=True).start()
    try:
        return outcome.get(timeout=PART_TIMEOUT_S)
    except queue.Empty:
        log.warning("bench check %s is stuck; its thread is left behind", name)
        return PartResult(name, False, f"no answer within {PART_TIMEOUT_S:g} s (the driver hangs)")


def run_check(dut: Dut, on_part: Callable[[PartResult], None] | None = None) -> CheckReport:
    """Every part, in the order a technician would look."""
    started = time.perf_counter()
    results = []
    for name, check in PARTS.items():
        result = _run_part(name, check, dut)
        results.append(result)
        if on_part is not None:
            on_part(result)
    return CheckReport(results, time.perf_counter() - started)
