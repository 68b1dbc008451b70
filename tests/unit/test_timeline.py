"""Timeline: one monotonic clock, readable tails, JSONL artifacts, latency and percentiles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rig.timeline import Timeline, percentile, summarize


def test_entries_are_ordered_on_one_clock() -> None:
    line = Timeline("t")
    first = line.record("stimulus", "gpio", "press", note="next")
    second = line.record("event", "ws0", "state:player", seq=4)
    assert second.mono_ns >= first.mono_ns
    assert second.t >= first.t >= 0
    assert Timeline.latency_ms(first, second) >= 0


def test_tail_shows_the_last_entries_readably() -> None:
    line = Timeline("t")
    for i in range(20):
        line.record("event", "ws0", "state:track_position", seq=i, data={"big": "x" * 100})
    tail = line.describe_tail(3)
    assert tail.count("\n") == 2
    assert "seq=19" in tail
    assert "seq=16" not in tail
    assert "xxxx" not in tail, "payloads stay in the JSONL, not in the one-line view"


def test_empty_tail_says_so() -> None:
    assert "empty" in Timeline("t").describe_tail()


def test_jsonl_round_trip(tmp_path: Path) -> None:
    line = Timeline("t")
    line.record("http", "http", "POST /api/player/toggle", body='{"a": 1}')
    line.measure("latency", 12.5, "ms", limit=300)
    path = tmp_path / "deep" / "timeline.jsonl"
    line.write_jsonl(path)
    rows = [json.loads(r) for r in path.read_text().splitlines()]
    assert [r["kind"] for r in rows] == ["http", "note"]
    assert rows[1]["detail"]["note"] == "12.500 ms (limit 300 ms)"
    assert line.measurements[0].value == 12.5


def test_percentiles() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 95) == 95
    assert percentile([3.0], 99) == 3.0
    assert summarize([1.0, 2.0, 3.0])["p50"] == 2.0
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


def test_repeated_measurements_get_percentiles_for_the_report() -> None:
    line = Timeline("t")
    for value in (1.0, 2.0, 9.0):
        line.measure("tap_to_state_player", value, "ms")
    line.measure("once", 5.0, "ms")
    assert line.repeated_measurements() == [("tap_to_state_player", [1.0, 2.0, 9.0], "ms")]
    stats = summarize([float(v) for v in range(1, 101)])
    assert (stats["p50"], stats["p95"], stats["p99"]) == (50.5, 95.0, 99.0)
