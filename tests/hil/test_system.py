"""System events (the project's contract): the heartbeat, a restart the observer survives, a
reader pulled and put back, and storage running low."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import httpx
import pytest

from rig.dut import Dut
from rig.library_snapshot import take_snapshot
from rig.observer import WebSocketTestClient
from rig.uploads import UploadClient, UploadRejected

from .conftest import LibraryPlaylist


def service(name: str, state: str) -> Any:
    return lambda e: e.payload["service"] == name and e.payload["state"] == state


async def system_health(http: httpx.AsyncClient) -> dict[str, Any]:
    response = await http.get("/api/system/health")
    response.raise_for_status()
    return response.json()["data"]


async def test_heartbeat_arrives_at_its_interval(websocket_client: WebSocketTestClient) -> None:
    await websocket_client.join_room("system")
    snapshot = await websocket_client.wait_for_event("system:health")  # the join's own
    interval = snapshot.payload["interval_s"]

    beats = await websocket_client.wait_for_multiple_events("system:health", 4, timeout=interval * 6 + 2)

    gaps = [(b.mono_ns - a.mono_ns) / 1e9 for a, b in itertools.pairwise(beats)]
    assert all(0.5 * interval <= gap <= 1.5 * interval for gap in gaps), f"gaps {gaps} for interval {interval}"
    assert [b.payload["beat"] for b in beats] == list(range(beats[0].payload["beat"], beats[0].payload["beat"] + 4))
    last = beats[-1].payload
    assert last["memory"]["total_bytes"] > last["memory"]["available_bytes"] > 0
    assert last["disk"]["free_bytes"] > 0
    assert last["uptime_s"] > 0
    assert last["process_uptime_s"] > snapshot.payload["process_uptime_s"]
    assert set(last["services"]) >= {"nfc", "audio_in", "audio_out", "gpio"}
    assert "cpu_temp_c" in last  # a number on a Pi, null on a board without a sensor


async def test_restart_is_announced_and_the_observer_resyncs_with_nothing_lost(
    dut: Dut,
    http_client: httpx.AsyncClient,
    websocket_client: WebSocketTestClient,
    library: list[LibraryPlaylist],
) -> None:
    playlist = library[0]
    await websocket_client.join_room("playlists")
    await websocket_client.join_room("playlist", playlist.id)
    await websocket_client.join_room("system")
    (await http_client.post(f"/api/playlists/{playlist.id}/start", json={"track_number": 2})).raise_for_status()
    (await http_client.post("/api/player/pause")).raise_for_status()
    (await http_client.post("/api/player/volume", json={"volume": 37})).raise_for_status()
    player_before = (await http_client.get("/api/player/status")).json()["data"]
    library_before = await take_snapshot(http_client, dut)
    started_before = (await system_health(http_client))["started_at"]
    seq_before = websocket_client.get_server_seq_range()[1]

    response = await http_client.post("/api/system/restart", json={"reason": "HIL restart test"})
    assert response.status_code == 202, response.text

    restarting = await websocket_client.wait_for_event("system:restarting")
    assert restarting.payload["reason"] == "HIL restart test"
    await websocket_client.wait_disconnected(timeout=15)
    complete = await websocket_client.reconnect(timeout=dut.bench.dut.boot_timeout_s)
    assert sorted(complete.payload["synced_rooms"]) == sorted(["playlists", f"playlist:{playlist.id}"])
    await asyncio.to_thread(dut.wait_healthy)

    assert (await system_health(http_client))["started_at"] > started_before, "a new process answers"
    player_after = (await http_client.get("/api/player/status")).json()["data"]
    for field in ("active_playlist_id", "active_track_id", "volume", "is_playing"):
        assert player_after[field] == player_before[field], field
    assert (await take_snapshot(http_client, dut)).diff(library_before) == []
    resynced = websocket_client.get_server_seq_range()[1]
    assert resynced > seq_before, "server_seq continues across the restart"
    await websocket_client.wait_for_event("system:health", timeout=15)  # the heartbeat is back


async def wait_service_up(http: httpx.AsyncClient, name: str, timeout: float) -> None:
    """Until health says ``name`` is up: a test that ran before may have restarted the firmware,
    whose reader comes up a moment after health first answers."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    services: dict[str, Any] = {}
    while loop.time() < deadline:
        services = (await http.get("/api/health")).json()["data"]["services"]
        if services.get(name):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{name} not up within {timeout:g} s; health's services: {services}")


@pytest.mark.needs("nfc_reader_pull")
async def test_a_pulled_reader_shows_in_health_and_system_service(
    dut: Dut, http_client: httpx.AsyncClient, websocket_client: WebSocketTestClient
) -> None:
    await websocket_client.join_room("system")
    await wait_service_up(http_client, "nfc", timeout=10)
    try:
        await asyncio.to_thread(dut.set_reader, False)
        down = await websocket_client.wait_for_event("system:service", timeout=5, predicate=service("nfc", "down"))
        health = (await http_client.get("/api/health")).json()["data"]
        assert health["status"] == "degraded", health
        assert health["services"]["nfc"] is False
        beat = await websocket_client.wait_for_event(
            "system:health", timeout=15, predicate=lambda e: e.payload["services"]["nfc"] == "down"
        )
        assert beat.payload["status"] == "degraded"
    finally:
        await asyncio.to_thread(dut.set_reader, True)
    back = await websocket_client.wait_for_event(
        "system:service", timeout=10, predicate=lambda e: service("nfc", "up")(e) and e.index > down.index
    )
    assert back.payload["previous"] == "down"
    health = (await http_client.get("/api/health")).json()["data"]
    assert health["status"] == "healthy", health


@pytest.mark.needs("disk_quota", "journal")
async def test_low_storage_is_reported_and_clears(
    dut: Dut, http_client: httpx.AsyncClient, websocket_client: WebSocketTestClient, playlist_factory: Any
) -> None:
    await websocket_client.join_room("system")
    disk = (await system_health(http_client))["disk"]
    assert not disk["low"], f"the Pi's disk is already low: {disk}"
    filler = disk["free_bytes"] - disk["low_threshold_bytes"] + 8 * 1024 * 1024
    assert dut.ssh is not None
    dut.ssh.run(f"fallocate -l {filler} $HOME/rig-filler", timeout=60).check()
    try:
        low = await websocket_client.wait_for_event(
            "system:storage_low", timeout=5, predicate=lambda e: e.payload["low"] is True
        )
        assert low.payload["free_bytes"] < low.payload["low_threshold_bytes"]
        assert (await system_health(http_client))["disk"]["low"] is True
        playlist = playlist_factory("No room")
        with pytest.raises(UploadRejected) as refused:
            await UploadClient(http_client, playlist["id"]).create("big.wav", low.payload["free_bytes"])
        assert refused.value.status in (413, 507), "an upload that cannot fit is refused before any byte"
    finally:
        dut.ssh.run("rm -f $HOME/rig-filler", timeout=30).check()
    cleared = await websocket_client.wait_for_event(
        "system:storage_low", timeout=5, predicate=lambda e: e.payload["low"] is False
    )
    assert cleared.payload["free_bytes"] >= cleared.payload["low_threshold_bytes"]
