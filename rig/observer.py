"""The observer: a Socket.IO client with the seed suite's ``WebSocketTestClient`` API.

What it adds for HIL work on firmware that breaks its own contract:
- every event is validated against the contract as it arrives (just after a waiting test has
  had its turn, so the check is not part of the latency it measures);
- an event whose ``event_id`` was already seen is dropped and its repeat counted;
- a state event whose ``server_seq`` is not above the last one is recorded with both values;
- every event is stamped on the test's timeline;
- a wait that times out says what arrived instead;
- after the firmware restarted, ``reconnect`` connects again, rejoins its rooms and resyncs
  from the last ``server_seq`` it saw.

Each ``wait_for_event`` returns an event that no earlier wait returned, so a test can wait for
the same event type twice; ``join_room`` consumes the snapshot the join produced.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import socketio

from .contract import ContractValidator, ContractViolation
from .timeline import Timeline

log = logging.getLogger(__name__)

_ids = itertools.count()
Predicate = Callable[["CapturedEvent"], bool]


@dataclass(frozen=True)
class Finding:
    """One contract defect seen by an observer; ``kind`` groups the same defect across tests."""

    kind: str
    message: str


def kind_of(violation: str) -> str:
    # "state:player violates the contract at $.data: 'x' is required" -> "state:player violates ... at $.data"
    return violation.splitlines()[0].split(": ", 1)[0].rstrip(":")


class EventTimeout(TimeoutError):
    """A contract event that never came; the message lists what arrived instead."""


@dataclass
class CapturedEvent:
    event_type: str
    data: Any
    timestamp: float  # wall clock on the rig host, seconds
    mono_ns: int  # the timeline's monotonic clock
    index: int
    consumed: bool = field(default=False, repr=False)

    # Cached: the observer reads both several times per arrival, 500 times over in a fan-out.
    @cached_property
    def server_seq(self) -> int | None:
        return self.data.get("server_seq") if isinstance(self.data, dict) else None

    @cached_property
    def event_id(self) -> str | None:
        return self.data.get("event_id") if isinstance(self.data, dict) else None

    @property
    def payload(self) -> Any:
        """The state for enveloped events, the payload itself for the others."""
        if isinstance(self.data, dict) and "event_id" in self.data and "data" in self.data:
            return self.data["data"]
        return self.data


def websocket_local_port(client: socketio.AsyncClient, name: str) -> int:
    """The local port of a python-socketio client's WebSocket (aiohttp's transport knows it)."""
    if client.eio.ws is None:
        raise ConnectionError(f"{name}: not connected over a WebSocket")
    return int(client.eio.ws.get_extra_info("sockname")[1])


class WebSocketTestClient:
    def __init__(
        self,
        base_url: str,
        validator: ContractValidator | None = None,
        *,
        auto_validate: bool = True,
        timeline: Timeline | None = None,
        name: str | None = None,
        default_timeout: float = 3.0,
        transports: tuple[str, ...] = ("websocket",),
    ) -> None:
        self.base_url = base_url
        self.validator = validator
        self.auto_validate = auto_validate and validator is not None
        self.timeline = timeline or Timeline(name or "observer")
        self.name = name or f"ws{next(_ids)}"
        self.default_timeout = default_timeout
        self.transports = list(transports)
        self.captured_events: list[CapturedEvent] = []
        self._by_type: dict[str, list[CapturedEvent]] = {}  # what a wait scans: only its own event type
        self._consumed_before: dict[str, int] = {}  # per type: every event before this position is consumed
        self._unchecked: list[tuple[str, Any]] = []  # arrived, not yet checked against the contract
        self.repeats: Counter[str] = Counter()
        self.repeat_types: dict[str, str] = {}
        self.violations: list[str] = []
        self.seq_regressions: list[str] = []
        self.undeclared: Counter[str] = Counter()
        self._seen_ids: set[str] = set()
        self._last_state: CapturedEvent | None = None
        self._callbacks: dict[str, list[Callable[[CapturedEvent], Any]]] = {}
        self._arrived = asyncio.Condition()
        self._waiting = 0  # waits in progress: an arrival wakes them only when there are any
        self._index = itertools.count()
        self.sid: str | None = None
        self.joined: list[tuple[str, str | None]] = []  # (room, playlist_id), in join order
        self._sio = self._new_client()

    def _new_client(self) -> socketio.AsyncClient:
        client = socketio.AsyncClient(reconnection=False, logger=False, engineio_logger=False)
        client.on("*", self._on_any)
        client.on("disconnect", self._on_disconnect)
        return client

    # -- connection ------------------------------------------------------------------------
    @property
    def is_connected(self) -> bool:
        return self._sio.connected

    @property
    def local_port(self) -> int:
        """The port of the observer's end of its WebSocket, to find its traffic in a packet
        capture (the latency benchmark times each broadcast's arrival at each socket)."""
        return websocket_local_port(self._sio, self.name)

    async def connect(self, timeout: float | None = None) -> None:
        timeout = timeout or self.default_timeout
        self.timeline.record("stimulus", self.name, "connect", url=self.base_url)
        try:
            await self._sio.connect(self.base_url, transports=self.transports, wait_timeout=timeout)
        except (socketio.exceptions.ConnectionError, OSError, TimeoutError) as exc:
            # python-socketio leaves engineio's HTTP session open after a failed connect; its
            # disconnect() is what releases it, and it is safe when never connected.
            await self._sio.eio.disconnect(abort=True)
            raise ConnectionError(
                f"{self.name}: cannot connect Socket.IO to {self.base_url}: {exc or 'timed out'}"
            ) from None
        self.sid = self._sio.get_sid()
        await self.wait_for_event("connection_status", timeout=timeout)
        log.debug("%s connected to %s as sid=%s", self.name, self.base_url, self.sid)

    async def disconnect(self) -> None:
        if self._sio.connected:
            self.timeline.record("stimulus", self.name, "disconnect")
        await self._sio.shutdown()

    async def _on_disconnect(self, reason: Any = None) -> None:
        self.timeline.record("event", self.name, "disconnect", note=str(reason))

    async def wait_disconnected(self, timeout: float | None = None) -> None:
        """Until the firmware drops this connection (a restart, a power cut)."""
        limit = self.default_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while self._sio.connected:
            if time.monotonic() > deadline:
                tail = self.timeline.describe_tail()
                raise EventTimeout(f"{self.name}: still connected {limit:g}s later. Arrived meanwhile:\n{tail}")
            await asyncio.sleep(0.02)

    async def reconnect(self, timeout: float) -> CapturedEvent:
        """Connect again, retrying until ``timeout`` while the firmware comes back; rejoin every
        room this client had joined; then ``sync:request`` from the last seqs seen. Returns the
        ``sync:complete``. Events seen before stay captured, so a test can compare both sides."""
        last_global = max((int(e.server_seq) for e in self.state_events() if e.server_seq is not None), default=0)
        last_playlist: dict[str, int] = {}
        for event in self.state_events():
            playlist_id, playlist_seq = event.data.get("playlist_id"), event.data.get("playlist_seq")
            if isinstance(playlist_id, str) and isinstance(playlist_seq, int):
                last_playlist[playlist_id] = max(playlist_seq, last_playlist.get(playlist_id, 0))
        await self._sio.shutdown()
        deadline = time.monotonic() + timeout
        while True:
            self._sio = self._new_client()
            try:
                await self.connect(timeout=max(0.5, min(5.0, deadline - time.monotonic())))
                break
            except (ConnectionError, EventTimeout) as exc:
                if time.monotonic() > deadline:
                    raise ConnectionError(f"{self.name}: no reconnection within {timeout:g}s: {exc}") from None
                await asyncio.sleep(0.2)
        rooms, self.joined = self.joined, []
        for room, playlist_id in rooms:
            await self.join_room(room, playlist_id)
        mark = self._next_index_mark()
        synced = [f"playlist:{p}" if room == "playlist" else room for room, p in rooms if room != "system"]
        request = {"last_global_seq": last_global, "last_playlist_seqs": last_playlist, "requested_rooms": synced}
        await self.emit("sync:request", request)
        return await self.wait_for_event("sync:complete", predicate=lambda e: e.index >= mark)

    # -- arrival ---------------------------------------------------------------------------
    async def _on_any(self, event: str, data: Any = None) -> None:
        self.ingest(event, data, check=False)
        if self._waiting:
            async with self._arrived:
                self._arrived.notify_all()
            # The waiting test runs first; the contract check (a quarter of a millisecond of
            # jsonschema) follows, so it is not part of the latency the test measures.
            await asyncio.sleep(0)
        # With no wait to wake, nothing is taken or yielded: 500 observers in one process pay
        # for each broadcast 500 times.
        self.check_pending()

    def check_pending(self) -> None:
        """Check every event that arrived but has not been checked against the contract yet."""
        unchecked, self._unchecked = self._unchecked, []
        if self.validator is None:
            return
        for event, data in unchecked:
            problems = self.validator.check_event(event, data)
            if event not in self.validator.events:
                self.undeclared[event] += 1
            elif problems and self.auto_validate:
                self.violations.extend(problems)

    def ingest(self, event: str, data: Any, *, check: bool = True) -> CapturedEvent | None:
        """Take one received event through de-duplication, checks and the timeline (the contract
        check waits for ``check_pending`` when ``check`` is false)."""
        captured = CapturedEvent(event, data, time.time(), time.monotonic_ns(), next(self._index))
        event_id = captured.event_id
        detail: dict[str, Any] = {"seq": captured.server_seq, "event_id": event_id, "data": data}
        if event_id is not None and event_id in self._seen_ids:
            self.repeats[event_id] += 1
            self.repeat_types[event_id] = event
            self.timeline.record("event", self.name, event, repeat=self.repeats[event_id], **detail)
            return None
        if event_id is not None:
            self._seen_ids.add(event_id)
        self.timeline.record("event", self.name, event, **detail)
        self._unchecked.append((event, data))
        if check:
            self.check_pending()
        self._check_seq(captured)
        self.captured_events.append(captured)
        self._by_type.setdefault(event, []).append(captured)
        for callback in (*self._callbacks.get(event, ()), *self._callbacks.get("*", ())):
            try:
                callback(captured)
            except Exception:
                log.exception("%s: callback for %s failed", self.name, event)
        return captured

    def _check_seq(self, captured: CapturedEvent) -> None:
        if captured.event_id is None or not isinstance(captured.server_seq, int | float):
            return
        last = self._last_state
        if last is not None and last.server_seq is not None and captured.server_seq <= last.server_seq:
            self.seq_regressions.append(
                f"server_seq went backwards: {captured.event_type} server_seq={captured.server_seq} "
                f"arrived after {last.event_type} server_seq={last.server_seq}"
            )
        self._last_state = captured

    # -- rooms -----------------------------------------------------------------------------
    async def join_room(
        self, room: str, playlist_id: str | None = None, timeout: float | None = None, *, assoc_id: str | None = None
    ) -> CapturedEvent:
        """Join ``playlists``, ``playlist`` (with ``playlist_id``) or ``nfc`` (with ``assoc_id``, an NFC
        association session's id); returns the ``ack:join``."""
        payload = {"playlist_id": playlist_id} if playlist_id else {}
        if assoc_id is not None:
            payload["assoc_id"] = assoc_id
        ack = await self._room_request(f"join:{room}", payload, "ack:join", timeout)
        for event in self.captured_events:
            if event.index < ack.index:
                event.consumed = True  # the snapshot the join produced is not a later change
        if assoc_id is None and (room, playlist_id) not in self.joined:
            self.joined.append((room, playlist_id))
        return ack

    async def leave_room(
        self, room: str, playlist_id: str | None = None, timeout: float | None = None
    ) -> CapturedEvent:
        payload = {"playlist_id": playlist_id} if playlist_id else {}
        ack = await self._room_request(f"leave:{room}", payload, "ack:leave", timeout)
        if (room, playlist_id) in self.joined:
            self.joined.remove((room, playlist_id))
        return ack

    async def _room_request(
        self, event: str, payload: dict[str, Any], reply: str, timeout: float | None
    ) -> CapturedEvent:
        mark = self._next_index_mark()
        await self.emit(event, payload)
        ack = await self.wait_for_event(reply, timeout=timeout, predicate=lambda e: e.index >= mark)
        if not ack.data.get("success"):
            raise AssertionError(f"{self.name}: {event} refused: {ack.data.get('message') or ack.data}")
        return ack

    def _next_index_mark(self) -> int:
        return self.captured_events[-1].index + 1 if self.captured_events else 0

    async def emit(self, event: str, data: Any = None) -> None:
        self.timeline.record("stimulus", self.name, event, data=data)
        await self._sio.emit(event, data if data is not None else {})

    # -- waiting ---------------------------------------------------------------------------
    def _first_match(self, event: str, predicate: Predicate | None, start: int) -> tuple[CapturedEvent | None, int]:
        """The first unconsumed ``event`` from position ``start`` on that the predicate accepts,
        and how far the scan went. What it passed over stays passed over (a consumed event stays
        consumed; a predicate judges the event alone), so a woken wait scans only what arrived
        since, and every wait skips the consumed events at the front: the cost of a wake does not
        grow with the session (rescanning every earlier ``state:player`` put 0.09 ms p50 on each of
        600 events' path from arrival to the waiting test, in a micro-benchmark)."""
        arrived = self._by_type.get(event, [])
        front = self._consumed_before.get(event, 0)
        while front < len(arrived) and arrived[front].consumed:
            front += 1
        self._consumed_before[event] = front
        for position in range(max(start, front), len(arrived)):  # (islice would step over the skipped ones)
            captured = arrived[position]
            if not captured.consumed and (predicate is None or predicate(captured)):
                return captured, len(arrived)
        return None, len(arrived)

    async def wait_for_event(
        self, event: str, timeout: float | None = None, predicate: Predicate | None = None
    ) -> CapturedEvent:
        """The first ``event``, in arrival order, that no earlier wait returned and ``predicate``
        accepts, waiting up to ``timeout`` for it. The predicate sees each event once per wait,
        so it must judge the event alone."""
        timeout = self.default_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        self._waiting += 1
        try:
            async with self._arrived:
                found, scanned = self._first_match(event, predicate, 0)
                while found is None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise EventTimeout(self._timeout_message(event, timeout, predicate))
                    try:
                        # asyncio.timeout, not wait_for: no task of its own, so an arrival wakes
                        # this wait in the arriving event's own turn of the loop
                        async with asyncio.timeout(remaining):
                            await self._arrived.wait()
                    except TimeoutError:
                        pass  # one more look: an event may have come with the deadline
                    found, scanned = self._first_match(event, predicate, scanned)
        finally:
            self._waiting -= 1
        found.consumed = True
        return found

    async def wait_for_multiple_events(
        self, event: str, count: int, timeout: float | None = None, predicate: Predicate | None = None
    ) -> list[CapturedEvent]:
        timeout = self.default_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        found: list[CapturedEvent] = []
        try:
            while len(found) < count:
                found.append(await self.wait_for_event(event, max(deadline - time.monotonic(), 0), predicate))
        except EventTimeout as exc:
            raise EventTimeout(f"got {len(found)} of {count} '{event}' events. {exc}") from None
        return found

    def _timeout_message(self, event: str, timeout: float, predicate: Predicate | None) -> str:
        condition = "" if predicate is None else " matching the predicate"
        same_type = [e for e in self.captured_events if e.event_type == event]
        seen = f"; {len(same_type)} '{event}' arrived but none{condition} and unconsumed" if same_type else ""
        connected = "" if self.is_connected else " (the client is DISCONNECTED)"
        return (
            f"{self.name}: Event '{event}'{condition} not received within {timeout:g}s{connected}{seen}. "
            f"Arrived instead (last entries of the timeline):\n{self.timeline.describe_tail()}"
        )

    # -- inspection ------------------------------------------------------------------------
    def get_events(self, event: str | None = None, since_timestamp: float | None = None) -> list[CapturedEvent]:
        return [
            e
            for e in self.captured_events
            if (event is None or e.event_type == event) and (since_timestamp is None or e.timestamp >= since_timestamp)
        ]

    def clear_events(self) -> None:
        self.captured_events.clear()
        self._by_type.clear()
        self._consumed_before.clear()
        self._last_state = None

    def register_callback(self, event: str, callback: Callable[[CapturedEvent], Any]) -> None:
        """Call ``callback(captured)`` for each new ``event`` (``"*"`` for all)."""
        self._callbacks.setdefault(event, []).append(callback)

    def state_events(self) -> list[CapturedEvent]:
        return [e for e in self.captured_events if e.event_id is not None and e.server_seq is not None]

    def get_server_seq_range(self) -> tuple[int, int]:
        seqs = [int(e.server_seq) for e in self.state_events() if e.server_seq is not None]
        if not seqs:
            raise AssertionError(f"{self.name}: no state events captured, so there is no server_seq range")
        return min(seqs), max(seqs)

    def assert_server_seq_increasing(self) -> None:
        if self.seq_regressions:
            raise ContractViolation(f"{self.name}: " + "; ".join(self.seq_regressions))
        if self.validator is not None:
            self.validator.validate_server_seq_monotonic(self.state_events())

    def findings(self) -> list[Finding]:
        """Every contract defect this client saw."""
        self.check_pending()
        found = [Finding(kind_of(v), v) for v in self.violations]
        if self.repeats:
            total = sum(self.repeats.values())
            worst = ", ".join(
                f"{self.repeat_types[i]} event_id={i[:12]} ×{n + 1}" for i, n in self.repeats.most_common(3)
            )
            message = (
                f"firmware replayed {total} event(s) with an already-seen event_id "
                f"({len(self.repeats)} distinct; de-duplicated): {worst}"
            )
            found.append(Finding("replayed events (repeated event_id)", message))
        found += [Finding("server_seq went backwards", line) for line in self.seq_regressions]
        return found

    async def __aenter__(self) -> WebSocketTestClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.disconnect()
