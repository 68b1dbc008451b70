"""Deploy a firmware tree to a Pi (or a virtual Pi) over SSH: only what changed, atomically.

Layout on the Pi, under the deploy root:

    releases/<id>/         one complete tree each, with .rig-manifest.json and .venv -> ../../venvs/<hash>
    current -> releases/<id>   switched with one rename, only once a release is complete
    restart-pending        made with each switch, removed once the service runs healthy on it
    venvs/<requirements hash>/ the firmware's Python environment; rebuilt only when requirements change
    wheelhouse/<hash>/     wheels the host pushed, for benches without internet
    data/                  the firmware's data, kept across releases

A new release starts as hard links of the current one (``cp -al``), so unchanged files cost
nothing; changed files travel as one tar stream on one channel, unpacked by the Pi's tar with
``--unlink-first``, which replaces each link instead of writing through it into the old release.
Until the switch, the old release keeps running untouched, so a broken upload (link down, disk
full) leaves the Pi as it was. After it, a connection lost before the service came up healthy on
the new release leaves ``restart-pending``, so the next deploy, with no file left to send,
restarts the service rather than report that nothing needs doing.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shlex
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paramiko

from . import paths
from .health import wait_healthy
from .manifest import MANIFEST_NAME, Manifest, Plan, build_manifest, plan
from .ssh import ChannelWriter, SshError, SshSession

log = logging.getLogger(__name__)

KEEP_RELEASES = 3
RESTART_PENDING = "restart-pending"
Progress = Callable[[str, int, int, int, int], None]  # (file, files done, files, bytes done, bytes)


class DeployError(RuntimeError):
    """A deploy that did not complete; the message says what happened and what still runs."""


# A follow command prints this line once it has fixed where it starts reading; every journal line
# written after the marker is streamed, so a follower that waits for it misses nothing.
FOLLOW_READY = "rig-follow-ready"


@dataclass(frozen=True)
class ServiceControl:
    """How the firmware's service is restarted and its journal read, as shell commands on the Pi."""

    restart: str
    journal: str  # prints the last lines; "{lines}" is replaced by the count
    follow: str  # streams new journal lines until stopped


def systemd_service(unit: str) -> ServiceControl:
    """A Pi: provisioning installed the unit and a sudo rule for exactly these systemctl calls."""
    quoted = shlex.quote(unit)
    return ServiceControl(
        restart=f"sudo -n systemctl restart {quoted}",
        journal=f"journalctl -u {quoted} -n {{lines}} --no-pager -o cat",
        follow=(
            f"since=$(date '+%Y-%m-%d %H:%M:%S'); echo {FOLLOW_READY}; "
            f'exec journalctl -u {quoted} -f -o json --since "$since"'
        ),
    )


def supervisor_service(supervisorctl: str, program: str, log_file: str) -> ServiceControl:
    """A virtual Pi: its supervisord plays systemd's part."""
    return ServiceControl(
        restart=f"{supervisorctl} restart {shlex.quote(program)}",
        journal=f"tail -n {{lines}} {shlex.quote(log_file)}",
        follow=(
            f"seen=$(wc -l < {shlex.quote(log_file)} 2>/dev/null || echo 0); echo {FOLLOW_READY}; "
            f'exec tail -n +"$((seen + 1))" -F {shlex.quote(log_file)}'
        ),
    )


@dataclass(frozen=True)
class DeployTarget:
    root: str  # absolute path on the Pi
    python: str  # the Pi's Python, which builds the firmware's venv
    packages: str  # "wheelhouse" (the host pushes wheels) or "online" (the Pi pip-installs)
    service: ServiceControl
    health_url: str
    health_timeout_s: float = 60.0
    # Local distributions installed beside the firmware's requirements, built into wheels on the
    # host: the virtual Pi's gpiozero pin factory. A Pi needs none.
    extra_packages: tuple[Path, ...] = ()


@dataclass(frozen=True)
class DeployResult:
    release: str
    files_sent: int
    bytes_sent: int
    files_removed: int
    seconds: float
    venv_built: bool
    restarted: bool = True  # False: nothing changed and no switch was waiting for its restart

    @property
    def noop(self) -> bool:
        return not self.restarted

    @property
    def restart_only(self) -> bool:
        """Nothing sent, yet restarted: an interrupted deploy had switched without its restart."""
        return self.restarted and self.files_sent == self.files_removed == 0 and not self.venv_built

    def line(self) -> str:
        return (
            f"release {self.release}: {self.files_sent} files ({self.bytes_sent} bytes) sent, "
            f"{self.files_removed} removed, in {self.seconds:.2f} s"
        )


def environment_hash(firmware: Path, extra_packages: tuple[Path, ...] = ()) -> str:
    """Names the firmware's Python environment: its requirements, and the trees of the extras."""
    requirements = firmware / "requirements.txt"
    if not requirements.is_file():
        raise DeployError(f"{firmware} has no requirements.txt; a deployable firmware tree needs one")
    digest = hashlib.sha256(requirements.read_bytes())
    for extra in extra_packages:
        digest.update(build_manifest(extra).tree_hash.encode())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class PiState:
    current: str | None  # the running release
    venv_ready: bool  # the environment of these requirements is built
    free_kib: int | None  # free space under the deploy root (None: df said nothing usable)
    releases: tuple[str, ...]  # the finished releases, oldest first
    restart_pending: bool  # a switch was made and the service has not come up healthy on it since


def _finished(listing: str) -> list[str]:
    """The finished releases in a listing of releases/, oldest first (an empty folder's glob
    stays a literal ``*``; a ``.partial`` is a broken deploy's leftover)."""
    return sorted(name for name in listing.split() if name != "*" and not name.endswith(".partial"))


def _free_kib(df_line: str) -> int | None:
    """The free KiB of one line of ``df -Pk`` output."""
    fields = df_line.split()
    return int(fields[3]) if len(fields) > 3 and fields[3].isdigit() else None


class Deployer:
    def __init__(self, ssh: SshSession, target: DeployTarget, progress: Progress | None = None) -> None:
        self.ssh = ssh
        self.target = target
        self.progress = progress
        self.root = target.root.rstrip("/")
        self._deployed: tuple[str, Manifest] | None = None  # (release, its manifest)

    def _sh(self, command: str, timeout: float = 60.0) -> str:
        return self.ssh.run(command, timeout=timeout).check().stdout

    def _q(self, *parts: str) -> str:
        return shlex.quote("/".join([self.root, *parts]))

    # -- state on the Pi ---------------------------------------------------------------------
    def deployed_manifest(self, release: str | None) -> Manifest | None:
        """The manifest of a release on the Pi. A finished release never changes, so the last one
        read or deployed is kept: a redeploy then costs no read of it."""
        if release is None:
            return None
        if self._deployed is not None and self._deployed[0] == release:
            return self._deployed[1]
        try:
            with self.ssh.sftp().open(f"{self.root}/releases/{release}/{MANIFEST_NAME}") as stream:
                manifest = Manifest.from_json(stream.read().decode())
        except FileNotFoundError:
            return None
        self._deployed = (release, manifest)
        return manifest

    def current_release(self) -> str | None:
        result = self.ssh.run(f"readlink {self._q('current')}")
        return result.stdout.strip().rsplit("/", 1)[-1] if result.ok and result.stdout.strip() else None

    def releases(self) -> list[str]:
        return _finished(self._sh(f"mkdir -p {self._q('releases')} && {self._list_releases()}"))

    def _list_releases(self) -> str:
        """Shell that prints each name in releases/ on a line, with builtins only (no process)."""
        return f'for r in {self._q("releases")}/*; do echo "${{r##*/}}"; done'

    def plan(self, firmware: Path) -> tuple[Manifest, Plan]:
        local = build_manifest(firmware)
        return local, plan(local, self.deployed_manifest(self.current_release()))

    def _state(self, req_hash: str) -> PiState:
        """What a deploy needs to know of the Pi, in one round trip (a redeploy of one file is
        otherwise mostly waiting on round trips); it also makes the deploy root's folders."""
        folders = [self._q(name) for name in ("releases", "venvs", "data")]
        out = self._sh(
            # test is the shell's own: mkdir runs (a process) only on a first deploy
            f"{' && '.join(f'test -d {f}' for f in folders)} || mkdir -p {' '.join(folders)} || exit; "
            f'echo "current=$(readlink {self._q("current")})"; '
            f"test -f {self._q('venvs', req_hash, '.rig-complete')} && echo venv=ready; "
            f'echo "df=$(df -Pk {self._q()} 2>/dev/null | tail -n 1)"; '
            f"test -e {self._q(RESTART_PENDING)} && echo restart=pending; "
            f"echo releases:; {self._list_releases()}"
        )
        head, _, listing = out.partition("releases:\n")
        said = dict(line.split("=", 1) for line in head.splitlines() if "=" in line)
        current = said.get("current", "").rsplit("/", 1)[-1] or None
        return PiState(
            current,
            said.get("venv") == "ready",
            _free_kib(said.get("df", "")),
            tuple(_finished(listing)),
            said.get("restart") == "pending",
        )

    # -- deploy ------------------------------------------------------------------------------
    def deploy(self, firmware: Path) -> DeployResult:
        started = time.monotonic()
        req_hash = environment_hash(firmware, self.target.extra_packages)
        state = self._state(req_hash)
        local = build_manifest(firmware)
        changes = plan(local, self.deployed_manifest(state.current))
        current = state.current
        if changes.empty and state.venv_ready and current is not None:
            if state.restart_pending:
                log.warning("release %s was switched to but the service not restarted on it: restarting", current)
                self.restart_and_wait()
            return DeployResult(current, 0, 0, 0, time.monotonic() - started, False, state.restart_pending)

        release = time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + local.tree_hash[:8]
        partial = f"releases/{release}.partial"
        needed = sum(local.files[f].size for f in changes.upload()) // 1024 + 1
        if state.free_kib is not None and state.free_kib < needed:
            raise DeployError(
                f"the Pi's disk is full: {state.free_kib} KiB free under {self.root}, the upload needs {needed} KiB"
            )
        venv_built = False
        try:
            venv_built = False if state.venv_ready else self._build_venv(firmware, req_hash)
            sent = self._release_and_switch(firmware, partial, release, req_hash, changes, local)
        except (SshError, OSError, EOFError, paramiko.SSHException) as exc:
            # An environment that was finished stays: only the stream failed, and it is reused.
            leftovers = [partial] if state.venv_ready or venv_built else [partial, f"venvs/{req_hash}"]
            raise DeployError(
                f"deploy of release {release} failed before the switch: {self._explain(exc, leftovers)}. "
                f"The running release ({current or 'none'}) is untouched; deploy again when the cause is fixed"
            ) from exc
        self._deployed = (release, local)
        log.info("switched to release %s", release)
        self.restart_and_wait()
        self._prune((*state.releases, release), keep={release, current})
        return DeployResult(
            release, len(changes.upload()), sent, len(changes.removed), time.monotonic() - started, venv_built
        )

    def _explain(self, exc: BaseException, leftovers: list[str]) -> str:
        """One line on why the deploy broke. When the Pi is still reachable, what the deploy half
        made (the partial release, an unfinished environment) is removed: on a full disk it is
        exactly the space the running firmware may need."""
        reason = str(exc) or type(exc).__name__
        if self.ssh.lost():
            return f"the connection to {self.ssh.where} was lost ({reason})"
        try:
            self.ssh.run("rm -rf " + " ".join(self._q(path) for path in leftovers), timeout=60)
            free = _free_kib(self.ssh.run(f"df -Pk {self._q()} | tail -n 1", timeout=15).stdout)
        except SshError:
            return reason
        if free is not None and free < 1024:
            return f"the Pi's disk is full ({free} KiB free under {self.root}): {reason}"
        return reason

    def _release_and_switch(
        self, firmware: Path, partial: str, release: str, req_hash: str, changes: Plan, local: Manifest
    ) -> int:
        """Make the partial release (hard links of the running one, less the removed files), send
        the changed files into it as one tar stream, the new manifest last, then finish the release
        and switch ``current`` to it, all in one command on one channel: per-file SFTP cost five
        round trips a file (open, write, stat, chmod, rename), which made a 500-file deploy half as
        fast as scp, and finishing and switching in commands of their own cost a one-file redeploy
        two more round trips. The partial release's manifest (a hard link of the running one's) is
        removed before the stream, so only a stream that arrived whole leaves one there: a stream
        cut short, even between two files where tar sees a clean end, is never switched to. Until
        the switch's rename, the running release is untouched."""
        files = changes.upload()
        total = sum(local.files[f].size for f in files)
        sent, streamed = 0, False

        def write(stdin: ChannelWriter) -> None:
            nonlocal sent, streamed
            with tarfile.open(fileobj=stdin, mode="w", format=tarfile.PAX_FORMAT, copybufsize=1 << 20) as archive:
                for done, name in enumerate(files, start=1):
                    entry = local.files[name]
                    with (firmware / name).open("rb") as stream:
                        info = tarfile.TarInfo(name)
                        info.size, info.mode = entry.size, entry.mode
                        info.mtime = int(os.fstat(stream.fileno()).st_mtime)  # a float would cost a pax header each
                        archive.addfile(info, stream)
                    sent += entry.size
                    if self.progress is not None:
                        self.progress(name, done, len(files), sent, total)
                manifest = local.to_json().encode()
                info = tarfile.TarInfo(MANIFEST_NAME)
                info.size, info.mode, info.mtime = len(manifest), 0o644, int(time.time())
                archive.addfile(info, io.BytesIO(manifest))
            stdin.flush()
            streamed = True

        prepare = (
            f"rm -rf {self._q('releases')}/*.partial && "  # what a broken deploy left
            f"if [ -d {self._q('current')}/ ]; "
            f"then cp -al {self._q('current')}/. {self._q(partial)}; else mkdir {self._q(partial)}; fi"
        )
        removed = [*changes.removed, MANIFEST_NAME]
        prepare += " && rm -f " + " ".join(self._q(partial, p) for p in removed)
        unpack = f"tar -x -f - -p --no-same-owner --unlink-first -C {self._q(partial)}"
        finish = (
            f"test -s {self._q(partial, MANIFEST_NAME)} && "
            f"ln -sfn ../../venvs/{req_hash} {self._q(partial, '.venv')} && "
            f"mv -T {self._q(partial)} {self._q('releases', release)}"
        )
        command = f"{prepare} && {unpack} && {finish} && {self._switch_command(release)}"
        try:
            self.ssh.run_with_input(command, write, timeout=120 + total / 1e6).check()
        except (SshError, OSError, EOFError, paramiko.SSHException) as exc:
            if streamed and self.ssh.lost():
                raise DeployError(
                    f"deploy of release {release}: the connection to {self.ssh.where} was lost after the whole "
                    f"release was sent ({str(exc) or type(exc).__name__}), so the Pi may have switched to it "
                    "without restarting the service; deploy again once it is reachable, which restarts the "
                    "service if it did"
                ) from exc
            raise
        return sent

    def _build_venv(self, firmware: Path, req_hash: str) -> bool:
        venv = self._q("venvs", req_hash)
        requirements = self._q("venvs", f"{req_hash}.requirements.txt")
        self.ssh.sftp().put(str(firmware / "requirements.txt"), f"{self.root}/venvs/{req_hash}.requirements.txt")
        python = shlex.quote(self.target.python)
        if self.target.packages == "wheelhouse":
            # pip runs from its own wheel in the wheelhouse, so the venv needs none: ensurepip
            # would spend 4.5 s installing a pip the firmware never uses. --no-compile: Python
            # compiles what the firmware imports when it first does (0.8 s), not all 110 MB.
            wheelhouse, pip_wheel = self._push_wheelhouse(firmware, req_hash)
            make = f"{python} -m venv --without-pip {venv}"
            pip = f"{venv}/bin/python {wheelhouse}/{shlex.quote(pip_wheel)}/pip"
            install = f"--no-compile --no-index --find-links {wheelhouse}"
        else:
            make, pip, install = f"{python} -m venv {venv}", f"{venv}/bin/python -m pip", ""
        extras = " ".join(shlex.quote(wheel) for wheel in self._push_extras(req_hash))
        log.info("building the firmware's Python environment %s on the Pi", req_hash)
        self._sh(
            f"rm -rf {venv} && {make} && "
            f"{pip} install --quiet --disable-pip-version-check {install} -r {requirements} {extras} && "
            f"touch {venv}/.rig-complete",
            timeout=900,
        )
        return True

    def _push_extras(self, req_hash: str) -> list[str]:
        """Build each extra package into a wheel on the host (cached by its tree hash) and push it."""
        remote_dir = f"{self.root}/wheelhouse/{req_hash}"
        pushed = []
        for extra in self.target.extra_packages:
            cache = paths.cache_home() / "extras" / build_manifest(extra).tree_hash[:16]
            if not any(cache.glob("*.whl")):
                cache.mkdir(parents=True, exist_ok=True)
                command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                           "--disable-pip-version-check", "-w", str(cache), str(extra)]  # fmt: skip
                result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
                if result.returncode != 0:
                    said = [line.strip() for line in result.stderr.splitlines() if line.strip().startswith("error")]
                    raise DeployError(f"could not build a wheel of {extra}: {(said or ['pip wheel failed'])[0]}")
            self._sh(f"mkdir -p {shlex.quote(remote_dir)}")
            sftp = self.ssh.sftp()
            for wheel in cache.glob("*.whl"):
                self._put_whole(sftp, wheel, f"{remote_dir}/{wheel.name}")
                pushed.append(f"{remote_dir}/{wheel.name}")
        return pushed

    @staticmethod
    def _put_whole(sftp: paramiko.SFTPClient, local: Path, remote: str, mode: int | None = None) -> None:
        """Send a file under a staging name and rename it once complete: a push cut short (a full
        disk, a dropped link) never leaves a truncated file under its real name, where the next
        deploy would take it for done. One push uses one SFTP channel throughout: a connection
        lost under it fails the push, never resumes it half on a new connection."""
        staging = remote + ".rig-upload"
        sftp.put(str(local), staging, confirm=True)
        if mode is not None:
            sftp.chmod(staging, mode)
        sftp.posix_rename(staging, remote)

    def _push_wheelhouse(self, firmware: Path, req_hash: str) -> tuple[str, str]:
        """Download the wheels for the Pi's Python and platform on the host, and push them;
        returns the Pi's wheelhouse (shell-quoted) and the name of the pip wheel in it."""
        out = self._sh(
            f"{shlex.quote(self.target.python)} -c "
            + shlex.quote(
                "import platform, sys, sysconfig; "
                "print(sysconfig.get_platform(), '%d.%d' % sys.version_info[:2], platform.libc_ver()[1] or '2.17')"
            )
        ).split()
        platform, version, glibc = out[0], out[1], out[2]
        machine = platform.split("-", 1)[1]
        cache = paths.cache_home() / "wheelhouse" / f"{machine}-cp{version.replace('.', '')}-{req_hash}"
        if not (cache / ".complete").exists() or not any(cache.glob("pip-*.whl")):
            self._download_wheels(firmware, machine, version, glibc, cache)
        remote = f"{self.root}/wheelhouse/{req_hash}"
        self._sh(f"mkdir -p {shlex.quote(remote)} && rm -f {shlex.quote(remote)}/*.rig-upload")
        sftp = self.ssh.sftp()
        present = set(sftp.listdir(remote))
        for wheel in sorted(cache.glob("*.whl")):
            if wheel.name not in present:
                self._put_whole(sftp, wheel, f"{remote}/{wheel.name}")
        return shlex.quote(remote), next(cache.glob("pip-*.whl")).name

    @staticmethod
    def _download_wheels(firmware: Path, machine: str, version: str, glibc: str, cache: Path) -> None:
        """Wheels for the Pi's Python and platform, fetched on the host once per requirements.

        pip's own wheel comes too: the Pi installs with it (``_build_venv``).

        pip resolves the requirements on the host first and builds a wheel of every sdist (pyDes,
        which nfcpy needs, has no wheel on PyPI). A pure-Python wheel serves the Pi as it is; for
        any other, pip downloads the build for the Pi's platform. pip does not widen a
        ``--platform`` to older glibc tags, so every manylinux tag the Pi's glibc can load is
        listed (numpy 2.4 ships manylinux_2_28 wheels only, which manylinux2014 misses).
        """
        major, minor = (int(part) for part in glibc.split(".")[:2])
        tags = [f"manylinux_{major}_{m}_{machine}" for m in range(minor, 16, -1)]
        platforms = [
            arg for tag in (*tags, f"manylinux2014_{machine}", f"linux_{machine}") for arg in ("--platform", tag)
        ]
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="rig-wheelhouse-", dir=cache.parent) as folder:
            built, chosen = Path(folder) / "host", Path(folder) / "pi"
            unresolved = f"could not resolve the firmware's requirements for linux-{machine} Python {version}"
            _pip("wheel", "-r", str(firmware / "requirements.txt"), "pip", "-w", str(built), failure=unresolved)
            chosen.mkdir()
            for wheel in built.glob("*.whl"):
                if wheel.name.endswith("-none-any.whl"):
                    wheel.replace(chosen / wheel.name)
                    continue
                name, wheel_version = wheel.name.split("-")[:2]
                _pip("download", "--only-binary=:all:", "--no-deps", "--python-version", version,
                     "--implementation", "cp", *platforms, f"{name}=={wheel_version}", "-d", str(chosen),
                     failure=f"no wheel of {name} {wheel_version} for linux-{machine} Python {version}")  # fmt: skip
            for wheel in chosen.glob("*.whl"):
                wheel.replace(cache / wheel.name)
        (cache / ".complete").touch()

    def _switch_command(self, release: str) -> str:
        """One rename switches ``current``: the Pi never sees a half-switched tree. The restart
        marker is made first (a redirection: no process), so no switch goes without one."""
        return (
            f": > {self._q(RESTART_PENDING)} && "
            f"ln -sfn releases/{shlex.quote(release)} {self._q('current.new')} && "
            f"mv -T {self._q('current.new')} {self._q('current')}"
        )

    def _prune(self, releases: tuple[str, ...], keep: set[str | None]) -> None:
        """Remove all but the newest KEEP_RELEASES of ``releases`` (the Pi's, as the deploy left
        them), sparing ``keep``."""
        old = [r for r in sorted(releases)[:-KEEP_RELEASES] if r not in keep]
        if old:
            self._sh("rm -rf " + " ".join(self._q("releases", r) for r in old))

    # -- service -------------------------------------------------------------------------------
    def restart_and_wait(self) -> float:
        """Restart the service and wait for health; on failure the error ends with the journal."""
        started = time.monotonic()
        result = self.ssh.run(self.target.service.restart, timeout=60)
        if not result.ok:
            said = (
                " / ".join((result.stderr.strip() or result.stdout.strip()).splitlines()) or f"exit {result.exit_code}"
            )
            raise DeployError(self._failure(f"the service did not start ({said})"))
        last = wait_healthy(
            self.target.health_url, started + self.target.health_timeout_s - time.monotonic(), socketio=True
        )
        if last is None:
            self._sh(f"rm -f {self._q(RESTART_PENDING)}")
            return time.monotonic() - started
        raise DeployError(
            self._failure(
                f"the firmware was not healthy within {self.target.health_timeout_s:g} s at "
                f"{self.target.health_url} (last: {last})"
            )
        )

    def _failure(self, reason: str) -> str:
        return f"{reason}. Roll back with 'rig deploy --rollback'. Last lines of the journal:\n{self.journal(20)}"

    def journal(self, lines: int = 50) -> str:
        return self.ssh.run(self.target.service.journal.format(lines=int(lines)), timeout=30).stdout

    def rollback(self) -> str:
        current = self.current_release()
        releases = self.releases()
        if current not in releases or releases.index(current) == 0:
            raise DeployError(f"no release before {current or 'the current one'} to roll back to (have: {releases})")
        previous = releases[releases.index(current) - 1]
        self._sh(self._switch_command(previous))
        log.info("switched to release %s", previous)
        self.restart_and_wait()
        return previous


def _pip(*args: str, failure: str) -> None:
    command = [sys.executable, "-m", "pip", *args[:1], "--quiet", "--disable-pip-version-check", *args[1:]]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    if result.returncode != 0:
        tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise DeployError(f"{failure}: {tail}")
