"""``/ws/audio`` as the companion front end uses it (``../shared/seeds``, the WebSocket
integration suite's flow): session handshake, chunk acks, ``segment_end`` → transcription, several
segments in one session, and recovery from every bad input with the connection kept.

The front end records with MediaRecorder and cuts segments with its own VAD; here the "recording"
is a spoken-command fixture streamed as 100 ms PCM16 chunks. The seed's latency targets are
recorded as measurements: handshake < 100 ms, chunk ack < 50 ms (p99)."""

from __future__ import annotations

import base64
import json

import pytest

from device_drivers.audio.wavfile import to_pcm16
from rig.audio_clips import clips, command_clip
from rig.audio_socket import AudioSocket
from rig.dut import Dut
from rig.timeline import Timeline

HANDSHAKE_LIMIT_MS = 100.0
CHUNK_ACK_LIMIT_MS = 50.0
CHUNK_BYTES = 3200  # 100 ms of 16 kHz PCM16, a MediaRecorder timeslice
SEGMENT_TIMEOUT_S = 10.0


def pcm_of(clip_name: str) -> bytes:
    samples, rate = clips()[clip_name].load()
    assert rate == 16000, f"{clip_name} is {rate} Hz; /ws/audio takes 16 kHz"
    return to_pcm16(samples)


async def stream(socket: AudioSocket, pcm: bytes, timeline: Timeline) -> None:
    for offset in range(0, len(pcm), CHUNK_BYTES):
        ack, latency = await socket.chunk(pcm[offset : offset + CHUNK_BYTES])
        assert ack.message["bytes"] == len(pcm[offset : offset + CHUNK_BYTES])
        timeline.measure("chunk_ack", latency, "ms", limit=CHUNK_ACK_LIMIT_MS)


async def test_session_chunks_and_transcription(audio_socket: AudioSocket, timeline: Timeline) -> None:
    ack, handshake = await audio_socket.session("session-1234567890-abc123")
    timeline.measure("session_handshake", handshake, "ms", limit=HANDSHAKE_LIMIT_MS)
    assert ack.message["session_id"] == "session-1234567890-abc123"
    assert ack.message["sample_rate"] == 16000
    pcm = to_pcm16(command_clip("volume up").load()[0])
    await stream(audio_socket, pcm, timeline)
    response, processed = await audio_socket.segment_end(SEGMENT_TIMEOUT_S)
    assert response.message["transcription"] == "volume up", response.message
    assert response.message["backend_used"] == "pocketsphinx"
    assert set(response.message) >= {"transcription", "response", "backend_used", "error"}
    assert processed.message["segment"] == 1
    assert processed.message["duration_ms"] == pytest.approx(len(pcm) / 32, abs=1)


async def test_several_segments_in_one_session(audio_socket: AudioSocket, timeline: Timeline) -> None:
    await audio_socket.session("session-conversation")
    said = ["command-volume-down", "speech-hello-there", "command-volume-up"]
    heard = []
    for number, name in enumerate(said, start=1):
        await stream(audio_socket, pcm_of(name), timeline)
        response, processed = await audio_socket.segment_end(SEGMENT_TIMEOUT_S)
        assert processed.message["segment"] == number
        heard.append(response.message["transcription"])
    assert heard == ["volume down", "", "volume up"]


async def expect_error(socket: AudioSocket, code: str) -> None:
    error = await socket.expect("error")
    assert error.message["code"] == code, error.message
    assert error.message["error"], "an error must say what was wrong"


BAD_INPUTS = {
    "bad_base64": ('{"type": "audio_chunk", "data": "!!! not base64 !!!"}', "bad_base64"),
    "oversized_chunk": (json.dumps({"type": "audio_chunk", "data": base64.b64encode(bytes(70_000)).decode()}), None),
    "unknown_type": ('{"type": "dance"}', "unknown_type"),
    "garbage_json": ("{this is not json", "bad_json"),
    "not_an_object": ("[1, 2, 3]", "bad_message"),
}


@pytest.mark.parametrize("bad", list(BAD_INPUTS))
async def test_error_recovery(bad: str, audio_socket: AudioSocket, timeline: Timeline) -> None:
    """After each bad message: one clear error, and the same connection still works."""
    await audio_socket.session(f"session-{bad}")
    text, code = BAD_INPUTS[bad]
    await audio_socket.send_text(text, bad)
    await expect_error(audio_socket, code or "chunk_too_large")
    await stream(audio_socket, pcm_of("command-volume-up"), timeline)
    response, _ = await audio_socket.segment_end(SEGMENT_TIMEOUT_S)
    assert response.message["transcription"] == "volume up", response.message


async def test_chunk_before_session_then_recovery(audio_socket: AudioSocket, timeline: Timeline) -> None:
    await audio_socket.send({"type": "audio_chunk", "data": base64.b64encode(bytes(320)).decode()})
    await expect_error(audio_socket, "no_session")
    await audio_socket.send({"type": "segment_end"})
    await expect_error(audio_socket, "no_session")
    _, handshake = await audio_socket.session("session-late")
    timeline.measure("session_handshake", handshake, "ms", limit=HANDSHAKE_LIMIT_MS)
    await stream(audio_socket, pcm_of("command-volume-down"), timeline)
    response, _ = await audio_socket.segment_end(SEGMENT_TIMEOUT_S)
    assert response.message["transcription"] == "volume down"


async def test_empty_segment_is_an_error(audio_socket: AudioSocket) -> None:
    await audio_socket.session("session-empty")
    await audio_socket.send({"type": "segment_end"})
    await expect_error(audio_socket, "empty_segment")


async def test_handshake_latency_over_fresh_connections(dut: Dut, timeline: Timeline) -> None:
    """Ten front ends connecting one after another: the handshake figure as a distribution."""
    for index in range(10):
        client = AudioSocket(dut.url, timeline, name=f"fe{index}", timeout=dut.bench.timeouts.event_s)
        await client.connect()
        try:
            _, handshake = await client.session(f"session-fe{index}")
            timeline.measure("session_handshake", handshake, "ms", limit=HANDSHAKE_LIMIT_MS)
        finally:
            await client.close()
