"""A bench file's Pi (kind = "pi") in a pytest run: with an [ssh] section the session opens one SSH
connection, pinned by the bench's known_hosts, and offers the journal. A virtual Pi in the SSH form
stands in for the Pi; what it cannot stand in for is systemd, so the unit's journal stays empty."""

from __future__ import annotations

from pathlib import Path

import pytest

from rig.virtual_pi import VirtualPi

BENCH = """
[bench]
name = "bench-under-test"
kind = "pi"

[dut]
url = "{url}"
boot_timeout_s = 10

[ssh]
host = "{host}"
port = {port}
user = "{user}"
key_file = "{key}"
known_hosts = "{known_hosts}"
"""

USES_SSH = """
import pytest

@pytest.mark.needs("journal")
def test_the_bench_session(dut):
    assert dut.mode == "bench"
    assert dut.ssh.run("echo on the pi").stdout == "on the pi\\n"
    assert dut.service.follow.startswith("since=")  # journalctl -f -o json, as on a Pi
"""


def bench_file(folder: Path, virtual_pi: VirtualPi, known_hosts: str) -> Path:
    info = virtual_pi.info()
    assert info is not None
    path = folder / "bench.toml"
    path.write_text(
        BENCH.format(
            url=info.url, host=info.ssh_host, port=info.ssh_port, user=info.ssh_user, key=info.ssh_key,
            known_hosts=known_hosts,
        )
    )  # fmt: skip
    return path


def run(pytester: pytest.Pytester, bench: Path) -> pytest.RunResult:
    """The inner run is a technician's, not CI's: a bench error skips there rather than fails."""
    pytester.makepyfile(USES_SSH)
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("CI", raising=False)
        return pytester.runpytest_subprocess(
            "-p", "no:cacheprovider", "-rs", f"--bench={bench}", f"--artifacts={pytester.path / 'artifacts'}",
            timeout=120,
        )  # fmt: skip


def test_bench_pi_session_over_ssh(pytester: pytest.Pytester, deployed_pi: VirtualPi) -> None:
    info = deployed_pi.info()
    assert info is not None
    result = run(pytester, bench_file(pytester.path, deployed_pi, info.known_hosts))
    result.assert_outcomes(passed=1)
    assert (pytester.path / "artifacts" / "journal.log").exists(), "the follower started"


def test_bench_pi_with_an_unknown_host_key_is_a_bench_error(pytester: pytest.Pytester, deployed_pi: VirtualPi) -> None:
    empty = pytester.path / "known_hosts"
    empty.write_text("")
    bench = bench_file(pytester.path, deployed_pi, str(empty))
    result = run(pytester, bench)
    result.assert_outcomes(skipped=1)
    expected = f"*bench error: ssh: refusing *its host key is not in {empty}*"
    result.stdout.fnmatch_lines([f"{expected}rig enroll --bench {bench}*"])
