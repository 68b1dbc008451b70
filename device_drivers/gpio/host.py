"""Real backends: gpiozero on the rig host's own pins, or on a helper Pi's pins through its pigpio
daemon. Each driven line is a DigitalOutputDevice that idles inactive; each sensed line is a
DigitalInputDevice."""

from __future__ import annotations

from typing import Any

from .driver import GpioError
from .wiring import Line


class GpiozeroBackend:
    def __init__(self, pigpio_host: str | None = None) -> None:
        try:
            from gpiozero import DigitalInputDevice, DigitalOutputDevice
        except ImportError as exc:
            raise GpioError(f"gpiozero is not installed on the rig host: {exc}") from None
        self._output, self._input = DigitalOutputDevice, DigitalInputDevice
        self._factory: Any = None
        if pigpio_host is not None:
            try:
                from gpiozero.pins.pigpio import PiGPIOFactory

                self._factory = PiGPIOFactory(host=pigpio_host)
            except Exception as exc:  # pigpio missing, or its daemon unreachable
                raise GpioError(f"no pigpio daemon reachable at {pigpio_host}: {exc}") from None
        self._devices: dict[int, Any] = {}

    def _device(self, line: Line, output: bool) -> Any:
        if line.host_pin is None:
            raise GpioError(f"line to DUT pin {line.dut_pin} has no host_pin in the wiring map")
        if line.host_pin not in self._devices:
            cls = self._output if output else self._input
            self._devices[line.host_pin] = cls(line.host_pin, pin_factory=self._factory)
        return self._devices[line.host_pin]

    def drive(self, line: Line, level: int) -> None:
        device = self._device(line, output=True)
        device.on() if level else device.off()
        return None  # the Pi's side of the wire cannot be seen from here

    def sense(self, line: Line) -> int:
        return int(self._device(line, output=False).value)

    def close(self) -> None:
        for device in self._devices.values():
            device.close()
        self._devices.clear()
