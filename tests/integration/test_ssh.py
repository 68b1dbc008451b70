"""The rig's SSH session against a real OpenSSH server: commands, files, and every way SSH goes wrong."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from rig.net import free_port
from rig.ssh import AuthFailed, CommandTimeout, HostKeyChanged, HostKeyUnknown, HostUnreachable, SshSession

from .conftest import SshdUnderTest

HINT = "rig enroll --bench bench.toml"


def session(target, **options) -> SshSession:
    return SshSession(target, enroll_hint=HINT, connect_timeout_s=2.0, boot_timeout_s=5.0, **options)


def keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


def ssh_keygen_fingerprint(public_key: Path) -> str:
    """What OpenSSH itself prints, to check the rig shows the same fingerprint."""
    return subprocess.run(
        ["ssh-keygen", "-lf", str(public_key)], capture_output=True, text=True, check=True
    ).stdout.split()[1]


def test_run_stream_and_timeout(sshd: SshdUnderTest) -> None:
    with session(sshd.target) as ssh:
        result = ssh.run("echo out; echo err >&2; exit 3")
        assert (result.exit_code, result.stdout, result.stderr) == (3, "out\n", "err\n")
        lines: list[str] = []
        streamed = ssh.stream("for i in 1 2 3; do echo line $i; sleep 0.05; done; printf tail", lines.append)
        assert lines == ["line 1", "line 2", "line 3", "tail"]
        assert streamed.ok
        started = time.monotonic()
        with pytest.raises(CommandTimeout, match=r"'sleep 30' on .* still running after 0.3 s"):
            ssh.run("sleep 30", timeout=0.3)
        assert time.monotonic() - started < 5, "a command timeout must not hang"
        assert ssh.run("echo still usable").stdout == "still usable\n"


def test_commands_share_one_remote_shell_without_leaking_into_each_other(sshd: SshdUnderTest) -> None:
    """run() goes through one persistent shell: each command must still see a fresh one, and
    give back exactly its own output and status."""
    with session(sshd.target) as ssh:
        assert ssh.run("printf 'no newline'").stdout == "no newline"
        assert ssh.run("printf 'a\\nb\\n\\n'").stdout == "a\nb\n\n"
        assert ssh.run("exit 7").exit_code == 7
        assert ssh.run("cd / && export LEAK=1 && pwd").stdout == "/\n"
        assert ssh.run("echo ${LEAK:-unset}").stdout == "unset\n"
        broken = ssh.run("if then fi")
        assert broken.exit_code == 2
        assert "syntax error" in broken.stderr.lower()
        assert ssh.run("cat").stdout == "", "stdin is /dev/null: a command that reads it does not hang"
        subshells = {ssh.run("sh -c 'echo $PPID'").stdout for _ in range(3)}
        assert len(subshells) == 3, "every command runs in a subshell of its own"
        shells = {ssh.run("echo $$").stdout for _ in range(3)}
        assert len(shells) == 1, f"one persistent shell runs them all, got {shells}"
        big = ssh.run("head -c 300000 /dev/zero | tr '\\0' x")
        assert big.stdout == "x" * 300_000


def test_one_transport_with_nodelay(sshd: SshdUnderTest) -> None:
    with session(sshd.target) as ssh:
        for _ in range(5):
            ssh.run("true").check()
        assert ssh.reconnects == 0, "every command shares the session's one transport"
        assert ssh.socket_option(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert ssh._transport is not None
        assert ssh._transport.local_cipher == "aes128-gcm@openssh.com", "AEAD first: no separate HMAC pass"


def test_sftp_round_trip(sshd: SshdUnderTest, tmp_path: Path) -> None:
    source = tmp_path / "payload.bin"
    source.write_bytes(bytes(range(256)) * 1000)
    remote = str(tmp_path / "remote.bin")
    with session(sshd.target) as ssh:
        ssh.sftp().put(str(source), remote)
        assert (
            ssh.run(f"sha256sum {remote}").stdout.split()[0]
            == subprocess.run(["sha256sum", str(source)], capture_output=True, text=True, check=True).stdout.split()[0]
        )


def test_run_with_input_streams_a_large_stdin(sshd: SshdUnderTest) -> None:
    """The deploy's tar stream: every byte arrives; a command that exits early reports its own
    error, not a broken pipe; a command that stops reading ends in the I/O timeout."""
    payload = os.urandom(3_000_000)

    def feed(stdin) -> None:
        for start in range(0, len(payload), 100_000):
            stdin.write(payload[start : start + 100_000])
        stdin.flush()

    with session(sshd.target, io_timeout_s=1.0) as ssh:
        received = ssh.run_with_input("sha256sum", feed)
        assert received.stdout.split()[0] == hashlib.sha256(payload).hexdigest()
        refused = ssh.run_with_input("echo 'tar: no such folder' >&2; exit 2", feed)
        assert (refused.exit_code, refused.stderr) == (2, "tar: no such folder\n")
        started = time.monotonic()
        with pytest.raises(CommandTimeout, match=r"'sleep 30' on .* took no input for 1 s"):
            ssh.run_with_input("sleep 30", lambda stdin: [feed(stdin) for _ in range(5)])
        assert time.monotonic() - started < 10
        assert ssh.run("echo still usable").stdout == "still usable\n"


def test_unknown_host_key_is_refused(sshd: SshdUnderTest, tmp_path: Path) -> None:
    empty = tmp_path / "empty_known_hosts"
    with pytest.raises(HostKeyUnknown) as caught:
        session(dataclasses.replace(sshd.target, known_hosts=empty)).connect()
    message = str(caught.value)
    assert f"refusing [127.0.0.1]:{sshd.server.port}: its host key is not in {empty}" in message
    assert ssh_keygen_fingerprint(sshd.server.host_key.with_suffix(".pub")) in message
    assert message.endswith(f"If this is your Pi, run: {HINT}")


def test_changed_host_key_is_refused_with_both_fingerprints(sshd: SshdUnderTest, tmp_path: Path) -> None:
    other = keygen(tmp_path / "other_host_key")
    pinned = tmp_path / "known_hosts"
    public = other.with_suffix(".pub").read_text().split()
    pinned.write_text(f"[127.0.0.1]:{sshd.server.port} {public[0]} {public[1]}\n")
    with pytest.raises(HostKeyChanged) as caught:
        session(dataclasses.replace(sshd.target, known_hosts=pinned)).connect()
    message = str(caught.value)
    assert "its host key CHANGED" in message
    assert f"Pinned in {pinned}: ssh-ed25519 {ssh_keygen_fingerprint(other.with_suffix('.pub'))}" in message
    assert f"offered now: ssh-ed25519 {ssh_keygen_fingerprint(sshd.server.host_key.with_suffix('.pub'))}" in message
    assert message.endswith(f"run: {HINT} --replace")


def test_wrong_client_key_is_a_clear_error(
    sshd: SshdUnderTest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    wrong = keygen(tmp_path / "wrong_key")
    started = time.monotonic()
    with pytest.raises(AuthFailed) as caught:
        session(dataclasses.replace(sshd.target, key_file=wrong)).connect()
    assert time.monotonic() - started < 5, "a refused login is not retried until the boot timeout"
    message = str(caught.value)
    assert message.startswith(f"{sshd.target.user}@127.0.0.1:{sshd.server.port} refused the login; offered {wrong}")
    assert ssh_keygen_fingerprint(wrong.with_suffix(".pub")) in message


def test_unreachable_host_fails_within_the_boot_timeout(sshd: SshdUnderTest) -> None:
    closed = dataclasses.replace(sshd.target, port=free_port())
    started = time.monotonic()
    with pytest.raises(
        HostUnreachable, match=r"cannot reach .* within 1 s \(\d+ attempts; last: ConnectionRefusedError"
    ):
        SshSession(closed, enroll_hint=HINT, connect_timeout_s=0.5, boot_timeout_s=1.0).connect()
    assert time.monotonic() - started < 10, "never a hang"


def test_session_reconnects_after_a_reboot(sshd: SshdUnderTest) -> None:
    with session(sshd.target) as ssh:
        assert ssh.run("echo before").stdout == "before\n"
        sshd.stop()
        sshd.start()
        assert ssh.run("echo after").stdout == "after\n"
        assert ssh.reconnects == 1, "the session says that it reconnected"
