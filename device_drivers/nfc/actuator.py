"""The actuator backend: real tags, moved onto the DUT's antenna by gpiozero devices.

For readers that cannot see an emulated tag, or to test with the stickers a user really buys.
Each tag has its own solenoid (a digital output that pushes it onto the antenna while on), or
all tags sit on one servo's arm and each has an angle above the antenna; the servo parks at
``rest_angle`` when no tag is placed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from .tags import Tag


class ActuatorError(RuntimeError):
    """A tag the actuator cannot move, or a pin gpiozero cannot claim."""


@dataclass(frozen=True)
class TagMount:
    """Where one tag sits: its solenoid's pin, or its angle on the servo."""

    solenoid_pin: int | None = None
    angle: float | None = None


class Actuator:
    def __init__(
        self,
        mounts: dict[str, TagMount],
        *,
        servo_pin: int | None = None,
        rest_angle: float = 0.0,
        active_high: bool = True,
        settle_s: float = 0.3,
        pin_factory: Any = None,
    ) -> None:
        from gpiozero import AngularServo, DigitalOutputDevice
        from gpiozero.exc import GPIOZeroError

        self.mounts = mounts
        self.rest_angle = rest_angle
        self.settle_s = settle_s
        self._placed: str | None = None
        try:
            self._solenoids = {
                name: DigitalOutputDevice(m.solenoid_pin, active_high=active_high, pin_factory=pin_factory)
                for name, m in mounts.items()
                if m.solenoid_pin is not None
            }
            self._servo = (
                AngularServo(servo_pin, initial_angle=rest_angle, min_angle=-90, max_angle=90, pin_factory=pin_factory)
                if servo_pin is not None
                else None
            )
        except (GPIOZeroError, OSError) as exc:
            raise ActuatorError(f"the NFC actuator cannot claim its pins: {exc}") from None

    def place(self, tag: Tag) -> None:
        self.remove()
        mount = self.mounts.get(tag.name)
        if mount is None:
            raise ActuatorError(f"tag {tag.name!r} is not mounted on this bench's actuator (mounted: {self._names()})")
        if mount.solenoid_pin is not None:
            self._solenoids[tag.name].on()
        elif self._servo is not None and mount.angle is not None:
            self._servo.angle = mount.angle
        else:
            raise ActuatorError(f"tag {tag.name!r} has an angle but the bench has no servo_pin")
        self._placed = tag.name
        time.sleep(self.settle_s)  # the arm or plunger is moving

    def remove(self) -> None:
        if self._placed is None:
            return
        solenoid = self._solenoids.get(self._placed)
        if solenoid is not None:
            solenoid.off()
        elif self._servo is not None:
            self._servo.angle = self.rest_angle
        self._placed = None
        time.sleep(self.settle_s)

    def close(self) -> None:
        self.remove()
        for device in (*self._solenoids.values(), self._servo):
            if device is not None:
                device.close()

    def _names(self) -> str:
        return ", ".join(sorted(self.mounts)) or "none"
