"""A relay (or a MOSFET) in the Pi's supply line, driven by one gpiozero output.

``active_high`` says whether a high line means power on. The line starts at "power on", so
claiming it never cuts a running Pi; at the end of a run gpiozero releases it, so the supply
should run through the relay's normally-closed contact, which keeps the Pi powered then.
"""

from __future__ import annotations

from typing import Any, Protocol


class PowerSwitch(Protocol):
    def off(self) -> None: ...
    def on(self) -> None: ...


class RelayError(RuntimeError):
    """The relay's line cannot be claimed."""


class RelaySwitch:
    def __init__(self, pin: int, *, active_high: bool = True, pin_factory: Any = None) -> None:
        from gpiozero import DigitalOutputDevice
        from gpiozero.exc import GPIOZeroError

        try:
            self._relay = DigitalOutputDevice(pin, active_high=active_high, initial_value=True, pin_factory=pin_factory)
        except (GPIOZeroError, OSError) as exc:
            raise RelayError(f"cannot claim the power relay on GPIO{pin}: {exc}") from None

    def off(self) -> None:
        self._relay.off()

    def on(self) -> None:
        self._relay.on()

    @property
    def is_on(self) -> bool:
        return bool(self._relay.value)

    def close(self) -> None:
        self._relay.close()
