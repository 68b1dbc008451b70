"""``rig press`` and ``rig turn``: a technician's stimulus by hand, and what the firmware broadcast in reply.

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

from device_drivers.gpio import Gpio, GpioError
from device_drivers.gpio.host import GpiozeroBackend
from device_drivers.gpio.sim import MockPinsBackend

from .bench import BenchConfig
from .contract import ContractValidator
from .observer import CapturedEvent, WebSocketTestClient
from .virtual_pi import VirtualPi


class StimulusError(RuntimeError):
    """The stimulus could not be given; one line for the CLI."""


@dataclass
class Bench:
    url: str
    gpio: Gpio


def reach(bench: BenchConfig | None, state_dir: Path) -> Bench:
    """A Pi bench file's firmware and GPIO backend; otherwise the running virtual Pi's."""
    if bench is not None and not bench.is_sim:
        assert bench.dut.url is not None
        if bench.gpio.backend not in ("local", "pigpio"):
            raise StimulusError(f"{bench.source}: [gpio] backend is {bench.gpio.backend!r}; set local or pigpio")
        try:
            backend = GpiozeroBackend(bench.gpio.pigpio_host if bench.gpio.backend == "pigpio" else None)
        except GpioError as exc:
            raise StimulusError(str(exc)) from None
        return Bench(bench.dut.url, Gpio(backend, bench.gpio.wiring))
    virtual_pi = VirtualPi(state_dir)
    info = virtual_pi.info()
    if info is None:
        raise StimulusError(f"no virtual Pi runs in {state_dir}; start one with 'rig sim up', or give --bench FILE")
    wiring = bench.gpio.wiring if bench is not None else BenchConfig("sim", "sim").gpio.wiring
    return Bench(info.url, Gpio(MockPinsBackend(virtual_pi.gpio_socket), wiring))


async def _observe(bench: Bench, act: Callable[[Gpio], object], wait_s: float, contract: Path) -> int:
    client = WebSocketTestClient(bench.url, ContractValidator(contract), name="rig", default_timeout=5.0)
    try:
        await client.connect()
    except ConnectionError as exc:
        raise StimulusError(str(exc)) from None
    try:
        started = time.monotonic_ns()
        try:
            await asyncio.to_thread(act, bench.gpio)
        except GpioError as exc:
            raise StimulusError(str(exc)) from None
        finally:
            bench.gpio.close()
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


def run(bench: Bench, act: Callable[[Gpio], object], wait_s: float, contract: Path) -> int:
    return asyncio.run(_observe(bench, act, wait_s, contract))
