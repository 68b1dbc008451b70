"""A real Pi bench, reached as its bench file says: one SSH session and its deploy target.

The CLI (``rig deploy``, ``rig logs``, ``rig ssh``) and the pytest session build them the same
way, so a bench that deploys also follows its journal during a test run.
"""

from __future__ import annotations

import os

from .bench import BenchConfig
from .deploy import DeployTarget, systemd_service
from .ssh import SshSession
from .sshd import SshTarget


def bench_session(bench: BenchConfig) -> SshSession:
    """The bench's SSH session, not yet connected; the caller checks ``bench.ssh`` first."""
    assert bench.ssh is not None
    ssh = bench.ssh
    return SshSession(
        SshTarget(ssh.host, ssh.port, ssh.user, ssh.key_file, ssh.known_hosts),
        enroll_hint=f"rig enroll --bench {bench.source}",
        connect_timeout_s=ssh.connect_timeout_s,
        boot_timeout_s=bench.dut.boot_timeout_s,
        io_timeout_s=ssh.io_timeout_s,
        password=os.environ.get(ssh.password_env) if ssh.password_env else None,
    )


def bench_deploy_target(bench: BenchConfig) -> DeployTarget:
    assert bench.dut.url is not None  # load_bench requires it for kind = "pi"
    return DeployTarget(
        root=bench.deploy.root,
        python=bench.deploy.python,
        packages=bench.deploy.packages,
        service=systemd_service(bench.deploy.unit),
        health_url=bench.dut.url,
        health_timeout_s=bench.deploy.health_timeout_s,
    )
