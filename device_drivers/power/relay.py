"""A relay (or a MOSFET) in the Pi's supply line, driven by one gpiozero output.

``active_high`` says which level closes the relay; relay boards with optocouplers are usually
active-low. The relay starts closed (power on), so claiming the line never cuts a running Pi.
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
