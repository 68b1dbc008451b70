"""Everything the firmware says conforms to the contract: connection, health, and every event of a busy session."""

from __future__ import annotations

import uuid

import httpx

from rig.contract import ContractValidator
from rig.observer import WebSocketTestClient

from .conftest import LibraryPlaylist


async def test_connection_status_on_connect(websocket_client: WebSocketTestClient) -> None:
    status = websocket_client.get_events("connection_status")
    assert len(status) == 1
    assert status[0].data["status"] == "connected"
    assert status[0].data["sid"] == websocket_client.sid


async def test_health_reports_every_service(http_client: httpx.AsyncClient) -> None:
    body = (await http_client.get("/api/health")).json()
    assert body["status"] == "success"
    data = body["data"]
    assert data["status"] == "healthy", data
    assert set(data["services"]) >= {"api", "audio", "nfc", "gpio", "led_hat", "websocket"}
    assert all(isinstance(v, bool) for v in data["services"].values())
    assert data["server_seq"] == body["server_seq"]


async def test_every_event_of_a_busy_session_conforms(
    http_client: httpx.AsyncClient,
    websocket_client: WebSocketTestClient,
    contract_validator: ContractValidator,
    library: list[LibraryPlaylist],
) -> None:
    playlist = library[0]
    await websocket_client.join_room("playlists")
    await websocket_client.join_room("playlist", playlist_id=playlist.id)
    op = f"op-{uuid.uuid4().hex}"
    await http_client.post(f"/api/playlists/{playlist.id}/start", json={"client_op_id": op})
    await http_client.post("/api/player/volume", json={"volume": 48})
    await http_client.post("/api/player/seek", json={"position_ms": 700})
    await websocket_client.wait_for_event("state:track_position", timeout=2.0)
    created = (await http_client.post("/api/playlists", json={"title": f"Contract {uuid.uuid4().hex[:6]}"})).json()
    await http_client.put(f"/api/playlists/{created['data']['id']}", json={"description": "checked"})
    await http_client.delete(f"/api/playlists/{created['data']['id']}")
    await websocket_client.emit("client_ping", {"timestamp": 1.0})
    await websocket_client.wait_for_event("client_pong")
    await websocket_client.wait_for_event("state:playlist_deleted")

    seen = {e.event_type for e in websocket_client.get_events()}
    assert seen >= {"connection_status", "ack:join", "ack:op", "state:player", "state:track_position", "client_pong"}
    for event in websocket_client.get_events():
        contract_validator.validate_event(event.event_type, event.data)
    assert websocket_client.undeclared == {}, f"events not in the contract: {dict(websocket_client.undeclared)}"
