"""The namespace virtual Pi (DESIGN.md form (a)) and the faults only it can stage: a pulled cable
during a deploy, and a full SD card. Each fault must leave the old release running and the next
deploy complete; none may leave a namespace, a route or a process behind."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rig import paths
from rig.deploy import Deployer, DeployError, environment_hash
from rig.manifest import MANIFEST_NAME, build_manifest
from rig.netns import NETNS_DIR
from rig.pi_account import PI_USER
from rig.ssh import SshSession
from rig.virtual_pi import VirtualPi

from .conftest import require_root


@pytest.fixture
def firmware(tmp_path: Path) -> Path:
    return Path(
        shutil.copytree(paths.FIRMWARE_DIR, tmp_path / "firmware", ignore=shutil.ignore_patterns("__pycache__"))
    )


@pytest.fixture
def netns_pi_factory(virtual_pi_factory) -> Iterator:
    """Namespace virtual Pis (started by ``virtual_pi_factory``); after each test nothing of them may remain."""
    require_root()
    started: list[VirtualPi] = []

    def start(name: str = "pi", **settings: object) -> VirtualPi:
        started.append(virtual_pi_factory(name, form="netns", **settings))
        return started[-1]

    yield start
    for virtual_pi in started:
        virtual_pi.down()
        assert not (NETNS_DIR / virtual_pi.namespace.name).exists(), "down removes the namespace"
        links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
        assert virtual_pi.namespace.host_interface not in links, "down removes the veth pair"


def session(virtual_pi: VirtualPi, **options: float) -> SshSession:
    return SshSession(virtual_pi.ssh_target(), enroll_hint="rig sim up", boot_timeout_s=15, **options)


def remote_tree(ssh: SshSession, root: str) -> dict[str, str]:
    """sha256 of every file of the running release, read on the Pi."""
    out = ssh.run(
        f"cd {root}/current/ && find . -path ./.venv -prune -o -type f ! -name {MANIFEST_NAME} -print0"
        " | xargs -0 sha256sum"
    ).check()
    return {line.split(None, 1)[1].strip()[2:]: line.split()[0] for line in out.stdout.splitlines()}


def refused(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def test_a_host_of_its_own_reachable_only_by_ssh(netns_pi_factory, firmware: Path) -> None:
    virtual_pi = netns_pi_factory()
    info = virtual_pi.info()
    assert info is not None
    assert info.ssh_port == 22
    assert not info.ssh_host.startswith("127."), "an address of its own, not loopback"
    assert refused(info.ssh_host, info.port), "no firmware answers before a deploy puts it there"
    with session(virtual_pi) as ssh:
        who = ssh.run("hostname; id -un; ls -ld /run/sshd | cut -c1").check().stdout.split()
        assert who == [info.hostname, PI_USER, "d"]
        assert info.hostname.startswith("raspberrypi-")
        assert ssh.run("cat /etc/shadow").exit_code != 0, "the Pi's account is not root"
        deployed = Deployer(ssh, virtual_pi.deploy_target()).deploy(firmware)
        assert deployed.files_sent == len(build_manifest(firmware).files)
        assert ssh.run(f"pgrep -u {PI_USER} -f 'python -m musicbox'").ok, "the firmware runs as the Pi's account"
    assert httpx.get(f"{info.url}/api/health").json()["data"]["status"] == "healthy"
    # Only the Pi's own address answers: its services are not on the machine's loopback.
    assert refused("127.0.0.1", 22) or info.ssh_host != "127.0.0.1"


def test_link_down_during_a_deploy(netns_pi_factory, firmware: Path) -> None:
    virtual_pi = netns_pi_factory()
    with session(virtual_pi, io_timeout_s=2.0, keepalive_s=1) as ssh:
        deployer = Deployer(ssh, virtual_pi.deploy_target())
        good = deployer.deploy(firmware)
        bulk = firmware / "assets"
        bulk.mkdir()
        for index in range(100):
            (bulk / f"clip-{index:03}.bin").write_bytes(os.urandom(200_000))

        def pull_cable(name: str, done: int, files: int, sent: int, total: int) -> None:
            if done == 10:
                virtual_pi.set_link(False)

        started = time.monotonic()
        with pytest.raises(DeployError) as caught:
            Deployer(ssh, virtual_pi.deploy_target(), progress=pull_cable).deploy(firmware)
        took = time.monotonic() - started
        virtual_pi.set_link(True)
        message = str(caught.value)
        assert "the connection to" in message
        assert "was lost" in message
        assert f"The running release ({good.release}) is untouched" in message
        assert took < 30, f"an I/O timeout of 2 s must end the deploy, not a TCP retry schedule ({took:.1f} s)"

        assert deployer.current_release() == good.release, "the session reconnects; the old release is current"
        assert httpx.get(f"{virtual_pi.info().url}/api/health").status_code == 200  # type: ignore[union-attr]
        result = deployer.deploy(firmware)
        assert result.release != good.release
        local = build_manifest(firmware)
        assert remote_tree(ssh, deployer.root) == {name: f.sha256 for name, f in local.files.items()}
        assert ssh.run(f"ls {deployer.root}/releases").check().stdout.count(".partial") == 0


def test_disk_full_on_the_pi(netns_pi_factory, firmware: Path) -> None:
    virtual_pi = netns_pi_factory(disk_mb=512)  # the firmware with numpy and pocketsphinx: ~250 MB
    with session(virtual_pi) as ssh:
        deployer = Deployer(ssh, virtual_pi.deploy_target())
        good = deployer.deploy(firmware)
        # Fill the SD card, then give back 1 MiB.
        ssh.run("dd if=/dev/zero of=$HOME/filler bs=1M 2>/dev/null; truncate -s -1M $HOME/filler", timeout=60)
        (firmware / "big.bin").write_bytes(os.urandom(3_000_000))
        with pytest.raises(DeployError, match=r"the Pi's disk is full: \d+ KiB free under .*, the upload needs 2930"):
            deployer.deploy(firmware)
        (firmware / "big.bin").unlink()

        # A requirements change needs a new environment, which cannot fit: pip itself hits the wall.
        requirements = firmware / "requirements.txt"
        requirements.write_text(requirements.read_text() + "# pinned for the disk-full test\n")
        with pytest.raises(DeployError) as caught:
            deployer.deploy(firmware)
        message = str(caught.value)
        assert "the Pi's disk is full" in message
        assert f"The running release ({good.release}) is untouched" in message
        assert deployer.current_release() == good.release
        assert httpx.get(f"{virtual_pi.info().url}/api/health").status_code == 200  # type: ignore[union-attr]
        assert ssh.run(f"ls {deployer.root}/releases").check().stdout.count(".partial") == 0, "no half release"
        half_built = f"{deployer.root}/venvs/{environment_hash(firmware, deployer.target.extra_packages)}"
        assert ssh.run(f"test -e {half_built}").exit_code == 1, "the unfinished environment is removed"

        ssh.run("rm -f $HOME/filler").check()
        assert deployer.deploy(firmware).venv_built
        assert deployer.current_release() != good.release
