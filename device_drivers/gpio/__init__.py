"""GPIO: the rig presses the DUT's buttons and turns its encoder, and reads its outputs.

Tests name lines from the bench file's wiring map (``[gpio.lines]``), never pin numbers. Backends:
``sim`` drives a virtual Pi's mock pins (``mockpins/``, a gpiozero pin factory plugin); ``local``
drives the rig host's own pins with gpiozero; ``pigpio`` drives a helper Pi's pins through its
pigpio daemon, also with gpiozero.
"""

from .driver import Gpio, GpioError, PinBackend
from .wiring import Line, Wiring

__all__ = ["Gpio", "GpioError", "Line", "PinBackend", "Wiring"]
