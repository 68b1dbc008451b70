"""The Pi's speaker (issue 5): a broadcast that says "playing" is only half the truth, so the rig
listens to the Pi's output and checks the sound itself: the track's tone, silence on pause, the
level after a volume change, the next track's tone, and auto-advance at the end of a track.

The fixture library's tracks are pure tones of known frequency (``fixtures/audio/library.toml``),
so each check is a frequency or a level, not a guess."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from device_drivers.audio import AudioPort, Listener, Recording, analysis
from rig.fixture_audio import FixtureLibrary, FixtureTrack
from rig.observer import CapturedEvent, WebSocketTestClient
from rig.timeline import Timeline

from .conftest import LibraryPlaylist

pytestmark = pytest.mark.needs("audio_out", "fixture_library")

TONE_LIMIT_MS = 300  # state:player says playing → the tone is heard (recorded, not asserted)
FREQUENCY_TOLERANCE_HZ = 3.0
SOUND_TIMEOUT_S = 3.0


def tones(title: str) -> list[FixtureTrack]:
    return FixtureLibrary.load().playlists()[title]


def playlist(library: list[LibraryPlaylist], title: str) -> LibraryPlaylist:
    found = [p for p in library if p.title == title]
    if not found:
        pytest.fail(f"the fixture playlist {title!r} is not in the DUT's library", pytrace=False)
    return found[0]


async def start(
    http: httpx.AsyncClient, client: WebSocketTestClient, target: LibraryPlaylist, track_number: int = 1
) -> CapturedEvent:
    response = await http.post(f"/api/playlists/{target.id}/start", json={"track_number": track_number})
    assert response.status_code == 200, response.text
    return await client.wait_for_event("state:player", predicate=lambda e: e.payload.get("is_playing") is True)


async def play_and_hear(
    http: httpx.AsyncClient,
    client: WebSocketTestClient,
    listener: Listener,
    target: LibraryPlaylist,
    track: FixtureTrack,
    track_number: int = 1,
) -> tuple[CapturedEvent, int]:
    """At volume 80, start ``target`` at ``track_number`` and wait until its tone sounds:
    returns the ``state:player`` that said playing and the monotonic time of the tone's onset."""
    await set_volume(http, 80)
    since = time.monotonic_ns()
    playing = await start(http, client, target, track_number)
    return playing, await wait_tone(listener, track.frequency_hz, since)


def heard_tone(frequency: float) -> object:
    """A Listener.wait condition: the onset (s from the window's start) of ``frequency``."""
    return lambda heard: analysis.tone_onset(heard.samples, heard.sample_rate, frequency)


async def wait_tone(listener: Listener, frequency: float, since_ns: int) -> int:
    """The monotonic time the tone started, after ``since_ns``."""
    onset = await asyncio.to_thread(
        listener.wait, heard_tone(frequency), since_ns, SOUND_TIMEOUT_S, f"{frequency:g} Hz"
    )
    return since_ns + int(onset * 1e9)


async def window(listener: Listener, seconds: float) -> Recording:
    """The next ``seconds`` of what the speaker plays."""
    start = time.monotonic_ns()
    await asyncio.sleep(seconds + 0.05)
    return listener.recording(start, start + int(seconds * 1e9))


def assert_frequency(recording: Recording, expected: float) -> None:
    measured = analysis.dominant_frequency(recording.samples, recording.sample_rate)
    assert abs(measured - expected) <= FREQUENCY_TOLERANCE_HZ, f"expected {expected:g} Hz, heard {recording.describe()}"


async def set_volume(http: httpx.AsyncClient, volume: int) -> None:
    response = await http.post("/api/player/volume", json={"volume": volume})
    assert response.status_code == 200, response.text


async def test_track_tone_heard_after_playing(
    audio: AudioPort, http_client: httpx.AsyncClient, websocket_client: WebSocketTestClient, timeline: Timeline, library
) -> None:
    first = tones("Long Tones")[0]
    with audio.listening("long-tones-track-1") as listener:
        playing, onset_ns = await play_and_hear(
            http_client, websocket_client, listener, playlist(library, "Long Tones"), first
        )
        timeline.measure("state_player_to_tone", (onset_ns - playing.mono_ns) / 1e6, "ms", limit=TONE_LIMIT_MS)
        assert_frequency(await window(listener, 0.5), first.frequency_hz)


async def test_pause_is_silence_and_play_resumes(
    audio: AudioPort, http_client: httpx.AsyncClient, websocket_client: WebSocketTestClient, library
) -> None:
    first = tones("Long Tones")[0]
    with audio.listening("pause-resume") as listener:
        await play_and_hear(http_client, websocket_client, listener, playlist(library, "Long Tones"), first)
        assert (await http_client.post("/api/player/pause", json={})).status_code == 200
        await websocket_client.wait_for_event("state:player", predicate=lambda e: e.payload["is_playing"] is False)
        await asyncio.sleep(0.15)  # what the device had queued plays out
        paused = await window(listener, 0.5)
        assert analysis.is_silent(paused.samples), f"paused, but the speaker played {paused.describe()}"
        resumed_at = time.monotonic_ns()
        assert (await http_client.post("/api/player/play", json={})).status_code == 200
        await wait_tone(listener, first.frequency_hz, resumed_at)


async def test_volume_scales_the_level(
    audio: AudioPort, http_client: httpx.AsyncClient, websocket_client: WebSocketTestClient, library
) -> None:
    """Volume is a linear gain: the RMS ratio of two windows is the ratio of the volumes."""
    first = tones("Long Tones")[0]
    with audio.listening("volume-80-then-40") as listener:
        await play_and_hear(http_client, websocket_client, listener, playlist(library, "Long Tones"), first)
        loud = await window(listener, 0.4)
        await set_volume(http_client, 40)
        await websocket_client.wait_for_event("state:volume_changed", predicate=lambda e: e.payload["volume"] == 40)
        await asyncio.sleep(0.15)
        quiet = await window(listener, 0.4)
    ratio = analysis.rms(quiet.samples) / analysis.rms(loud.samples)
    assert ratio == pytest.approx(0.5, rel=0.05), f"RMS ratio {ratio:.3f} for volume 40/80 ({quiet.describe()})"


async def test_next_track_is_heard(
    audio: AudioPort, http_client: httpx.AsyncClient, websocket_client: WebSocketTestClient, library
) -> None:
    first, second = tones("Long Tones")[:2]
    target = playlist(library, "Long Tones")
    with audio.listening("next-track") as listener:
        await play_and_hear(http_client, websocket_client, listener, target, first)
        skipped_at = time.monotonic_ns()
        assert (await http_client.post("/api/player/next", json={})).status_code == 200
        await websocket_client.wait_for_event(
            "state:player", predicate=lambda e: e.payload["active_track_id"] == target.tracks[1]["id"]
        )
        await wait_tone(listener, second.frequency_hz, skipped_at)
        assert_frequency(await window(listener, 0.4), second.frequency_hz)


async def test_auto_advance_is_audible(
    audio: AudioPort, http_client: httpx.AsyncClient, websocket_client: WebSocketTestClient, library
) -> None:
    first, second = tones("Long Tones")[:2]
    target = playlist(library, "Long Tones")
    with audio.listening("auto-advance") as listener:
        await play_and_hear(http_client, websocket_client, listener, target, first)
        near_end = time.monotonic_ns()
        seek = await http_client.post("/api/player/seek", json={"position_ms": target.tracks[0]["duration_ms"] - 500})
        assert seek.status_code == 200, seek.text
        await wait_tone(listener, first.frequency_hz, near_end)
        advanced = await websocket_client.wait_for_event(
            "state:player", predicate=lambda e: e.payload["active_track_id"] == target.tracks[1]["id"], timeout=3.0
        )
        await wait_tone(listener, second.frequency_hz, advanced.mono_ns - int(0.2e9))


@pytest.mark.parametrize("number", [1, 2], ids=["flac", "ogg"])
async def test_flac_and_ogg_tracks_play(
    audio: AudioPort, http_client: httpx.AsyncClient, websocket_client: WebSocketTestClient, library, number: int
) -> None:
    track = tones("Evening Tones")[number - 1]
    with audio.listening(f"evening-{number}") as listener:
        await play_and_hear(http_client, websocket_client, listener, playlist(library, "Evening Tones"), track, number)
        assert_frequency(await window(listener, 0.4), track.frequency_hz)


@pytest.mark.needs("audio_devices")
async def test_stop_releases_the_output_device(
    audio: AudioPort, dut, http_client: httpx.AsyncClient, websocket_client: WebSocketTestClient, library
) -> None:
    """Pause keeps the device (silence); stop closes it, so another program can have it."""
    await start(http_client, websocket_client, playlist(library, "Long Tones"))
    assert dut.virtual_pi.output_streams() == 1
    assert (await http_client.post("/api/player/pause", json={})).status_code == 200
    assert dut.virtual_pi.output_streams() == 1
    assert (await http_client.post("/api/player/stop", json={})).status_code == 200
    assert dut.virtual_pi.output_streams() == 0
