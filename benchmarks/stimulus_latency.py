"""Figure 3: stimulus → broadcast latency on a virtual Pi, split at the firmware's own timestamp.

A virtual Pi shares this machine's clocks, so four readings per stimulus can be compared:

- S, the rig's stamp of the stimulus (a press: just before the pin is driven; a tap: once the tag
  lies on the antenna; a spoken command: when its words end);
- F, the ``timestamp`` the firmware put in the envelope of the ``state:player`` it caused: when it
  acted (``nfc_association_state`` carries no timestamp of its own);
- R, when the rig's observer (contract check and timeline included) handed the event to the
  waiting code;
- B, when a bare python-socketio client in a process of its own received the same event;
- B2, when a second bare client, in a third process, received it;
- I, when a bare client in the benchmark's own process and event loop received it.

S→R is what a test measures; S→F is the stimulus path plus the firmware's own work; F→R against
F→B, and R−B event by event, are what the rig's observer adds to a bare client. B2−B is that
comparison's own floor: two identical clients differ by that much, because the firmware writes
to one socket after the other and each process is scheduled on its own on shared cores. R−I is
the rig's overhead without that floor: both clients share one process, one loop and one
scheduler, and the in-process client connects first, so its socket is served first. What is
left in R−I is the firmware's order of writes: it writes each broadcast to I's socket, then to
R's, and between the two it may run other work of its own (another task, another thread). As
root, a tcpdump of the loopback (``wire_times``) stamps each event's arrival at each socket (WI,
WR); (R−WR)−(I−WI) is then the rig's own overhead, each client timed from when its own socket
got the event, and WR−WI the firmware's gap between the two writes.

R−I is wall-clock time, and the loop's thread does not run all of it: on two cores shared with
the firmware, the kernel sometimes hands the core to another process between the two hand-overs.
I and R are therefore also stamped with that thread's CPU clock and its count of involuntary
context switches (``thread_clock``): the CPU time from I to R is what the rig's thread ran (its
handling of its own copy, a bare client's share of that included), and the samples whose count
moved were preempted, which is the machine's scheduling and not the rig's work. The loop is also
one that keeps the time it sat blocked in its selector (``idle_clock_loop``): from I to R that is
time the rig had nothing to do, its copy not yet written (the rig's path from arrival to the
waiting code does no I/O), so R−I less it is what the rig added, in wall-clock time and without
root; it still holds preemption.

Why the rig's copy came late: the virtual Pi shares the machine's cores with the rig, and the
firmware's write of I's copy woke the benchmark's process, which took the firmware's core before
it wrote R's (``cores``). On the bench the Pi has a CPU of its own, so by default the virtual Pi
(and the bare clients' processes) get half the cores and the benchmark's process the other half;
``--shared-cores`` leaves both to the kernel, as before.

    python -m benchmarks.stimulus_latency [--presses 200] [--taps 200] [--spoken 16] [--shared-cores]

Spoken commands take about 2 s each (the words, the detector's hangover, decoding), so 200 of
them do not fit in the 2 minutes a benchmark may take: 16 by default, and their p99 is their
maximum.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from device_drivers.audio import analysis
from device_drivers.gpio import Gpio, PinBackend
from device_drivers.gpio.wiring import Line
from device_drivers.nfc import Nfc
from device_drivers.nfc.tags import TagShelf
from rig.audio_clips import command_clip
from rig.contract import ContractValidator
from rig.dut import Dut
from rig.observer import CapturedEvent, WebSocketTestClient
from rig.timeline import Entry, Timeline

from .bare_observer import BareObservers, InProcessBare
from .common import local_dut, report, setup_logging, stats_ms
from .cores import split_cores
from .thread_clock import ThreadStamp, idle_clock_loop
from .wire_times import CaptureUnavailable, LoopbackCapture

log = logging.getLogger("benchmarks.stimulus_latency")
DEBOUNCE_S = 0.4  # the firmware's 300 ms debounce per button, counted from when it saw the edge
TAP_DWELL_S = 0.15


@dataclasses.dataclass
class Sample:
    """One stimulus: its readings in wall-clock seconds (S, F; R with the loop thread's clocks)
    and the event's id."""

    stimulus: float
    firmware: float
    rig: ThreadStamp
    event_id: str
    extra: dict[str, float] = dataclasses.field(default_factory=dict)


def wall(entry: Entry) -> float:
    """A timeline stamp (monotonic) as wall-clock time: both clocks are this machine's."""
    return time.time() - (time.monotonic_ns() - entry.mono_ns) / 1e9


@dataclasses.dataclass
class Bench:
    dut: Dut
    http: httpx.AsyncClient
    observer: WebSocketTestClient
    timeline: Timeline

    async def until(self, stimulus: Callable[[], Any], predicate: Callable[[CapturedEvent], bool]) -> Sample:
        """Apply the stimulus (in a thread: the drivers block) and wait for its state:player."""
        mark = len(self.observer.captured_events)

        async def handed_over() -> tuple[CapturedEvent, float]:
            event = await self.observer.wait_for_event(
                "state:player", predicate=lambda e: e.index >= mark and predicate(e), timeout=5.0
            )
            return event, ThreadStamp.now()  # R: the stimulus thread may still be releasing the button

        waiting = asyncio.create_task(handed_over())
        stamp = await asyncio.to_thread(stimulus)
        event, arrived = await waiting
        return Sample(wall(stamp), float(event.data["timestamp"]), arrived, str(event.event_id))


class EdgeClock:
    """The pin backend, keeping the time the firmware's callbacks had run for each edge (the
    mock pins answer a drive with it): it splits a press into the rig's part and the firmware's."""

    def __init__(self, backend: PinBackend) -> None:
        self.backend = backend
        self.seen: list[float] = []

    def drive(self, line: Line, level: int) -> float | None:
        seen = self.backend.drive(line, level)
        if seen is not None:
            self.seen.append(time.time() - (time.monotonic() - seen))
        return seen

    def sense(self, line: Line) -> int:
        return self.backend.sense(line)

    def close(self) -> None:
        self.backend.close()


async def presses(bench: Bench, count: int) -> list[Sample]:
    """next, previous, next...: each starts another track, so each press gives one state:player."""
    edges = EdgeClock(bench.dut.gpio_backend())
    gpio = Gpio(edges, bench.dut.bench.gpio.wiring, stamp=_stamp(bench.timeline, "gpio"))
    tracks = await _start_playlist(bench, minimum_tracks=2)
    samples: list[Sample] = []
    last: dict[str, float] = {}
    try:
        for number in range(count):
            button, track = ("next", tracks[1]) if number % 2 == 0 else ("previous", tracks[0])
            await asyncio.sleep(max(0.0, last.get(button, 0.0) + DEBOUNCE_S - time.monotonic()))
            last[button] = time.monotonic()
            sample = await bench.until(
                lambda b=button: gpio.press(b, 0.02), lambda e, t=track: e.payload["active_track_id"] == t
            )
            pressed = edges.seen[-2]  # the press edge; the release is the last
            sample.extra["stimulus_to_edge_seen"] = pressed - sample.stimulus
            sample.extra["edge_seen_to_firmware_acted"] = sample.firmware - pressed
            samples.append(sample)
    finally:
        gpio.close()
    return samples


async def taps(bench: Bench, count: int) -> list[Sample]:
    """Two tags owned by two playlists, tapped in turn while one plays: each tap switches to the
    other playlist (state:player), then says ``activated`` (nfc_association_state)."""
    nfc = Nfc(bench.dut.nfc_backend(), TagShelf(bench.dut.bench.nfc.tags), stamp=_stamp(bench.timeline, "nfc"))
    playlists = [p for p in (await bench.http.get("/api/playlists")).json()["data"]["playlists"] if p["track_count"]]
    pairs = [("red", playlists[0]["id"]), ("blue", playlists[1]["id"])]
    for tag, playlist in pairs:
        response = await bench.http.post(
            "/api/nfc/associate", json={"playlist_id": playlist, "tag_id": nfc.tag(tag).tag_id}
        )
        response.raise_for_status()
    # The first tap must switch playlists too: a tap of the playing playlist's tag changes nothing.
    status = (await bench.http.get("/api/player/status")).json()["data"]
    if status["active_playlist_id"] == pairs[0][1]:
        pairs.reverse()
    samples: list[Sample] = []
    try:
        for number in range(count):
            tag, playlist = pairs[number % 2]
            tag_id, mark = nfc.tag(tag).tag_id, len(bench.observer.captured_events)
            sample = await bench.until(
                lambda t=tag: nfc.tap(t, TAP_DWELL_S), lambda e, p=playlist: e.payload["active_playlist_id"] == p
            )
            activated = await bench.observer.wait_for_event(
                "nfc_association_state",
                predicate=lambda e, t=tag_id, m=mark: e.index >= m and e.payload.get("tag_id") == t,
                timeout=5.0,
            )
            sample.extra["tap_to_nfc_association_state"] = activated.timestamp - sample.stimulus
            samples.append(sample)
    finally:
        nfc.close()
    return samples


async def spoken(bench: Bench, count: int) -> list[Sample]:
    """ "next track", "previous track"... into the microphone: each moves the playing playlist's
    track. The stimulus is the moment the words end: no listener can act before."""
    audio = bench.dut.audio_port(None, stamp=_stamp(bench.timeline, "audio"))
    tracks = await _start_playlist(bench, minimum_tracks=2)
    words = {text: command_clip(text).load() for text in ("next track", "previous track")}
    samples: list[Sample] = []
    for number in range(count):
        text, track = ("next track", tracks[1]) if number % 2 == 0 else ("previous track", tracks[0])
        clip, rate = words[text]
        spoken_for = analysis.speech_end_s(clip, rate)
        sample = await bench.until(
            lambda c=clip, r=rate, t=text: audio.play(c, r, t), lambda e, t=track: e.payload["active_track_id"] == t
        )
        sample.stimulus += spoken_for  # from the first sample to the end of the words
        samples.append(sample)
    return samples


def _stamp(timeline: Timeline, source: str) -> Callable[[str, dict[str, Any]], Entry]:
    return lambda name, detail: timeline.record("stimulus", source, name, **detail)


async def _start_playlist(bench: Bench, minimum_tracks: int) -> list[str]:
    for playlist in (await bench.http.get("/api/playlists")).json()["data"]["playlists"]:
        if playlist["track_count"] >= minimum_tracks:
            detail = (await bench.http.get(f"/api/playlists/{playlist['id']}")).json()["data"]
            response = await bench.http.post(f"/api/playlists/{playlist['id']}/start", json={"track_number": 1})
            response.raise_for_status()
            await bench.observer.wait_for_event("state:player", predicate=lambda e: e.payload["is_playing"] is True)
            return [track["id"] for track in detail["tracks"]]
    raise RuntimeError(f"the fixture library has no playlist of {minimum_tracks} tracks")


@dataclasses.dataclass
class Wire:
    """When each ``state:player`` reached the in-process bare client's socket and the rig's."""

    bare: dict[str, float]
    rig: dict[str, float]

    @classmethod
    def of(cls, capture: LoopbackCapture, bare_port: int, rig_port: int) -> Wire:
        arrivals = capture.arrivals("state:player")
        return cls(
            {i: t for (port, i), t in arrivals.items() if port == bare_port},
            {i: t for (port, i), t in arrivals.items() if port == rig_port},
        )

    def figures(self, samples: list[Sample], in_process: dict[str, ThreadStamp]) -> dict[str, Any]:
        timed = [s for s in samples if s.event_id in in_process and s.event_id in self.bare and s.event_id in self.rig]
        return {
            "firmware_wrote_to_rig_after_in_process_bare_client": stats_ms(
                [self.rig[s.event_id] - self.bare[s.event_id] for s in timed]
            ),
            "rig_overhead_over_in_process_bare_client_from_own_socket": stats_ms(
                [
                    (s.rig.wall - self.rig[s.event_id]) - (in_process[s.event_id].wall - self.bare[s.event_id])
                    for s in timed
                ]
            ),
        }


def figures(
    samples: list[Sample],
    bare: dict[str, float],
    second: dict[str, float],
    in_process: dict[str, ThreadStamp],
    wire: Wire | None,
) -> dict[str, Any]:
    """The latency split of one kind of stimulus (milliseconds)."""
    seen = [s for s in samples if s.event_id in bare]
    both = [s.event_id for s in seen if s.event_id in second]
    paired = [(in_process[s.event_id], s.rig) for s in samples if s.event_id in in_process]
    left_alone = [(i, r) for i, r in paired if not r.preempted_since(i)]
    out: dict[str, Any] = {
        "stimulus_to_rig": stats_ms([s.rig.wall - s.stimulus for s in samples]),
        "stimulus_to_firmware_acted": stats_ms([s.firmware - s.stimulus for s in samples]),
        "firmware_to_rig": stats_ms([s.rig.wall - s.firmware for s in samples]),
        "firmware_to_bare_client": stats_ms([bare[s.event_id] - s.firmware for s in seen]),
        "rig_overhead_over_in_process_bare_client": stats_ms([r.wall - i.wall for i, r in paired]),
        "rig_thread_cpu_after_in_process_bare_client": stats_ms([r.cpu_since(i) for i, r in paired]),
        "rig_thread_preempted_after_in_process_bare_client": len(paired) - len(left_alone),
        "rig_overhead_over_in_process_bare_client_not_preempted": stats_ms([r.wall - i.wall for i, r in left_alone]),
        "rig_loop_idle_after_in_process_bare_client": stats_ms([r.idle_since(i) for i, r in paired]),
        "rig_overhead_over_in_process_bare_client_less_idle": stats_ms(
            [r.wall - i.wall - r.idle_since(i) for i, r in paired]
        ),
        "rig_overhead_over_bare_client": stats_ms([s.rig.wall - bare[s.event_id] for s in seen]),
        "second_bare_client_over_first": stats_ms([second[i] - bare[i] for i in both]),
        **(wire.figures(samples, in_process) if wire is not None else {}),
    }
    for name in samples[0].extra if samples else []:
        out[name] = stats_ms([s.extra[name] for s in samples])
    return out


async def measure(
    dut: Dut, runs: list[tuple[str, Callable[[Bench, int], Awaitable[list[Sample]]], int]], *, split: bool
) -> tuple[dict[str, Any], dict[str, list[int]] | None]:
    """The figures of each run, and the cores the virtual Pi and the rig had (None: shared)."""
    bare_clients = BareObservers(dut.url, 1, ["state:player"])
    second_bare_clients = BareObservers(dut.url, 1, ["state:player"])
    # The bare clients in processes of their own go with the virtual Pi: they are not the rig.
    cores = split_cores() if split else None
    timeline = Timeline("stimulus-latency")
    validator = ContractValidator(dut.bench.firmware.contract)
    observer = WebSocketTestClient(dut.url, validator, timeline=timeline, name="rig", default_timeout=5.0)
    in_process = InProcessBare(["state:player"])
    capture = _capture(dut.url)
    results: dict[str, list[Sample]] = {}
    try:
        await in_process.connect(dut.url)
        await observer.connect()
        ports = in_process.local_port, observer.local_port
        async with httpx.AsyncClient(base_url=dut.url, timeout=10.0) as http:
            bench = Bench(dut, http, observer, timeline)
            for name, run, count in runs:
                if count:
                    started = time.monotonic()
                    results[name] = await run(bench, count)
                    log.warning("%s: %d stimuli in %.1f s", name, count, time.monotonic() - started)
    finally:
        await observer.disconnect()
        await in_process.disconnect()
        if capture is not None:
            capture.stop()
    wire = None
    if capture is not None:
        try:
            wire = Wire.of(capture, *ports)
        finally:
            capture.close()
    bare = {record[3]: record[4] for record in bare_clients.records()}
    second = {record[3]: record[4] for record in second_bare_clients.records()}
    if problems := [finding.message for finding in observer.findings()]:
        raise RuntimeError(f"the firmware broke its contract during the benchmark: {problems[:3]}")
    return {
        name: {"stimuli": len(samples), **figures(samples, bare, second, in_process.arrived, wire)}
        for name, samples in results.items()
    }, cores


def _capture(url: str) -> LoopbackCapture | None:
    """The loopback capture that times each broadcast's arrival at each socket, if this machine
    can capture; without it the figures from each client's own socket are left out."""
    try:
        return LoopbackCapture(urlsplit(url).port or 80)
    except CaptureUnavailable as exc:
        log.warning("no arrival times at the sockets: %s", exc)
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presses", type=int, default=200)
    parser.add_argument("--taps", type=int, default=200)
    parser.add_argument("--spoken", type=int, default=16, help="about 2 s each: 200 would take 7 minutes")
    parser.add_argument(
        "--shared-cores",
        action="store_true",
        help="leave the virtual Pi and the rig on the same cores (by default each gets its own, as on the bench)",
    )
    args = parser.parse_args()
    setup_logging()
    with tempfile.TemporaryDirectory(prefix="rig-latency-") as folder:
        dut = local_dut(Path(folder) / "pi")
        try:
            runs = [("press", presses, args.presses), ("tap", taps, args.taps), ("spoken", spoken, args.spoken)]
            with asyncio.Runner(loop_factory=idle_clock_loop) as runner:
                measured, cores = runner.run(measure(dut, runs, split=not args.shared_cores))
        finally:
            dut.stop()

    def p99(kind: str, figure: str) -> float | None:
        return measured.get(kind, {}).get(figure, {}).get("p99_ms")

    same, own_socket = (
        "rig_overhead_over_in_process_bare_client",
        "rig_overhead_over_in_process_bare_client_from_own_socket",
    )
    report(
        "stimulus_latency",
        {
            "virtual_pi_form": "local",
            "cores": cores or "shared",
            **measured,
            "targets": {
                "rig_overhead_p99_ms <= 1 (press, over a bare client in the same process)": p99("press", same),
                "rig_overhead_p99_ms <= 1 (tap, same)": p99("tap", same),
                "rig_overhead_p99_ms <= 1 (press, same, each timed from its own socket)": p99("press", own_socket),
                "rig_overhead_p99_ms <= 1 (tap, same, each timed from its own socket)": p99("tap", own_socket),
                **{
                    f"rig_overhead_p99_ms <= 1 ({kind}, same, less the time the rig's loop waited for its copy)": p99(
                        kind, "rig_overhead_over_in_process_bare_client_less_idle"
                    )
                    for kind in ("press", "tap", "spoken")
                },
                **{
                    f"rig_thread_cpu_p99_ms <= 1 ({kind}, what the rig's thread ran after the same)": p99(
                        kind, "rig_thread_cpu_after_in_process_bare_client"
                    )
                    for kind in ("press", "tap", "spoken")
                },
                "rig_overhead_p99_ms, press, over a bare client in another process": p99(
                    "press", "rig_overhead_over_bare_client"
                ),
                "floor of that: second bare client over first, p99_ms": p99("press", "second_bare_client_over_first"),
                "press_to_broadcast_p99_ms <= 20": p99("press", "stimulus_to_rig"),
                "tap_to_event_p99_ms <= 300": p99("tap", "tap_to_nfc_association_state"),
            },
        },
    )


if __name__ == "__main__":
    main()
