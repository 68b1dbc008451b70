"""The GPIO protocol the suite uses: press, hold, release, turn and read, by line name.

Every stimulus is stamped through ``stamp`` (the running test's timeline); ``press`` returns the
stamp of the active edge, so a test measures press→broadcast from it. An encoder turn is real
quadrature on two lines: for one detent clockwise, A falls first, then B, then A rises, then B.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from .wiring import Line, Wiring

# One detent as (A, B) levels after each of its four edges, from the (1, 1) rest position.
CLOCKWISE = ((0, 1), (0, 0), (1, 0), (1, 1))
COUNTER_CLOCKWISE = ((1, 0), (0, 0), (0, 1), (1, 1))

Stamp = Callable[[str, dict[str, Any]], Any]


class GpioError(RuntimeError):
    """A line cannot be driven or read; the message names the line and the reason."""


class PinBackend(Protocol):
    def drive(self, line: Line, level: int) -> float | None:
        """Set the line; when the backend can tell, the DUT's monotonic time at which its own
        callbacks for the edge had run (a virtual Pi's mock pins can; a wire cannot)."""
        ...

    def sense(self, line: Line) -> int: ...
    def close(self) -> None: ...


class Gpio:
    def __init__(self, backend: PinBackend, wiring: Wiring, stamp: Stamp | None = None) -> None:
        self.backend = backend
        self.wiring = wiring
        self.stamp: Stamp = stamp or (lambda name, detail: None)

    def _line(self, name: str, direction: str = "out") -> Line:
        try:
            line = self.wiring.line(name)
        except KeyError as exc:
            raise GpioError(str(exc.args[0])) from None
        if line.direction != direction:
            verb = "driven" if direction == "out" else "read"
            raise GpioError(f"line {name!r} is an {line.direction}put in the wiring map; it cannot be {verb}")
        return line

    def _set(self, line: Line, active: bool) -> None:
        self.backend.drive(line, int(active == line.active_high))

    def _to_dut_level(self, line: Line, level: int) -> None:
        """An encoder line's level as the DUT must see it; an inverting line (active high) flips it."""
        self.backend.drive(line, 1 - level if line.active_high else level)

    def press(self, name: str, duration: float = 0.1) -> Any:
        """Press and release; returns the stamp of the press."""
        line = self._line(name)
        pressed = self.stamp(f"press {name}", {"duration_s": duration, "dut_pin": line.dut_pin})
        self._set(line, True)
        time.sleep(duration)
        self._set(line, False)
        self.stamp(f"release {name}", {"dut_pin": line.dut_pin})
        return pressed

    def hold(self, name: str, seconds: float) -> Any:
        return self.press(name, seconds)

    def release(self, name: str) -> None:
        line = self._line(name)
        self._set(line, False)
        self.stamp(f"release {name}", {"dut_pin": line.dut_pin})

    def turn(self, encoder: str, steps: int, rate: float = 20.0) -> Any:
        """``steps`` detents (negative: counter-clockwise) at ``rate`` detents per second."""
        try:
            a_name, b_name = self.wiring.encoders[encoder]
        except KeyError:
            known = ", ".join(sorted(self.wiring.encoders)) or "none"
            raise GpioError(f"no encoder {encoder!r} in the wiring map; it has: {known}") from None
        a, b = self._line(a_name), self._line(b_name)
        sequence = CLOCKWISE if steps > 0 else COUNTER_CLOCKWISE
        edge_s = 1.0 / (max(rate, 0.1) * len(sequence))
        started = self.stamp(f"turn {encoder}", {"steps": steps, "rate": rate})
        levels = (1, 1)
        for _ in range(abs(steps)):
            for new in sequence:
                if new[0] != levels[0]:
                    self._to_dut_level(a, new[0])
                if new[1] != levels[1]:
                    self._to_dut_level(b, new[1])
                levels = new
                time.sleep(edge_s)
        return started

    def read(self, name: str) -> bool:
        """Whether a DUT output line is active."""
        line = self._line(name, "in")
        active = self.backend.sense(line) == int(line.active_high)
        self.stamp(f"read {name}", {"active": active})
        return active

    def close(self) -> None:
        self.backend.close()
