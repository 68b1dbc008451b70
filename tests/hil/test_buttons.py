"""Buttons and the volume encoder (issue 4): the rig drives the DUT's pins through the bench's
wiring map, and each action must broadcast what the contract says. On a virtual Pi the pins are
the firmware's own gpiozero devices on the rig's mock pin factory; the firmware code is unchanged."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

from device_drivers.gpio import Gpio
from rig.observer import CapturedEvent, WebSocketTestClient
from rig.timeline import Timeline

from .conftest import LibraryPlaylist

PRESS_LIMIT_MS = 300  # "press next → state:player within 300 ms" (DESIGN.md), recorded, not asserted
DEBOUNCE_S = 0.3  # the music box hardware's
VOLUME_STEP = 5
pytestmark = pytest.mark.needs("gpio")


@pytest.fixture(autouse=True)
async def debounce_clear() -> None:
    """The previous test's last press may still be inside the firmware's debounce window."""
    await asyncio.sleep(DEBOUNCE_S + 0.05)


def three_tracks(library: list[LibraryPlaylist]) -> LibraryPlaylist:
    for playlist in library:
        if len(playlist.tracks) >= 3:
            return playlist
    pytest.fail("the fixture library has no playlist with three tracks", pytrace=False)


async def start(http: httpx.AsyncClient, client: WebSocketTestClient, playlist: LibraryPlaylist) -> CapturedEvent:
    response = await http.post(f"/api/playlists/{playlist.id}/start", json={"track_number": 1})
    assert response.status_code == 200, response.text
    return await client.wait_for_event("state:player", predicate=lambda e: e.payload.get("is_playing") is True)


async def press_and_see(
    gpio: Gpio,
    client: WebSocketTestClient,
    timeline: Timeline,
    button: str,
    predicate: Callable[[CapturedEvent], bool],
    measurement: str = "press_to_state_player",
) -> CapturedEvent:
    pressed = await asyncio.to_thread(gpio.press, button, 0.05)
    event = await client.wait_for_event("state:player", predicate=predicate)
    timeline.measure(measurement, Timeline.latency_ms(pressed, event), "ms", limit=PRESS_LIMIT_MS)
    return event


def on_track(playlist: LibraryPlaylist, index: int) -> Callable[[CapturedEvent], bool]:
    return lambda e: e.payload.get("active_track_id") == playlist.tracks[index]["id"]


async def test_next_and_previous_buttons(
    gpio: Gpio, http_client: httpx.AsyncClient, websocket_client: WebSocketTestClient, timeline: Timeline, library
) -> None:
    playlist = three_tracks(library)
    await start(http_client, websocket_client, playlist)
    await press_and_see(gpio, websocket_client, timeline, "next", on_track(playlist, 1))
    await asyncio.sleep(DEBOUNCE_S)
    await press_and_see(gpio, websocket_client, timeline, "previous", on_track(playlist, 0))


async def test_play_pause_button_toggles(
    gpio: Gpio, http_client: httpx.AsyncClient, websocket_client: WebSocketTestClient, timeline: Timeline, library
) -> None:
    """Play/pause acts on release (a long press means stop), so its latency includes the 50 ms press."""
    await start(http_client, websocket_client, three_tracks(library))
    measurement = "play_pause_press_to_state_player"
    paused = await press_and_see(
        gpio, websocket_client, timeline, "play_pause", lambda e: not e.payload["is_playing"], measurement
    )
    assert paused.payload["active_track_id"] is not None, "a pause keeps the track"
    await asyncio.sleep(DEBOUNCE_S)
    await press_and_see(gpio, websocket_client, timeline, "play_pause", lambda e: e.payload["is_playing"], measurement)


async def test_holding_play_pause_stops(
    gpio: Gpio, http_client: httpx.AsyncClient, websocket_client: WebSocketTestClient, timeline: Timeline, library
) -> None:
    await start(http_client, websocket_client, three_tracks(library))
    held = asyncio.create_task(asyncio.to_thread(gpio.hold, "play_pause", 1.4))
    stopped = await websocket_client.wait_for_event(
        "state:player", timeout=3.0, predicate=lambda e: not e.payload["is_playing"]
    )
    await held
    assert stopped.payload["position_ms"] == 0, "a long press stops: the position goes back to the start"
    await asyncio.sleep(0.3)
    later = [
        e for e in websocket_client.captured_events if e.event_type == "state:player" and e.mono_ns > stopped.mono_ns
    ]
    assert not any(e.payload["is_playing"] for e in later), "the release after a hold is not also a toggle"


async def test_two_presses_within_the_debounce_count_once(
    gpio: Gpio, http_client: httpx.AsyncClient, websocket_client: WebSocketTestClient, timeline: Timeline, library
) -> None:
    playlist = three_tracks(library)
    await start(http_client, websocket_client, playlist)
    await asyncio.sleep(DEBOUNCE_S)
    await asyncio.to_thread(gpio.press, "next", 0.03)
    await asyncio.sleep(0.1)  # the second press starts well inside 300 ms of the first
    await asyncio.to_thread(gpio.press, "next", 0.03)
    await websocket_client.wait_for_event("state:player", predicate=on_track(playlist, 1))
    await asyncio.sleep(DEBOUNCE_S + 0.2)
    status = (await http_client.get("/api/player/status")).json()["data"]
    assert status["active_track_id"] == playlist.tracks[1]["id"], "the bounce did not skip a second track"


@pytest.mark.parametrize("steps", [3, -2])
async def test_encoder_changes_volume_by_the_step(
    gpio: Gpio, http_client: httpx.AsyncClient, websocket_client: WebSocketTestClient, timeline: Timeline, steps: int
) -> None:
    response = await http_client.post("/api/player/volume", json={"volume": 50})
    assert response.status_code == 200, response.text
    await websocket_client.wait_for_event("state:volume_changed", predicate=lambda e: e.payload["volume"] == 50)
    expected = [50 + VOLUME_STEP * n * (1 if steps > 0 else -1) for n in range(1, abs(steps) + 1)]
    turned = await asyncio.to_thread(gpio.turn, "volume", steps, 20.0)
    seen = [
        (
            await websocket_client.wait_for_event(
                "state:volume_changed", predicate=lambda e, v=v: e.payload["volume"] == v
            )
        )
        for v in expected
    ]
    assert [e.payload["volume"] for e in seen] == expected, "one broadcast per detent, in order"
    timeline.measure("turn_to_first_volume_changed", Timeline.latency_ms(turned, seen[0]), "ms", limit=PRESS_LIMIT_MS)
    status = (await http_client.get("/api/player/status")).json()["data"]
    assert status["volume"] == expected[-1]


async def test_press_latency_over_repeated_presses(
    gpio: Gpio, http_client: httpx.AsyncClient, websocket_client: WebSocketTestClient, timeline: Timeline, library
) -> None:
    """press→state:player as measurements; the summary and the JUnit report show their p50 and p99
    (the limit is recorded, not asserted)."""
    playlist = three_tracks(library)
    await start(http_client, websocket_client, playlist)
    for round_ in range(6):
        await asyncio.sleep(DEBOUNCE_S + 0.05)
        button, index = ("next", 1) if round_ % 2 == 0 else ("previous", 0)
        await press_and_see(gpio, websocket_client, timeline, button, on_track(playlist, index))
    assert len([m for m in timeline.measurements if m.name == "press_to_state_player"]) == 6
