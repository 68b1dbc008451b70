"""The dedicated account that the namespace virtual Pi's sshd logs in and the firmware runs as.

A Pi's firmware runs as an unprivileged user, and the rig deploys as that user; the virtual Pi
does the same, so a deploy that only works as root fails here first. The account has no password,
yet is not *locked*: with ``UsePAM no`` OpenSSH refuses a locked account (``!`` in /etc/shadow,
what ``useradd`` leaves) even for key logins, so its password field is set to ``*``.
"""

from __future__ import annotations

import fcntl
import pwd
import subprocess
from pathlib import Path

PI_USER = "rigpi"
PI_HOME = Path("/home") / PI_USER  # exists only inside the namespace, over a tmpfs /home
LOCK = Path("/run/rig-account.lock")


class AccountError(RuntimeError):
    pass


def ensure_account(name: str = PI_USER) -> pwd.struct_passwd:
    """Create the account once per machine (it is kept: other virtual Pis may be using it)."""
    LOCK.touch(exist_ok=True)
    with LOCK.open() as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return pwd.getpwnam(name)
        except KeyError:
            pass
        for command in (
            ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", str(PI_HOME),
             "--shell", "/bin/bash", "--comment", "virtual Pi (pi-hil-rig)", name],
            ["usermod", "--password", "*", name],
        ):  # fmt: skip
            result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
            if result.returncode != 0:
                raise AccountError(f"cannot create the virtual Pi's user {name!r}: {result.stderr.strip()}")
        return pwd.getpwnam(name)
