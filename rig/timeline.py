"""One monotonic clock for everything a test did and saw.

Latency is the difference between two entries, so stimuli (HTTP calls, later button presses
and tag taps) and observations (events) are stamped by the same clock, in the same process.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Entry:
    mono_ns: int
    t: float  # seconds since the timeline started
    kind: str  # "http", "event", "stimulus", "journal", "note"
    source: str  # which client or driver
    name: str
    detail: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        summary = " ".join(f"{k}={v}" for k, v in self.detail.items() if k in _SUMMARY_KEYS)
        return f"+{self.t:8.3f}s {self.kind:<8} {self.source:<6} {self.name} {summary}".rstrip()


_SUMMARY_KEYS = ("seq", "status", "ms", "note", "repeat", "event_id", "level")


@dataclass(frozen=True)
class Measurement:
    name: str
    value: float
    unit: str
    limit: float | None = None

    def text(self) -> str:
        limit = "" if self.limit is None else f" (limit {self.limit:g} {self.unit})"
        return f"{self.value:.3f} {self.unit}{limit}"


class Timeline:
    def __init__(self, name: str) -> None:
        self.name = name
        self.start_ns = time.monotonic_ns()
        self.entries: list[Entry] = []
        self.measurements: list[Measurement] = []

    def record(self, kind: str, source: str, name: str, **detail: Any) -> Entry:
        now = time.monotonic_ns()
        entry = Entry(now, (now - self.start_ns) / 1e9, kind, source, name, detail)
        self.entries.append(entry)
        return entry

    def tail(self, count: int = 12, *, kinds: tuple[str, ...] | None = None) -> list[Entry]:
        chosen = [e for e in self.entries if kinds is None or e.kind in kinds]
        return chosen[-count:]

    def describe_tail(self, count: int = 12) -> str:
        tail = self.tail(count)
        if not tail:
            return "  (the timeline is empty: nothing was sent or received)"
        return "\n".join("  " + e.line() for e in tail)

    @staticmethod
    def latency_ms(stimulus: Entry, observation: Entry) -> float:
        return (observation.mono_ns - stimulus.mono_ns) / 1e6

    def measure(self, name: str, value: float, unit: str, limit: float | None = None) -> Measurement:
        measurement = Measurement(name, value, unit, limit)
        self.measurements.append(measurement)
        self.record("note", "rig", f"measured {name}", note=measurement.text())
        return measurement

    def repeated_measurements(self) -> list[tuple[str, list[float], str]]:
        """(name, values, unit) of each measurement taken more than once, for its percentiles."""
        by_name: dict[str, list[Measurement]] = {}
        for measurement in self.measurements:
            by_name.setdefault(measurement.name, []).append(measurement)
        return [(name, [m.value for m in taken], taken[0].unit) for name, taken in by_name.items() if len(taken) > 1]

    def write_jsonl(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as out:
            for entry in self.entries:
                out.write(json.dumps(asdict(entry), default=str) + "\n")


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile, which stays meaningful for the small samples a test run yields."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(pct / 100 * len(ordered))))
    return ordered[rank - 1]


def summarize(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": statistics.median(values),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": max(values),
    }
