"""Chunked uploads (contract v3.1.0): progress to 100, the track in the playlist, a 50 MB file,
parallel uploads, a client that vanishes, and each bad input refused with no track left behind."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from rig.dut import Dut
from rig.library_snapshot import music_files
from rig.observer import WebSocketTestClient
from rig.timeline import Timeline
from rig.uploads import UploadClient, UploadRejected, UploadSession, chunks_of

from .conftest import tone_bytes

SMALL_CHUNK = 16 * 1024  # the firmware's smallest chunk, so a short tone still takes several


def for_session(session_id: str) -> Callable[[Any], bool]:
    return lambda e: e.payload.get("session_id") == session_id


async def playlist_with_observer(playlist_factory: Any, observer: WebSocketTestClient, title: str) -> str:
    """A new playlist whose room the observer joined: where upload events go."""
    playlist = playlist_factory(title)
    await observer.join_room("playlist", playlist["id"])
    return playlist["id"]


async def tracks_of(http: httpx.AsyncClient, playlist_id: str) -> list[dict[str, Any]]:
    response = await http.get(f"/api/playlists/{playlist_id}")
    response.raise_for_status()
    return response.json()["data"]["tracks"]


def progress_of(observer: WebSocketTestClient, session_id: str) -> list[float]:
    return [
        e.payload["progress"] for e in observer.get_events("upload:progress") if e.payload["session_id"] == session_id
    ]


def assert_stored(dut: Dut, track: dict[str, Any], data: bytes) -> None:
    """The file on the Pi's disk is the uploaded bytes, under a name that is not a path."""
    assert not set("/\\") & set(track["filename"])
    files = music_files(dut)
    if files is None:
        return  # --attach: the rig cannot see the disk; the API's view was checked
    stored = [name for name in files if name.endswith("/" + track["filename"])]
    assert len(stored) == 1, f"{track['filename']} is not in one playlist folder: {sorted(files)[:10]}"
    assert files[stored[0]] == hashlib.sha256(data).hexdigest()


async def test_progress_is_monotonic_to_100_and_the_track_joins_the_playlist(
    dut: Dut, http_client: httpx.AsyncClient, websocket_client: WebSocketTestClient, playlist_factory: Any
) -> None:
    playlist_id = await playlist_with_observer(playlist_factory, websocket_client, "Uploads")
    data = tone_bytes(2.0, 523.25)
    client = UploadClient(http_client, playlist_id)

    track = await client.upload("tone.wav", data, chunk_size=SMALL_CHUNK, title="Uploaded C5")

    complete = await websocket_client.wait_for_event("upload:complete")
    session_id = complete.payload["session_id"]
    progress = progress_of(websocket_client, session_id)
    assert len(progress) == len(chunks_of(data, SMALL_CHUNK))
    assert progress == sorted(progress), f"progress went backwards: {progress}"
    assert progress[-1] == 100
    assert complete.payload["track"]["id"] == track["id"]
    assert track["title"] == "Uploaded C5"
    assert abs(track["duration_ms"] - 2000) <= 20
    snapshot = await websocket_client.wait_for_event(
        "state:playlist", predicate=lambda e: track["id"] in [t["id"] for t in e.payload["tracks"]]
    )
    assert snapshot.payload["tracks"][-1]["title"] == "Uploaded C5"
    assert [t["id"] for t in await tracks_of(http_client, playlist_id)] == [track["id"]]
    status = await client.status(UploadSession(playlist_id, session_id, len(data), SMALL_CHUNK, 0, None))
    assert status["status"] == "completed"
    assert_stored(dut, track, data)


async def test_chunks_out_of_order_and_repeated_make_the_same_file(
    dut: Dut, http_client: httpx.AsyncClient, websocket_client: WebSocketTestClient, playlist_factory: Any
) -> None:
    playlist_id = await playlist_with_observer(playlist_factory, websocket_client, "Shuffled chunks")
    data = tone_bytes(3.0, 659.25)  # 96 kB: six chunks
    order = [4, 2, 2, 0, 5, 1, 3, 0, 4]
    assert sorted(set(order)) == list(range(len(chunks_of(data, SMALL_CHUNK))))
    repeats: list[bool] = []

    track = await UploadClient(http_client, playlist_id).upload(
        "shuffled.wav", data, chunk_size=SMALL_CHUNK, order=order, on_chunk=lambda i, r: repeats.append(r["repeated"])
    )

    assert repeats.count(True) == len(order) - len(set(order)), "a repeated chunk is acknowledged as a repeat"
    complete = await websocket_client.wait_for_event("upload:complete")
    progress = progress_of(websocket_client, complete.payload["session_id"])
    assert len(progress) == len(set(order)), "a repeated chunk adds no progress"
    assert progress == sorted(progress)
    assert progress[-1] == 100
    assert track["file_size"] == len(data)
    assert_stored(dut, track, data)


async def test_a_50_mb_upload_streams_with_progress(
    dut: Dut,
    http_client: httpx.AsyncClient,
    websocket_client: WebSocketTestClient,
    playlist_factory: Any,
    timeline: Timeline,
) -> None:
    playlist_id = await playlist_with_observer(playlist_factory, websocket_client, "Big upload")
    data = tone_bytes(50e6 / (44100 * 4), 440.0, rate=44100, channels=2)  # 16-bit stereo: 50 MB
    assert len(data) >= 50_000_000
    client = UploadClient(http_client, playlist_id)
    seen_at: list[float] = []

    started = time.monotonic()
    track = await client.upload("long.wav", data, on_chunk=lambda i, r: seen_at.append(time.monotonic()))
    took = time.monotonic() - started

    complete = await websocket_client.wait_for_event("upload:complete", timeout=30)
    progress = progress_of(websocket_client, complete.payload["session_id"])
    assert len(progress) == len(chunks_of(data, 1024 * 1024)) == 48
    assert progress == sorted(progress)
    assert progress[-1] == 100
    assert progress[len(progress) // 2] < 60, "progress arrives while the file streams, not at the end"
    assert abs(track["duration_ms"] - len(data) / (44100 * 4) * 1000) < 50
    timeline.measure("upload_throughput", len(data) / 1e6 / took, "MB/s")  # finalize's full decode included
    assert_stored(dut, track, data)


async def test_two_uploads_run_in_parallel(
    http_client: httpx.AsyncClient, websocket_client: WebSocketTestClient, playlist_factory: Any
) -> None:
    playlist_id = await playlist_with_observer(playlist_factory, websocket_client, "Parallel uploads")
    first, second = tone_bytes(30.0, 440.0, rate=44100), tone_bytes(30.0, 880.0, rate=44100)  # 2.6 MB each
    client = UploadClient(http_client, playlist_id)

    tracks = await asyncio.gather(
        client.upload("a440.wav", first, chunk_size=256 * 1024, parallel=3, title="A440"),
        client.upload("a880.wav", second, chunk_size=256 * 1024, parallel=3, title="A880"),
    )

    completes = await websocket_client.wait_for_multiple_events("upload:complete", 2)
    sessions = {e.payload["session_id"] for e in completes}
    assert len(sessions) == 2
    for session_id in sessions:
        progress = progress_of(websocket_client, session_id)
        assert progress == sorted(progress)
        assert progress[-1] == 100
    progress_events = [e.payload["session_id"] for e in websocket_client.get_events("upload:progress")]
    interleaved = sum(1 for a, b in itertools.pairwise(progress_events) if a != b)
    assert interleaved >= 2, "the two uploads' chunks were in flight together"
    titles = sorted(t["title"] for t in await tracks_of(http_client, playlist_id))
    assert titles == ["A440", "A880"]
    assert {t["id"] for t in tracks} == {t["id"] for t in await tracks_of(http_client, playlist_id)}


async def test_a_vanished_client_leaves_a_session_that_expires(
    dut: Dut, http_client: httpx.AsyncClient, websocket_client: WebSocketTestClient, playlist_factory: Any
) -> None:
    playlist_id = await playlist_with_observer(playlist_factory, websocket_client, "Vanished client")
    data = tone_bytes(2.0, 440.0)
    client = UploadClient(http_client, playlist_id)
    session = await client.create("half.wav", len(data), chunk_size=SMALL_CHUNK)
    pieces = chunks_of(data, SMALL_CHUNK)
    for index in range(len(pieces) // 2):
        await client.put_chunk(session, index, pieces[index])
    before = music_files(dut)
    assert session.timeout_s is not None

    # The client is gone: nothing more arrives, so the session must expire by itself.
    error = await websocket_client.wait_for_event(
        "upload:error", timeout=session.timeout_s + 5, predicate=for_session(session.session_id)
    )

    assert error.payload["code"] == "expired"
    assert error.payload["playlist_id"] == playlist_id
    status = await client.status(session)
    assert status["status"] == "error"
    assert status["error"].startswith("expired")
    with pytest.raises(UploadRejected) as refused:
        await client.put_chunk(session, len(pieces) // 2, pieces[len(pieces) // 2])
    assert refused.value.status == 409
    assert await tracks_of(http_client, playlist_id) == []
    assert music_files(dut) == before


# -- each bad input: its own 4xx and message, no track -----------------------------------------------
Case = Callable[[UploadClient, WebSocketTestClient], Awaitable[UploadRejected]]


async def refused(step: Awaitable[Any]) -> UploadRejected:
    with pytest.raises(UploadRejected) as caught:
        await step
    return caught.value


async def _wrong_extension(client: UploadClient, _: WebSocketTestClient) -> UploadRejected:
    return await refused(client.create("song.exe", 1000))


async def _too_big(client: UploadClient, _: WebSocketTestClient) -> UploadRejected:
    return await refused(client.create("huge.wav", 1 << 40))


async def _chunk_size_out_of_range(client: UploadClient, _: WebSocketTestClient) -> UploadRejected:
    return await refused(client.create("tiny-chunks.wav", 100_000, chunk_size=100))


async def _chunk_index_past_the_end(client: UploadClient, _: WebSocketTestClient) -> UploadRejected:
    session = await client.create("a.wav", 40_000, chunk_size=SMALL_CHUNK)
    return await refused(client.put_chunk(session, session.total_chunks, b"\0" * SMALL_CHUNK))


async def _negative_chunk_index(client: UploadClient, _: WebSocketTestClient) -> UploadRejected:
    session = await client.create("a.wav", 40_000, chunk_size=SMALL_CHUNK)
    return await refused(client.put_chunk(session, -1, b"\0" * SMALL_CHUNK))


async def _short_chunk(client: UploadClient, _: WebSocketTestClient) -> UploadRejected:
    session = await client.create("a.wav", 40_000, chunk_size=SMALL_CHUNK)
    return await refused(client.put_chunk(session, 0, b"\0" * 1000))


async def _oversized_chunk(client: UploadClient, _: WebSocketTestClient) -> UploadRejected:
    session = await client.create("a.wav", 40_000, chunk_size=SMALL_CHUNK)
    return await refused(client.put_chunk(session, 0, os.urandom(5 * 1024 * 1024)))


async def _finalize_with_missing_chunks(client: UploadClient, _: WebSocketTestClient) -> UploadRejected:
    data = tone_bytes(1.0, 440.0)
    session = await client.create("a.wav", len(data), chunk_size=SMALL_CHUNK)
    await client.put_chunk(session, 0, chunks_of(data, SMALL_CHUNK)[0])
    return await refused(client.finalize(session))


async def _finalize_in_the_wrong_playlist(client: UploadClient, _: WebSocketTestClient) -> UploadRejected:
    data = tone_bytes(0.5, 440.0)
    session = await client.create("a.wav", len(data), chunk_size=SMALL_CHUNK)
    elsewhere = UploadSession("no-such-playlist", session.session_id, len(data), SMALL_CHUNK, 1, None)
    return await refused(client.finalize(elsewhere))


async def _send_all(client: UploadClient, name: str, data: bytes, **create: Any) -> UploadSession:
    session = await client.create(name, len(data), chunk_size=SMALL_CHUNK, **create)
    for index, piece in enumerate(chunks_of(data, SMALL_CHUNK)):
        await client.put_chunk(session, index, piece)
    return session


async def _failed_with(observer: WebSocketTestClient, session: UploadSession, code: str) -> None:
    error = await observer.wait_for_event("upload:error", predicate=for_session(session.session_id))
    assert error.payload["code"] == code


async def _not_audio(client: UploadClient, observer: WebSocketTestClient) -> UploadRejected:
    session = await _send_all(client, "noise.wav", os.urandom(50_000))
    rejection = await refused(client.finalize(session))
    await _failed_with(observer, session, "not_audio")
    return rejection


async def _flac_named_wav(client: UploadClient, observer: WebSocketTestClient) -> UploadRejected:
    session = await _send_all(client, "liar.wav", tone_bytes(1.0, 440.0, suffix=".flac"))
    rejection = await refused(client.finalize(session))
    await _failed_with(observer, session, "not_audio")
    return rejection


async def _wrong_sha256(client: UploadClient, observer: WebSocketTestClient) -> UploadRejected:
    data = tone_bytes(1.0, 440.0)
    session = await _send_all(client, "a.wav", data, file_hash=hashlib.sha256(b"another file").hexdigest())
    rejection = await refused(client.finalize(session))
    await _failed_with(observer, session, "hash_mismatch")
    return rejection


BAD_INPUTS: dict[str, tuple[Case, int, str]] = {
    "extension": (_wrong_extension, 400, "extension '.exe' is not allowed"),
    "file-size": (_too_big, 413, "is over the limit"),
    "chunk-size": (_chunk_size_out_of_range, 400, "chunk_size must be between"),
    "chunk-index": (_chunk_index_past_the_end, 400, "out of bounds"),
    "negative-index": (_negative_chunk_index, 400, "non-negative integer"),
    "short-chunk": (_short_chunk, 400, "must be exactly 16384"),
    "oversized-chunk": (_oversized_chunk, 413, "the limit is 16384"),
    "missing-chunks": (_finalize_with_missing_chunks, 409, "chunks are missing"),
    "wrong-playlist": (_finalize_in_the_wrong_playlist, 404, "does not exist"),
    "not-audio": (_not_audio, 415, "does not decode"),
    "format-mismatch": (_flac_named_wav, 415, "FLAC audio, not what .wav holds"),
    "sha256": (_wrong_sha256, 400, "sha256 mismatch"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
async def test_bad_input_gets_its_error_and_no_track(
    case: str, http_client: httpx.AsyncClient, websocket_client: WebSocketTestClient, playlist_factory: Any
) -> None:
    playlist_id = await playlist_with_observer(playlist_factory, websocket_client, f"Bad upload {case}")
    attempt, status, message = BAD_INPUTS[case]

    rejection = await attempt(UploadClient(http_client, playlist_id), websocket_client)

    assert rejection.status == status, str(rejection)
    assert message in rejection.message, str(rejection)
    assert await tracks_of(http_client, playlist_id) == []
    assert websocket_client.get_events("upload:complete") == []
