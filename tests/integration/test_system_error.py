"""An unhandled exception in the firmware: reported as system:error to room system, and survived.

The reference firmware has no such bug, so its ``raise_in:EVENT`` fault mode makes the handler of
one incoming Socket.IO event raise."""

from __future__ import annotations

import httpx

from rig import paths
from rig.contract import ContractValidator
from rig.observer import WebSocketTestClient


async def test_an_unhandled_exception_is_reported_and_survived(virtual_pi_factory) -> None:
    virtual_pi = virtual_pi_factory("raising", faults=("raise_in:client_ping",))
    url = virtual_pi.info().url  # type: ignore[union-attr]
    observer = WebSocketTestClient(url, ContractValidator(paths.DEFAULT_CONTRACT), name="observer")
    await observer.connect()
    try:
        await observer.join_room("system")
        await observer.emit("client_ping", {"timestamp": 1})

        error = await observer.wait_for_event("system:error")

        assert error.payload["where"] == "socket.io client_ping"
        assert error.payload["error_type"] == "RuntimeError"
        assert "raise_in:client_ping" in error.payload["message"]
        assert any("realtime.py" in frame for frame in error.payload["location"]), error.payload
        assert observer.violations == [], "system:error follows the contract"
        assert observer.is_connected, "the connection that triggered it is still served"
        await observer.join_room("playlists")  # the firmware goes on answering
        async with httpx.AsyncClient(base_url=url, timeout=5) as http:
            health = (await http.get("/api/health")).json()["data"]
        assert health["status"] == "healthy"
        assert "unhandled error in socket.io client_ping" in virtual_pi.journal_tail(40)
    finally:
        await observer.disconnect()
