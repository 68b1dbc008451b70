"""The baseline of figures 3 and 4: bare python-socketio clients, in a process of their own
(and for figure 3 one in the benchmark's own process too, ``InProcessBare``).

Each client records, for every event of the names it was given, the client's number, the event's
``server_seq`` and ``event_id``, the wall-clock time it arrived and the firmware's envelope
``timestamp``, and does nothing else: no contract check, no timeline, no waiting test. What the
rig's observer takes on top of that is the rig's overhead.

    python -m benchmarks.bare_observer URL COUNT EVENT [EVENT ...]

prints ``ready`` once every client is connected, and on end of standard input disconnects and
prints one JSON line: the list of ``[client, event, server_seq, event_id, arrived, timestamp]``.
"""

from __future__ import annotations

import asyncio
import json
import select
import subprocess
import sys
import time
from typing import Any

import socketio

from rig.observer import websocket_local_port

from .thread_clock import ThreadStamp

CONNECT_BATCH = 50  # connections opened at once: the firmware's accept loop is one of two cores


async def observe(url: str, count: int, events: list[str]) -> list[list[Any]]:
    records: list[list[Any]] = []
    clients = []
    for number in range(count):
        client = socketio.AsyncClient(reconnection=False)
        for name in events:

            def record(data: Any = None, number: int = number, name: str = name) -> None:
                arrived = time.time()
                body = data if isinstance(data, dict) else {}
                records.append(
                    [number, name, body.get("server_seq"), body.get("event_id"), arrived, body.get("timestamp")]
                )

            client.on(name, record)
        clients.append(client)
    for start in range(0, count, CONNECT_BATCH):
        batch = clients[start : start + CONNECT_BATCH]
        await asyncio.gather(*(c.connect(url, transports=["websocket"], wait_timeout=30) for c in batch))
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.read)  # until the benchmark closes our standard input
    await asyncio.gather(*(c.disconnect() for c in clients))
    return records


class InProcessBare:
    """One bare client in the caller's own process and event loop, recording when each event
    (by ``event_id``) arrived. Against it the rig's observer is compared without the scheduling
    of two processes on shared cores, which alone puts 1-4 ms p99 between two identical bare
    clients in processes of their own. Each arrival is stamped with the loop thread's clocks too
    (``ThreadStamp``), so what the rig's thread ran between the two hand-overs can be told from
    time the kernel gave to something else."""

    def __init__(self, events: list[str]) -> None:
        self.arrived: dict[str, ThreadStamp] = {}
        self._client = socketio.AsyncClient(reconnection=False)
        for name in events:
            self._client.on(name, self._record)

    def _record(self, data: Any = None) -> None:
        arrived = ThreadStamp.now()
        if isinstance(data, dict) and data.get("event_id") is not None:
            self.arrived[str(data["event_id"])] = arrived

    async def connect(self, url: str) -> None:
        await self._client.connect(url, transports=["websocket"], wait_timeout=30)

    @property
    def local_port(self) -> int:
        """The port of this client's end of its WebSocket, to find its traffic in a capture."""
        return websocket_local_port(self._client, "the in-process bare client")

    async def disconnect(self) -> None:
        await self._client.disconnect()


class BareObservers:
    """The bare clients as the benchmark drives them: started, ready, then their records."""

    def __init__(self, url: str, count: int, events: list[str], timeout: float = 60.0) -> None:
        command = [sys.executable, "-m", "benchmarks.bare_observer", url, str(count), *events]
        self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self._process.stdout is not None
        ready, _, _ = select.select([self._process.stdout], [], [], timeout)
        line = self._process.stdout.readline().strip() if ready else ""
        if line != "ready":
            self._process.kill()
            self._process.wait()
            raise RuntimeError(f"the bare observers did not connect {count} clients within {timeout:g} s ({line!r})")

    def records(self, timeout: float = 60.0) -> list[list[Any]]:
        try:
            out, _ = self._process.communicate(input="", timeout=timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            raise RuntimeError(f"the bare observers did not hand over their records within {timeout:g} s") from None
        if self._process.returncode != 0:
            raise RuntimeError(f"the bare observers exited {self._process.returncode}")
        return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    url, count, events = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    records = asyncio.run(observe(url, count, events))
    print(json.dumps(records))


if __name__ == "__main__":
    main()
