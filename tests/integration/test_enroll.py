"""`rig enroll`: first contact shows the fingerprint and pins it; nothing is ever trusted silently."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

from rig.ssh import SshSession

from .conftest import SshdUnderTest, run_rig


def bench_file(tmp_path: Path, sshd: SshdUnderTest, known_hosts: Path) -> Path:
    bench = tmp_path / "bench.toml"
    bench.write_text(
        f'[bench]\nname = "enroll-test"\nkind = "pi"\n[dut]\nurl = "http://127.0.0.1:9"\n'
        f'[ssh]\nhost = "127.0.0.1"\nport = {sshd.server.port}\nuser = "{sshd.target.user}"\n'
        f'key_file = "{sshd.server.client_key}"\nknown_hosts = "{known_hosts}"\n'
    )
    return bench


def fingerprint_of(public_key: Path) -> str:
    return subprocess.run(
        ["ssh-keygen", "-lf", str(public_key)], capture_output=True, text=True, check=True
    ).stdout.split()[1]


def test_enroll_records_then_recognises_the_key(sshd: SshdUnderTest, tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("# bench 3, managed by rig enroll\n")
    bench = bench_file(tmp_path, sshd, known_hosts)
    expected = fingerprint_of(sshd.server.host_key.with_suffix(".pub"))

    refused = run_rig("enroll", "--bench", str(bench))  # no terminal and no --accept-new
    assert refused.returncode == 1
    assert expected in refused.stderr
    assert f"then run: rig enroll --bench {bench} --accept-new" in refused.stderr
    assert known_hosts.read_text() == "# bench 3, managed by rig enroll\n", "nothing recorded"

    recorded = run_rig("enroll", "--bench", str(bench), "--accept-new")
    assert recorded.returncode == 0, recorded.stderr
    assert (
        recorded.stdout.strip() == f"recorded: [127.0.0.1]:{sshd.server.port} ssh-ed25519 {expected} in {known_hosts}"
    )
    assert known_hosts.read_text().startswith("# bench 3, managed by rig enroll\n[127.0.0.1]:")

    again = run_rig("enroll", "--bench", str(bench), "--accept-new")
    assert again.stdout.startswith("already enrolled:")

    with SshSession(replace(sshd.target, known_hosts=known_hosts), enroll_hint="unused", boot_timeout_s=5) as ssh:
        assert ssh.run("echo pinned").stdout == "pinned\n"


def test_changed_key_is_replaced_only_on_request(sshd: SshdUnderTest, tmp_path: Path) -> None:
    old_key = tmp_path / "old_host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(old_key)], check=True)
    kind, blob = old_key.with_suffix(".pub").read_text().split()[:2]
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"other-pi.local {kind} {blob}\n[127.0.0.1]:{sshd.server.port} {kind} {blob}\n")
    bench = bench_file(tmp_path, sshd, known_hosts)

    for flags in ((), ("--accept-new",)):
        refused = run_rig("enroll", "--bench", str(bench), *flags)
        assert refused.returncode == 1
        assert "its host key CHANGED" in refused.stderr
        assert fingerprint_of(old_key.with_suffix(".pub")) in refused.stderr
        assert fingerprint_of(sshd.server.host_key.with_suffix(".pub")) in refused.stderr
        assert refused.stderr.rstrip().endswith(f"run: rig enroll --bench {bench} --replace")

    replaced = run_rig("enroll", "--bench", str(bench), "--replace")
    assert replaced.returncode == 0, replaced.stderr
    assert replaced.stdout.startswith("replaced:")
    lines = known_hosts.read_text().splitlines()
    assert lines[0] == f"other-pi.local {kind} {blob}", "other hosts' entries are kept"
    assert len(lines) == 2
    assert blob not in lines[1]


def test_enroll_needs_an_ssh_section(tmp_path: Path) -> None:
    bench = tmp_path / "bench.toml"
    bench.write_text('[bench]\nname = "b"\nkind = "sim"\n')
    result = run_rig("enroll", "--bench", str(bench))
    assert result.returncode == 2
    assert result.stderr.strip() == f"rig: {bench}: no [ssh] section: the bench has no SSH host to talk to"
