"""Figure 1: what one command over SSH costs, the rig's persistent paramiko session against OpenSSH
with a ControlMaster (labgrid's way) and a fresh ``ssh`` per command, all against one virtual Pi.
The rig's ``run`` goes through one persistent remote shell; a new channel per command (what
``stream`` uses for long commands) is measured beside it.

Each command is ``true``: what is measured is the transport, not the work. As root the virtual
Pi is the namespace form, with its own clean account, as a Pi's; the SSH form logs in as the
current user, whose shell start-up files (a ``pyenv init`` in ~/.bashrc, say) then count too.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from rig.ssh import SshSession
from rig.virtual_pi import SimInfo

from .common import report, setup_logging, stats_ms, timed, virtual_pi

RUNS = 300  # per-command samples of the persistent ways
FRESH_RUNS = 30  # a fresh ssh costs a whole handshake each


def openssh(pi_info: SimInfo, control: Path | None) -> list[str]:
    """The ssh command line a user would type, pinned to the virtual Pi's host key."""
    command = [
        "ssh", "-p", str(pi_info.ssh_port), "-i", pi_info.ssh_key, "-o", "BatchMode=yes",
        "-o", f"UserKnownHostsFile={pi_info.known_hosts}", "-o", "StrictHostKeyChecking=yes",
    ]  # fmt: skip
    if control is not None:
        command += ["-o", "ControlMaster=auto", "-o", f"ControlPath={control}", "-o", "ControlPersist=120"]
    return [*command, f"{pi_info.ssh_user}@{pi_info.ssh_host}", "true"]


def main() -> None:
    setup_logging()
    form = "netns" if os.geteuid() == 0 else "ssh"
    with virtual_pi(form, deploy=False) as pi, tempfile.TemporaryDirectory(prefix="rig-cm-") as folder:
        info = pi.info()
        assert info is not None
        paramiko_s: list[float] = []
        channel_s: list[float] = []
        with SshSession(pi.ssh_target(), enroll_hint="rig sim up") as ssh:
            ssh.run("true").check()  # warm: the handshake is not what this figure is about
            for _ in range(RUNS):
                with timed(paramiko_s):
                    ssh.run("true").check()  # the persistent remote shell
                with timed(channel_s):
                    ssh.stream("true").check()  # a new channel per command, as long commands get

        control = Path(folder) / "cm"
        master = openssh(info, control)
        subprocess.run(master, check=True, capture_output=True, timeout=30)  # starts the master
        controlmaster_s: list[float] = []
        for _ in range(RUNS):
            with timed(controlmaster_s):
                subprocess.run(master, check=True, capture_output=True, timeout=30)
        subprocess.run([*master[:-1], "-O", "exit"], capture_output=True, timeout=30, check=False)

        fresh_s: list[float] = []
        for _ in range(FRESH_RUNS):
            with timed(fresh_s):
                subprocess.run(openssh(info, None), check=True, capture_output=True, timeout=30)

    rig, channel, cm, fresh = (stats_ms(x) for x in (paramiko_s, channel_s, controlmaster_s, fresh_s))
    report(
        "ssh_overhead",
        {
            "command": "true",
            "virtual_pi_form": form,
            "rig_run_persistent_shell": rig,
            "rig_channel_per_command": channel,
            "openssh_controlmaster": cm,
            "openssh_fresh": fresh,
            "speedup_vs_controlmaster_p50": round(cm["p50_ms"] / rig["p50_ms"], 2),
            "speedup_vs_controlmaster_p99": round(cm["p99_ms"] / rig["p99_ms"], 2),
            "channel_per_command_speedup_vs_controlmaster_p50": round(cm["p50_ms"] / channel["p50_ms"], 2),
            "speedup_vs_fresh_p50": round(fresh["p50_ms"] / rig["p50_ms"], 2),
            "target": "at least 2.5x faster than ControlMaster per command (5x with a persistent channel)",
        },
    )


if __name__ == "__main__":
    main()
