"""Multi-client sync, server_seq monotonicity, reconnect with sync:request, and client_op_id correlation."""

from __future__ import annotations

import uuid

import httpx
import pytest

from rig.contract import ContractValidator
from rig.dut import Dut
from rig.observer import EventTimeout, WebSocketTestClient

from .conftest import LibraryPlaylist


@pytest.mark.parametrize("multiple_websocket_clients", [3], indirect=True)
async def test_every_client_sees_the_same_event(
    http_client: httpx.AsyncClient, multiple_websocket_clients: list[WebSocketTestClient]
) -> None:
    """Server-authoritative: the originating client gets the broadcast too, with the same seq and id."""
    origin, *_others = multiple_websocket_clients
    for client in multiple_websocket_clients:
        await client.join_room("playlists")
    response = await http_client.post("/api/player/toggle", headers={"X-Socket-ID": origin.sid or ""})
    assert response.status_code == 200
    events = [await c.wait_for_event("state:player") for c in multiple_websocket_clients]
    assert len({e.server_seq for e in events}) == 1, [e.server_seq for e in events]
    assert len({e.event_id for e in events}) == 1
    assert events[0].server_seq == response.json()["server_seq"]
    assert all(e.payload == events[0].payload for e in events[1:])


async def test_server_seq_increases_across_mixed_actions(
    http_client: httpx.AsyncClient,
    websocket_client: WebSocketTestClient,
    contract_validator: ContractValidator,
    library: list[LibraryPlaylist],
) -> None:
    playlist = library[0]
    await websocket_client.join_room("playlists")
    await websocket_client.join_room("playlist", playlist_id=playlist.id)
    created = (await http_client.post("/api/playlists", json={"title": f"Seq {uuid.uuid4().hex[:6]}"})).json()["data"]
    await http_client.post(f"/api/playlists/{playlist.id}/start")
    await http_client.post("/api/player/volume", json={"volume": 61})
    await http_client.post(f"/api/playlists/{playlist.id}/reorder", json={"track_ids": playlist.track_ids()[::-1]})
    await http_client.post("/api/player/next")
    await http_client.post(f"/api/playlists/{playlist.id}/reorder", json={"track_ids": playlist.track_ids()})
    await http_client.delete(f"/api/playlists/{created['id']}")
    await websocket_client.wait_for_event("state:playlist_deleted")
    states = websocket_client.state_events()
    assert {e.event_type for e in states} >= {
        "state:playlists",
        "state:playlist",
        "state:playlist_created",
        "state:player",
        "state:volume_changed",
        "state:playlist_deleted",
    }
    websocket_client.assert_server_seq_increasing()
    contract_validator.validate_server_seq_monotonic(states)
    low, high = websocket_client.get_server_seq_range()
    assert high - low >= len(states) - 1


async def test_reconnect_with_sync_request_gets_what_was_missed(
    http_client: httpx.AsyncClient, dut: Dut, contract_validator: ContractValidator, timeline, playlist_factory
) -> None:
    first = WebSocketTestClient(dut.url, contract_validator, timeline=timeline, name="before")
    await first.connect()
    await first.join_room("playlists")
    last_seq = first.get_server_seq_range()[1]
    await first.disconnect()

    missed = playlist_factory(f"Missed {uuid.uuid4().hex[:6]}")
    await http_client.post("/api/player/volume", json={"volume": 42})

    async with WebSocketTestClient(dut.url, contract_validator, timeline=timeline, name="after") as again:
        await again.emit("sync:request", {"last_global_seq": last_seq, "requested_rooms": ["playlists"]})
        complete = await again.wait_for_event("sync:complete")
        playlists = await again.wait_for_event("state:playlists")
        player = await again.wait_for_event("state:player")
        assert any(p["id"] == missed["id"] for p in playlists.payload["playlists"])
        assert player.payload["volume"] == 42
        assert complete.data["synced_rooms"] == ["playlists"]
        assert complete.data["current_global_seq"] >= player.server_seq > last_seq
        assert complete.index > max(playlists.index, player.index), "sync:complete must come after the snapshots"
        assert not again.findings(), again.findings()


async def test_sync_request_when_up_to_date_sends_only_complete(websocket_client: WebSocketTestClient) -> None:
    await websocket_client.join_room("playlists")
    current = websocket_client.get_server_seq_range()[1]
    sent_after = len(websocket_client.get_events())
    await websocket_client.emit("sync:request", {"last_global_seq": current, "requested_rooms": ["playlists"]})
    complete = await websocket_client.wait_for_event("sync:complete")
    assert complete.data["current_global_seq"] >= current
    resent = [e.event_type for e in websocket_client.get_events()[sent_after:] if e.event_type.startswith("state:")]
    assert resent == [], f"an up-to-date client was sent snapshots: {resent}"


@pytest.mark.parametrize("multiple_websocket_clients", [2], indirect=True)
async def test_client_op_id_is_acknowledged_to_its_sender(
    http_client: httpx.AsyncClient,
    multiple_websocket_clients: list[WebSocketTestClient],
    contract_validator: ContractValidator,
) -> None:
    sender, bystander = multiple_websocket_clients
    op_id = f"op-{uuid.uuid4().hex}"
    response = await http_client.post(
        "/api/player/volume", json={"volume": 55, "client_op_id": op_id}, headers={"X-Socket-ID": sender.sid or ""}
    )
    assert response.status_code == 200
    ack = await sender.wait_for_event("ack:op", predicate=lambda e: e.data["client_op_id"] == op_id)
    contract_validator.validate_client_op_id_correlation(op_id, response, ack)
    state = await bystander.wait_for_event("state:volume_changed")
    assert state.server_seq == ack.data["server_seq"]
    assert next(e.index for e in sender.get_events("state:volume_changed")) < ack.index, "ack:op before the broadcast"
    with pytest.raises(EventTimeout):
        await bystander.wait_for_event("ack:op", timeout=0.3)


async def test_failed_operation_sends_err_op(
    http_client: httpx.AsyncClient, websocket_client: WebSocketTestClient, library: list[LibraryPlaylist]
) -> None:
    await http_client.post(f"/api/playlists/{library[0].id}/start")
    op_id = f"op-{uuid.uuid4().hex}"
    response = await http_client.post(
        "/api/player/seek",
        json={"position_ms": 86_000_000, "client_op_id": op_id},
        headers={"X-Socket-ID": websocket_client.sid or ""},
    )
    assert response.status_code == 400
    error = await websocket_client.wait_for_event("err:op", predicate=lambda e: e.data["client_op_id"] == op_id)
    assert error.data["success"] is False
    assert error.data["message"] == response.json()["message"]


async def test_ping_and_current_state(websocket_client: WebSocketTestClient) -> None:
    await websocket_client.emit("client_ping", {"timestamp": 1234.5})
    pong = await websocket_client.wait_for_event("client_pong")
    assert pong.data["timestamp"] == 1234.5
    await websocket_client.emit("client:request_current_state", {"requested_states": ["player", "playlists"]})
    await websocket_client.wait_for_event("state:player")
    await websocket_client.wait_for_event("state:playlists")


async def test_join_unknown_playlist_is_refused(websocket_client: WebSocketTestClient) -> None:
    with pytest.raises(AssertionError, match="refused"):
        await websocket_client.join_room("playlist", playlist_id="no-such-playlist")
