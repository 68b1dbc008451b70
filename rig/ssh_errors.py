"""What an SSH command gives back, and how SSH fails, each failure explained in one line."""

from __future__ import annotations

from dataclasses import dataclass


class SshError(RuntimeError):
    """An SSH failure, explained in one line."""


class HostUnreachable(SshError):
    pass


class HostKeyUnknown(SshError):
    pass


class HostKeyChanged(SshError):
    pass


class AuthFailed(SshError):
    pass


class ConnectionLost(SshError):
    pass


class CommandTimeout(SshError):
    def __init__(self, message: str, stdout: str, stderr: str) -> None:
        super().__init__(message)
        self.stdout, self.stderr = stdout, stderr


@dataclass(frozen=True)
class CommandResult:
    command: str
    exit_code: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def check(self) -> CommandResult:
        """Raise with the command's own stderr when it failed."""
        if not self.ok:
            detail = (self.stderr or self.stdout).strip().splitlines()[-1:] or ["no output"]
            shown = self.command if len(self.command) <= 80 else self.command[:77] + "..."
            raise SshError(f"{shown!r} exited {self.exit_code}: {detail[0]}")
        return self
