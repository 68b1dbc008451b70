"""The pytest plugin's rules, run in a throwaway pytest session (pytester) with a stand-in DUT."""

from __future__ import annotations

import pytest

FAKE_DUT = """
import pytest
from rig.bench import load_bench
from rig import paths
from rig.dut import Dut

@pytest.fixture(scope="session")
def dut():
    return Dut("{mode}", "http://127.0.0.1:9", load_bench(paths.SIM_BENCH), frozenset({{"http", "socketio"}}))
"""


def run(pytester: pytest.Pytester, mode: str, test: str, *, ci: bool) -> pytest.RunResult:
    pytester.makeconftest(FAKE_DUT.format(mode=mode))
    pytester.makepyfile(test)
    if ci:
        pytester._monkeypatch.setenv("CI", "true")
    else:
        pytester._monkeypatch.delenv("CI", raising=False)
    return pytester.runpytest(
        "-p", "no:cacheprovider", "-o", "asyncio_default_fixture_loop_scope=function", "-rs",
        f"--artifacts={pytester.path / 'artifacts'}",
    )  # fmt: skip


NEEDS_NFC = """
import pytest

@pytest.mark.needs("nfc")
def test_tap():
    pass
"""


def test_missing_capability_skips_outside_ci(pytester: pytest.Pytester) -> None:
    result = run(pytester, "sim", NEEDS_NFC, ci=False)
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*needs nfc: the virtual Pi does not provide it yet*"])


def test_missing_capability_fails_in_ci_on_a_virtual_pi(pytester: pytest.Pytester) -> None:
    result = run(pytester, "sim", NEEDS_NFC, ci=True)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*CI runs the full sim suite, but the virtual Pi needs nfc*"])


def test_missing_capability_skips_when_attached_even_in_ci(pytester: pytest.Pytester) -> None:
    result = run(pytester, "attach", NEEDS_NFC, ci=True)
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*needs nfc: --attach runs against a firmware the rig did not deploy or wire*"])


def test_http_5xx_is_reported_as_a_firmware_defect(pytester: pytest.Pytester) -> None:
    test = """
def test_status(timeline):
    timeline.record("http", "http", "GET /api/player/status →", status=500, ms=1.0)
"""
    result = run(pytester, "sim", test, ci=False)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*the firmware broke its contract during this test*", "*GET /api/player/status → answered HTTP 500*"]
    )
    result.stdout.fnmatch_lines(["*contract  HTTP 5xx (a firmware defect): in 1 test(s), 1 finding(s)*"])


def test_http_503_for_a_missing_device_is_not_a_defect(pytester: pytest.Pytester) -> None:
    test = """
def test_scan_without_reader(timeline):
    timeline.record("http", "http", "POST /api/nfc/scan →", status=503, ms=1.0)
"""
    result = run(pytester, "sim", test, ci=False)
    result.assert_outcomes(passed=1)
