"""Playlist CRUD, pagination, track reordering, moving and deleting, and library sync."""

from __future__ import annotations

import math
import uuid

import httpx
import pytest

from rig.dut import Dut
from rig.observer import WebSocketTestClient

from .conftest import LibraryPlaylist


def unique(title: str) -> str:
    return f"{title} {uuid.uuid4().hex[:6]}"


async def test_create_broadcasts_created_then_collection(
    http_client: httpx.AsyncClient, websocket_client: WebSocketTestClient
) -> None:
    await websocket_client.join_room("playlists")
    title = unique("Road trip")
    response = await http_client.post("/api/playlists", json={"title": title, "description": "for the car"})
    assert response.status_code == 201
    created = response.json()["data"]
    try:
        event = await websocket_client.wait_for_event(
            "state:playlist_created", predicate=lambda e: e.payload["playlist"]["id"] == created["id"]
        )
        assert event.payload["playlist"]["title"] == title
        assert event.payload["playlist"]["tracks"] == []
        collection = await websocket_client.wait_for_event(
            "state:playlists", predicate=lambda e: any(p["id"] == created["id"] for p in e.payload["playlists"])
        )
        assert collection.server_seq > event.server_seq
    finally:
        await http_client.delete(f"/api/playlists/{created['id']}")


async def test_get_update_and_delete(
    http_client: httpx.AsyncClient, websocket_client: WebSocketTestClient, playlist_factory
) -> None:
    playlist = playlist_factory(unique("Lullabies"))
    await websocket_client.join_room("playlists")
    await websocket_client.join_room("playlist", playlist_id=playlist["id"])

    fetched = (await http_client.get(f"/api/playlists/{playlist['id']}")).json()["data"]
    assert fetched["title"] == playlist["title"]
    assert fetched["tracks"] == []
    assert fetched["total_duration_ms"] == 0

    new_title = unique("Bedtime")
    response = await http_client.put(f"/api/playlists/{playlist['id']}", json={"title": new_title})
    assert response.status_code == 200
    updated = await websocket_client.wait_for_event("state:playlist_updated")
    assert updated.payload["playlist"] == {
        "id": playlist["id"],
        "title": new_title,
        "description": playlist["description"],
    }
    detail = await websocket_client.wait_for_event(
        "state:playlist", predicate=lambda e: e.payload["id"] == playlist["id"]
    )
    assert detail.payload["title"] == new_title
    assert detail.data["playlist_id"] == playlist["id"]
    assert detail.data["playlist_seq"] >= 1

    response = await http_client.delete(f"/api/playlists/{playlist['id']}")
    assert response.status_code == 204
    deleted = await websocket_client.wait_for_event(
        "state:playlist_deleted", predicate=lambda e: e.payload["playlist_id"] == playlist["id"]
    )
    assert deleted.server_seq > detail.server_seq
    missing = await http_client.get(f"/api/playlists/{playlist['id']}")
    assert missing.status_code == 404
    assert missing.json()["error_type"] == "not_found"


async def test_pagination_is_consistent(http_client: httpx.AsyncClient, playlist_factory) -> None:
    for i in range(3):
        playlist_factory(unique(f"Page test {i}"))
    first = (await http_client.get("/api/playlists", params={"page": 1, "limit": 2})).json()["data"]
    total = first["total"]
    assert first["limit"] == 2
    assert first["page"] == 1
    assert len(first["playlists"]) == 2
    assert first["total_pages"] == math.ceil(total / 2)
    seen = []
    for page in range(1, first["total_pages"] + 1):
        seen += (await http_client.get("/api/playlists", params={"page": page, "limit": 2})).json()["data"]["playlists"]
    assert len(seen) == total
    assert len({p["id"] for p in seen}) == total
    beyond = (await http_client.get("/api/playlists", params={"page": first["total_pages"] + 1, "limit": 2})).json()
    assert beyond["data"]["playlists"] == []


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "fragment"),
    [
        ("POST", "/api/playlists", {"title": ""}, 400, "title must not be empty"),
        ("POST", "/api/playlists", {"title": 42}, 400, "title must be a string"),
        ("POST", "/api/playlists", None, 400, "body is required"),
        ("GET", "/api/playlists?page=0", None, 400, "page must be between"),
        ("GET", "/api/playlists?limit=abc", None, 400, "limit must be an integer"),
        ("GET", "/api/playlists/does-not-exist", None, 404, "does not exist"),
        ("PUT", "/api/playlists/does-not-exist", {"title": "x"}, 404, "does not exist"),
        ("POST", "/api/playlists/move-track", {"source_playlist_id": "nope"}, 404, "does not exist"),
    ],
)
async def test_bad_playlist_requests_get_clear_4xx(
    http_client: httpx.AsyncClient, method: str, path: str, body: dict | None, status: int, fragment: str
) -> None:
    response = await http_client.request(method, path, json=body)
    assert response.status_code == status, response.text
    error = response.json()
    assert error["status"] == "error", error
    assert fragment in error["message"], error


async def test_reorder_broadcasts_the_new_order(
    http_client: httpx.AsyncClient, websocket_client: WebSocketTestClient, library: list[LibraryPlaylist]
) -> None:
    playlist = library[0]
    await websocket_client.join_room("playlist", playlist_id=playlist.id)
    reversed_ids = playlist.track_ids()[::-1]
    try:
        response = await http_client.post(f"/api/playlists/{playlist.id}/reorder", json={"track_ids": reversed_ids})
        assert response.status_code == 200, response.text
        event = await websocket_client.wait_for_event("state:playlist")
        assert [t["id"] for t in event.payload["tracks"]] == reversed_ids
        assert [t["number"] for t in event.payload["tracks"]] == list(range(1, len(reversed_ids) + 1))
        assert event.data["playlist_id"] == playlist.id
    finally:
        restore = await http_client.post(
            f"/api/playlists/{playlist.id}/reorder", json={"track_ids": playlist.track_ids()}
        )
        assert restore.status_code == 200


async def test_reorder_with_an_incomplete_list_is_rejected(
    http_client: httpx.AsyncClient, library: list[LibraryPlaylist]
) -> None:
    playlist = library[0]
    response = await http_client.post(
        f"/api/playlists/{playlist.id}/reorder", json={"track_ids": playlist.track_ids()[1:]}
    )
    assert response.status_code == 400
    assert "missing" in response.json()["message"]
    after = (await http_client.get(f"/api/playlists/{playlist.id}")).json()["data"]
    assert [t["id"] for t in after["tracks"]] == playlist.track_ids()


@pytest.mark.needs("fixture_library")
async def test_move_track_between_playlists(
    http_client: httpx.AsyncClient,
    websocket_client: WebSocketTestClient,
    library: list[LibraryPlaylist],
    playlist_factory,
    restore_library: None,
) -> None:
    source = library[0]
    target = playlist_factory(unique("Moved here"))
    await websocket_client.join_room("playlist", playlist_id=source.id)
    await websocket_client.join_room("playlist", playlist_id=target["id"])
    moved = source.tracks[0]
    response = await http_client.post(
        "/api/playlists/move-track",
        json={"source_playlist_id": source.id, "target_playlist_id": target["id"], "track_id": moved["id"]},
    )
    assert response.status_code == 200, response.text
    source_event = await websocket_client.wait_for_event(
        "state:playlist", predicate=lambda e: e.payload["id"] == source.id
    )
    target_event = await websocket_client.wait_for_event(
        "state:playlist", predicate=lambda e: e.payload["id"] == target["id"]
    )
    assert moved["id"] not in [t["id"] for t in source_event.payload["tracks"]]
    assert [t["id"] for t in target_event.payload["tracks"]] == [moved["id"]]
    assert target_event.payload["total_duration_ms"] == moved["duration_ms"]
    back = await http_client.post(
        "/api/playlists/move-track",
        json={
            "source_playlist_id": target["id"],
            "target_playlist_id": source.id,
            "track_id": moved["id"],
            "target_position": 1,
        },
    )
    assert back.status_code == 200
    restored = await websocket_client.wait_for_event("state:playlist", predicate=lambda e: e.payload["id"] == source.id)
    assert [t["id"] for t in restored.payload["tracks"]] == source.track_ids()


@pytest.mark.needs("fixture_library")
async def test_delete_track_then_sync_restores_it(
    http_client: httpx.AsyncClient,
    websocket_client: WebSocketTestClient,
    library: list[LibraryPlaylist],
    dut: Dut,
    restore_library: None,
) -> None:
    playlist = library[0]
    await websocket_client.join_room("playlists")
    await websocket_client.join_room("playlist", playlist_id=playlist.id)
    doomed = playlist.tracks[-1]
    response = await http_client.request(
        "DELETE", f"/api/playlists/{playlist.id}/tracks", json={"track_ids": [doomed["id"]]}
    )
    assert response.status_code == 200, response.text
    deleted = await websocket_client.wait_for_event("state:track_deleted")
    assert deleted.payload == {"playlist_id": playlist.id, "track_numbers": [doomed["number"]]}
    shrunk = await websocket_client.wait_for_event("state:playlist")
    assert doomed["id"] not in [t["id"] for t in shrunk.payload["tracks"]]
    counts = await websocket_client.wait_for_event(
        "state:playlists", predicate=lambda e: any(p["id"] == playlist.id for p in e.payload["playlists"])
    )
    assert (
        next(p for p in counts.payload["playlists"] if p["id"] == playlist.id)["track_count"]
        == len(playlist.tracks) - 1
    )

    dut.reseed_library()  # writes the file back and calls POST /api/playlists/sync
    grown = await websocket_client.wait_for_event("state:playlist")
    assert [t["title"] for t in grown.payload["tracks"]] == [t["title"] for t in playlist.tracks]


async def test_sync_endpoint_returns_the_library(
    http_client: httpx.AsyncClient, library: list[LibraryPlaylist]
) -> None:
    response = await http_client.post("/api/playlists/sync", json={})
    assert response.status_code == 200
    data = response.json()["data"]
    by_id = {p["id"]: p for p in data["playlists"]}
    for playlist in library:
        assert [t["id"] for t in by_id[playlist.id]["tracks"]] == playlist.track_ids()
    assert data["server_seq"] == response.json()["server_seq"]
