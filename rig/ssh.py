"""One persistent SSH session per bench, on paramiko.

Why each choice:
- One transport for the whole test session: a new TCP and key exchange per command costs
  tens of milliseconds; a channel on an open transport costs one round trip, plus sshd's fork
  of a session. Short commands skip even that through one persistent remote shell (ssh_shell.py).
- TCP_NODELAY: without it, each small command waits about 40 ms on delayed ACKs.
- Keepalives, and TCP_USER_TIMEOUT as the I/O timeout: a pulled cable loses packets rather than
  refusing them, and TCP alone would retry for a quarter of an hour; with unacknowledged data
  (an upload, a keepalive) older than the I/O timeout the kernel drops the connection, every
  waiting call fails at once with "connection lost", and the next command reconnects.
- AES-GCM first (AEAD_CIPHERS): a deploy's bytes are encrypted and authenticated in one pass.
- Host keys are pinned in the bench's known_hosts and checked before any secret is sent; an
  unknown or changed key is refused with both fingerprints and the command that fixes it.
- Connection retries with backoff until the boot timeout, because a Pi that is booting refuses
  connections for a while; a wrong key or a refused login is never retried.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import select
import socket
import threading
import time
from collections.abc import Callable

import paramiko

from .ssh_errors import (
    AuthFailed,
    CommandResult,
    CommandTimeout,
    ConnectionLost,
    HostKeyChanged,
    HostKeyUnknown,
    HostUnreachable,
    SshError,
)
from .ssh_shell import PersistentShell
from .sshd import SshTarget, known_hosts_name

__all__ = [
    "AuthFailed",
    "CommandResult",
    "CommandTimeout",
    "ConnectionLost",
    "HostKeyChanged",
    "HostKeyUnknown",
    "HostUnreachable",
    "SshError",
    "SshSession",
]

log = logging.getLogger(__name__)
logging.getLogger("paramiko").setLevel(logging.WARNING)  # its DEBUG output is noise, never needed here

BACKOFF_START_S, BACKOFF_MAX_S = 0.2, 2.0
# Offered first: one AES-GCM pass per packet instead of AES-CTR and then HMAC-SHA256, which was a
# tenth of a 50 MB deploy's time. Every OpenSSH since 6.2 accepts them; others fall back to CTR.
AEAD_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's SHA256 fingerprint, as ``ssh-keygen -l`` prints it."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return f"{key.get_name()} SHA256:{base64.b64encode(digest).decode().rstrip('=')}"


def fetch_host_key(host: str, port: int, timeout: float) -> paramiko.PKey:
    """The key the server offers, read without authenticating (for enrolment)."""
    sock = _open_socket(host, port, timeout)
    transport = paramiko.Transport(sock)
    try:
        transport.start_client(timeout=timeout)
        return transport.get_remote_server_key()
    finally:
        transport.close()


def _open_socket(host: str, port: int, timeout: float, io_timeout: float | None = None) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if io_timeout is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(io_timeout * 1000))
    return sock


class _Lines:
    """Collects a stream's output and hands each complete line to a callback."""

    def __init__(self, callback: Callable[[str], object] | None) -> None:
        self._callback = callback
        self._chunks: list[str] = []
        self._partial = ""

    def feed(self, data: bytes) -> None:
        text = data.decode("utf-8", "replace")
        self._chunks.append(text)
        if self._callback is not None:
            *lines, self._partial = (self._partial + text).split("\n")
            for line in lines:
                self._callback(line)

    def text(self) -> str:
        if self._callback is not None and self._partial:
            self._callback(self._partial)
            self._partial = ""
        return "".join(self._chunks)


class SshSession:
    def __init__(
        self,
        target: SshTarget,
        *,
        enroll_hint: str,
        connect_timeout_s: float = 10.0,
        boot_timeout_s: float = 60.0,
        keepalive_s: int = 5,
        io_timeout_s: float = 20.0,
        password: str | None = None,
        on_reconnect: Callable[[str], object] | None = None,
    ) -> None:
        self.target = target
        self.enroll_hint = enroll_hint
        self.connect_timeout_s = connect_timeout_s
        self.boot_timeout_s = boot_timeout_s
        self.keepalive_s = keepalive_s
        self.io_timeout_s = io_timeout_s
        self._password = password  # first provisioning only; never logged
        self._transport: paramiko.Transport | None = None
        self._sftp: paramiko.SFTPClient | None = None
        # The journal follower's thread and the test's thread share the session; one reconnects.
        self._lock = threading.RLock()
        self._shell: PersistentShell | None = None  # short commands, one after another (rig/ssh_shell.py)
        self._shell_lock = threading.Lock()
        self.reconnects = 0
        self.on_reconnect = on_reconnect  # told, in one line, each time the session had to reconnect

    @property
    def where(self) -> str:
        return f"{self.target.user}@{self.target.host}:{self.target.port}"

    # -- connection ------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._transport is not None and self._transport.is_active()

    def lost(self, within: float = 0.5) -> bool:
        """Whether the connection is gone, after a failure seen on one of its channels. paramiko's
        transport thread closes the channels (which is what the caller saw fail) a moment before it
        marks itself inactive, so this waits up to ``within`` for it to make up its mind."""
        deadline = time.monotonic() + within
        while self.connected and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self.connected

    def connect(self) -> None:
        """Connect, retrying with backoff within the boot timeout; host key and login are checked once."""
        deadline = time.monotonic() + self.boot_timeout_s
        delay, attempts, last = BACKOFF_START_S, 0, "no attempt"
        while True:
            attempts += 1
            try:
                self._connect_once()
                return
            except (OSError, paramiko.SSHException) as exc:
                if isinstance(exc, paramiko.AuthenticationException):
                    raise
                last = f"{type(exc).__name__}: {exc}"
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise HostUnreachable(
                    f"cannot reach {self.where} within {self.boot_timeout_s:g} s ({attempts} attempts; last: {last})"
                )
            log.info("ssh %s not ready (%s); retrying in %.1f s", self.where, last, delay)
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, BACKOFF_MAX_S)

    def _connect_once(self) -> None:
        sock = _open_socket(self.target.host, self.target.port, self.connect_timeout_s, self.io_timeout_s)
        transport = paramiko.Transport(sock)
        options = transport.get_security_options()
        options.ciphers = (*AEAD_CIPHERS, *(c for c in options.ciphers if c not in AEAD_CIPHERS))
        try:
            transport.start_client(timeout=self.connect_timeout_s)
            self._verify_host_key(transport.get_remote_server_key())
            self._authenticate(transport)
        except BaseException:
            transport.close()
            raise
        transport.set_keepalive(self.keepalive_s)
        self._transport, self._sftp = transport, None
        log.info("ssh connected to %s", self.where)

    def _verify_host_key(self, offered: paramiko.PKey) -> None:
        name = known_hosts_name(self.target.host, self.target.port)
        known = paramiko.HostKeys()
        if self.target.known_hosts.exists():
            known.load(str(self.target.known_hosts))
        entries = known.lookup(name)
        if entries is None or not entries.keys():
            raise HostKeyUnknown(
                f"refusing {name}: its host key is not in {self.target.known_hosts} "
                f"(it offers {fingerprint(offered)}). If this is your Pi, run: {self.enroll_hint}"
            )
        if offered.get_name() in entries and entries[offered.get_name()] == offered:
            return
        pinned = ", ".join(fingerprint(k) for k in entries.values())
        raise HostKeyChanged(
            f"refusing {name}: its host key CHANGED. Pinned in {self.target.known_hosts}: {pinned}; "
            f"offered now: {fingerprint(offered)}. If the Pi was reinstalled, run: {self.enroll_hint} --replace"
        )

    def _authenticate(self, transport: paramiko.Transport) -> None:
        tried: list[str] = []
        user = self.target.user
        if self.target.key_file is not None:
            try:
                key = paramiko.PKey.from_path(self.target.key_file)
            except (OSError, paramiko.SSHException) as exc:
                raise AuthFailed(f"cannot read the key file {self.target.key_file}: {exc}") from None
            tried.append(f"{self.target.key_file} ({fingerprint(key)})")
            if self._try(transport.auth_publickey, user, key):
                return
        agent_keys = paramiko.Agent().get_keys()
        for key in agent_keys:
            if self._try(transport.auth_publickey, user, key):
                return
        if agent_keys:
            tried.append(f"{len(agent_keys)} ssh-agent key(s)")
        if self._password is not None:
            tried.append("a password")
            if self._try(transport.auth_password, user, self._password):
                return
        offered = ", ".join(tried) or "no key (no key_file and no ssh-agent keys)"
        raise AuthFailed(f"{self.where} refused the login; offered {offered}")

    @staticmethod
    def _try(method: Callable[..., object], user: str, secret: object) -> bool:
        try:
            method(user, secret)
        except paramiko.AuthenticationException:
            return False
        return True

    def ensure_connected(self) -> bool:
        """Reconnect if the transport died (a reboot, a pulled cable); True when it had to."""
        with self._lock:
            if self.connected:
                return False
            was_open = self._transport is not None
            log.warning("ssh %s lost; reconnecting within %.0f s", self.where, self.boot_timeout_s)
            started = time.monotonic()
            self.close()
            self.connect()
            if was_open:
                self.reconnects += 1
                message = (
                    f"ssh reconnected to {self.where} after {time.monotonic() - started:.1f} s "
                    f"(reconnect {self.reconnects}: the connection was lost; the Pi rebooted or its link dropped)"
                )
                log.warning("%s", message)
                if self.on_reconnect is not None:
                    self.on_reconnect(message)
            return True

    def close(self) -> None:
        with self._lock:
            if self._shell is not None:
                self._shell.close()
                self._shell = None
            if self._sftp is not None:
                self._sftp.close()
            if self._transport is not None:
                self._transport.close()
            self._transport, self._sftp = None, None

    def __enter__(self) -> SshSession:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- commands --------------------------------------------------------------------------
    def _channel(self, timeout: float) -> paramiko.Channel:
        self.ensure_connected()
        transport = self._transport
        assert transport is not None
        try:
            return transport.open_session(timeout=timeout)
        except (paramiko.SSHException, EOFError, OSError):
            if transport.is_active():
                raise
        # The connection died under us (the Pi rebooted) before paramiko noticed: reconnect once.
        self.ensure_connected()
        assert self._transport is not None
        return self._transport.open_session(timeout=timeout)

    def run(self, command: str, timeout: float = 30.0) -> CommandResult:
        """Run one command; its exit code, stdout and stderr. Never blocks past ``timeout``.

        Commands go through one persistent remote shell (about 1 ms each on a virtual Pi, against
        3.5 ms for a channel of their own); a command that cannot even be sent, on a connection
        that died unnoticed (the Pi rebooted), is tried once more on a fresh connection. A command
        that times out or loses its connection closes its shell, so it is never reused."""
        with self._shell_lock:
            try:
                return self._persistent_shell(timeout).run(command, timeout)
            except (paramiko.SSHException, EOFError, OSError):
                self._drop_shell()
                if not self.lost():
                    raise
            return self._persistent_shell(timeout).run(command, timeout)

    def _persistent_shell(self, timeout: float) -> PersistentShell:
        reconnected = self.ensure_connected()
        if reconnected or self._shell is None or not self._shell.usable:
            self._drop_shell()
            assert self._transport is not None
            self._shell = PersistentShell(self._transport, self.where, timeout)
        return self._shell

    def _drop_shell(self) -> None:
        if self._shell is not None:
            self._shell.close()
            self._shell = None

    def stream(
        self,
        command: str,
        on_stdout: Callable[[str], object] | None = None,
        on_stderr: Callable[[str], object] | None = None,
        *,
        timeout: float = 300.0,
        stop: threading.Event | None = None,
    ) -> CommandResult:
        """Run a long command, handing each complete output line to the callbacks as it arrives.

        ``stop`` ends it early from another thread (within a second); its exit code is then -1."""
        started = time.monotonic()
        deadline = started + timeout
        channel = self._channel(timeout)
        transport = channel.get_transport()
        out, err = _Lines(on_stdout), _Lines(on_stderr)
        try:
            channel.exec_command(command)
            while True:
                if channel.recv_ready():
                    out.feed(channel.recv(65536))
                elif channel.recv_stderr_ready():
                    err.feed(channel.recv_stderr(65536))
                elif channel.status_event.is_set() or (stop is not None and stop.is_set()):
                    break
                elif channel.closed or not transport.is_active():
                    if not transport.is_active():
                        raise ConnectionLost(f"lost the connection to {self.where} while running {command!r}")
                    break  # closed without an exit status: the command died of a signal
                elif (remaining := deadline - time.monotonic()) <= 0:
                    raise CommandTimeout(
                        f"{command!r} on {self.where} still running after {timeout:g} s", out.text(), err.text()
                    )
                else:
                    select.select([channel], [], [], min(remaining, 1.0))
            code = channel.recv_exit_status() if channel.status_event.is_set() else -1
        finally:
            channel.close()
        return CommandResult(command, code, out.text(), err.text(), time.monotonic() - started)

    def run_with_input(
        self, command: str, write: Callable[[ChannelWriter], object], *, timeout: float = 600.0
    ) -> CommandResult:
        """Run a command with what ``write`` writes as its standard input: a deploy's tar stream.

        One channel carries every byte, so a tree of many files costs no round trip per file. A
        write that stalls for the I/O timeout (the Pi stopped reading) fails; when the command
        exits before taking all its input (tar refusing the target folder), its exit status and
        stderr are returned rather than the broken pipe."""
        started = time.monotonic()
        channel = self._channel(timeout)
        channel.settimeout(self.io_timeout_s)
        try:
            channel.exec_command(command)
            try:
                write(ChannelWriter(channel))
                channel.shutdown_write()
            except OSError:
                if not channel.status_event.wait(2.0):
                    raise
            if not channel.status_event.wait(max(0.0, started + timeout - time.monotonic())):
                raise CommandTimeout(f"{command!r} on {self.where} still running after {timeout:g} s", "", "")
            code = channel.recv_exit_status()
            out, err = _drain(channel.recv), _drain(channel.recv_stderr)
        except TimeoutError as exc:
            raise CommandTimeout(
                f"{command!r} on {self.where} took no input for {self.io_timeout_s:g} s", "", ""
            ) from exc
        finally:
            channel.close()
        return CommandResult(command, code, out, err, time.monotonic() - started)

    # -- files -----------------------------------------------------------------------------
    def sftp(self) -> paramiko.SFTPClient:
        with self._lock:
            if self.ensure_connected() or self._sftp is None:
                assert self._transport is not None
                self._sftp = paramiko.SFTPClient.from_transport(self._transport)
                assert self._sftp is not None
            return self._sftp

    def socket_option(self, level: int, option: int) -> int:
        """A socket option of the live connection (tests check TCP_NODELAY with it)."""
        assert self._transport is not None
        return int(self._transport.sock.getsockopt(level, option))  # type: ignore[union-attr]


class ChannelWriter:
    """A channel's stdin as the binary file ``tarfile`` writes to: buffered into large sends (the
    transport splits them into packets), with ``tell`` because tarfile asks for its position."""

    BUFFER = 256 * 1024

    def __init__(self, channel: paramiko.Channel) -> None:
        self._channel = channel
        self._buffer = bytearray()
        self._written = 0

    def write(self, data: bytes) -> int:
        self._buffer += data
        self._written += len(data)
        if len(self._buffer) >= self.BUFFER:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self._buffer:
            self._channel.sendall(bytes(self._buffer))
            self._buffer.clear()

    def tell(self) -> int:
        return self._written


def _drain(receive: Callable[[int], bytes]) -> str:
    """What is left of one output stream of a command that has exited."""
    chunks = []
    while chunk := receive(65536):
        chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")
