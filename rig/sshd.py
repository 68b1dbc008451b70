"""An OpenSSH server for a virtual Pi: its own host key, key-only login, loopback or namespace address.

The rig creates the host key itself, so it can pin it in the virtual Pi's known_hosts without
ever trusting a key it has not seen; the client key it creates is the only one authorised.
"""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
PRIVSEP_DIR = Path("/run/sshd")  # OpenSSH refuses to start as root without it


class SshdError(RuntimeError):
    """sshd cannot be set up here; the message says what is missing."""


@dataclass(frozen=True)
class SshTarget:
    """Everything a client needs to reach one SSH host, with its key pinned."""

    host: str
    port: int
    user: str
    key_file: Path | None
    known_hosts: Path


def _keygen(path: Path, comment: str) -> None:
    if path.exists():
        return
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
        timeout=30,
    )


def known_hosts_name(host: str, port: int) -> str:
    """The host's name in a known_hosts file, as OpenSSH writes it."""
    return host if port == 22 else f"[{host}]:{port}"


@dataclass(frozen=True)
class LocalSshd:
    """Files and command line of one sshd; a supervisor runs ``command`` in the foreground."""

    folder: Path
    address: str
    port: int
    user: str
    # A dedicated account (the namespace form): keys in its home, checked strictly, no root login.
    # Otherwise the keys stay in the rig's state folder, which may be group-writable.
    own_account: bool = False

    @property
    def host_key(self) -> Path:
        return self.folder / "ssh_host_ed25519_key"

    @property
    def client_key(self) -> Path:
        return self.folder / "rig_client_ed25519"

    @property
    def config(self) -> Path:
        return self.folder / "sshd_config"

    @property
    def known_hosts(self) -> Path:
        return self.folder / "known_hosts"

    @property
    def target(self) -> SshTarget:
        return SshTarget(self.address, self.port, self.user, self.client_key, self.known_hosts)

    @property
    def command(self) -> list[str]:
        return [SSHD, "-D", "-e", "-f", str(self.config)]

    def prepare(self) -> SshTarget:
        """Create keys, config and the pinned known_hosts entry; idempotent, so keys survive restarts."""
        if not Path(SSHD).exists():
            raise SshdError(f"no sshd at {SSHD}: install the openssh-server package")
        self.folder.mkdir(parents=True, exist_ok=True)
        _keygen(self.host_key, "virtual-pi host key")
        _keygen(self.client_key, "rig client key")
        authorized = self.folder / "authorized_keys"
        authorized.write_text(self.client_key.with_suffix(".pub").read_text())
        authorized.chmod(0o600)
        host_public = self.host_key.with_suffix(".pub").read_text().split()
        self.known_hosts.write_text(f"{known_hosts_name(self.address, self.port)} {host_public[0]} {host_public[1]}\n")
        self.config.write_text(
            "\n".join(
                [
                    f"ListenAddress {self.address}:{self.port}",
                    f"HostKey {self.host_key}",
                    f"PidFile {self.folder / 'sshd.pid'}",
                    f"AuthorizedKeysFile {'.ssh/authorized_keys' if self.own_account else authorized}",
                    f"AllowUsers {self.user}",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    # PAM would refuse a user created without a password (a locked account).
                    "UsePAM no",
                    f"StrictModes {'yes' if self.own_account else 'no'}",
                    f"PermitRootLogin {'no' if self.own_account else 'prohibit-password'}",
                    "Subsystem sftp internal-sftp",
                    "ClientAliveInterval 15",
                    "LogLevel INFO",
                    "",
                ]
            )
        )
        if os.geteuid() == 0:
            PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
        return self.target


def current_user() -> str:
    return getpass.getuser()
