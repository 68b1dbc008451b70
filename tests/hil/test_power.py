"""Power: a Pi that reboots in the middle of a session (issue 3's fault table) and the power-cycle
test of issue 4. The rig's one SSH session reconnects within the boot timeout by itself, the
journal is followed again, the console shows the boot, and what the box stored survives."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
import socketio

from device_drivers.nfc import Nfc
from device_drivers.power import Power
from device_drivers.serial import SerialConsole
from rig.dut import Dut
from rig.timeline import Timeline
from rig.tls import tls

from .conftest import LibraryPlaylist


async def healthy_within(dut: Dut, seconds: float) -> None:
    """Health says "healthy" within ``seconds``: right after a boot the firmware answers while its
    devices (the NFC reader) are still coming up, and says "degraded" meanwhile, rightly."""
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(timeout=dut.bench.timeouts.http_s, verify=tls()) as http:
        while True:
            health = (await http.get(f"{dut.url}/api/health")).json()["data"]
            if health["status"] == "healthy":
                return
            if time.monotonic() > deadline:
                pytest.fail(f"health still says {health['status']} {seconds:g} s after the boot: {health['services']}")
            await asyncio.sleep(0.05)


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
    await healthy_within(dut, 5.0)
    client = socketio.AsyncClient()
    await client.connect(dut.url, transports=["websocket"], wait_timeout=5)
    sid = client.get_sid()
    await client.disconnect()
    deadline = time.monotonic() + 10.0
    while not any(e.kind == "journal" and sid in e.name for e in timeline.entries):
        if time.monotonic() > deadline:
            pytest.fail(f"the journal was not followed again after the reboot:\n{timeline.describe_tail()}")
        await asyncio.sleep(0.1)


@pytest.mark.needs("power", "console", "nfc")
async def test_power_cycle_boots_on_the_console_and_keeps_library_tags_and_volume(
    dut: Dut, power: Power, console: SerialConsole, nfc: Nfc, timeline: Timeline, library: list[LibraryPlaylist]
) -> None:
    """Power off and on through the power driver: the console shows the boot, the firmware comes
    back healthy, and what the box stored (library, tag associations, volume) is all still there."""
    playlist, red = library[0], nfc.tag("red").tag_id
    async with httpx.AsyncClient(base_url=dut.url, timeout=dut.bench.timeouts.http_s, verify=tls()) as http:
        assert (await http.post("/api/player/volume", json={"volume": 35})).status_code == 200
        associated = await http.post("/api/nfc/associate", json={"playlist_id": playlist.id, "tag_id": red})
        assert associated.status_code == 200, associated.text
        before = (await http.get("/api/playlists?limit=100")).json()["data"]["playlists"]
        try:
            mark = console.mark()
            await asyncio.to_thread(power.cycle, dut.bench.power.off_s if not dut.is_sim else 1.0)
            booted = await asyncio.to_thread(
                console.expect, r"musicbox .* starting", dut.bench.dut.boot_timeout_s, mark
            )
            ready = await asyncio.to_thread(console.expect, r"ready on port", dut.bench.dut.boot_timeout_s, mark)
            assert booted.mono_ns <= ready.mono_ns
            back_s = await asyncio.to_thread(dut.wait_healthy)
            timeline.record("note", "rig", "answering after power on", back_s=round(back_s, 3))
            await healthy_within(dut, 5.0)

            after = (await http.get("/api/playlists?limit=100")).json()["data"]["playlists"]
            assert after == before, "the library changed across the power cycle"
            status = (await http.get("/api/player/status")).json()["data"]
            assert status["volume"] == 35, "the volume did not survive the power cycle"
            owner = (await http.get(f"/api/playlists/{playlist.id}")).json()["data"]["nfc_tag_id"]
            assert owner == red, "the tag association did not survive the power cycle"
        finally:
            await http.delete(f"/api/nfc/associate/{red}")
