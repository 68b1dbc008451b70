"""The Pi's microphone (issue 5): the rig speaks a command into it; the firmware's detector cuts
the segment, pocketsphinx recognises it, the transcription arrives on ``/ws/audio`` (a session
with ``source: "mic"``), and the command acts, so its broadcast follows. Noise and speech that
is no command must trigger nothing.

The spoken clips are espeak-ng's, with noise 20 dB below them (``fixtures/audio/generate.py``)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from device_drivers.audio import AudioPort, analysis
from device_drivers.audio.wavfile import from_pcm16, write_wav
from rig.audio_clips import VOICE_SETTLE_S, clips, command_clip
from rig.audio_socket import AudioSocket, Received
from rig.observer import CapturedEvent, WebSocketTestClient
from rig.timeline import Timeline

from .conftest import LibraryPlaylist

pytestmark = pytest.mark.needs("audio_in")

SPOKEN_LIMIT_MS = 1000  # end of the words → broadcast: the detector's 400 ms hangover, then decoding
REPLY_TIMEOUT_S = 6.0


@dataclass(frozen=True)
class Case:
    """How to set the player up so the command shows, and the broadcast that shows it."""

    start_track: int | None  # play this track of Long Tones first (None: leave the player stopped)
    paused: bool
    event: str
    shows: Callable[[CapturedEvent, LibraryPlaylist], bool]


async def say(
    audio: AudioPort, audio_socket: AudioSocket, timeline: Timeline, samples: analysis.Signal, rate: int, command: str
) -> tuple[Any, Received, Received]:
    """Say the clip; the firmware's segment of it and its reply. When the segment has dropouts
    (samples lost between the rig and the firmware on a starved machine) and the firmware acted
    on nothing, the stimulus was damaged in transit, which says nothing of the firmware: the
    clip is said once more, after the firmware's detector has let go of the first, and the
    timeline notes it. A damaged stimulus the firmware did act on is not repeated."""
    said, segment, reply = await _say_once(audio, audio_socket, samples, rate, command)
    lost = analysis.dropouts(*segment_audio(segment.message))
    if lost and reply.message["command"] is None:
        timeline.record("note", "rig", f"said {command!r} again: its segment lost samples", gaps=len(lost))
        await asyncio.sleep(VOICE_SETTLE_S)
        audio_socket.skip_unread()
        said, segment, reply = await _say_once(audio, audio_socket, samples, rate, command)
    return said, segment, reply


async def _say_once(
    audio: AudioPort, audio_socket: AudioSocket, samples: analysis.Signal, rate: int, command: str
) -> tuple[Any, Received, Received]:
    said = await asyncio.to_thread(audio.play, samples, rate, command)
    segment = await audio_socket.expect("mic_segment", REPLY_TIMEOUT_S)
    return said, segment, await audio_socket.expect("chatbot_response", REPLY_TIMEOUT_S)


def segment_audio(segment: dict[str, Any]) -> tuple[analysis.Signal, int]:
    """A ``mic_segment`` message's audio: what the firmware decoded."""
    return from_pcm16(base64.b64decode(segment["data"])), int(segment["sample_rate"])


def misheard(command: str, reply: dict[str, Any], segment: dict[str, Any], audio: AudioPort) -> str:
    """What the firmware decoded when it did not hear ``command``: its segment is saved beside
    the test's recordings, and stretches of digital silence inside it are listed. The clips
    carry noise throughout, so silence inside the clip means the audio path lost samples (a
    starved sound server or client) or the segment began with another sound and the detector's
    hangover cut it at the clip's start: a bench error, not the firmware's."""
    samples, rate = segment_audio(segment)
    saved = "not saved"
    if audio.artifacts is not None:
        name = f"firmware-segment-{command.replace(' ', '-')}.wav"
        saved = str(write_wav(audio.artifacts / "audio" / name, samples, rate))
    gaps = ", ".join(f"{length * 1000:.0f} ms at {start:.2f} s" for start, length in analysis.dropouts(samples, rate))
    if gaps:  # the firmware was not given the words: the bench's fault, counted as such
        return (
            f"bench error: the audio path lost samples of {command!r} ({gaps} of digital silence in the "
            f"{len(samples) / rate:.2f} s segment the firmware decoded, {saved}); it heard {reply}"
        )
    return f"said {command!r}, the firmware heard {reply}; its whole {len(samples) / rate:.2f} s segment: {saved}"


CASES = {
    "play": Case(1, True, "state:player", lambda e, p: e.payload["is_playing"] is True),
    "pause": Case(1, False, "state:player", lambda e, p: e.payload["is_playing"] is False),
    "stop": Case(1, False, "state:player", lambda e, p: not e.payload["is_playing"] and e.payload["position_ms"] == 0),
    "next track": Case(1, False, "state:player", lambda e, p: e.payload["active_track_id"] == p.tracks[1]["id"]),
    "previous track": Case(2, False, "state:player", lambda e, p: e.payload["active_track_id"] == p.tracks[0]["id"]),
    "volume up": Case(1, False, "state:volume_changed", lambda e, p: e.payload["volume"] == 60),
    "volume down": Case(1, False, "state:volume_changed", lambda e, p: e.payload["volume"] == 40),
}


def long_tones(library: list[LibraryPlaylist]) -> LibraryPlaylist:
    found = [p for p in library if p.title == "Long Tones"]
    if not found:
        pytest.fail("the fixture playlist 'Long Tones' is not in the DUT's library", pytrace=False)
    return found[0]


async def prepare(http: httpx.AsyncClient, client: WebSocketTestClient, playlist: LibraryPlaylist, case: Case) -> None:
    assert (await http.post("/api/player/volume", json={"volume": 50})).status_code == 200
    if case.start_track is None:
        return
    response = await http.post(f"/api/playlists/{playlist.id}/start", json={"track_number": case.start_track})
    assert response.status_code == 200, response.text
    await client.wait_for_event("state:player", predicate=lambda e: e.payload.get("is_playing") is True)
    if case.paused:
        assert (await http.post("/api/player/pause", json={})).status_code == 200
        await client.wait_for_event("state:player", predicate=lambda e: e.payload["is_playing"] is False)


@pytest.mark.parametrize("command", list(CASES))
async def test_spoken_command_acts(
    command: str,
    audio: AudioPort,
    audio_socket: AudioSocket,
    http_client: httpx.AsyncClient,
    websocket_client: WebSocketTestClient,
    timeline: Timeline,
    library,
) -> None:
    case, playlist = CASES[command], long_tones(library)
    await prepare(http_client, websocket_client, playlist, case)
    await audio_socket.session(f"rig-voice-{command.replace(' ', '-')}", source="mic")
    samples, rate = command_clip(command).load()
    said, segment, reply = await say(audio, audio_socket, timeline, samples, rate, command)
    assert reply.message["transcription"] == command, misheard(command, reply.message, segment.message, audio)
    assert reply.message["backend_used"] == "pocketsphinx"
    assert reply.message["error"] is None, reply.message
    shown = await websocket_client.wait_for_event(
        case.event, predicate=lambda e: case.shows(e, playlist), timeout=REPLY_TIMEOUT_S
    )
    speech_end_ns = said.mono_ns + int(analysis.speech_end_s(samples, rate) * 1e9)
    timeline.measure("speech_end_to_broadcast", (shown.mono_ns - speech_end_ns) / 1e6, "ms", limit=SPOKEN_LIMIT_MS)
    assert segment.message["sample_rate"] == 16000
    assert segment.message["duration_ms"] > 300, segment.message


@pytest.mark.parametrize("clip_name", ["noise-white", "speech-what-is-the", "speech-hello-there", "speech-turn-on-the"])
async def test_noise_and_other_speech_trigger_nothing(
    clip_name: str,
    audio: AudioPort,
    audio_socket: AudioSocket,
    http_client: httpx.AsyncClient,
    websocket_client: WebSocketTestClient,
    library,
) -> None:
    await prepare(http_client, websocket_client, long_tones(library), CASES["pause"])
    await audio_socket.session(f"rig-reject-{clip_name}", source="mic")
    clip = clips()[clip_name]
    samples, rate = clip.load()
    said = await asyncio.to_thread(audio.play, samples, rate, clip_name)
    if clip.kind == "speech":  # speech makes a segment, which must be rejected
        reply = await audio_socket.expect("chatbot_response", REPLY_TIMEOUT_S)
        assert reply.message["command"] is None, reply.message
        assert reply.message["transcription"] == "", reply.message
    else:  # noise must not even make a segment
        await asyncio.sleep(1.5)
        segments = [r.message for r in audio_socket.received if r.type == "mic_segment"]
        assert not segments, f"white noise made {len(segments)} voiced segment(s)"
    await asyncio.sleep(0.3)
    acted = [
        f"{e.event_type} {e.payload}"
        for e in websocket_client.captured_events
        if e.mono_ns >= said.mono_ns and e.event_type in ("state:player", "state:volume_changed")
    ]
    assert not acted, f"{clip_name} triggered: {acted}"
