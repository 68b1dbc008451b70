"""The serial console (issue 4): the firmware writes its key events there, as a Pi's console
shows them, and the rig reads them with pyserial onto the timeline."""

from __future__ import annotations

import asyncio

import pytest

from device_drivers.gpio import Gpio
from device_drivers.nfc import Nfc
from device_drivers.serial import SerialConsole
from rig.timeline import Timeline


@pytest.mark.needs("console", "gpio", "nfc")
async def test_buttons_and_tags_show_on_the_console(
    console: SerialConsole, gpio: Gpio, nfc: Nfc, timeline: Timeline
) -> None:
    mark = console.mark()
    await asyncio.to_thread(gpio.press, "next", 0.05)
    await asyncio.to_thread(console.expect, r"musicbox: button next$", 3.0, mark)
    await asyncio.to_thread(nfc.tap, "stranger", 0.2)
    tag_id = nfc.tag("stranger").tag_id
    arrived = await asyncio.to_thread(console.expect, f"nfc: tag {tag_id} arrived", 3.0, mark)
    removed = await asyncio.to_thread(console.expect, f"nfc: tag {tag_id} removed", 3.0, mark)
    assert arrived.mono_ns < removed.mono_ns
    on_timeline = [e for e in timeline.entries if e.kind == "console"]
    assert any("button next" in e.name for e in on_timeline), "console lines reach the running test's timeline"
