"""Player state broadcasts on HTTP actions: transport, volume, seek, real-time position, auto-advance."""

from __future__ import annotations

import itertools

import httpx
import pytest

from rig.http import sent_to_event_ms
from rig.observer import CapturedEvent, EventTimeout, WebSocketTestClient
from rig.timeline import Timeline

from .conftest import LibraryPlaylist

# "press next → state:player shows track 2 within 300 ms": recorded with every command, not asserted
# (figures are measurements; these machines are shared and noisy).
BROADCAST_LIMIT_MS = 300


async def start(http_client: httpx.AsyncClient, playlist: LibraryPlaylist, track_number: int = 1) -> None:
    response = await http_client.post(f"/api/playlists/{playlist.id}/start", json={"track_number": track_number})
    assert response.status_code == 200, response.text


async def command(
    http_client: httpx.AsyncClient, client: WebSocketTestClient, timeline: Timeline, path: str, body: dict | None = None
) -> CapturedEvent:
    """POST a player command and return its state:player broadcast, measuring HTTP→broadcast latency."""
    response = await http_client.post(path, json=body)
    assert response.status_code == 200, response.text
    event = await client.wait_for_event("state:player")
    assert event.server_seq == response.json()["server_seq"], "HTTP and broadcast disagree on server_seq"
    timeline.measure("http_to_state_player", sent_to_event_ms(response, event), "ms", limit=BROADCAST_LIMIT_MS)
    return event


async def test_player_state_broadcasts_on_http_action(
    http_client: httpx.AsyncClient, websocket_client: WebSocketTestClient, timeline: Timeline, backend_ready: bool
) -> None:
    """Toggle → state:player says playing, and it equals what HTTP answered."""
    await websocket_client.join_room("playlists")
    event = await command(http_client, websocket_client, timeline, "/api/player/toggle")
    assert event.data["server_seq"] > 0
    assert event.payload["is_playing"] is True
    status = (await http_client.get("/api/player/status")).json()["data"]
    assert event.payload["active_track_id"] == status["active_track_id"]


async def test_play_pause_stop_each_broadcast(
    http_client: httpx.AsyncClient,
    websocket_client: WebSocketTestClient,
    timeline: Timeline,
    library: list[LibraryPlaylist],
) -> None:
    playing = await command(http_client, websocket_client, timeline, f"/api/playlists/{library[0].id}/start")
    assert playing.payload["is_playing"] is True
    paused = await command(http_client, websocket_client, timeline, "/api/player/pause")
    assert paused.payload["is_playing"] is False
    assert paused.payload["active_track_id"] == playing.payload["active_track_id"]
    resumed = await command(http_client, websocket_client, timeline, "/api/player/play")
    assert resumed.payload["is_playing"] is True
    assert resumed.payload["position_ms"] >= paused.payload["position_ms"]
    stopped = await command(http_client, websocket_client, timeline, "/api/player/stop")
    assert stopped.payload["is_playing"] is False
    assert stopped.payload["position_ms"] == 0


async def test_next_and_previous_move_between_tracks(
    http_client: httpx.AsyncClient,
    websocket_client: WebSocketTestClient,
    timeline: Timeline,
    library: list[LibraryPlaylist],
) -> None:
    playlist = library[0]
    first = await command(http_client, websocket_client, timeline, f"/api/playlists/{playlist.id}/start")
    assert (first.payload["active_track_number"], first.payload["can_prev"], first.payload["can_next"]) == (
        1,
        False,
        True,
    )
    second = await command(http_client, websocket_client, timeline, "/api/player/next")
    assert second.payload["active_track_id"] == playlist.tracks[1]["id"]
    assert second.payload["can_prev"] is True
    back = await command(http_client, websocket_client, timeline, "/api/player/previous")
    assert back.payload["active_track_id"] == playlist.tracks[0]["id"]


async def test_previous_at_first_track_is_refused_without_broadcast(
    http_client: httpx.AsyncClient, websocket_client: WebSocketTestClient, library: list[LibraryPlaylist]
) -> None:
    await start(http_client, library[0])
    await websocket_client.wait_for_event("state:player")
    response = await http_client.post("/api/player/previous")
    assert response.status_code == 409
    body = response.json()
    assert body["status"] == "error"
    assert body["error_type"] == "conflict"
    assert "first" in body["message"]
    with pytest.raises(EventTimeout):
        await websocket_client.wait_for_event("state:player", timeout=0.5)


async def test_volume_change_broadcasts(
    http_client: httpx.AsyncClient, websocket_client: WebSocketTestClient, backend_ready: bool
) -> None:
    response = await http_client.post("/api/player/volume", json={"volume": 37})
    assert response.status_code == 200
    assert response.json()["data"] == {"volume": 37}
    changed = await websocket_client.wait_for_event("state:volume_changed")
    assert changed.payload == {"volume": 37}
    player = await websocket_client.wait_for_event("state:player")
    assert player.payload["volume"] == 37
    assert player.server_seq > changed.server_seq


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"volume": 150}, "between 0 and 100"),
        ({"volume": "loud"}, "integer"),
        ({}, "required"),
        ({"volume": True}, "integer"),
    ],
)
async def test_bad_volume_is_rejected_and_changes_nothing(
    http_client: httpx.AsyncClient, websocket_client: WebSocketTestClient, body: dict, fragment: str
) -> None:
    response = await http_client.post("/api/player/volume", json=body)
    assert response.status_code == 400
    error = response.json()
    assert error["status"] == "error"
    assert error["error_type"] == "validation_error"
    assert fragment in error["message"]
    with pytest.raises(EventTimeout):
        await websocket_client.wait_for_event("state:volume_changed", timeout=0.5)


async def test_seek_updates_position(
    http_client: httpx.AsyncClient, websocket_client: WebSocketTestClient, library: list[LibraryPlaylist]
) -> None:
    await start(http_client, library[0])
    await http_client.post("/api/player/pause")
    await websocket_client.wait_for_multiple_events("state:player", 2)
    response = await http_client.post("/api/player/seek", json={"position_ms": 1500})
    assert response.status_code == 200
    event = await websocket_client.wait_for_event("state:player")
    assert event.payload["position_ms"] == 1500
    assert event.payload["is_playing"] is False


async def test_seek_past_the_end_is_rejected(
    http_client: httpx.AsyncClient, websocket_client: WebSocketTestClient, library: list[LibraryPlaylist]
) -> None:
    await start(http_client, library[0])
    await websocket_client.wait_for_event("state:player")
    duration = library[0].tracks[0]["duration_ms"]
    response = await http_client.post("/api/player/seek", json={"position_ms": duration + 1000})
    assert response.status_code == 400
    assert "past the end" in response.json()["message"]
    response = await http_client.post("/api/player/seek", json={"position_ms": -5})
    assert response.status_code == 400


async def test_position_advances_in_real_time_and_is_throttled(
    http_client: httpx.AsyncClient, websocket_client: WebSocketTestClient, library: list[LibraryPlaylist]
) -> None:
    """state:track_position comes at most every 500 ms, and position follows the firmware's own clock."""
    playlist, number = max(
        ((p, t["number"]) for p in library for t in p.tracks), key=lambda pt: pt[0].tracks[pt[1] - 1]["duration_ms"]
    )
    await start(http_client, playlist, number)
    await websocket_client.wait_for_event("state:player")
    ticks = await websocket_client.wait_for_multiple_events("state:track_position", 3, timeout=3.0)
    for earlier, later in itertools.pairwise(ticks):
        gap_s = later.data["timestamp"] - earlier.data["timestamp"]
        assert gap_s >= 0.45, f"state:track_position {gap_s * 1000:.0f} ms apart: faster than its 500 ms throttle"
        advanced_ms = later.payload["position_ms"] - earlier.payload["position_ms"]
        assert abs(advanced_ms - gap_s * 1000) <= 0.1 * gap_s * 1000 + 20, (
            f"position advanced {advanced_ms} ms in {gap_s * 1000:.0f} ms of firmware time"
        )


async def test_auto_advance_at_end_of_track(
    http_client: httpx.AsyncClient, websocket_client: WebSocketTestClient, library: list[LibraryPlaylist]
) -> None:
    playlist = library[0]
    await start(http_client, playlist)
    await websocket_client.wait_for_event("state:player")
    await http_client.post("/api/player/seek", json={"position_ms": playlist.tracks[0]["duration_ms"] - 300})
    await websocket_client.wait_for_event("state:player")
    advanced = await websocket_client.wait_for_event("state:player", timeout=3.0)
    assert advanced.payload["active_track_id"] == playlist.tracks[1]["id"]
    assert advanced.payload["is_playing"] is True
    assert advanced.payload["position_ms"] < 500


async def test_end_of_playlist_stops(
    http_client: httpx.AsyncClient, websocket_client: WebSocketTestClient, library: list[LibraryPlaylist]
) -> None:
    playlist = library[0]
    last = playlist.tracks[-1]
    await start(http_client, playlist, last["number"])
    await websocket_client.wait_for_event("state:player")
    await http_client.post("/api/player/seek", json={"position_ms": last["duration_ms"] - 200})
    await websocket_client.wait_for_event("state:player")
    ended = await websocket_client.wait_for_event("state:player", timeout=3.0)
    assert ended.payload["is_playing"] is False
    assert ended.payload["can_next"] is False


async def test_status_matches_the_last_broadcast(
    http_client: httpx.AsyncClient, websocket_client: WebSocketTestClient, library: list[LibraryPlaylist]
) -> None:
    await start(http_client, library[0], 2)
    await http_client.post("/api/player/pause")
    await websocket_client.wait_for_event("state:player")
    last = await websocket_client.wait_for_event("state:player")
    status = (await http_client.get("/api/player/status")).json()["data"]
    for key in ("is_playing", "active_track_id", "position_ms", "volume", "can_prev", "can_next"):
        assert status[key] == last.payload[key], key


async def test_malformed_json_is_a_400_not_a_500(http_client: httpx.AsyncClient, backend_ready: bool) -> None:
    response = await http_client.post(
        "/api/player/seek", content=b"{position_ms: 12", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error_type"] == "bad_request"
    assert "not valid JSON" in response.json()["message"]
