"""Figure 4: fan-out. 10, 100 and 500 observers receive the same broadcasts; does every one of
them see the same ``server_seq`` sequence, and how late does the last one see each event?

For each count, the rig's observers (``WebSocketTestClient``, contract check and timeline
included, all in this process, as in a test with many clients) and then as many bare
python-socketio clients (``bare_observer``, in a process of their own) watch EVENTS volume
changes. Latency is an event's arrival at one observer less the firmware's envelope timestamp,
over every (observer, event) pair. The two kinds never run at once, so neither slows the
firmware's fan-out for the other.

    python -m benchmarks.fanout [--counts 10 100 500] [--events 15]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from rig.contract import ContractValidator
from rig.dut import Dut
from rig.observer import WebSocketTestClient
from rig.timeline import Timeline

from .bare_observer import CONNECT_BATCH, BareObservers
from .common import local_dut, report, setup_logging, stats_ms

log = logging.getLogger("benchmarks.fanout")
EVENT = "state:volume_changed"
GAP_S = 0.25  # between two volume changes: the firmware sends each to every observer in turn


async def volume_changes(url: str, events: int) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=30.0) as http:
        for number in range(events):
            (await http.post("/api/player/volume", json={"volume": 40 + number % 2 * 10})).raise_for_status()
            await asyncio.sleep(GAP_S)
        await asyncio.sleep(1.0)  # the last event reaches the last observer


async def rig_observers(dut: Dut, count: int, events: int) -> list[list[Any]]:
    """[observer, server_seq, firmware timestamp, arrival] of every event every observer took."""
    validator = ContractValidator(dut.bench.firmware.contract)
    clients = [
        WebSocketTestClient(dut.url, validator, timeline=Timeline(f"fan{n}"), name=f"fan{n}", default_timeout=30.0)
        for n in range(count)
    ]
    for start in range(0, count, CONNECT_BATCH):
        await asyncio.gather(*(c.connect() for c in clients[start : start + CONNECT_BATCH]))
    try:
        await volume_changes(dut.url, events)
    finally:
        await asyncio.gather(*(c.disconnect() for c in clients))
    violations = [finding.message for c in clients for finding in c.findings()]
    if violations:
        raise RuntimeError(f"the firmware broke its contract during the fan-out: {violations[:3]}")
    return [
        [number, e.server_seq, e.data["timestamp"], e.timestamp]
        for number, client in enumerate(clients)
        for e in client.get_events(EVENT)
    ]


async def bare_observers(dut: Dut, count: int, events: int) -> list[list[Any]]:
    observers = await asyncio.to_thread(BareObservers, dut.url, count, [EVENT], 120.0)
    await volume_changes(dut.url, events)
    records = await asyncio.to_thread(observers.records)
    return [[number, seq, sent, arrived] for number, _, seq, _, arrived, sent in records]


def summary(records: list[list[Any]], count: int) -> dict[str, Any]:
    """Latency over every (observer, event) pair; whether all observers saw one sequence."""
    sequences: dict[int, list[int]] = {n: [] for n in range(count)}
    for number, seq, _, _ in records:
        sequences[number].append(seq)
    distinct = {tuple(s) for s in sequences.values()}
    return {
        "observers": count,
        "events_per_observer": min(len(s) for s in sequences.values()),
        "identical_server_seq": len(distinct) == 1,
        "distinct_sequences": len(distinct),
        "latency": stats_ms([arrived - sent for _, _, sent, arrived in records]),
    }


async def measure(dut: Dut, counts: list[int], events: int) -> list[dict[str, Any]]:
    rows = []
    for count in counts:
        started = time.monotonic()
        rig = summary(await rig_observers(dut, count, events), count)
        bare = summary(await bare_observers(dut, count, events), count)
        ratio = rig["latency"]["p99_ms"] / bare["latency"]["p99_ms"]
        rows.append(
            {"observers": count, "rig": rig, "bare_python_socketio": bare, "p99_rig_over_bare": round(ratio, 2)}
        )
        log.warning("%d observers: %.1f s", count, time.monotonic() - started)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[10, 100, 500])
    parser.add_argument("--events", type=int, default=15)
    args = parser.parse_args()
    setup_logging()
    with tempfile.TemporaryDirectory(prefix="rig-fanout-") as folder:
        dut = local_dut(Path(folder) / "pi")
        try:
            rows = asyncio.run(measure(dut, args.counts, args.events))
        finally:
            dut.stop()
    largest = rows[-1]
    report(
        "fanout",
        {
            "virtual_pi_form": "local",
            "event": EVENT,
            "events": args.events,
            "rows": rows,
            "targets": {
                f"p99_ms_at_{largest['observers']}_observers <= 250": largest["rig"]["latency"]["p99_ms"],
                "identical_server_seq_everywhere": all(r["rig"]["identical_server_seq"] for r in rows),
            },
        },
    )


if __name__ == "__main__":
    main()
