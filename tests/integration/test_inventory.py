"""Many benches from one host (issue 7): pytest-xdist with one worker per bench of an inventory.
Two namespace virtual Pis boot side by side, the test files are spread over them, and the results
come back as one JUnit report, one summary and one HTML report."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from rig import paths
from rig.report import render_report

from .conftest import inner_pytest, require_root

SUITE = ["tests/hil/test_buttons.py", "tests/hil/test_console.py", "tests/hil/test_sync.py"]


def test_two_virtual_pis_share_the_suite_and_the_results_are_merged(tmp_path: Path) -> None:
    require_root()
    artifacts, junit = tmp_path / "artifacts", tmp_path / "junit.xml"
    done = inner_pytest(
        paths.PROJECT_ROOT, *SUITE, f"--inventory={paths.FIXTURES / 'benches' / 'inventory.sim.toml'}",
        f"--artifacts={artifacts}", f"--junitxml={junit}", ci=None, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    root = ET.parse(junit).getroot()
    cases = list(root.iter("testcase"))
    ran_on = {
        prop.attrib["value"] for case in cases for prop in case.iter("property") if prop.attrib["name"] == "bench"
    }
    assert ran_on == {"virtual-pi-a", "virtual-pi-b"}, "both benches ran tests"
    assert len(cases) == len({(c.attrib["classname"], c.attrib["name"]) for c in cases}), "each test once"
    suite = {p.attrib["name"]: p.attrib["value"] for p in root.find("testsuite").find("properties")}  # type: ignore[union-attr]
    assert suite["benches"] == "virtual-pi-a, virtual-pi-b"
    assert suite["device_failures"] == "0"
    for name in ("virtual-pi-a", "virtual-pi-b"):  # each bench's own suite properties, from its worker
        assert suite[f"{name}.firmware_version"] == (paths.FIRMWARE_DIR / "VERSION").read_text().strip()
        assert suite[f"{name}.dut_mode"] == "sim"
        assert suite[f"{name}.bench_check"] == "ok"
    assert "HIL rig summary: 2 benches" in done.stdout
    assert done.stdout.count("check     ok") == 2, "each bench checked"
    for name in ("virtual-pi-a", "virtual-pi-b"):
        assert (artifacts / name / "summary.json").exists()
    page = render_report(artifacts).read_text()
    assert page.count("<h2>Summary: virtual-pi-") == 2
