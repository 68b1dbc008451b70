"""The HIL suite against firmware that breaks its contract: it ends within its timeouts and each
failure names the defect (DESIGN.md, "What real firmware does, and the rig must survive")."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from rig import paths

FAULTS = ("duplicate_events", "seq_backwards", "drop:state:playlist_created", "error_in:state:player")


def failure_messages(junit: Path) -> dict[str, str]:
    messages = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        for failure in [*case.iter("failure"), *case.iter("error")]:
            messages[case.get("name", "?")] = (failure.get("message") or "") + "\n" + (failure.text or "")
    return messages


def test_suite_reports_each_defect_of_a_broken_firmware(virtual_pi_factory, tmp_path: Path) -> None:
    broken = virtual_pi_factory("broken", faults=FAULTS)
    url = broken.info().url  # type: ignore[union-attr]
    junit = tmp_path / "junit.xml"
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", str(paths.PROJECT_ROOT / "tests" / "hil"), "--attach", url,
         "-p", "no:cacheprovider", "-q", f"--junitxml={junit}", f"--artifacts={tmp_path / 'artifacts'}"],
        capture_output=True, text=True, timeout=600, env=env, check=False,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert result.returncode == 1, f"expected test failures (1), got {result.returncode}:\n{result.stdout[-3000:]}"
    messages = failure_messages(junit)
    everything = "\n".join(messages.values())

    assert "firmware replayed" in everything
    assert "×2" in everything, "repeats are counted"
    assert "server_seq went backwards:" in everything
    backwards = next(line for line in everything.splitlines() if "server_seq went backwards:" in line)
    assert backwards.count("server_seq=") == 2, f"both values are named: {backwards}"
    created = messages["test_create_broadcasts_created_then_collection"]
    assert "Event 'state:playlist_created'" in created
    assert "not received within" in created
    assert "Arrived instead" in created
    assert "state:playlists" in created, "what came instead is listed"
    assert "state:player carries an error dict instead of state at $.data.error" in everything
    assert "HIL rig summary" in result.stdout
    assert "contract" in result.stdout
    print(f"suite against the broken firmware: {len(messages)} failures in {elapsed:.1f} s")
