"""The client side of the contract's chunked uploads, as the companion app does them: create a
session, PUT the chunks (in any order, several at once), finalize with the file's sha256.

Each step is its own call so a test can break the flow anywhere (a repeated chunk, a vanished
client, a lying hash); ``upload`` runs the whole flow. A refusal raises UploadRejected with
the HTTP status and the firmware's message.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpx

DEFAULT_CHUNK = 1024 * 1024  # the contract's default


class UploadRejected(AssertionError):
    """The firmware refused a step; ``status`` and ``error_type`` say how."""

    def __init__(self, step: str, response: httpx.Response) -> None:
        try:
            body = response.json()
        except ValueError:
            body = {}
        self.status = response.status_code
        self.error_type = str(body.get("error_type", "?"))
        self.message = str(body.get("message", response.text[:200]))
        super().__init__(f"{step}: HTTP {self.status} {self.error_type}: {self.message}")


@dataclass(frozen=True)
class UploadSession:
    playlist_id: str
    session_id: str
    file_size: int
    chunk_size: int
    total_chunks: int
    timeout_s: float | None

    @property
    def base(self) -> str:
        return f"/api/playlists/{self.playlist_id}/uploads/{self.session_id}"


def chunks_of(data: bytes, chunk_size: int) -> list[bytes]:
    return [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)] or [b""]


class UploadClient:
    def __init__(self, http: httpx.AsyncClient, playlist_id: str) -> None:
        self.http = http
        self.playlist_id = playlist_id

    async def _call(self, step: str, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise UploadRejected(step, response)
        return response.json()["data"]

    async def create(
        self, filename: str, file_size: int, *, chunk_size: int | None = None, file_hash: str | None = None
    ) -> UploadSession:
        body: dict[str, Any] = {"filename": filename, "file_size": file_size}
        if chunk_size is not None:
            body["chunk_size"] = chunk_size
        if file_hash is not None:
            body["file_hash"] = file_hash
        data = await self._call("create", "POST", f"/api/playlists/{self.playlist_id}/uploads/session", json=body)
        return UploadSession(
            self.playlist_id,
            data["session_id"],
            data["file_size"],
            data["chunk_size"],
            data["total_chunks"],
            data.get("timeout_s"),
        )

    async def put_chunk(self, session: UploadSession, index: int, chunk: bytes) -> dict[str, Any]:
        return await self._call(f"chunk {index}", "PUT", f"{session.base}/chunks/{index}", content=chunk)

    async def status(self, session: UploadSession) -> dict[str, Any]:
        return await self._call("status", "GET", session.base)

    async def finalize(
        self, session: UploadSession, *, file_hash: str | None = None, title: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if file_hash is not None:
            body["file_hash"] = file_hash
        if title is not None:
            body["metadata_override"] = {"title": title}
        result = await self._call("finalize", "POST", f"{session.base}/finalize", json=body)
        return result["track"]

    async def cancel(self, session: UploadSession) -> None:
        await self._call("cancel", "DELETE", f"/api/uploads/sessions/{session.session_id}")

    async def upload(
        self,
        filename: str,
        data: bytes,
        *,
        chunk_size: int = DEFAULT_CHUNK,
        order: Iterable[int] | None = None,
        parallel: int = 1,
        title: str | None = None,
        on_chunk: Callable[[int, dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """The whole flow with the file's sha256; returns the new track. ``order``: the chunk
        indexes to send, in that order (repeats allowed); ``parallel``: chunks in flight at once."""
        digest = hashlib.sha256(data).hexdigest()
        session = await self.create(filename, len(data), chunk_size=chunk_size, file_hash=digest)
        pieces = chunks_of(data, session.chunk_size)
        indexes = list(range(len(pieces)) if order is None else order)
        gate = asyncio.Semaphore(parallel)

        async def send(index: int) -> None:
            async with gate:
                result = await self.put_chunk(session, index, pieces[index])
            if on_chunk is not None:
                on_chunk(index, result)

        if parallel == 1:
            for index in indexes:
                await send(index)
        else:
            await asyncio.gather(*(send(i) for i in indexes))
        return await self.finalize(session, title=title)
