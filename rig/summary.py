"""The one-screen summary at the end of a HIL run, and its JSON twin in the artifacts."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .timeline import summarize

if TYPE_CHECKING:
    from .pytest_plugin import RigSession


MAX_KINDS = 6  # the summary must fit one screen even when the firmware is badly broken


@dataclass(frozen=True)
class Summary:
    lines: list[str]
    data: dict[str, Any]


def _reason(report: Any) -> str:
    longrepr = getattr(report, "longrepr", None)
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])  # a skip: (file, line, "Skipped: reason")
    return str(getattr(report, "longreprtext", "") or "")


def is_bench_error(report: Any) -> bool:
    """A test that did not run, or failed, because the bench was broken (not the firmware)."""
    return "bench error" in _reason(report).split("\n", 1)[0]


def count_outcomes(rig: RigSession) -> dict[str, int]:
    """Tests by outcome (from the plugin's per-test results, so an xdist worker can count too),
    with bench errors counted apart from device failures and plain skips."""
    counts = {"passed": 0, "failed": 0, "skipped": 0, "error": 0, "bench_errors": 0}
    for result in rig.results:
        outcome = result["outcome"]
        counts["bench_errors" if outcome == "bench_error" else outcome] += 1
    counts["retried"] = len(rig.retried)
    counts["flaky"] = len(rig.flaky)
    return counts


def render_summary(rig: RigSession, wall_s: float) -> Summary:
    counts = count_outcomes(rig)
    dut = rig.dut
    lines = []
    if dut is not None:
        boot = f", booted in {dut.boot_s:.2f} s" if dut.boot_s is not None else ""
        lines.append(f"bench     {dut.bench.name} ({dut.mode}) at {dut.url}{boot}")
        if rig.place is not None:
            lines.append(f"lab       labgrid place {rig.place.name} at {rig.place.coordinator}, released at the end")
        lines.append(f"firmware  version {dut.firmware_version}")
        if dut.deployed is not None:
            lines.append(f"deploy    over SSH: {dut.deployed.line()}")
    if rig.check is not None:
        parts = ", ".join(
            f"{p.part} {p.figure or p.status}" if p.ok else f"{p.part} {p.status}" for p in rig.check.parts
        )
        verdict = "ok" if rig.check.ok else "BENCH ERROR"
        lines.append(f"check     {verdict} in {rig.check.seconds:.2f} s: {parts}")
        lines += [f"BENCH ERROR  {p.part}: {p.detail}" for p in rig.check.failed]
    if rig.reconnects:
        lines.append(f"ssh       reconnected {len(rig.reconnects)} time(s) during the run; last: {rig.reconnects[-1]}")
    if rig.bench_error and (rig.check is None or rig.check.ok):
        lines.append(f"BENCH ERROR  {rig.bench_error}")
    flaky = f", {counts['retried']} retried after a bench error ({counts['flaky']} flaky)" if counts["retried"] else ""
    lines.append(
        f"tests     {counts['passed']} passed, {counts['failed']} failed, {counts['bench_errors']} bench errors, "
        f"{counts['skipped']} skipped, {counts['error']} errors{flaky} in {wall_s:.1f} s"
    )
    by_name: dict[str, list[float]] = defaultdict(list)
    units: dict[str, str] = {}
    limits: dict[str, float | None] = {}
    for _, measurement in rig.measurements:
        by_name[measurement.name].append(measurement.value)
        units[measurement.name] = measurement.unit
        limits[measurement.name] = measurement.limit
    figures = {}
    for name, values in sorted(by_name.items()):
        stats_ = summarize(values)
        figures[name] = {**stats_, "unit": units[name], "limit": limits[name]}
        limit = "" if limits[name] is None else f" (limit {limits[name]:g} {units[name]})"
        lines.append(
            f"measured  {name}: p50 {stats_['p50']:.1f} {units[name]}, p95 {stats_['p95']:.1f}, "
            f"p99 {stats_['p99']:.1f}, max {stats_['max']:.1f} over {stats_['n']:g}{limit}"
        )
    kinds: dict[str, dict[str, int]] = defaultdict(lambda: {"tests": 0, "seen": 0})
    for findings in rig.findings.values():
        for kind in {f.kind for f in findings}:
            kinds[kind]["tests"] += 1
        for finding in findings:
            kinds[finding.kind]["seen"] += 1
    ranked = sorted(kinds.items(), key=lambda kv: (-kv[1]["tests"], kv[0]))
    for kind, count in ranked[:MAX_KINDS]:
        lines.append(f"contract  {kind}: in {count['tests']} test(s), {count['seen']} finding(s)")
    if len(ranked) > MAX_KINDS:
        lines.append(f"contract  ... and {len(ranked) - MAX_KINDS} more kinds of defect (see summary.json)")
    lines.append(f"artifacts {rig.artifacts}")
    data = {
        "bench": dut.bench.name if dut else None,
        "mode": dut.mode if dut else None,
        "url": dut.url if dut else None,
        "firmware_version": dut.firmware_version if dut else None,
        "deploy": dut.deployed.line() if dut and dut.deployed else None,
        "lg_place": rig.place.name if rig.place else None,
        "bench_error": rig.bench_error,
        "bench_check": rig.check.as_dict() if rig.check else None,
        "flaky_tests": rig.flaky,
        "ssh_reconnects": rig.reconnects,
        "counts": counts,
        "wall_s": round(wall_s, 3),
        "figures": figures,
        "contract_defects": dict(ranked),
        "contract_findings": {nodeid: [f.message for f in fs] for nodeid, fs in rig.findings.items()},
        "measurements": [
            {"test": nodeid, "name": m.name, "value": m.value, "unit": m.unit, "limit": m.limit}
            for nodeid, m in rig.measurements
        ],
    }
    return Summary(lines, data)
