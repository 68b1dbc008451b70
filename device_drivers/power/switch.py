"""The power protocol the suite uses: off, on and cycle, each stamped on the timeline."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .relay import PowerSwitch

Stamp = Callable[[str, dict[str, Any]], Any]


class Power:
    def __init__(self, switch: PowerSwitch, stamp: Stamp | None = None) -> None:
        self.switch = switch
        self.stamp: Stamp = stamp or (lambda name, detail: None)

    def off(self) -> Any:
        stamp = self.stamp("power off", {})
        self.switch.off()
        return stamp

    def on(self) -> Any:
        stamp = self.stamp("power on", {})
        self.switch.on()
        return stamp

    def cycle(self, off_s: float = 1.0) -> Any:
        """Off for ``off_s`` seconds, then on; returns the stamp of power coming back."""
        self.off()
        time.sleep(off_s)
        return self.on()
