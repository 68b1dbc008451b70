"""The bench's wiring map: which rig line reaches which DUT pin, and how a press looks on it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Line:
    dut_pin: int  # BCM number on the DUT
    host_pin: int | None = None  # BCM number on the rig host or helper Pi; None in sim (a direct wire)
    # Level of the driving pin while the line is active (pressed). Direct wiring to a button input with
    # a pull-up: False (pressed pulls low). Through an optocoupler whose LED the rig lights: True.
    active_high: bool = False
    direction: str = "out"  # "out": the rig drives it; "in": the rig senses a DUT output (an LED)


MUSIC_BOX_LINES = {
    "next": Line(16),
    "previous": Line(26),
    "play_pause": Line(23),
    "volume_clk": Line(7),
    "volume_dt": Line(24),
}


@dataclass(frozen=True)
class Wiring:
    lines: dict[str, Line] = field(default_factory=lambda: dict(MUSIC_BOX_LINES))
    encoders: dict[str, tuple[str, str]] = field(default_factory=lambda: {"volume": ("volume_clk", "volume_dt")})

    def line(self, name: str) -> Line:
        try:
            return self.lines[name]
        except KeyError:
            raise KeyError(f"no line {name!r} in the wiring map; it has: {', '.join(sorted(self.lines))}") from None
