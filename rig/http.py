"""The rig's HTTP client: httpx, with every request and response stamped on the timeline."""

from __future__ import annotations

import time

import httpx

from .observer import CapturedEvent
from .timeline import Timeline
from .tls import tls


def timeline_client(
    base_url: str, timeline: Timeline, *, timeout: float = 5.0, source: str = "http"
) -> httpx.AsyncClient:
    """An AsyncClient whose traffic appears on ``timeline`` (method, path, status, elapsed ms)."""

    async def on_request(request: httpx.Request) -> None:
        request.extensions["rig_entry"] = timeline.record(
            "http", source, f"{request.method} {request.url.path}", body=_body_text(request)
        )

    async def on_response(response: httpx.Response) -> None:
        sent = response.request.extensions.get("rig_entry")
        ms = (time.monotonic_ns() - sent.mono_ns) / 1e6 if sent else None
        request = response.request
        timeline.record("http", source, f"{request.method} {request.url.path} →", status=response.status_code, ms=ms)

    return httpx.AsyncClient(
        base_url=base_url,
        timeout=timeout,
        verify=tls(),
        event_hooks={"request": [on_request], "response": [on_response]},
    )


def _body_text(request: httpx.Request) -> str | None:
    """Request bodies are JSON commands; keep a short form (never headers, which may hold secrets)."""
    try:
        content = request.content
    except httpx.RequestNotRead:
        return None
    return content[:500].decode("utf-8", "replace") if content else None


def sent_to_event_ms(response: httpx.Response, event: CapturedEvent) -> float:
    """Milliseconds from sending the request that got ``response`` to ``event``'s arrival, on the timeline's clock."""
    sent = response.request.extensions.get("rig_entry")
    if sent is None:
        raise ValueError("the response did not come from a timeline_client, so its send time is unknown")
    return (event.mono_ns - sent.mono_ns) / 1e6
