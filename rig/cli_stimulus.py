"""``rig press``, ``rig turn``, ``rig tap`` and ``rig say``: a technician's stimulus by hand,
and what the firmware broadcast in reply.

Each prints one JSON line per event that arrived within ``--wait`` seconds after the stimulus,
with its latency from the stimulus on one monotonic clock, and exits 1 when nothing came.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from device_drivers.audio import AudioError, AudioPort, WavError
from device_drivers.gpio import Gpio, GpioError
from device_drivers.gpio.host import GpiozeroBackend
from device_drivers.gpio.sim import MockPinsBackend
from device_drivers.nfc import Nfc, TagError, TagShelf

from .audio_clips import ClipError, resolve
from .bench import BenchConfig
from .contract import ContractValidator
from .dut import BenchError, Dut
from .observer import CapturedEvent, WebSocketTestClient
from .virtual_pi import VirtualPi


class StimulusError(RuntimeError):
    """The stimulus could not be given; one line for the CLI."""


@dataclass
class Stimulus:
    url: str
    act: Callable[[], object]
    close: Callable[[], None]


def _virtual_pi(state_dir: Path) -> tuple[VirtualPi, str]:
    running = VirtualPi.running(state_dir)
    if running is None:
        raise StimulusError(f"no virtual Pi runs in {state_dir}; start one with 'rig sim up', or give --bench FILE")
    return running[0], running[1].url


def dut_of(bench: BenchConfig | None, state_dir: Path) -> Dut:
    """The bench file's Pi, or the running virtual Pi (with the sim bench's defaults)."""
    if bench is not None and not bench.is_sim:
        assert bench.dut.url is not None
        return Dut("bench", bench.dut.url, bench, frozenset())
    virtual_pi, url = _virtual_pi(state_dir)
    return Dut("sim", url, bench or BenchConfig("sim", "sim"), frozenset(), virtual_pi=virtual_pi)


def gpio(bench: BenchConfig | None, state_dir: Path, action: Callable[[Gpio], object]) -> Stimulus:
    """A Pi bench file's firmware and GPIO backend; otherwise the running virtual Pi's."""
    if bench is not None and not bench.is_sim:
        assert bench.dut.url is not None
        if bench.gpio.backend not in ("local", "pigpio"):
            raise StimulusError(f"{bench.source}: [gpio] backend is {bench.gpio.backend!r}; set local or pigpio")
        try:
            backend = GpiozeroBackend(bench.gpio.pigpio_host if bench.gpio.backend == "pigpio" else None)
        except GpioError as exc:
            raise StimulusError(str(exc)) from None
        driver, url = Gpio(backend, bench.gpio.wiring), bench.dut.url
    else:
        virtual_pi, url = _virtual_pi(state_dir)
        wiring = bench.gpio.wiring if bench is not None else BenchConfig("sim", "sim").gpio.wiring
        driver = Gpio(MockPinsBackend(virtual_pi.gpio_socket), wiring)
    return Stimulus(url, lambda: action(driver), driver.close)


def nfc(bench: BenchConfig | None, state_dir: Path, tag: str, action: Callable[[Nfc], object]) -> Stimulus:
    """The bench's NFC backend (card emulation or actuator), or the running virtual Pi's field."""
    config = bench if bench is not None else BenchConfig("sim", "sim")
    shelf = TagShelf(config.nfc.tags)
    try:
        shelf.get(tag)  # a bad tag name is said before anything is opened
    except TagError as exc:
        raise StimulusError(str(exc)) from None
    dut = dut_of(bench, state_dir)
    try:
        driver = Nfc(dut.nfc_backend(), shelf)
    except BenchError as exc:
        raise StimulusError(str(exc)) from None

    def close() -> None:
        driver.close()
        driver.backend.close()

    return Stimulus(dut.url, lambda: action(driver), close)


def audio_port(bench: BenchConfig | None, state_dir: Path) -> tuple[Dut, AudioPort]:
    dut = dut_of(bench, state_dir)
    try:
        return dut, dut.audio_port(None)
    except BenchError as exc:
        raise StimulusError(str(exc)) from None


def say(bench: BenchConfig | None, state_dir: Path, clip_name: str) -> Stimulus:
    """Play a clip or WAV into the DUT's microphone (the bench's audio output)."""
    try:
        clip = resolve(clip_name)
        samples, rate = clip.load()
    except (ClipError, WavError) as exc:
        raise StimulusError(str(exc)) from None
    dut, port = audio_port(bench, state_dir)
    return Stimulus(dut.url, lambda: port.play(samples, rate, clip.name), lambda: None)


async def _observe(stimulus: Stimulus, wait_s: float, contract: Path) -> int:
    client = WebSocketTestClient(stimulus.url, ContractValidator(contract), name="rig", default_timeout=5.0)
    try:
        await client.connect()
    except ConnectionError as exc:
        stimulus.close()
        raise StimulusError(str(exc)) from None
    try:
        started = time.monotonic_ns()
        try:
            await asyncio.to_thread(stimulus.act)
        except (GpioError, TagError, AudioError) as exc:
            raise StimulusError(str(exc)) from None
        finally:
            stimulus.close()
        await asyncio.sleep(wait_s)
        replies = [e for e in client.captured_events if e.mono_ns >= started]
    finally:
        await client.disconnect()
    for event in replies:
        print(json.dumps({"after_ms": round((event.mono_ns - started) / 1e6, 1), **_shown(event)}), flush=True)
    if not replies:
        print(f"rig: the firmware broadcast nothing within {wait_s:g} s of the stimulus", file=sys.stderr)
        return 1
    return 0


def _shown(event: CapturedEvent) -> dict[str, object]:
    return {"event": event.event_type, "data": event.data}


def run(stimulus: Stimulus, wait_s: float, contract: Path) -> int:
    return asyncio.run(_observe(stimulus, wait_s, contract))
