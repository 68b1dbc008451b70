"""The virtual Pi: the reference firmware on a stand-in for a Raspberry Pi, in one of DESIGN.md's three forms.

- ``netns`` (form (a), root): a network namespace with its own address on a veth pair, a Pi-like
  hostname, an sshd on port 22 for a dedicated account, and the firmware running as that account.
- ``ssh`` (form (b)): an sshd on 127.0.0.1 at an ephemeral port, run as the user.
- ``local`` (form (c)): the firmware straight from its tree, no sshd.

In the first two the firmware arrives only through ``rig deploy`` over real SSH, as on a Pi.
supervisord, an existing supervisor, runs the firmware the way systemd does on a Pi. One
virtual Pi lives in one state folder: its supervisord config and PID, the Pi's disk (``pi/``),
and the logs (``logs/``, the firmware's journal). ``up`` refuses to start a second one there.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from . import paths
from .deploy import Deployer, DeployResult, DeployTarget, supervisor_service
from .fixture_audio import FixtureLibrary
from .health import wait_healthy
from .net import free_port
from .netns import Namespace, NamespaceError
from .pi_account import PI_HOME, PI_USER, AccountError, ensure_account
from .procs import descendants, process_alive
from .ssh import SshSession
from .sshd import LocalSshd, SshdError, SshTarget, current_user

log = logging.getLogger(__name__)


# The "Pi's" own Python builds the firmware's venv, as on a Pi: the system one, not the rig's.
VIRTUAL_PI_PYTHON = "/usr/bin/python3"


class SimError(RuntimeError):
    """The virtual Pi could not do what was asked; the message says why and what to do."""


class AlreadyRunning(SimError):
    pass


FORMS = ("netns", "ssh", "local")  # DESIGN.md forms (a), (b) and (c)
# Inside its namespace the virtual Pi has a network stack of its own, so it uses fixed ports as a Pi does.
PI_HTTP_PORT = 8080
PI_LOG_DIR = "/var/log/virtual-pi"  # the state folder's logs/, as the Pi's own account sees them
# The Pi's own supervisorctl (Debian's supervisor package): the Pi-side account cannot run the
# rig's, whose interpreter may sit under /root.
PI_SUPERVISORCTL = "/usr/bin/supervisorctl"
# nfcpy's own default udp port; in the namespace form the field has an address of its own (netns.py).
NFC_FIELD_PORT = 54321
# The virtual audio cables: the rig plays into dut_mic, the firmware into dut_speaker (DESIGN.md).
AUDIO_SINKS = ("dut_mic", "dut_speaker")

# Runs inside the new namespace, as root, before supervisord takes over. /home and /var/log get
# tmpfs mounts of their own so the Pi's paths exist without touching the machine's.
BOOT_SCRIPT = """set -eu
hostname {hostname}
mount -t tmpfs -o mode=0755,size=1m pi-var-log /var/log
mkdir {log_dir} && mount --bind {state_logs} {log_dir}
mount -t tmpfs -o mode=0755,size=1m pi-home /home
mkdir {home}
{home_mount}
exec {supervisord}
"""


def resolve_form(form: str) -> str:
    """'auto' is the namespace form as root (as in CI), else the SSH form."""
    if form != "auto":
        return form
    return "netns" if os.geteuid() == 0 else "ssh"


SSHD_PROGRAM = """
[program:sshd]
command={command}
autostart=true
autorestart=true
startsecs=0
redirect_stderr=true
stdout_logfile={log}
"""


@dataclass(frozen=True)
class SimInfo:
    url: str
    port: int
    supervisor_pid: int
    state_dir: str
    firmware_log: str
    music_dir: str
    started_at: float
    boot_s: float
    form: str = "local"
    ssh_host: str = "127.0.0.1"
    ssh_port: int = 0
    ssh_user: str = ""
    ssh_key: str = ""
    known_hosts: str = ""
    deploy_root: str = ""  # as the Pi sees it
    namespace: str = ""
    hostname: str = ""
    nfc_host: str = ""  # where the rig's NFC field answers the firmware's udp reader
    nfc_port: int = 0
    console: str = ""  # the rig's end of the console's pty pair ("" when socat is missing)
    pulse_server: str = ""  # the virtual audio cables' PulseAudio server ("" when it is missing)
    disk_mb: int = 0  # the size of the Pi's SD card (a tmpfs), 0 when it is the host's disk


@dataclass(frozen=True)
class SimSettings:
    firmware_dir: Path = paths.FIRMWARE_DIR
    faults: tuple[str, ...] = ()
    position_interval_ms: int = 500
    boot_timeout_s: float = 20.0
    form: str = "auto"
    disk_mb: int = 0  # namespace form: the Pi's home as a tmpfs of this size (a small SD card); 0: a host folder
    heartbeat_s: float = 1.0  # MUSICBOX_HEARTBEAT_S
    upload_timeout_s: float = 5.0  # MUSICBOX_UPLOAD_TIMEOUT_S


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


class VirtualPi:
    def __init__(self, state_dir: Path, settings: SimSettings | None = None) -> None:
        self.state_dir = state_dir.resolve()
        self.settings = settings or SimSettings()
        self.state_file = self.state_dir / "state.json"
        self.conf_file = self.state_dir / "supervisord.conf"
        self.log_dir = self.state_dir / "logs"
        self.firmware_log = self.log_dir / "firmware.log"
        digest = hashlib.sha256(str(self.state_dir).encode()).hexdigest()
        self.namespace = Namespace(digest[:8])
        # AF_UNIX paths are limited to 108 bytes, so the control socket lives in the temp dir.
        self.socket_path = Path(tempfile.gettempdir()) / f"rig-sim-{digest[:12]}.sock"
        # The firmware's mock pins listen here (device_drivers/gpio/mockpins); in the namespace
        # form the Pi and the host share /tmp, as a wire shares a pin.
        self.gpio_socket = Path(tempfile.gettempdir()) / f"rig-sim-{digest[:12]}-gpio.sock"
        # The serial console: a pty pair joined by socat, a null-modem cable that outlives power cycles.
        self.console_links = tuple(
            Path(tempfile.gettempdir()) / f"rig-sim-{digest[:12]}-console-{end}" for end in ("pi", "rig")
        )
        self.nfc_control = Path(tempfile.gettempdir()) / f"rig-sim-{digest[:12]}-nfc.sock"
        self.pulse_socket = Path(tempfile.gettempdir()) / f"rig-sim-{digest[:12]}-pulse.sock"
        self.powered_off_file = self.state_dir / "powered-off.json"
        # The Pi's disk as the host sees it. In the SSH forms the firmware lives where a deploy
        # puts it on a Pi: releases, venvs and data under one root reached only over SSH.
        self.pi_dir = self.state_dir / "pi"
        self.deploy_root = self.pi_dir / "musicbox"
        base = self.state_dir if self.settings.form == "local" else self.deploy_root
        self.data_dir = base / "data"
        self.music_dir = self.data_dir / "music" if self.settings.form != "local" else self.state_dir / "music"
        self.sshd = LocalSshd(self.state_dir / "ssh", "127.0.0.1", 0, current_user())

    @property
    def form(self) -> str:
        return resolve_form(self.settings.form)

    def on_pi(self, host_path: Path) -> str:
        """A path of the Pi's disk as the Pi itself sees it (its home in the namespace form)."""
        if self.form != "netns":
            return str(host_path)
        return str(PI_HOME / host_path.relative_to(self.pi_dir))

    @classmethod
    def running(cls, state_dir: Path) -> tuple[VirtualPi, SimInfo] | None:
        """The virtual Pi that runs in ``state_dir``, with the form it was started in (its paths
        depend on it), or None when nothing runs there."""
        info = cls(state_dir).info()
        if info is None:
            return None
        return cls(state_dir, SimSettings(form=info.form)), info

    # -- inspection ------------------------------------------------------------------------
    def info(self) -> SimInfo | None:
        """The running instance's facts, or None when nothing runs here (stale state is removed)."""
        try:
            info = SimInfo(**json.loads(self.state_file.read_text()))
        except (OSError, ValueError, TypeError):
            return None
        if process_alive(info.supervisor_pid) and str(self.conf_file) in _cmdline(info.supervisor_pid):
            return info
        self.state_file.unlink(missing_ok=True)
        return None

    def _supervisorctl(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "supervisor.supervisorctl", "-c", str(self.conf_file), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def program_status(self, program: str = "firmware") -> str:
        """supervisord's view of a program (RUNNING, STOPPED, BACKOFF, FATAL, ...)."""
        result = self._supervisorctl("status", program, timeout=10)
        fields = result.stdout.split()
        return fields[1] if len(fields) > 1 else (result.stdout.strip() or result.stderr.strip() or "unknown")

    def journal_tail(self, lines: int = 20) -> str:
        try:
            text = self.firmware_log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no firmware log yet)"
        return "\n".join(text.splitlines()[-lines:]) or "(the firmware log is empty)"

    # -- lifecycle -------------------------------------------------------------------------
    def up(self) -> SimInfo:
        running = self.info()
        if running is not None:
            raise AlreadyRunning(
                f"a virtual Pi already runs at {running.url} (supervisord PID {running.supervisor_pid}, "
                f"state {self.state_dir}); stop it with 'rig sim down'"
            )
        form = self.form
        if form not in FORMS:
            raise SimError(f"unknown virtual Pi form {form!r}; known: auto, {', '.join(FORMS)}")
        if self.settings.disk_mb and form != "netns":
            raise SimError("a disk size (disk_mb) needs the namespace form, which mounts the Pi's own tmpfs")
        started = time.monotonic()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(mode=0o755, exist_ok=True)
        self.powered_off_file.unlink(missing_ok=True)
        if self.settings.disk_mb:
            self._insert_card()
        FixtureLibrary.load().seed(self.music_dir)
        host, port, hostname = "127.0.0.1", free_port(), ""
        command = [sys.executable, "-m", "supervisor.supervisord", "-c", str(self.conf_file)]
        try:
            if form == "netns":
                host, port, hostname = self._prepare_namespace(), PI_HTTP_PORT, f"raspberrypi-{self.namespace.key[:4]}"
                command = self._namespace_boot(hostname, command)
            elif form == "ssh":
                self.sshd = replace(self.sshd, port=free_port())
                self.sshd.prepare()
        except (SshdError, AccountError, NamespaceError, subprocess.CalledProcessError) as exc:
            self._remove_namespace()
            self._remove_card()
            raise SimError(f"cannot set up the virtual Pi ({form} form): {exc}") from None
        nfc_host, nfc_port = (
            (self.namespace.field_address(), NFC_FIELD_PORT) if form == "netns" else ("127.0.0.1", free_port())
        )
        try:
            console_pi = self._start_console()
            self._start_field(nfc_host, nfc_port)
            audio = self._start_audio()
        except SimError:
            self._stop_devices()
            self._remove_namespace()
            self._remove_card()
            raise
        self._write_config(port, f"udp:{nfc_host}:{nfc_port}", console_pi, audio)
        self.console_line("virtual Pi: power on")
        self.socket_path.unlink(missing_ok=True)
        with (self.state_dir / "supervisord.out").open("ab") as out:
            process = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # outlives the CLI that started it; 'down' stops it by PID
            )
        url = f"http://{host}:{port}"
        try:
            if form == "local":
                self._wait_healthy(url, process.pid)
            else:
                self._wait_listening(host, self.sshd.port, process.pid)  # the firmware arrives with 'rig deploy'
        except SimError:
            self._stop_pid(process.pid)
            self._stop_devices()
            self._remove_namespace()
            self._remove_card()
            raise
        info = SimInfo(
            url=url,
            port=port,
            supervisor_pid=process.pid,
            state_dir=str(self.state_dir),
            firmware_log=str(self.firmware_log),
            music_dir=str(self.music_dir),
            started_at=time.time(),
            boot_s=round(time.monotonic() - started, 3),
            form=form,
            hostname=hostname,
            namespace=self.namespace.name if form == "netns" else "",
            nfc_host=nfc_host,
            nfc_port=nfc_port,
            console=str(self.console_links[1]) if console_pi else "",
            pulse_server=self.pulse_server if audio else "",
            disk_mb=self.settings.disk_mb,
            **self._ssh_facts(),
        )
        self.state_file.write_text(json.dumps(asdict(info), indent=2))
        log.info("virtual Pi up at %s in %.2f s", url, info.boot_s)
        return info

    def _prepare_namespace(self) -> str:
        """The Pi's account, network and sshd; returns the Pi's address."""
        if not Path(PI_SUPERVISORCTL).exists():
            raise SimError(f"no {PI_SUPERVISORCTL}: install the supervisor package (make bootstrap does, as root)")
        account = ensure_account()
        self._remove_namespace()  # one left by a killed run with this state folder
        address = self.namespace.create()
        self.sshd = LocalSshd(self.state_dir / "ssh", address, 22, PI_USER, own_account=True)
        self.sshd.prepare()
        ssh_dir = self.pi_dir / ".ssh"
        ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        (ssh_dir / "authorized_keys").write_text(self.sshd.client_key.with_suffix(".pub").read_text())
        self.pi_dir.chmod(0o755)
        self._give_to_pi(self.pi_dir, account.pw_uid, account.pw_gid)
        return address

    @staticmethod
    def _give_to_pi(root: Path, uid: int, gid: int) -> None:
        """Everything on the Pi's disk belongs to the Pi's account, as files it wrote itself would."""
        os.chown(root, uid, gid)
        for folder, dirs, files in os.walk(root):
            for name in (*dirs, *files):
                os.chown(os.path.join(folder, name), uid, gid, follow_symlinks=False)

    def _insert_card(self) -> None:
        """The Pi's disk as a tmpfs of ``disk_mb`` mounted on the host at ``pi/``: the Pi sees it as
        its home and the rig sees the same files (the fixture library, its reseeding), while
        writes past the size fail with ENOSPC as on a full SD card."""
        self._remove_card()  # one left by a killed run
        self.pi_dir.mkdir(parents=True, exist_ok=True)
        size = f"size={int(self.settings.disk_mb)}m"
        try:
            subprocess.run(
                ["mount", "-t", "tmpfs", "-o", f"mode=0755,{size}", "rig-pi-sd-card", str(self.pi_dir)],
                check=True,
                capture_output=True,
                text=True,
                timeout=10,
            )
        except (OSError, subprocess.CalledProcessError) as exc:
            detail = getattr(exc, "stderr", "") or exc
            raise SimError(f"cannot mount the Pi's {self.settings.disk_mb} MB SD card: {detail}") from None

    def _keep_card_data(self) -> None:
        """Before the card goes: its data folder (database, music) to ``pi-data/`` for the
        artifacts; releases and environments are rebuilt by the next deploy anyway."""
        if os.path.ismount(self.pi_dir) and self.data_dir.is_dir():
            keep = self.state_dir / "pi-data"
            shutil.rmtree(keep, ignore_errors=True)
            shutil.copytree(self.data_dir, keep, symlinks=True, ignore=shutil.ignore_patterns("uploads"))

    def _remove_card(self) -> None:
        if os.path.ismount(self.pi_dir):
            subprocess.run(["umount", "--lazy", str(self.pi_dir)], check=False, capture_output=True, timeout=10)

    def _namespace_boot(self, hostname: str, supervisord: list[str]) -> list[str]:
        home_mount = f"mount --bind {shlex.quote(str(self.pi_dir))} {PI_HOME}"
        script = self.state_dir / "boot.sh"
        script.write_text(
            BOOT_SCRIPT.format(
                hostname=hostname,
                log_dir=PI_LOG_DIR,
                state_logs=shlex.quote(str(self.log_dir)),
                home=PI_HOME,
                home_mount=home_mount,
                supervisord=shlex.join(supervisord),
            )
        )
        # ip netns exec, unshare and sh each exec the next, so the PID we start is supervisord's.
        unshare = ["unshare", "--uts", "--mount", "--propagation", "private", "--"]
        return [*self.namespace.exec_prefix(), *unshare, "/bin/sh", str(script)]

    def _remove_namespace(self) -> None:
        if self.form == "netns" and os.geteuid() == 0:
            self.namespace.delete()

    def down(self) -> SimInfo | None:
        """Stop everything ``up`` started; returns what was stopped, None if nothing ran."""
        info = self.info()
        if info is None:
            self._stop_orphan_supervisor()
            self._stop_devices()
            self._remove_namespace()
            self._remove_card()
            return None
        sessions = descendants(info.supervisor_pid)  # SSH sessions outlive their sshd unless stopped
        self._stop_pid(info.supervisor_pid)
        _kill(sessions)
        self._stop_devices()
        if info.namespace:
            self.namespace.delete()
        self._keep_card_data()
        self._remove_card()
        self.state_file.unlink(missing_ok=True)
        self.socket_path.unlink(missing_ok=True)
        return info

    def power_off(self) -> None:
        """Cut the Pi's power: every process stops, SSH sessions too. Whether the firmware ran is
        kept, so power_on brings it back by itself, like an enabled systemd unit."""
        info = self.info()
        if info is None:
            raise SimError(f"no virtual Pi runs in {self.state_dir}; start one with 'rig sim up'")
        if self.powered_off_file.exists():
            return  # already off
        firmware_ran = self.program_status() == "RUNNING"
        self.console_line("virtual Pi: power off")
        # Taken before the stop: once sshd's listener is gone its sessions belong to init.
        sessions = descendants(info.supervisor_pid)
        self._supervisorctl("stop", "all")
        _kill(sessions)
        if info.namespace:
            self.namespace.kill_all(except_pids=frozenset({info.supervisor_pid}))
        self.powered_off_file.write_text(json.dumps({"firmware": firmware_ran}))
        log.warning("virtual Pi powered off")

    def power_on(self) -> None:
        info = self.info()
        if info is None:
            raise SimError(f"no virtual Pi runs in {self.state_dir}; start one with 'rig sim up'")
        try:
            firmware_ran = bool(json.loads(self.powered_off_file.read_text())["firmware"])
        except (OSError, ValueError, KeyError):
            return  # it was never off
        self.console_line("virtual Pi: power on")
        programs = (["firmware"] if firmware_ran else []) + (["sshd"] if info.form != "local" else [])
        if programs:
            result = self._supervisorctl("start", *programs)
            if result.returncode != 0:
                raise SimError(f"the virtual Pi did not boot again: {result.stdout.strip() or result.stderr.strip()}")
        self.powered_off_file.unlink(missing_ok=True)
        log.warning("virtual Pi powered on")

    def power_cycle(self, off_s: float = 1.0) -> float:
        """Off for ``off_s`` seconds (at least as long as stopping takes), then on; returns the seconds off."""
        cut = time.monotonic()
        self.power_off()
        time.sleep(max(0.0, off_s - (time.monotonic() - cut)))
        self.power_on()
        return time.monotonic() - cut

    def _ssh_facts(self) -> dict[str, object]:
        if self.form == "local":
            return {}
        return {
            "ssh_host": self.sshd.address,
            "ssh_port": self.sshd.port,
            "ssh_user": self.sshd.user,
            "ssh_key": str(self.sshd.client_key),
            "known_hosts": str(self.sshd.known_hosts),
            "deploy_root": self.on_pi(self.deploy_root),
        }

    def _write_config(self, port: int, nfc_device: str, console: str, audio: bool) -> None:
        form = self.form
        sound = {"MUSICBOX_AUDIO_OUTPUT": "pulse", "MUSICBOX_AUDIO_INPUT": "pulse", **self.audio_env("pi")}
        environment = (sound if audio else {}) | {
            "MUSICBOX_NFC_DEVICE": nfc_device,
            "MUSICBOX_CONSOLE": console,
            "MUSICBOX_HOST": "0.0.0.0" if form == "netns" else "127.0.0.1",
            "MUSICBOX_PORT": str(port),
            "MUSICBOX_DATA_DIR": self.on_pi(self.data_dir),
            "MUSICBOX_MUSIC_DIR": self.on_pi(self.music_dir),
            "MUSICBOX_FAULTS": ",".join(self.settings.faults),
            "MUSICBOX_POSITION_INTERVAL_MS": str(self.settings.position_interval_ms),
            "MUSICBOX_HEARTBEAT_S": str(self.settings.heartbeat_s),
            "MUSICBOX_UPLOAD_TIMEOUT_S": str(self.settings.upload_timeout_s),
            "GPIOZERO_PIN_FACTORY": "rigmock",
            "RIG_MOCK_PINS_SOCKET": str(self.gpio_socket),
            "PYTHONUNBUFFERED": "1",
        }
        socket_owner = firmware_user = sshd = ""
        if form == "local":
            command, directory, autostart = f"{sys.executable} -m musicbox", str(self.settings.firmware_dir), "true"
        else:
            current = self.on_pi(self.deploy_root / "current")
            command, directory, autostart = f"{current}/.venv/bin/python -m musicbox", current, "false"
            sshd = SSHD_PROGRAM.format(
                command=_escape(" ".join(self.sshd.command)), log=_escape(str(self.log_dir / "sshd.log"))
            )
        if form == "netns":
            environment |= {"HOME": str(PI_HOME), "USER": PI_USER}
            socket_owner = f"chown={PI_USER}:{PI_USER}\nchmod=0770\n"
            firmware_user = f"user={PI_USER}\n"
        rendered = paths.SUPERVISOR_TEMPLATE.read_text().format(
            socket=_escape(str(self.socket_path)),
            socket_owner=socket_owner,
            state=_escape(str(self.state_dir)),
            logs=_escape(str(self.log_dir)),
            firmware_command=_escape(command),
            firmware_user=firmware_user,
            firmware_directory=_escape(directory),
            firmware_autostart=autostart,
            environment=",".join(f'{k}="{_escape(v)}"' for k, v in environment.items()),
            sshd_program=sshd,
        )
        self.conf_file.write_text(rendered)

    def _wait_healthy(self, url: str, supervisor_pid: int) -> None:
        def check_alive() -> None:
            if not process_alive(supervisor_pid):
                raise SimError(f"supervisord exited during boot; see {self.state_dir}/supervisord.log")

        last = wait_healthy(url, self.settings.boot_timeout_s, check_alive=check_alive)
        if last is None:
            return
        raise SimError(
            f"the firmware was not healthy within {self.settings.boot_timeout_s:g}s at {url} (last: {last}). "
            f"Last lines of its log {self.firmware_log}:\n{self.journal_tail()}"
        )

    def _wait_listening(self, host: str, port: int, supervisor_pid: int) -> None:
        deadline = time.monotonic() + self.settings.boot_timeout_s
        while time.monotonic() < deadline:
            if not process_alive(supervisor_pid):
                out = (self.state_dir / "supervisord.out").read_text(errors="replace").strip().splitlines()[-3:]
                raise SimError(
                    f"supervisord exited during boot ({' / '.join(out) or 'no output'}); "
                    f"see {self.state_dir}/supervisord.log"
                )
            with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
                return
            time.sleep(0.05)
        raise SimError(
            f"the virtual Pi's sshd did not listen on {host}:{port} within {self.settings.boot_timeout_s:g}s; "
            f"see {self.log_dir}/sshd.log"
        )

    def _ssh_info(self) -> SimInfo:
        info = self.info()
        if info is None or info.form == "local":
            raise SimError(f"no virtual Pi with sshd runs in {self.state_dir}; start one with 'rig sim up'")
        return info

    def ssh_target(self) -> SshTarget:
        info = self._ssh_info()
        return SshTarget(info.ssh_host, info.ssh_port, info.ssh_user, Path(info.ssh_key), Path(info.known_hosts))

    def deploy(self, firmware: Path = paths.FIRMWARE_DIR) -> DeployResult:
        """Put ``firmware`` on this virtual Pi as on a bench Pi: one real deploy over its sshd."""
        with SshSession(self.ssh_target(), enroll_hint="rig sim up") as ssh:
            return Deployer(ssh, self.deploy_target()).deploy(firmware)

    def deploy_target(self) -> DeployTarget:
        info = self._ssh_info()
        if info.form == "netns":
            supervisorctl = f"{PI_SUPERVISORCTL} -s unix://{shlex.quote(str(self.socket_path))}"
            log_file = f"{PI_LOG_DIR}/{self.firmware_log.name}"
        else:
            supervisorctl = (
                f"{shlex.quote(sys.executable)} -m supervisor.supervisorctl -c {shlex.quote(str(self.conf_file))}"
            )
            log_file = info.firmware_log
        return DeployTarget(
            root=info.deploy_root,
            python=VIRTUAL_PI_PYTHON,
            packages="wheelhouse",
            service=supervisor_service(supervisorctl, "firmware", log_file),
            health_url=info.url,
            health_timeout_s=self.settings.boot_timeout_s,
            extra_packages=(paths.MOCK_PINS,),
        )

    def set_reader(self, present: bool) -> None:
        """Unplug the Pi's NFC reader, or plug it back (namespace form only; see Namespace.set_reader)."""
        self._running_namespace("a reader the rig can unplug").set_reader(present)

    def _running_namespace(self, what: str) -> Namespace:
        info = self.info()
        if info is None or info.form != "netns":
            raise SimError(f"only a running virtual Pi in the namespace form has {what}")
        return self.namespace

    # -- devices around the board: the console cable and the NFC field ------------------------
    def _start_device(
        self,
        name: str,
        command: list[str],
        ready: list[Path],
        *,
        marker: str = "",
        env: dict[str, str] | None = None,
    ) -> None:
        """Start a process that outlives power cycles (it is not the Pi's), and wait until the
        paths it makes exist. Its PID file (with ``marker``, a string of its command line, by
        default the first ready path) lets 'down', or the next 'up', stop it."""
        self._stop_device(name)
        for path in ready:
            path.unlink(missing_ok=True)
        log_file = self.log_dir / f"{name}.log"
        with log_file.open("ab") as out:
            process = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, **(env or {})},
            )
        marker = marker or str(ready[0])
        (self.state_dir / f"{name}.pid").write_text(json.dumps({"pid": process.pid, "marker": marker}))
        deadline = time.monotonic() + (5 if ready else 0.1)  # without paths: still alive after 0.1 s
        while not ready or not all(path.exists() for path in ready):
            if process.poll() is not None:
                self._stop_device(name)
                said = log_file.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
                raise SimError(f"the virtual Pi's {name} did not start: {said[0]} (see {log_file})")
            if time.monotonic() > deadline:
                if not ready:
                    break
                self._stop_device(name)
                raise SimError(f"the virtual Pi's {name} did not make {ready[0]} within 5 s (see {log_file})")
            time.sleep(0.02)

    def _stop_device(self, name: str, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``: the next 'up' must find its port and paths free."""
        pid_file = self.state_dir / f"{name}.pid"
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            started = json.loads(pid_file.read_text())
            pid = started["pid"]
            for sig in (signal.SIGTERM, signal.SIGKILL):
                if started["marker"] not in _cmdline(pid):  # gone, or the PID now belongs to another process
                    break
                os.kill(pid, sig)
                deadline = time.monotonic() + timeout
                while process_alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.02)
                if not process_alive(pid):
                    break
        pid_file.unlink(missing_ok=True)

    def _start_console(self) -> str:
        """socat joins two ptys: the firmware writes the Pi's end, pyserial reads the rig's end.
        Returns the Pi's end (a /dev/pts path), or "" without socat (the Pi then has no console)."""
        socat = shutil.which("socat")
        if socat is None:
            log.warning("no socat on this machine: the virtual Pi boots without a serial console")
            return ""
        ends = [f"pty,raw,echo=0,link={link}" for link in self.console_links]
        self._start_device("console", [socat, *ends], list(self.console_links))
        pi_end = os.path.realpath(self.console_links[0])
        if self.form == "netns":
            account = ensure_account()
            os.chown(pi_end, account.pw_uid, account.pw_gid)  # the firmware runs as the Pi's account
        return pi_end

    def _start_field(self, host: str, port: int) -> None:
        """The NFC field the firmware's udp reader polls (device_drivers/nfc/field_service.py)."""
        command = [sys.executable, "-m", "device_drivers.nfc.field_service", "--listen", f"{host}:{port}"]
        self._start_device("nfc-field", [*command, "--control", str(self.nfc_control)], [self.nfc_control])

    def _start_audio(self) -> bool:
        """A PulseAudio server with the null sinks ``dut_mic`` and ``dut_speaker``: the audio
        cables between the rig's interface and the Pi (DESIGN.md). An idle null-sink monitor
        delivers nothing for about 2 s, so a low-latency reader stays on each monitor. Returns
        False (no audio) when PulseAudio is not installed."""
        pulseaudio, pacat = shutil.which("pulseaudio"), shutil.which("pacat")
        if pulseaudio is None or pacat is None:
            log.warning("no pulseaudio/pacat on this machine: the virtual Pi boots without audio")
            return False
        runtime = self.state_dir / "pulse"
        runtime.mkdir(mode=0o700, exist_ok=True)
        # The server's own files stay in the state folder; clients need only the socket.
        env = {"HOME": str(runtime), "XDG_RUNTIME_DIR": str(runtime), "PULSE_RUNTIME_PATH": str(runtime)}
        command = [
            pulseaudio,
            "--daemonize=no",
            "--use-pid-file=no",
            "--exit-idle-time=-1",
            "--disallow-exit",
            "--log-target=stderr",
            "-n",  # no default.pa: no hardware probing, only what is loaded here
            "-L",
            f"module-native-protocol-unix socket={self.pulse_socket} auth-anonymous=1",
            *(arg for sink in AUDIO_SINKS for arg in ("-L", f"module-null-sink sink_name={sink} rate=48000")),
        ]
        self._start_device("pulseaudio", command, [self.pulse_socket], env=env)
        for sink in AUDIO_SINKS:
            marker = f"rig-sim-{self.namespace.key}-keepalive-{sink}"
            keepalive = [pacat, "--record", "--raw", "--latency-msec=10", f"--device={sink}.monitor"]
            self._start_device(
                f"keepalive-{sink}",
                [*keepalive, f"--client-name={marker}", "/dev/null"],
                [],
                marker=marker,
                env={**env, "PULSE_SERVER": self.pulse_server},
            )
        return True

    @property
    def pulse_server(self) -> str:
        return f"unix:{self.pulse_socket}"

    def audio_env(self, side: str) -> dict[str, str]:
        """libpulse's environment for one end of the cables: the firmware ("pi") plays to
        ``dut_speaker`` and records ``dut_mic``'s monitor; the rig the other way round."""
        sink, source = ("dut_speaker", "dut_mic") if side == "pi" else ("dut_mic", "dut_speaker")
        return {"PULSE_SERVER": self.pulse_server, "PULSE_SINK": sink, "PULSE_SOURCE": f"{source}.monitor"}

    def output_streams(self) -> int:
        """How many streams play into the Pi's speaker now (the firmware's open output devices)."""
        pactl = shutil.which("pactl")
        if pactl is None or not self.pulse_socket.exists():
            raise SimError("this virtual Pi has no audio server (install pulseaudio-utils and pulseaudio)")
        env = {**os.environ, "PULSE_SERVER": self.pulse_server}

        def short(kind: str) -> list[list[str]]:
            out = subprocess.run(
                [pactl, "list", "short", kind], env=env, capture_output=True, text=True, timeout=10, check=True
            ).stdout
            return [line.split("\t") for line in out.splitlines() if line.strip()]

        speaker = {row[0] for row in short("sinks") if row[1] == "dut_speaker"}
        return sum(1 for row in short("sink-inputs") if row[1] in speaker)

    def _stop_devices(self) -> None:
        for name in ("console", "nfc-field", *(f"keepalive-{sink}" for sink in AUDIO_SINKS), "pulseaudio"):
            self._stop_device(name)
        # The mock pins' socket too: the firmware that bound it may have been killed, not stopped.
        for path in (*self.console_links, self.nfc_control, self.pulse_socket, self.gpio_socket):
            path.unlink(missing_ok=True)

    def console_line(self, text: str) -> None:
        """A line on the console from the board itself (power on and off), as a Pi's boot messages."""
        with contextlib.suppress(OSError):
            fd = os.open(self.console_links[0], os.O_WRONLY | os.O_NOCTTY | os.O_NONBLOCK)
            try:
                os.write(fd, f"{text}\r\n".encode())
            finally:
                os.close(fd)

    def set_link(self, up: bool) -> None:
        """Pull the Pi's network cable, or put it back (namespace form only)."""
        self._running_namespace("a link to take down").set_link(up)

    def reseed_library(self) -> list[Path]:
        """Put back missing fixture tracks; on the namespace form they then belong to the Pi's account."""
        written = FixtureLibrary.load().seed(self.music_dir)
        if written and self.form == "netns":
            account = ensure_account()
            self._give_to_pi(self.music_dir, account.pw_uid, account.pw_gid)
        return written

    def _stop_orphan_supervisor(self) -> None:
        """A supervisord of this state folder without a state file (a boot cut short, a state file
        lost): found by its own pidfile, and stopped like any other."""
        try:
            pid = int((self.state_dir / "supervisord.pid").read_text().strip())
        except (OSError, ValueError):
            return
        if process_alive(pid) and str(self.conf_file) in _cmdline(pid):
            log.warning("stopping supervisord %s of %s, which had no state file", pid, self.state_dir)
            self._stop_pid(pid)

    def _stop_pid(self, pid: int, timeout: float = 15.0) -> None:
        """SIGTERM our supervisord (it stops the firmware first), SIGKILL its group if it hangs."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while process_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if process_alive(pid):
            log.warning("supervisord %s did not stop in %.0f s; killing its process group", pid, timeout)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


def _kill(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _escape(value: str) -> str:
    """supervisord expands %(name)s in its config, so a literal % must be doubled."""
    return value.replace("%", "%%")
