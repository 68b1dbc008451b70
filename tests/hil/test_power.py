"""A Pi that reboots in the middle of a session (issue 3's fault table): the rig's one SSH session
reconnects within the boot timeout by itself, the journal is followed again, and the test's own
timeline says that it happened."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
import socketio

from rig.dut import Dut
from rig.timeline import Timeline


@pytest.mark.needs("power", "journal")
async def test_session_reconnects_after_a_reboot(dut: Dut, timeline: Timeline) -> None:
    assert dut.ssh is not None
    dut.ssh.run("true").check()
    reconnects = dut.ssh.reconnects

    back_after_s = await asyncio.to_thread(dut.power_cycle, 1.0)
    timeline.record("stimulus", "rig", "power_cycle", back_after_s=round(back_after_s, 3))
    after = await asyncio.to_thread(dut.ssh.run, "echo alive")

    assert after.stdout == "alive\n", after
    assert dut.ssh.reconnects == reconnects + 1, "one reconnect, counted"
    noted = [e for e in timeline.entries if e.kind == "ssh" and e.name == "reconnected"]
    assert noted, f"the timeline does not say the session reconnected:\n{timeline.describe_tail()}"
    assert dut.ssh.where in noted[-1].detail["message"]

    # The firmware is back by itself, and its journal reaches the timeline again.
    async with httpx.AsyncClient(timeout=dut.bench.timeouts.http_s) as http:
        health = (await http.get(f"{dut.url}/api/health")).json()["data"]
    assert health["status"] == "healthy"
    client = socketio.AsyncClient()
    await client.connect(dut.url, transports=["websocket"], wait_timeout=5)
    sid = client.get_sid()
    await client.disconnect()
    deadline = time.monotonic() + 10.0
    while not any(e.kind == "journal" and sid in e.name for e in timeline.entries):
        if time.monotonic() > deadline:
            pytest.fail(f"the journal was not followed again after the reboot:\n{timeline.describe_tail()}")
        await asyncio.sleep(0.1)
