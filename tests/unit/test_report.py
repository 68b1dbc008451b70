"""``rig report``: one self-contained HTML page from a run's artifacts, as the plugin writes them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from device_drivers.audio import analysis, write_wav
from rig.report import ReportError, render_report
from rig.timeline import Timeline

FAILED = "tests/hil/test_nfc.py::test_tap_plays"


def make_run(folder: Path) -> Path:
    """Artifacts of a run with one failure, one bench error, a pass, measurements and a recording."""
    folder.mkdir(parents=True)
    start = 1_800_000_000.0
    line = Timeline(FAILED)
    line.record("stimulus", "nfc", "tap red")
    line.record("console", "dut", "[ 1.0] musicbox: nfc: tag 04a1 arrived")
    line.record("event", "ws0", "state:player", seq=7)
    test_dir = folder / "tests" / "tests_hil_test_nfc.py_test_tap_plays"
    line.write_jsonl(test_dir / "timeline.jsonl")
    write_wav(test_dir / "audio" / "speaker-1.wav", analysis.sine(440.0, 0.5, 16000), 16000)
    where = str(test_dir.relative_to(folder))
    results = [
        {"nodeid": FAILED, "outcome": "failed", "duration_s": 1.2, "start": start, "stop": start + 1.2,
         "message": "AssertionError: no state:player within 3 s", "sections": [], "dir": where},
        {"nodeid": "tests/hil/test_audio.py::test_hears", "outcome": "bench_error", "duration_s": 0.0, "start": start,
         "stop": start, "message": "bench error: audio: no input device", "sections": [], "dir": "tests/none"},
        {"nodeid": "tests/hil/test_x.py::test_ok", "outcome": "passed", "duration_s": 0.1, "start": start,
         "stop": start, "message": "", "sections": [], "dir": "tests/none2"},
    ]  # fmt: skip
    (folder / "tests.json").write_text(json.dumps(results))
    measurements = [{"test": FAILED, "name": "tap_to_state_player", "value": v, "unit": "ms", "limit": 300.0}
                    for v in (12.0, 15.5, 40.0, 22.0)]  # fmt: skip
    summary = {
        "bench": "virtual-pi", "mode": "sim", "firmware_version": "0.1.0", "wall_s": 12.5,
        "figures": {"tap_to_state_player": {"n": 4, "p50": 18.7, "p95": 40.0, "p99": 40.0, "max": 40.0, "unit": "ms",
                                            "limit": 300.0}},
        "bench_check": {"ok": False, "seconds": 0.6, "parts": [
            {"part": "ssh", "ok": True, "detail": "pi@10.213.0.2:22, host key pinned", "value": 50.1, "unit": "ms"},
            {"part": "audio", "ok": False, "detail": "no input device", "value": None, "unit": ""}]},
        "measurements": measurements,
    }  # fmt: skip
    (folder / "summary.json").write_text(json.dumps(summary))
    journal = [{"ts": start + 0.5, "level": "INFO", "logger": "musicbox.nfc", "msg": "tag 04a1 arrived"},
               {"ts": start + 3600, "level": "INFO", "logger": "musicbox", "msg": "an hour later"}]  # fmt: skip
    (folder / "journal.log").write_text("".join(json.dumps(j) + "\n" for j in journal))
    return folder


def test_the_report_is_one_page_with_summary_failures_plots_and_timelines(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run")
    page = render_report(run).read_text()
    assert "<h2>Summary</h2>" in page
    assert "1 failed" in page
    assert "1 bench error" in page
    assert "pi@10.213.0.2:22, host key pinned" in page, "the bench check table"
    assert "AssertionError: no state:player within 3 s" in page
    assert "musicbox: nfc: tag 04a1 arrived" in page, "the console during the failed test"
    assert "musicbox.nfc: tag 04a1 arrived" in page, "the journal around the failure"
    assert "an hour later" not in page, "only the journal lines around the failure"
    assert "tap red" in page, "the failed test's timeline"
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 2, "one latency histogram and one spectrogram, inlined"
    assert all(len(image) > 1000 for image in images)
    assert 'src="http' not in page, "self-contained: nothing fetched"


def test_runs_of_several_benches_are_merged(tmp_path: Path) -> None:
    make_run(tmp_path / "merged" / "bench-a")
    make_run(tmp_path / "merged" / "bench-b")
    page = render_report(tmp_path / "merged").read_text()
    assert page.count("<h2>Summary: virtual-pi</h2>") == 2


def test_a_folder_that_is_no_run_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match=r"no summary\.json here or one level down"):
        render_report(tmp_path)
