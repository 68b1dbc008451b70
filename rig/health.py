"""Waiting until a firmware is healthy: one poll loop, for a virtual Pi's boot and for a deploy."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx

from .observer import WebSocketTestClient
from .tls import tls


def socketio_problem(url: str, timeout: float) -> str | None:
    """None when a Socket.IO client connects and gets ``connection_status``; else what went wrong."""

    async def probe() -> None:
        client = WebSocketTestClient(url, None, name="health", default_timeout=max(timeout, 0.5))
        try:
            await client.connect()
        finally:
            await client.disconnect()

    try:
        asyncio.run(probe())
    except (ConnectionError, TimeoutError) as exc:
        return str(exc).splitlines()[0]
    return None


def get_health(url: str, timeout: float) -> httpx.Response:
    """``GET /api/health`` once, with the rig's shared TLS context."""
    return httpx.get(f"{url}/api/health", timeout=timeout, verify=tls())


def wait_healthy(
    url: str, timeout: float, *, socketio: bool = False, check_alive: Callable[[], None] | None = None
) -> str | None:
    """Poll ``GET /api/health`` (and a Socket.IO connect, if asked) until it answers or ``timeout`` passes.

    Returns None once healthy, else what was seen last. ``check_alive`` is called on every round
    and raises to give up early, when the process that should answer is already gone.
    """
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while (remaining := deadline - time.monotonic()) > 0:
        if check_alive is not None:
            check_alive()
        try:
            response = get_health(url, min(2.0, max(remaining, 0.1)))
            if response.status_code != 200:
                last = f"HTTP {response.status_code}"
            else:
                problem = socketio_problem(url, min(5.0, max(deadline - time.monotonic(), 0.5))) if socketio else None
                if problem is None:
                    return None
                last = f"HTTP healthy, but Socket.IO: {problem}"
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        time.sleep(0.05)
    return last
