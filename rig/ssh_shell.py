"""Short commands through one long-lived remote shell, instead of a new SSH channel each.

A new channel makes sshd fork a session and start the login shell: about 3 ms on a virtual Pi and
more on a real one, for every ``cat`` the rig runs. One login shell that stays open takes commands on
its stdin; each runs in a subshell, ``( eval COMMAND )``, so ``exit``, ``cd`` or a syntax error
stay inside it, with stdin from /dev/null. A random marker with the exit status follows on stdout,
and one on stderr; the output before the markers is exactly the command's.

A command that times out, or a connection that drops, discards the shell; the next command opens
a fresh one. Long commands with streamed output keep their own channel (``SshSession.stream``).
"""

from __future__ import annotations

import select
import shlex
import time
import uuid

import paramiko

from .ssh_errors import CommandResult, CommandTimeout, ConnectionLost


class PersistentShell:
    """One remote ``sh`` on a channel of ``transport``; one command at a time (the caller locks)."""

    def __init__(self, transport: paramiko.Transport, where: str, timeout: float) -> None:
        self.where = where
        self._transport = transport
        self._channel = transport.open_session(timeout=timeout)
        # The login shell reads the start-up files once, as for any command, then stays open:
        # commands run in the same language as on a channel of their own.
        self._channel.exec_command('exec "${SHELL:-/bin/sh}"')

    @property
    def usable(self) -> bool:
        return self._transport.is_active() and not self._channel.closed

    def close(self) -> None:
        self._channel.close()

    def run(self, command: str, timeout: float) -> CommandResult:
        started = time.monotonic()
        deadline = started + timeout
        token = uuid.uuid4().hex
        end_out, end_err = f"\n{token} ".encode(), f"\n{token}\n".encode()
        markers = f"printf '\\n%s %d\\n' {token} $?; printf '\\n%s\\n' {token} >&2"
        script = f"( eval {shlex.quote(command)} ) </dev/null; {markers}\n"
        channel = self._channel
        channel.sendall(script.encode())
        out, err = bytearray(), bytearray()
        while not (end_err in err and end_out in out and out.endswith(b"\n")):
            if channel.recv_ready():
                out += channel.recv(65536)
            elif channel.recv_stderr_ready():
                err += channel.recv_stderr(65536)
            elif channel.closed or channel.exit_status_ready() or not self._transport.is_active():
                self.close()
                raise ConnectionLost(f"lost the connection to {self.where} while running {command!r}")
            elif (remaining := deadline - time.monotonic()) <= 0:
                self.close()  # the command may still run; its output must not reach the next one
                raise CommandTimeout(
                    f"{command!r} on {self.where} still running after {timeout:g} s",
                    out.decode(errors="replace"),
                    err.decode(errors="replace"),
                )
            else:
                select.select([channel], [], [], min(remaining, 1.0))
        stdout, _, status = bytes(out).rpartition(end_out)
        stderr = bytes(err).rpartition(end_err)[0]
        return CommandResult(
            command,
            int(status.strip()),
            stdout.decode(errors="replace"),
            stderr.decode(errors="replace"),
            time.monotonic() - started,
        )
