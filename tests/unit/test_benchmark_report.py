"""A benchmark's results file says which command measured it: runs with other arguments share it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from benchmarks import common


def test_the_record_keeps_the_command_and_its_arguments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    monkeypatch.setattr(sys, "argv", ["stimulus_latency.py", "--presses", "0", "--spoken", "0"])
    common.report("stimulus_latency", {"tap": {"stimuli": 200}})
    kept = json.loads((tmp_path / "stimulus_latency.json").read_text())
    assert kept["command"] == "python -m benchmarks.stimulus_latency --presses 0 --spoken 0"
    assert kept["tap"] == {"stimuli": 200}
    assert json.loads(capsys.readouterr().out) == kept
