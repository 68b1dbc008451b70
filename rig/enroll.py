"""First contact with a bench's SSH host: show its key's fingerprint and pin it in known_hosts.

Mirrors OpenSSH: ``--accept-new`` records a key the file does not know yet but never replaces
one; a changed key is replaced only with ``--replace``, which a technician types after
checking why the Pi's key changed (a reinstall, a new SD card).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paramiko

from .ssh import HostKeyChanged, SshError, fetch_host_key, fingerprint
from .sshd import known_hosts_name


@dataclass(frozen=True)
class Enrolment:
    name: str
    fingerprint: str
    outcome: str  # "recorded", "replaced" or "already enrolled"


def enroll(
    host: str,
    port: int,
    known_hosts: Path,
    *,
    accept_new: bool,
    replace: bool,
    confirm: Callable[[str], bool] | None,
    timeout: float,
    fix_command: str,
) -> Enrolment:
    """Pin the host's key; ``confirm`` asks the user (None when there is no terminal)."""
    try:
        offered = fetch_host_key(host, port, timeout)
    except (OSError, paramiko.SSHException) as exc:
        raise SshError(f"cannot read the host key of {host}:{port}: {type(exc).__name__}: {exc}") from None
    name = known_hosts_name(host, port)
    shown = fingerprint(offered)
    known = paramiko.HostKeys()
    if known_hosts.exists():
        known.load(str(known_hosts))
    pinned = known.lookup(name)
    if pinned and pinned.get(offered.get_name()) == offered:
        return Enrolment(name, shown, "already enrolled")
    if pinned:
        old = ", ".join(fingerprint(k) for k in pinned.values())
        if not replace:
            raise HostKeyChanged(
                f"{name}: its host key CHANGED. Pinned in {known_hosts}: {old}; offered now: {shown}. "
                f"If the Pi was reinstalled, run: {fix_command} --replace"
            )
        _write(known_hosts, name, offered, drop_old=True)
        return Enrolment(name, shown, "replaced")
    if not accept_new:
        if confirm is None:
            raise SshError(
                f"{name} offers {shown}; there is no terminal to confirm it. "
                f"Check the fingerprint on the Pi (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), "
                f"then run: {fix_command} --accept-new"
            )
        if not confirm(f"{name} offers {shown}. Trust this host key? [y/N] "):
            raise SshError(f"{name}: host key not trusted; nothing recorded")
    _write(known_hosts, name, offered, drop_old=False)
    return Enrolment(name, shown, "recorded")


def _write(known_hosts: Path, name: str, key: paramiko.PKey, *, drop_old: bool) -> None:
    """Append the entry (or swap it in), keeping every other line and comment of the file."""
    lines = known_hosts.read_text().splitlines() if known_hosts.exists() else []
    if drop_old:
        lines = [line for line in lines if name not in line.split(" ", 1)[0].split(",")]
    lines.append(f"{name} {key.get_name()} {key.get_base64()}")
    partial = known_hosts.with_name(known_hosts.name + ".partial")
    partial.write_text("\n".join(lines) + "\n")
    partial.chmod(0o644)
    partial.replace(known_hosts)
