"""Bad input gets one clear line and leaves nothing behind: bench files given to pytest, contract
paths, and the firmware's own environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rig import paths


def run_pytest(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", str(paths.PROJECT_ROOT / "tests" / "hil"), "-p", "no:cacheprovider", *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_pytest_with_a_bad_bench_file_stops_once(tmp_path: Path) -> None:
    bench = tmp_path / "rig.toml"
    bench.write_text('[bench]\nname = "b"\nkind = "pi"\n')
    result = run_pytest("--bench", str(bench), f"--artifacts={tmp_path / 'a'}")
    assert result.returncode == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("ERROR")]
    assert errors == [f'ERROR: {bench}: [dut] url: required for kind = "pi" (the firmware\'s base URL)']
    assert not (tmp_path / "a").exists()


def test_pytest_with_a_missing_contract(tmp_path: Path) -> None:
    result = run_pytest("--contract", str(tmp_path / "none.json"))
    assert result.returncode == pytest.ExitCode.USAGE_ERROR
    assert f"ERROR: Contract file not found: {tmp_path / 'none.json'}" in result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("MUSICBOX_FAULTS", "explode", "MUSICBOX_FAULTS: unknown fault 'explode'; known: duplicate_events"),
        ("MUSICBOX_PORT", "eighty", "MUSICBOX_PORT='eighty': expected an integer"),
        ("MUSICBOX_POSITION_INTERVAL_MS", "5", "MUSICBOX_POSITION_INTERVAL_MS=5: expected 100..10000"),
        ("MUSICBOX_LOG_LEVEL", "LOUD", "MUSICBOX_LOG_LEVEL='LOUD': expected DEBUG, INFO, WARNING or ERROR"),
    ],
)
def test_firmware_rejects_bad_configuration(tmp_path: Path, variable: str, value: str, message: str) -> None:
    env = {**os.environ, "MUSICBOX_DATA_DIR": str(tmp_path), variable: value}
    result = subprocess.run(
        [sys.executable, "-m", "musicbox"], cwd=paths.FIRMWARE_DIR, env=env,
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("musicbox: bad configuration: ")
    assert message in result.stderr
