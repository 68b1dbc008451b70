"""`rig deploy` to a virtual Pi with its own sshd: only changes are sent, releases switch atomically,
a broken upload or an unhealthy release leaves the Pi recoverable, and rollback works."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from rig import paths
from rig.deploy import Deployer, DeployError
from rig.manifest import MANIFEST_NAME, build_manifest
from rig.ssh import CommandResult, SshError, SshSession
from rig.virtual_pi import SimSettings, VirtualPi

from .conftest import pid_alive, run_rig


@pytest.fixture
def firmware(tmp_path: Path) -> Path:
    """A private copy of the reference firmware that a test may edit."""
    return Path(
        shutil.copytree(paths.FIRMWARE_DIR, tmp_path / "firmware", ignore=shutil.ignore_patterns("__pycache__"))
    )


@pytest.fixture
def ssh_pi(tmp_path: Path):
    virtual_pi = VirtualPi(tmp_path / "pi", SimSettings(form="ssh"))
    virtual_pi.up()
    yield virtual_pi
    virtual_pi.down()


def test_deploy_cycle_through_the_cli(tmp_path: Path, firmware: Path) -> None:
    state = str(tmp_path / "sim")
    up = run_rig("sim", "up", "--json", "--state-dir", state)
    assert up.returncode == 0, up.stderr
    info = json.loads(up.stdout)
    try:
        assert info["form"] == ("netns" if os.geteuid() == 0 else "ssh"), "the namespace form is the default as root"
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{info['url']}/api/health")  # nothing runs until a deploy puts it there

        plan = run_rig("deploy", "--plan", "--firmware", str(firmware), "--state-dir", state)
        assert plan.returncode == 0, plan.stderr
        files = len(build_manifest(firmware).files)
        assert (
            plan.stdout.strip().splitlines()[-1]
            == f"plan: {files} to add, 0 to change, 0 to remove, 0 unchanged; nothing sent"
        )
        nothing = run_rig("ssh", "--state-dir", state, "--", f"test -e {info['deploy_root']}/current")
        assert nothing.returncode == 1, "--plan sends nothing"

        first = run_rig("deploy", "--firmware", str(firmware), "--state-dir", state, timeout=600)
        assert first.returncode == 0, first.stderr
        assert first.stdout.startswith("deployed release ")
        assert first.stdout.rstrip().endswith(f"; healthy at {info['url']}")
        assert f": {files} files (" in first.stdout
        assert httpx.get(f"{info['url']}/api/health").json()["data"]["status"] == "healthy"

        again = run_rig("deploy", "--firmware", str(firmware), "--state-dir", state)
        assert again.stdout.startswith("nothing to deploy: release ")
        assert ": 0 files (0 bytes) sent, 0 removed" in again.stdout

        original = build_manifest(firmware).files["musicbox/__main__.py"].sha256
        (firmware / "musicbox" / "__main__.py").write_text(
            (firmware / "musicbox" / "__main__.py").read_text() + "\n# edited\n"
        )
        (firmware / "NOTES.txt").write_text("bench notes\n")
        changed = run_rig("deploy", "--firmware", str(firmware), "--state-dir", state)
        assert ": 2 files (" in changed.stdout, changed.stdout + changed.stderr
        first_release = first.stdout.split()[2].rstrip(":")
        kept = f"{info['deploy_root']}/releases/{first_release}/musicbox/__main__.py"
        assert run_rig("ssh", "--state-dir", state, "--", f"sha256sum {kept}").stdout.split()[0] == original, (
            "the new release replaced its hard link of the file; it did not write through into the old release"
        )
        (firmware / "NOTES.txt").unlink()
        removed = run_rig("deploy", "--firmware", str(firmware), "--state-dir", state)
        assert ": 0 files (0 bytes) sent, 1 removed" in removed.stdout
        on_pi = run_rig("ssh", "--state-dir", state, "--", f"ls {info['deploy_root']}/current/")
        assert "NOTES.txt" not in on_pi.stdout
        assert "musicbox" in on_pi.stdout

        back = run_rig("deploy", "--rollback", "--state-dir", state)
        assert back.returncode == 0, back.stderr
        assert back.stdout.startswith("rolled back to release ")
        current_notes = run_rig("ssh", "--state-dir", state, "--", f"cat {info['deploy_root']}/current/NOTES.txt")
        assert current_notes.stdout == "bench notes\n", "the previous release is running again"
        # The rolled-back release must still describe itself: the next deploy diffs against it.
        after_rollback = run_rig("deploy", "--plan", "--firmware", str(firmware), "--state-dir", state)
        assert after_rollback.stdout.strip().splitlines()[-1].startswith("plan: 0 to add, 0 to change, 1 to remove")

        logs = run_rig("logs", "-n", "5", "--state-dir", state)
        assert logs.returncode == 0
        assert all(json.loads(line)["level"] for line in logs.stdout.splitlines())
    finally:
        run_rig("sim", "down", "--state-dir", state)
    assert not pid_alive(info["supervisor_pid"])


def test_link_drop_during_upload_leaves_the_old_release_running(ssh_pi: VirtualPi, firmware: Path) -> None:
    with SshSession(ssh_pi.ssh_target(), enroll_hint="rig sim up", boot_timeout_s=10) as ssh:
        deployer = Deployer(ssh, ssh_pi.deploy_target())
        good = deployer.deploy(firmware)
        for name in ("a.txt", "b.txt", "c.txt"):
            (firmware / name).write_text(name * 1000)

        def drop_link(name: str, done: int, files: int, sent: int, total: int) -> None:
            if done == 1:
                ssh.close()  # the connection dies under the upload

        broken = Deployer(ssh, ssh_pi.deploy_target(), progress=drop_link)
        with pytest.raises(
            DeployError, match=rf"failed before the switch: .*The running release \({good.release}\) is untouched"
        ):
            broken.deploy(firmware)
        assert deployer.current_release() == good.release
        assert httpx.get(f"{ssh_pi.info().url}/api/health").status_code == 200  # type: ignore[union-attr]

        result = deployer.deploy(firmware)  # the next deploy completes
        assert result.release != good.release
        deployed = ssh.run(f"cat {ssh_pi.deploy_root}/current/{MANIFEST_NAME}").check().stdout
        assert json.loads(deployed)["tree_hash"] == build_manifest(firmware).tree_hash


def test_a_file_gone_during_the_upload_is_never_switched_to(ssh_pi: VirtualPi, firmware: Path) -> None:
    """A file deleted while the stream is written ends the tar stream between two files, where the
    Pi's tar sees a clean end and exits 0: the release that lacks it must not go live. The new
    environment the deploy had finished before the stream is kept for the next try."""
    with SshSession(ssh_pi.ssh_target(), enroll_hint="rig sim up", boot_timeout_s=10) as ssh:
        deployer = Deployer(ssh, ssh_pi.deploy_target())
        good = deployer.deploy(firmware)
        requirements = firmware / "requirements.txt"
        requirements.write_text(requirements.read_text() + "# a new environment\n")
        # 512 KiB, a whole number of tar blocks: the stream is sent up to exactly the end of a.txt.
        (firmware / "a.txt").write_bytes(b"a" * 512 * 1024)
        (firmware / "b.txt").write_text("b")

        def delete_the_next_file(name: str, done: int, files: int, sent: int, total: int) -> None:
            if name == "a.txt":
                (firmware / "b.txt").unlink()

        broken = Deployer(ssh, ssh_pi.deploy_target(), progress=delete_the_next_file)
        with pytest.raises(DeployError, match=rf"before the switch: .*b\.txt.*\({good.release}\) is untouched"):
            broken.deploy(firmware)
        assert deployer.current_release() == good.release
        assert deployer.releases() == [good.release], "no release was finished without the file"
        assert httpx.get(f"{ssh_pi.info().url}/api/health").status_code == 200  # type: ignore[union-attr]

        (firmware / "b.txt").write_text("b")
        again = deployer.deploy(firmware)
        assert not again.venv_built, "the environment finished before the broken stream is reused"
        assert deployer.current_release() == again.release != good.release


def test_a_switch_whose_restart_the_connection_lost_is_restarted_by_the_next_deploy(
    ssh_pi: VirtualPi, firmware: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Pi runs the stream's command to the end, switch included, even when the connection
    drops before its exit status reaches the host. The deploy must not call the old release
    untouched then, and the next one, with no file left to send, must restart the service onto
    the new release rather than say there is nothing to deploy."""
    health = f"{ssh_pi.info().url}/api/health"  # type: ignore[union-attr]
    with SshSession(ssh_pi.ssh_target(), enroll_hint="rig sim up", boot_timeout_s=10) as ssh:
        deployer = Deployer(ssh, ssh_pi.deploy_target())
        good = deployer.deploy(firmware)
        old_version = httpx.get(health).json()["data"]["version"]
        (firmware / "VERSION").write_text("9.9.9-switched\n")
        run_with_input = ssh.run_with_input

        def exit_status_lost(*args: Any, **kwargs: Any) -> CommandResult:
            run_with_input(*args, **kwargs).check()  # the Pi has switched
            ssh.close()
            raise SshError("connection lost")

        monkeypatch.setattr(ssh, "run_with_input", exit_status_lost)
        with pytest.raises(DeployError, match=r"lost after the whole release was sent .* may have switched"):
            deployer.deploy(firmware)
        monkeypatch.undo()
        switched = deployer.current_release()
        assert switched != good.release
        assert httpx.get(health).json()["data"]["version"] == old_version, "the service was not restarted"

        again = deployer.deploy(firmware)
        assert (again.release, again.files_sent, again.noop) == (switched, 0, False)
        assert again.restart_only
        assert httpx.get(health).json()["data"]["version"] == "9.9.9-switched"
        assert deployer.deploy(firmware).noop, "once healthy on it, nothing is pending"


def test_unhealthy_release_shows_the_journal_and_rolls_back(ssh_pi: VirtualPi, firmware: Path) -> None:
    with SshSession(ssh_pi.ssh_target(), enroll_hint="rig sim up", boot_timeout_s=10) as ssh:
        target = replace(ssh_pi.deploy_target(), health_timeout_s=4.0)
        deployer = Deployer(ssh, target)
        good = deployer.deploy(firmware)
        (firmware / "musicbox" / "app.py").write_text("raise RuntimeError('firmware bug: cannot start')\n")
        with pytest.raises(DeployError) as caught:
            deployer.deploy(firmware)
        message = str(caught.value)
        # supervisord notices the crash at once ("spawn error"); systemd would leave it to the health wait
        assert "the service did not start" in message or "was not healthy within 4 s" in message
        assert "Roll back with 'rig deploy --rollback'" in message
        assert "firmware bug: cannot start" in message, "the journal shows why"
        assert deployer.rollback() == good.release
        assert httpx.get(f"{ssh_pi.info().url}/api/health").status_code == 200  # type: ignore[union-attr]
