"""The observer's bookkeeping, fed directly: de-duplication, seq regressions, validation, waits."""

from __future__ import annotations

import asyncio

import pytest
import socketio
from aiohttp import web

from rig import paths
from rig.contract import ContractValidator, ContractViolation
from rig.observer import CapturedEvent, EventTimeout, WebSocketTestClient


def envelope(seq: int, event_id: str, event_type: str = "state:volume_changed", volume: int = 5) -> dict:
    return {
        "event_type": event_type,
        "server_seq": seq,
        "data": {"volume": volume},
        "timestamp": 1.0,
        "event_id": event_id,
    }


@pytest.fixture
def client() -> WebSocketTestClient:
    return WebSocketTestClient("http://127.0.0.1:9", ContractValidator(paths.DEFAULT_CONTRACT), name="t")


def test_repeated_event_id_is_dropped_and_counted(client: WebSocketTestClient) -> None:
    client.ingest("state:volume_changed", envelope(1, "a"))
    for _ in range(3):
        client.ingest("state:volume_changed", envelope(1, "a"))
    client.ingest("state:volume_changed", envelope(2, "b"))
    assert [e.event_id for e in client.get_events()] == ["a", "b"]
    assert client.repeats["a"] == 3
    finding = client.findings()[0]
    assert finding.kind == "replayed events (repeated event_id)"
    assert "replayed 3 event(s)" in finding.message
    assert "state:volume_changed event_id=a ×4" in finding.message
    assert client.seq_regressions == []
    assert [e.detail.get("repeat") for e in client.timeline.entries] == [None, 1, 2, 3, None]


def test_seq_going_backwards_is_recorded_with_both_values(client: WebSocketTestClient) -> None:
    client.ingest("state:volume_changed", envelope(10, "a"))
    client.ingest("state:volume_changed", envelope(7, "b"))
    assert client.seq_regressions == [
        "server_seq went backwards: state:volume_changed server_seq=7 arrived after state:volume_changed server_seq=10"
    ]
    with pytest.raises(ContractViolation, match="server_seq=7 arrived after"):
        client.assert_server_seq_increasing()
    assert client.get_server_seq_range() == (7, 10)


def test_invalid_event_is_kept_and_reported(client: WebSocketTestClient) -> None:
    client.ingest("state:volume_changed", envelope(1, "a", volume=300))
    assert len(client.get_events()) == 1
    assert "at $.data.volume" in client.violations[0]
    assert [(f.kind, f.message) for f in client.findings()] == [
        ("state:volume_changed violates the contract at $.data.volume", client.violations[0])
    ]


def test_no_validation_client_records_nothing_as_a_finding() -> None:
    raw = WebSocketTestClient(
        "http://127.0.0.1:9", ContractValidator(paths.DEFAULT_CONTRACT), auto_validate=False, name="raw"
    )
    raw.ingest("state:volume_changed", envelope(1, "a", volume=300))
    assert raw.violations == []


def test_undeclared_events_are_counted_not_failed(client: WebSocketTestClient) -> None:
    client.ingest("vendor:custom", {"x": 1})
    assert client.undeclared == {"vendor:custom": 1}
    assert client.findings() == []


async def test_each_wait_returns_a_new_event(client: WebSocketTestClient) -> None:
    client.ingest("state:volume_changed", envelope(1, "a", volume=10))
    client.ingest("state:volume_changed", envelope(2, "b", volume=20))
    first = await client.wait_for_event("state:volume_changed", timeout=0.1)
    second = await client.wait_for_event("state:volume_changed", timeout=0.1)
    assert (first.payload["volume"], second.payload["volume"]) == (10, 20)
    with pytest.raises(EventTimeout):
        await client.wait_for_event("state:volume_changed", timeout=0.05)
    assert len(client.get_events("state:volume_changed")) == 2


async def test_timeout_says_what_arrived_instead(client: WebSocketTestClient) -> None:
    client.ingest("state:playlists", {**envelope(3, "p"), "event_type": "state:playlists", "data": {"playlists": []}})
    with pytest.raises(EventTimeout) as caught:
        await client.wait_for_event("state:playlist_created", timeout=0.05)
    message = str(caught.value)
    assert "Event 'state:playlist_created' not received within 0.05s" in message
    assert "DISCONNECTED" in message
    assert "state:playlists seq=3" in message


async def test_predicate_and_multiple(client: WebSocketTestClient) -> None:
    for i in range(4):
        client.ingest("state:volume_changed", envelope(i + 1, f"e{i}", volume=i))
    odd = await client.wait_for_multiple_events(
        "state:volume_changed", 2, timeout=0.1, predicate=lambda e: e.payload["volume"] % 2
    )
    assert [e.payload["volume"] for e in odd] == [1, 3]
    with pytest.raises(EventTimeout, match="got 2 of 3"):
        await client.wait_for_multiple_events("state:volume_changed", 3, timeout=0.05)


async def test_a_woken_wait_looks_only_at_what_arrived_since(client: WebSocketTestClient) -> None:
    """A wake's cost must not grow with the session: the predicate sees each event once per wait,
    and never an event an earlier wait consumed."""
    for i in range(50):
        client.ingest("state:volume_changed", envelope(i + 1, f"used{i}", volume=1))
    for _ in range(50):
        await client.wait_for_event("state:volume_changed", timeout=0.1)
    for i in range(30):
        client.ingest("state:volume_changed", envelope(51 + i, f"other{i}", volume=2))
    judged: list[str] = []

    def wanted(event: CapturedEvent) -> bool:
        judged.append(str(event.event_id))
        return event.payload["volume"] == 3

    waiting = asyncio.create_task(client.wait_for_event("state:volume_changed", timeout=2.0, predicate=wanted))
    await asyncio.sleep(0.01)
    await client._on_any("state:volume_changed", envelope(81, "late-other", volume=2))
    await client._on_any("state:volume_changed", envelope(82, "wanted", volume=3))
    assert (await waiting).event_id == "wanted"
    assert judged == [f"other{i}" for i in range(30)] + ["late-other", "wanted"]


def test_callbacks_and_clear(client: WebSocketTestClient) -> None:
    seen = []
    client.register_callback("state:volume_changed", lambda e: seen.append(e.server_seq))
    client.ingest("state:volume_changed", envelope(1, "a"))
    assert seen == [1]
    client.clear_events()
    assert client.get_events() == []


async def test_local_port_is_the_observers_end_of_its_websocket() -> None:
    """The latency benchmark finds the observer's traffic in a capture by this port: it must be
    the port the server sees the observer's connection come from."""
    server = socketio.AsyncServer(async_mode="aiohttp")
    peers: list[int] = []

    @server.event
    async def connect(sid: str, environ: dict) -> None:
        peers.append(environ["aiohttp.request"].transport.get_extra_info("peername")[1])
        await server.emit("connection_status", {"status": "connected", "sid": sid}, to=sid)  # as the firmware greets

    app = web.Application()
    server.attach(app)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    client = WebSocketTestClient(f"http://127.0.0.1:{port}", name="t", default_timeout=5.0)
    try:
        with pytest.raises(ConnectionError, match="not connected"):
            _ = client.local_port
        await client.connect()
        assert client.local_port == peers[0]
        assert client.local_port != port
    finally:
        await client.disconnect()
        await runner.cleanup()
