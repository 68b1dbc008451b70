"""The firmware's journal reaches the timeline of the test that is running."""

from __future__ import annotations

import asyncio
import time

import pytest

from rig.observer import WebSocketTestClient
from rig.timeline import Timeline


@pytest.mark.needs("journal")
async def test_firmware_journal_is_on_the_timeline(websocket_client: WebSocketTestClient, timeline: Timeline) -> None:
    """The firmware logs each Socket.IO connection with its sid; that line must show on this test's timeline."""
    sid = websocket_client.sid
    assert sid is not None
    deadline = time.monotonic() + 5.0
    while not any(e.kind == "journal" and sid in e.name for e in timeline.entries):
        if time.monotonic() > deadline:
            pytest.fail(f"no journal line naming sid {sid} within 5 s; the timeline has:\n{timeline.describe_tail()}")
        await asyncio.sleep(0.05)
    line = next(e for e in timeline.entries if e.kind == "journal" and sid in e.name)
    assert line.detail["level"] == "INFO"
    assert line.source == "fw"
