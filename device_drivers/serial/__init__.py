"""Serial console: pyserial reads the DUT's console (a USB-UART on a bench, a pty on a virtual Pi)."""

from .console import ConsoleError, ConsoleTimeout, SerialConsole

__all__ = ["ConsoleError", "ConsoleTimeout", "SerialConsole"]
