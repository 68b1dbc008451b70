"""deploy/provision-pi.sh renders the Pi's systemd unit and sudo rule; both are checked with the
tools that will read them (systemd-analyze, visudo) where this machine has them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from rig import paths
from rig.deploy import systemd_service

from ..conftest import unavailable

SCRIPT = paths.PROJECT_ROOT / "deploy" / "provision-pi.sh"


def checker(tool: str) -> str:
    """The tool that reads the rendered file; the bootstrap installs it, so under CI it must be there."""
    found = shutil.which(tool)
    if found is None:
        unavailable(f"{tool} is not installed here (the bootstrap's APT_PACKAGES has it)")
    return found


def provision(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def rendered(tmp_path: Path) -> Path:
    root = tmp_path / "musicbox"
    python = root / "current" / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.symlink_to(shutil.which("python3") or "/usr/bin/python3")
    result = provision("--render", str(tmp_path / "out"), "--root", str(root), "--port", "8123", "--unit", "boxfw",
                        "--nfc", "tty:AMA0:pn532", "--speaker", "USB Audio", "--mic", "USB Audio")  # fmt: skip
    assert result.returncode == 0, result.stderr
    return tmp_path / "out"


def test_unit_runs_the_current_release_as_the_account(rendered: Path, tmp_path: Path) -> None:
    unit = (rendered / "boxfw.service").read_text()
    assert "@" not in unit.replace("@UNIT@", ""), "every placeholder is filled"
    assert f"ExecStart={tmp_path}/musicbox/current/.venv/bin/python -m musicbox" in unit
    assert f"WorkingDirectory={tmp_path}/musicbox/current" in unit
    assert "User=musicbox" in unit
    assert "Environment=MUSICBOX_PORT=8123" in unit
    assert "Environment=MUSICBOX_NFC_DEVICE=tty:AMA0:pn532" in unit
    assert "Environment=MUSICBOX_CONSOLE=/dev/serial0" in unit
    assert 'Environment="MUSICBOX_AUDIO_OUTPUT=USB Audio"' in unit
    assert 'Environment="MUSICBOX_AUDIO_INPUT=USB Audio"' in unit
    verify = subprocess.run(
        [checker("systemd-analyze"), "verify", str(rendered / "boxfw.service")],
        capture_output=True,
        text=True,
        check=False,
    )
    problems = [line for line in verify.stderr.splitlines() if "boxfw.service" in line]
    assert not problems, verify.stderr


def test_sudo_rule_allows_systemctl_on_the_one_unit_only(rendered: Path) -> None:
    rules = [line for line in (rendered / "rig-boxfw.sudoers").read_text().splitlines() if not line.startswith("#")]
    assert rules
    for rule in rules:
        user, hosts, command = rule.split(" ", 2)
        assert (user, hosts) == ("musicbox", "ALL=(root)")
        binary, verb, unit = command.removeprefix("NOPASSWD: ").split(" ")
        assert binary.endswith("/systemctl")
        assert verb in {"restart", "start", "stop", "status"}
        assert unit == "boxfw"
    # The restart the rig runs is one the rule allows.
    assert systemd_service("boxfw").restart == "sudo -n systemctl restart boxfw"
    check = subprocess.run(
        [checker("visudo"), "-cf", str(rendered / "rig-boxfw.sudoers")], capture_output=True, check=False
    )
    assert check.returncode == 0, check.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--user", "Bad Name"], "--user Bad Name is not a valid account name"),
        (["--port", "99999"], "--port 99999 is not a TCP port"),
        (["--root", "relative/path"], "--root relative/path must be an absolute path"),
        (["--unit", "a;b"], "--unit a;b is not a valid unit name"),
        (["--speaker", 'USB"; rm -rf /'], "audio device name 'USB\"; rm -rf /' has characters a unit file cannot hold"),
    ],
)
def test_bad_arguments_are_one_line_errors(args: list[str], message: str, tmp_path: Path) -> None:
    result = provision("--render", str(tmp_path), *args)
    assert result.returncode == 1
    assert result.stderr.strip() == f"provision-pi: {message}"
    assert not list(tmp_path.iterdir()), "nothing is written"


def test_provisioning_needs_a_key(tmp_path: Path) -> None:
    unknown = provision("--frobnicate")
    assert unknown.returncode == 2
    assert "unknown option --frobnicate" in unknown.stderr
    no_key = provision()
    assert no_key.returncode == 1
    if subprocess.run(["id", "-u"], capture_output=True, text=True, check=True).stdout.strip() == "0":
        assert no_key.stderr.strip() == "provision-pi: --key PUBKEY is required: the rig host's public key"
