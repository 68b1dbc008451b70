"""The front end's side of ``/ws/audio`` (the seed's audio-capture flow), as a test client.

It speaks exactly what the companion front end sends: ``session``, base64 PCM16 ``audio_chunk``
messages, ``segment_end``, and raw text for the bad inputs. Every message sent and received is
stamped on the test's timeline, so the handshake and each chunk ack are latencies on one
clock. A reader task keeps every message; ``expect`` returns the next unread one of a type,
and on a timeout says which messages did arrive. With a contract validator, every message the
firmware sends is checked against the contract's ``websockets`` section as it arrives.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from .contract import ContractValidator
from .observer import Finding, kind_of
from .timeline import Entry, Timeline

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000


class AudioSocketError(RuntimeError):
    """The WebSocket cannot be opened, or closed under the test."""


class AudioSocketTimeout(AssertionError):
    """The expected message did not come; the message lists what did."""


@dataclass(frozen=True)
class Received:
    message: dict[str, Any]
    entry: Entry

    @property
    def type(self) -> str:
        return str(self.message.get("type"))


PATH = "/ws/audio"


class AudioSocket:
    def __init__(
        self,
        base_url: str,
        timeline: Timeline,
        *,
        name: str = "audio",
        timeout: float = 5.0,
        validator: ContractValidator | None = None,
    ) -> None:
        self.url = base_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1).rstrip("/") + PATH
        self.timeline = timeline
        self.name = name
        self.timeout = timeout
        self.validator = validator
        self.violations: list[str] = []
        self._socket: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._received: list[Received] = []
        self._read = 0  # messages before this index were returned by expect()
        self._arrived = asyncio.Condition()
        self.closed_reason: str | None = None

    async def connect(self) -> None:
        try:
            self._socket = await asyncio.wait_for(connect(self.url, max_size=2**22), self.timeout)
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            raise AudioSocketError(f"cannot open {self.url}: {exc}") from None
        self.timeline.record("note", self.name, "connected", url=self.url)
        self._reader = asyncio.create_task(self._read_loop(), name=f"{self.name}-reader")

    async def close(self) -> None:
        if self._socket is not None:
            await self._socket.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)

    async def _read_loop(self) -> None:
        assert self._socket is not None
        try:
            async for raw in self._socket:
                try:
                    message = json.loads(raw)
                except ValueError:
                    message = {"type": "(not JSON)", "raw": str(raw)[:200]}
                if not isinstance(message, dict):
                    message = {"type": "(not an object)", "raw": message}
                summary = {k: v for k, v in message.items() if k not in ("type", "data")}
                entry = self.timeline.record("event", self.name, str(message.get("type")), message=summary)
                if self.validator is not None:
                    self.violations += self.validator.check_ws_message(PATH, "server_to_client", message)
                async with self._arrived:
                    self._received.append(Received(message, entry))
                    self._arrived.notify_all()
        except ConnectionClosed as exc:
            self.closed_reason = f"closed by the firmware ({exc})"
        except Exception as exc:  # a reader that dies must say why, not look like a quiet firmware
            log.exception("the %s reader failed", self.name)
            self.closed_reason = f"reader failed: {exc!r}"
        finally:
            self.closed_reason = self.closed_reason or "closed"
            async with self._arrived:
                self._arrived.notify_all()

    # -- sending ------------------------------------------------------------------------------
    async def send_text(self, text: str, label: str | None = None) -> Entry:
        """Send one text frame as is (the bad-input probes send garbage through this)."""
        if self._socket is None:
            raise AudioSocketError("not connected")
        entry = self.timeline.record("stimulus", self.name, label or "send", bytes=len(text))
        try:
            await self._socket.send(text)
        except ConnectionClosed as exc:
            raise AudioSocketError(f"{self.url} closed while sending: {exc}") from None
        return entry

    async def send(self, message: dict[str, Any]) -> Entry:
        return await self.send_text(json.dumps(message), str(message.get("type")))

    # -- the seed's flow ------------------------------------------------------------------------
    async def session(self, session_id: str, source: str = "client") -> tuple[Received, float]:
        """``session`` → ``session_ack``; returns the ack and the handshake in ms."""
        sent = await self.send({"type": "session", "session_id": session_id, "source": source})
        ack = await self.expect("session_ack")
        return ack, Timeline.latency_ms(sent, ack.entry)

    async def chunk(self, pcm16: bytes) -> tuple[Received, float]:
        """One ``audio_chunk`` → ``chunk_received``; returns the ack and its latency in ms."""
        sent = await self.send({"type": "audio_chunk", "data": base64.b64encode(pcm16).decode("ascii")})
        ack = await self.expect("chunk_received")
        return ack, Timeline.latency_ms(sent, ack.entry)

    async def segment_end(self, timeout: float | None = None) -> tuple[Received, Received]:
        """``segment_end`` → (the response, ``segment_processed``)."""
        await self.send({"type": "segment_end"})
        response = await self.expect("chatbot_response", timeout)
        processed = await self.expect("segment_processed", timeout)
        return response, processed

    # -- receiving ------------------------------------------------------------------------------
    async def expect(self, kind: str, timeout: float | None = None) -> Received:
        """The next unread message of type ``kind`` (messages of other types before it are
        skipped but stay listed); AudioSocketTimeout names what did arrive."""
        limit = self.timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        async with self._arrived:
            while True:
                for index in range(self._read, len(self._received)):
                    if self._received[index].type == kind:
                        self._read = index + 1
                        return self._received[index]
                left = deadline - loop.time()
                if left <= 0 or (self.closed_reason and self._reader is not None and self._reader.done()):
                    break
                try:
                    await asyncio.wait_for(self._arrived.wait(), left)
                except TimeoutError:
                    break
        raise AudioSocketTimeout(f"no {kind!r} on {self.url} within {limit:g} s; {self.describe_unread()}")

    def skip_unread(self) -> int:
        """Mark everything received so far as read (they stay listed): what a repeated stimulus
        must not be matched against. Returns how many were skipped."""
        skipped, self._read = len(self._received) - self._read, len(self._received)
        return skipped

    def describe_unread(self) -> str:
        unread = self._received[self._read :]
        state = f" (socket {self.closed_reason})" if self.closed_reason else ""
        if not unread:
            return f"nothing arrived since the last expected message{state}"
        shown = ", ".join(json.dumps({k: v for k, v in r.message.items() if k != "data"})[:160] for r in unread[-6:])
        return f"arrived instead: {shown}{state}"

    @property
    def received(self) -> list[Received]:
        return list(self._received)

    def findings(self) -> list[Finding]:
        """Every message of the firmware that broke the contract's /ws/audio section."""
        return [Finding(kind_of(v), v) for v in self.violations]
