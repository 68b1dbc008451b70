"""``rig report ARTIFACTS``: one self-contained HTML page from a run's artifacts.

A technician opens it from a CI job's artifacts or mails it: so every image is inlined, and the
page needs nothing else. It shows the summary and the bench check, each failure with the console
and journal lines around it, latency histograms, spectrograms of the recorded audio, and every
test's timeline. It reads only files the plugin wrote (summary.json, tests.json, timelines,
journal.log, WAVs), so it works on artifacts copied from another machine, and on merged ones.
"""

from __future__ import annotations

import base64
import html
import json
import logging
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from . import spectrogram

log = logging.getLogger(__name__)

MAX_TIMELINE_ROWS = 200  # per test: the flood test's timeline has thousands of requests
MAX_SPECTROGRAMS = 24
MAX_HISTOGRAMS = 16
JOURNAL_MARGIN_S = 2.0
OUTCOME_ORDER = ("failed", "error", "bench_error", "skipped", "passed")

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0} td,th{border:1px solid #ddd;padding:2px 8px;text-align:left}
pre{background:#f6f6f6;padding:.6em;overflow-x:auto;font-size:12px;white-space:pre-wrap}
.passed{color:#17702b}.failed,.error{color:#b00020;font-weight:bold}.bench_error{color:#b35c00;font-weight:bold}
.skipped{color:#666} details{margin:.3em 0} summary{cursor:pointer}
.counts span{margin-right:1.2em;font-size:16px} img{max-width:100%;border:1px solid #eee}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(420px,1fr));gap:1em}
"""


class ReportError(RuntimeError):
    """The folder is not a run's artifacts; one line for the CLI."""


def _e(value: object) -> str:
    return html.escape(str(value))


def _png(path: Path) -> str:
    return f'<img alt="{_e(path.name)}" src="data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}">'


def _read_json(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return default
    except (OSError, ValueError) as exc:
        raise ReportError(f"{path}: unreadable ({exc})") from None


def _runs(artifacts: Path) -> list[Path]:
    """The run folders: the artifacts themselves, or one per bench when several ran (xdist)."""
    if (artifacts / "summary.json").exists():
        return [artifacts]
    runs = sorted(p.parent for p in artifacts.glob("*/summary.json"))
    if not runs:
        raise ReportError(f"{artifacts}: no summary.json here or one level down; is it a run's --artifacts folder?")
    return runs


def render_report(artifacts: Path, out: Path | None = None) -> Path:
    """Write the report (``ARTIFACTS/report.html`` by default) and return its path."""
    artifacts = artifacts.resolve()
    if not artifacts.is_dir():
        raise ReportError(f"{artifacts}: no such folder")
    runs = _runs(artifacts)
    images = artifacts / "report-images"
    images.mkdir(exist_ok=True)
    body = [f"<h1>HIL rig report</h1><p>{_e(artifacts)}</p>"]
    all_measurements: list[dict[str, Any]] = []
    wavs: list[tuple[bool, Path]] = []
    for run in runs:
        summary = _read_json(run / "summary.json", {})
        results = _read_json(run / "tests.json", [])
        body += _summary_section(run, summary, results, multiple=len(runs) > 1)
        body += _failures_section(run, results)
        all_measurements += summary.get("measurements", [])
        failed_dirs = {r["dir"] for r in results if r["outcome"] in ("failed", "error")}
        wavs += [
            (wav.parent.parent.relative_to(run).as_posix() in failed_dirs, wav)
            for wav in run.glob("tests/*/audio/*.wav")
        ]
    body += _histograms_section(all_measurements, images)
    body += _spectrograms_section(wavs)
    for run in runs:
        body += _timelines_section(run, _read_json(run / "tests.json", []))
    target = out or artifacts / "report.html"
    head = f'<head><meta charset="utf-8"><title>HIL rig report</title><style>{STYLE}</style></head>'
    page = f"<!doctype html><html>{head}<body>{''.join(body)}</body></html>"
    target.write_text(page, encoding="utf-8")
    return target


def _summary_section(run: Path, summary: dict[str, Any], results: list[dict[str, Any]], *, multiple: bool) -> list[str]:
    title = f"Summary: {summary.get('bench') or run.name}" if multiple else "Summary"
    counts = defaultdict(int)
    for result in results:
        counts[result["outcome"]] += 1
    parts = [
        f"<h2>{_e(title)}</h2>",
        "<table>",
        *(
            f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>"
            for k, v in (
                ("bench", summary.get("bench")),
                ("mode", summary.get("mode")),
                ("firmware", summary.get("firmware_version")),
                ("deploy", summary.get("deploy")),
                ("wall time", f"{summary.get('wall_s', 0):.1f} s"),
            )
            if v
        ),
        "</table>",
        '<p class="counts">'
        + "".join(f'<span class="{o}">{counts[o]} {o.replace("_", " ")}</span>' for o in OUTCOME_ORDER)
        + "</p>",
    ]
    check = summary.get("bench_check")
    if check:
        parts.append("<h3>Bench check</h3><table><tr><th>part</th><th>result</th><th>figure</th><th>detail</th></tr>")
        for part in check["parts"]:
            status = {True: ("passed", "ok"), False: ("bench_error", "FAIL"), None: ("skipped", "n/a")}[part["ok"]]
            figure = "" if part["value"] is None else f"{part['value']:.1f} {part['unit']}"
            parts.append(
                f'<tr><td>{_e(part["part"])}</td><td class="{status[0]}">{status[1]}</td>'
                f"<td>{_e(figure)}</td><td>{_e(part['detail'])}</td></tr>"
            )
        parts.append("</table>")
    figures = summary.get("figures") or {}
    if figures:
        parts.append(
            "<h3>Measurements</h3><table><tr><th>figure</th><th>n</th><th>p50</th><th>p95</th><th>p99</th><th>max</th><th>limit</th></tr>"
        )
        for name, f in figures.items():
            limit = "" if f.get("limit") is None else f"{f['limit']:g} {f['unit']}"
            parts.append(
                f"<tr><td>{_e(name)}</td><td>{f['n']:g}</td>"
                + "".join(f"<td>{f[k]:.1f} {_e(f['unit'])}</td>" for k in ("p50", "p95", "p99", "max"))
                + f"<td>{_e(limit)}</td></tr>"
            )
        parts.append("</table>")
    defects = summary.get("contract_defects") or {}
    if defects:
        parts.append("<h3>Contract defects</h3><ul>")
        parts += [
            f"<li>{_e(kind)}: in {c['tests']} test(s), {c['seen']} finding(s)</li>" for kind, c in defects.items()
        ]
        parts.append("</ul>")
    return parts


def _journal_around(run: Path, start: float | None, stop: float | None) -> list[str]:
    """The firmware journal's lines from just before a test started to just after it ended."""
    if start is None or stop is None:
        return []
    lines = []
    try:
        with (run / "journal.log").open(encoding="utf-8", errors="replace") as journal:
            for raw in journal:
                try:
                    entry = json.loads(raw)
                    ts = float(entry["ts"])
                except (ValueError, KeyError, TypeError):
                    continue
                if start - JOURNAL_MARGIN_S <= ts <= stop + JOURNAL_MARGIN_S:
                    where = f"{entry.get('level', '')} {entry.get('logger', '')}"
                    lines.append(f"{ts - start:+8.3f}s {where}: {entry.get('msg', '')}")
    except FileNotFoundError:
        return []
    return lines[-80:]


def _timeline(run: Path, result: dict[str, Any]) -> list[dict[str, Any]]:
    path = run / result["dir"] / "timeline.jsonl"
    try:
        with path.open(encoding="utf-8") as lines:
            return [json.loads(line) for line in lines if line.strip()]
    except (OSError, ValueError):
        return []


def _failures_section(run: Path, results: list[dict[str, Any]]) -> list[str]:
    failures = [r for r in results if r["outcome"] in ("failed", "error", "bench_error")]
    if not failures:
        return []
    parts = [f"<h2>Failures and bench errors ({len(failures)})</h2>"]
    for result in failures:
        outcome = result["outcome"]
        parts.append(f'<details open><summary class="{outcome}">{_e(result["nodeid"])} — {_e(outcome)}</summary>')
        parts.append(f"<pre>{_e(result['message'])}</pre>")
        for section in result.get("sections", []):
            parts.append(f"<p><b>{_e(section['title'])}</b></p><pre>{_e(section['text'])}</pre>")
        console = [e for e in _timeline(run, result) if e.get("kind") == "console"]
        if console:
            shown = "\n".join(f"+{e['t']:8.3f}s {e['name']}" for e in console[-60:])
            parts.append(f"<p><b>console during the test</b></p><pre>{_e(shown)}</pre>")
        journal = _journal_around(run, result.get("start"), result.get("stop"))
        if journal:
            title = f"firmware journal around the test (±{JOURNAL_MARGIN_S:g} s)"
            parts.append(f"<p><b>{title}</b></p><pre>{_e(chr(10).join(journal))}</pre>")
        parts.append("</details>")
    return parts


def _histograms_section(measurements: list[dict[str, Any]], images: Path) -> list[str]:
    by_name: dict[str, list[float]] = defaultdict(list)
    meta: dict[str, tuple[str, float | None]] = {}
    for m in measurements:
        by_name[m["name"]].append(float(m["value"]))
        meta[m["name"]] = (m["unit"], m.get("limit"))
    if not by_name:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = ["<h2>Latency histograms</h2><div class='grid'>"]
    for name, values in sorted(by_name.items(), key=lambda kv: -len(kv[1]))[:MAX_HISTOGRAMS]:
        unit, limit = meta[name]
        figure, axes = plt.subplots(figsize=(6, 3), dpi=90)
        try:
            axes.hist(values, bins=min(30, max(5, len(values))), color="#3a6ea5")
            title = f"{name} (n={len(values)})"
            if limit is not None and limit <= 1.5 * max(values):
                axes.axvline(limit, color="#b00020", linestyle="--", label=f"limit {limit:g} {unit}")
                axes.legend()
            elif limit is not None:  # far above every value: drawing it would squash the histogram
                title += f", limit {limit:g} {unit} off the chart"
            axes.set(title=title, xlabel=unit, ylabel="count")
            target = images / f"hist-{''.join(c if c.isalnum() else '_' for c in name)}.png"
            figure.savefig(target, bbox_inches="tight")
        finally:
            plt.close(figure)
        parts.append(f"<div>{_png(target)}</div>")
    parts.append("</div>")
    return parts


def _spectrograms_section(wavs: Iterable[tuple[bool, Path]]) -> list[str]:
    """Failed tests' recordings first; the others while the budget lasts."""
    chosen = sorted(wavs, key=lambda fw: (not fw[0], str(fw[1])))
    if not chosen:
        return []
    parts = [f"<h2>Recorded audio ({len(chosen)} WAVs)</h2><div class='grid'>"]
    for failed, wav in chosen[:MAX_SPECTROGRAMS]:
        try:
            png = wav.with_suffix(".png")
            if not png.exists():
                png = spectrogram.render(wav)
        except (OSError, ValueError) as exc:
            parts.append(f"<div>{_e(wav.name)}: no spectrogram ({_e(exc)})</div>")
            continue
        mark = " (failed test)" if failed else ""
        parts.append(f"<div><p>{_e(wav.parent.parent.name)}{mark}</p>{_png(png)}</div>")
    parts.append("</div>")
    if len(chosen) > MAX_SPECTROGRAMS:
        parts.append(f"<p>... and {len(chosen) - MAX_SPECTROGRAMS} more WAVs in the artifacts.</p>")
    return parts


def _timelines_section(run: Path, results: list[dict[str, Any]]) -> list[str]:
    parts = [f"<h2>Tests and their timelines ({len(results)})</h2>"]
    ordered = sorted(results, key=lambda r: OUTCOME_ORDER.index(r["outcome"]) if r["outcome"] in OUTCOME_ORDER else 9)
    for result in ordered:
        entries = _timeline(run, result)
        opened = " open" if result["outcome"] in ("failed", "error") else ""
        parts.append(
            f'<details{opened}><summary><span class="{result["outcome"]}">{_e(result["outcome"])}</span> '
            f"{_e(result['nodeid'])} ({result['duration_s']:.2f} s, {len(entries)} timeline entries)</summary>"
        )
        if entries:
            shown = (
                entries
                if len(entries) <= MAX_TIMELINE_ROWS
                else [*entries[: MAX_TIMELINE_ROWS // 2], None, *entries[-MAX_TIMELINE_ROWS // 2 :]]
            )
            parts.append("<table><tr><th>t (s)</th><th>kind</th><th>source</th><th>what</th><th>detail</th></tr>")
            for entry in shown:
                if entry is None:
                    parts.append(
                        f"<tr><td colspan=5>... {len(entries) - MAX_TIMELINE_ROWS} entries left out ...</td></tr>"
                    )
                    continue
                detail = ", ".join(f"{k}={v}" for k, v in (entry.get("detail") or {}).items())[:300]
                parts.append(
                    f"<tr><td>{entry['t']:.3f}</td><td>{_e(entry['kind'])}</td><td>{_e(entry['source'])}</td>"
                    f"<td>{_e(entry['name'])}</td><td>{_e(detail)}</td></tr>"
                )
            parts.append("</table>")
        elif result["message"]:
            parts.append(f"<pre>{_e(result['message'])}</pre>")
        parts.append("</details>")
    return parts
