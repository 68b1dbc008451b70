"""The /ws/audio client's bookkeeping against a local WebSocket server on loopback: expect()
matches unread messages only, skip_unread() keeps a repeated stimulus from being matched against
answers to the first, and a timeout names what did arrive."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.server import ServerConnection, serve

from rig.audio_socket import PATH, AudioSocket, AudioSocketTimeout
from rig.timeline import Timeline


class Firmware:
    """A server that answers every text frame with the messages queued for it."""

    def __init__(self) -> None:
        self.replies: asyncio.Queue[list[dict[str, object]]] = asyncio.Queue()

    async def handle(self, connection: ServerConnection) -> None:
        assert connection.request is not None
        assert connection.request.path == PATH
        async for _ in connection:
            for message in await self.replies.get():
                await connection.send(json.dumps(message))


async def received(socket: AudioSocket, count: int, timeout: float = 5.0) -> None:
    async def arrived() -> None:
        while len(socket.received) < count:  # noqa: ASYNC110 - the socket offers no arrival event
            await asyncio.sleep(0.01)

    try:
        await asyncio.wait_for(arrived(), timeout)
    except TimeoutError:
        pytest.fail(f"{len(socket.received)} of {count} messages within {timeout} s: {socket.describe_unread()}")


@pytest.fixture
async def firmware_and_socket() -> AsyncIterator[tuple[Firmware, AudioSocket]]:
    firmware = Firmware()
    async with serve(firmware.handle, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        socket = AudioSocket(f"http://127.0.0.1:{port}", Timeline("unit"), timeout=0.5)
        await socket.connect()
        try:
            yield firmware, socket
        finally:
            await socket.close()


async def test_skip_unread_keeps_a_repeat_from_matching_the_first_answers(
    firmware_and_socket: tuple[Firmware, AudioSocket],
) -> None:
    firmware, socket = firmware_and_socket
    first = [{"type": "chatbot_response", "command": None}, {"type": "segment_processed", "segment": 1}]
    await firmware.replies.put(first)
    await socket.send({"type": "segment_end"})
    assert (await socket.expect("chatbot_response")).message["command"] is None
    await received(socket, 2)  # the first answer's second message, unread
    assert socket.skip_unread() == 1
    assert socket.skip_unread() == 0

    await firmware.replies.put([{"type": "segment_processed", "segment": 2}])
    await socket.send({"type": "segment_end"})
    assert (await socket.expect("segment_processed")).message["segment"] == 2
    assert [r.message.get("segment") for r in socket.received if r.type == "segment_processed"] == [1, 2]


async def test_a_timeout_names_what_arrived_instead(firmware_and_socket: tuple[Firmware, AudioSocket]) -> None:
    firmware, socket = firmware_and_socket
    await firmware.replies.put([{"type": "error", "message": "bad chunk"}])
    await socket.send({"type": "audio_chunk", "data": "!"})
    with pytest.raises(AudioSocketTimeout, match=r"no 'chunk_received' .* arrived instead: .*bad chunk"):
        await socket.expect("chunk_received", timeout=0.3)
    socket.skip_unread()
    with pytest.raises(AudioSocketTimeout, match="nothing arrived since the last expected message"):
        await socket.expect("chunk_received", timeout=0.1)
