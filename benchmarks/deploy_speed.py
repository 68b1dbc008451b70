"""Figure 2: the rig's deploy against ``rsync -a`` over ssh and ``scp -r``, to one virtual Pi.

The tree is the reference firmware plus 500 generated files, 50 MB in all. The firmware's
environment is built once beforehand, so every measured deploy is about files. A deploy also
switches the release atomically and restarts the service; the restart is timed apart, since
rsync and scp restart nothing. Both alternatives get an OpenSSH ControlMaster, so neither pays
a handshake per run: the comparison is of transfers, not of connection set-up.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from rig import paths
from rig.deploy import Deployer
from rig.hash_cache import HashCache
from rig.ssh import SshSession
from rig.virtual_pi import SimInfo

from .common import report, setup_logging, virtual_pi

FILES = 500
TOTAL_BYTES = 50 * 1024 * 1024
REPEATS = 9  # no-op and one-file runs are short and the machine noisy: their median over several
FULL_REPEATS = 3


def make_tree(folder: Path) -> Path:
    """The firmware with ``payload/`` of FILES random files (sizes spread like a real tree's)."""
    tree = folder / "tree"
    shutil.copytree(paths.FIRMWARE_DIR, tree, ignore=shutil.ignore_patterns("__pycache__"))
    rng = np.random.default_rng(7)
    weights = rng.pareto(1.5, FILES) + 0.05
    sizes = (weights / weights.sum() * TOTAL_BYTES).astype(int)
    for index, size in enumerate(sizes):
        target = tree / "payload" / f"d{index % 20:02d}" / f"f{index:03d}.bin"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(rng.bytes(int(size)))
    return tree


def ssh_options(info: SimInfo, control: Path) -> list[str]:
    return [
        "-p", str(info.ssh_port), "-i", info.ssh_key, "-o", "BatchMode=yes",
        "-o", f"UserKnownHostsFile={info.known_hosts}", "-o", "StrictHostKeyChecking=yes",
        "-o", "ControlMaster=auto", "-o", f"ControlPath={control}", "-o", "ControlPersist=120",
    ]  # fmt: skip


def timed_run(command: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{command[0]} exited {done.returncode}: {done.stderr.strip()[-300:]}")
    return time.perf_counter() - started


def rig_deploys(pi: Any, tree: Path) -> dict[str, Any]:
    """First deploys of the tree (the environment already built), no-op redeploys, one changed
    file: each the median of REPEATS, in total and without the service restart."""
    with SshSession(pi.ssh_target(), enroll_hint="rig sim up") as ssh:
        Deployer(ssh, pi.deploy_target()).deploy(paths.FIRMWARE_DIR)  # the environment, once
        restarts: list[float] = []

        def once(deployer: Deployer) -> tuple[float, float, int]:
            restart = deployer.restart_and_wait

            def timed_restart() -> float:
                started = time.perf_counter()
                seconds = restart()
                restarts.append(time.perf_counter() - started)
                return seconds

            deployer.restart_and_wait = timed_restart  # type: ignore[method-assign]
            before = len(restarts)
            started = time.perf_counter()
            result = deployer.deploy(tree)
            total = time.perf_counter() - started
            restart_s = restarts[-1] if len(restarts) > before else 0.0
            return total, total - restart_s, result.bytes_sent

        full = []
        for _ in range(FULL_REPEATS):
            root = pi.deploy_target().root
            ssh.run(f"rm -rf {root}/releases {root}/current", timeout=60).check()
            HashCache(tree).path.unlink(missing_ok=True)
            full.append(once(Deployer(ssh, pi.deploy_target())))  # a first deploy: nothing on the Pi, no hash kept
        # The full deploys leave 150 MB for the Pi's disk to write back, which slowed the next
        # redeploys by up to half: each side starts its redeploys with the disk written.
        ssh.run("sync", timeout=120).check()
        deployer = Deployer(ssh, pi.deploy_target())
        noop = [once(deployer) for _ in range(REPEATS)]
        one = []
        for index in range(REPEATS):
            (tree / "payload" / "d00" / "f000.bin").write_bytes(os.urandom(4096 + index))
            one.append(once(deployer))
    return {
        "full": {**_medians(full), "bytes": full[0][2]},
        "noop": _medians(noop),
        "one_file": _medians(one),
    }


def _medians(runs: list[tuple[float, float, int]]) -> dict[str, float]:
    return {
        "total_s": round(float(np.median([r[0] for r in runs])), 3),
        "without_restart_s": round(float(np.median([r[1] for r in runs])), 3),
    }


def alternatives(info: SimInfo, tree: Path, folder: Path) -> dict[str, Any]:
    control = folder / "cm"
    options = ssh_options(info, control)
    login = f"{info.ssh_user}@{info.ssh_host}"
    subprocess.run(["ssh", *options, login, "true"], check=True, capture_output=True, timeout=30)  # the master
    remote = "rig-bench-alternatives"
    subprocess.run(
        ["ssh", *options, login, f"rm -rf {remote} && mkdir -p {remote}"], check=True, capture_output=True, timeout=60
    )
    rsync = ["rsync", "-a", "-e", " ".join(["ssh", *options]), f"{tree}/", f"{login}:{remote}/rsync/"]
    scp = ["scp", "-q", "-r", *[o if o != "-p" else "-P" for o in options], str(tree), f"{login}:{remote}/scp"]
    full_rsync, full_scp = [], []
    for _ in range(FULL_REPEATS):
        subprocess.run(["ssh", *options, login, f"rm -rf {remote}/*"], check=True, capture_output=True, timeout=60)
        full_rsync.append(timed_run(rsync))
        full_scp.append(timed_run(scp))
    subprocess.run(["ssh", *options, login, "sync"], check=True, capture_output=True, timeout=120)
    noop_rsync = float(np.median([timed_run(rsync) for _ in range(REPEATS)]))
    one_rsync = []
    for index in range(REPEATS):
        (tree / "payload" / "d00" / "f000.bin").write_bytes(os.urandom(8192 + index))
        one_rsync.append(timed_run(rsync))
    subprocess.run(["ssh", *options, login, f"rm -rf {remote}"], capture_output=True, timeout=60, check=False)
    subprocess.run(["ssh", *options, "-O", "exit", login], capture_output=True, timeout=30, check=False)
    return {
        "rsync": {
            "full_s": round(float(np.median(full_rsync)), 3),
            "noop_s": round(noop_rsync, 3),
            "one_file_s": round(float(np.median(one_rsync)), 3),
        },
        "scp": {"full_s": round(float(np.median(full_scp)), 3)},
    }


def main() -> None:
    setup_logging()
    form = "netns" if os.geteuid() == 0 else "ssh"
    with tempfile.TemporaryDirectory(prefix="rig-deploy-bench-") as folder:
        tree = make_tree(Path(folder))
        size = sum(f.stat().st_size for f in tree.rglob("*") if f.is_file())
        count = sum(1 for f in tree.rglob("*") if f.is_file())
        with virtual_pi(form, deploy=False) as pi:
            info = pi.info()
            assert info is not None
            rig = rig_deploys(pi, tree)
            other = alternatives(info, tree, Path(folder))
    mb = size / 1e6
    rig_mb_s = mb / rig["full"]["without_restart_s"]
    scp_mb_s = mb / other["scp"]["full_s"]
    report(
        "deploy_speed",
        {
            "virtual_pi_form": form,
            "tree": {"files": count, "bytes": size},
            "rig_deploy": rig,
            **other,
            "full_throughput_mb_s": {"rig": round(rig_mb_s, 1), "scp": round(scp_mb_s, 1)},
            "ratios": {
                "full_rig_throughput_vs_scp": round(rig_mb_s / scp_mb_s, 2),
                "noop_rsync_over_rig": round(other["rsync"]["noop_s"] / rig["noop"]["total_s"], 2),
                "one_file_rsync_over_rig_without_restart": round(
                    other["rsync"]["one_file_s"] / rig["one_file"]["without_restart_s"], 2
                ),
            },
            "target": "no-op and one-file redeploys no slower than rsync (ratio >= 1); full throughput >= 0.8x scp",
        },
    )


if __name__ == "__main__":
    main()
