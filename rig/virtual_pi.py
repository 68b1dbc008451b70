"""The virtual Pi, local form (DESIGN.md form (c)): the reference firmware as a supervised local process.

supervisord, an existing supervisor, runs the firmware the way systemd does on a Pi. One
virtual Pi lives in one state folder: its supervisord config and PID, the firmware's data and
music folders, and the firmware log (its journal). ``up`` refuses to start a second one there.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from . import paths
from .deploy import DeployTarget, supervisor_service
from .fixture_audio import FixtureLibrary
from .health import wait_healthy
from .net import free_port
from .sshd import LocalSshd, SshdError, SshTarget, current_user

log = logging.getLogger(__name__)


# The "Pi's" own Python builds the firmware's venv, as on a Pi: the system one, not the rig's.
VIRTUAL_PI_PYTHON = "/usr/bin/python3"


class SimError(RuntimeError):
    """The virtual Pi could not do what was asked; the message says why and what to do."""


class AlreadyRunning(SimError):
    pass


FORMS = ("ssh", "local")  # DESIGN.md form (b) and form (c); form (a), a network namespace, comes next

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
    ssh_port: int = 0
    ssh_user: str = ""
    ssh_key: str = ""
    known_hosts: str = ""
    deploy_root: str = ""


@dataclass(frozen=True)
class SimSettings:
    firmware_dir: Path = paths.FIRMWARE_DIR
    faults: tuple[str, ...] = ()
    position_interval_ms: int = 500
    boot_timeout_s: float = 20.0
    form: str = "ssh"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child is not running; reap it if it is ours.
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    return True


def _supervisord_cmdline(pid: int) -> str:
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
        self.firmware_log = self.state_dir / "firmware.log"
        # In the SSH form the firmware lives where a deploy puts it on a Pi: releases, venvs and
        # data under one root that the rig reaches only over SSH.
        self.deploy_root = self.state_dir / "pi" / "musicbox"
        base = self.deploy_root if self.settings.form == "ssh" else self.state_dir
        self.data_dir = base / "data"
        self.music_dir = self.data_dir / "music" if self.settings.form == "ssh" else self.state_dir / "music"
        self.sshd = LocalSshd(self.state_dir / "ssh", "127.0.0.1", 0, current_user())
        digest = hashlib.sha256(str(self.state_dir).encode()).hexdigest()[:12]
        # AF_UNIX paths are limited to 108 bytes, so the control socket lives in the temp dir.
        self.socket_path = Path(tempfile.gettempdir()) / f"rig-sim-{digest}.sock"

    # -- inspection ------------------------------------------------------------------------
    def info(self) -> SimInfo | None:
        """The running instance's facts, or None when nothing runs here (stale state is removed)."""
        try:
            info = SimInfo(**json.loads(self.state_file.read_text()))
        except (OSError, ValueError, TypeError):
            return None
        if _alive(info.supervisor_pid) and str(self.conf_file) in _supervisord_cmdline(info.supervisor_pid):
            return info
        self.state_file.unlink(missing_ok=True)
        return None

    def program_status(self) -> str:
        """supervisord's view of the firmware program (RUNNING, BACKOFF, FATAL, ...)."""
        result = subprocess.run(
            [sys.executable, "-m", "supervisor.supervisorctl", "-c", str(self.conf_file), "status", "firmware"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
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
        if self.settings.form not in FORMS:
            raise SimError(f"unknown virtual Pi form {self.settings.form!r}; known: {', '.join(FORMS)}")
        started = time.monotonic()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        FixtureLibrary.load().seed(self.music_dir)
        port = free_port()
        if self.settings.form == "ssh":
            self.sshd = replace(self.sshd, port=free_port())
            try:
                self.sshd.prepare()
            except (SshdError, subprocess.CalledProcessError) as exc:
                raise SimError(f"cannot set up the virtual Pi's sshd: {exc}") from None
        self._write_config(port)
        self.socket_path.unlink(missing_ok=True)
        with (self.state_dir / "supervisord.out").open("ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "supervisor.supervisord", "-c", str(self.conf_file)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # outlives the CLI that started it; 'down' stops it by PID
            )
        url = f"http://127.0.0.1:{port}"
        try:
            if self.settings.form == "ssh":
                self._wait_listening(self.sshd.port, process.pid)  # the firmware arrives with 'rig deploy'
            else:
                self._wait_healthy(url, process.pid)
        except SimError:
            self._stop_pid(process.pid)
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
            form=self.settings.form,
            **self._ssh_facts(),
        )
        self.state_file.write_text(json.dumps(asdict(info), indent=2))
        log.info("virtual Pi up at %s in %.2f s", url, info.boot_s)
        return info

    def down(self) -> SimInfo | None:
        """Stop everything ``up`` started; returns what was stopped, None if nothing ran."""
        info = self.info()
        if info is None:
            return None
        self._stop_pid(info.supervisor_pid)
        self.state_file.unlink(missing_ok=True)
        self.socket_path.unlink(missing_ok=True)
        return info

    def _ssh_facts(self) -> dict[str, object]:
        if self.settings.form != "ssh":
            return {}
        return {
            "ssh_port": self.sshd.port,
            "ssh_user": self.sshd.user,
            "ssh_key": str(self.sshd.client_key),
            "known_hosts": str(self.sshd.known_hosts),
            "deploy_root": str(self.deploy_root),
        }

    def _write_config(self, port: int) -> None:
        environment = {
            "MUSICBOX_HOST": "127.0.0.1",
            "MUSICBOX_PORT": str(port),
            "MUSICBOX_DATA_DIR": str(self.data_dir),
            "MUSICBOX_MUSIC_DIR": str(self.music_dir),
            "MUSICBOX_FAULTS": ",".join(self.settings.faults),
            "MUSICBOX_POSITION_INTERVAL_MS": str(self.settings.position_interval_ms),
            "PYTHONUNBUFFERED": "1",
        }
        if self.settings.form == "ssh":
            current = self.deploy_root / "current"
            command, directory, autostart = f"{current}/.venv/bin/python -m musicbox", str(current), "false"
            sshd = SSHD_PROGRAM.format(
                command=_escape(" ".join(self.sshd.command)), log=_escape(str(self.state_dir / "sshd.log"))
            )
        else:
            command, directory, autostart = f"{sys.executable} -m musicbox", str(self.settings.firmware_dir), "true"
            sshd = ""
        rendered = paths.SUPERVISOR_TEMPLATE.read_text().format(
            socket=_escape(str(self.socket_path)),
            state=_escape(str(self.state_dir)),
            firmware_command=_escape(command),
            firmware_directory=_escape(directory),
            firmware_autostart=autostart,
            environment=",".join(f'{k}="{_escape(v)}"' for k, v in environment.items()),
            sshd_program=sshd,
        )
        self.conf_file.write_text(rendered)

    def _wait_healthy(self, url: str, supervisor_pid: int) -> None:
        def check_alive() -> None:
            if not _alive(supervisor_pid):
                raise SimError(f"supervisord exited during boot; see {self.state_dir}/supervisord.log")

        last = wait_healthy(url, self.settings.boot_timeout_s, check_alive=check_alive)
        if last is None:
            return
        raise SimError(
            f"the firmware was not healthy within {self.settings.boot_timeout_s:g}s at {url} (last: {last}). "
            f"Last lines of its log {self.firmware_log}:\n{self.journal_tail()}"
        )

    def _wait_listening(self, port: int, supervisor_pid: int) -> None:
        deadline = time.monotonic() + self.settings.boot_timeout_s
        while time.monotonic() < deadline:
            if not _alive(supervisor_pid):
                raise SimError(f"supervisord exited during boot; see {self.state_dir}/supervisord.log")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
            time.sleep(0.05)
        raise SimError(
            f"the virtual Pi's sshd did not listen on port {port} within {self.settings.boot_timeout_s:g}s; "
            f"see {self.state_dir}/sshd.log"
        )

    def _ssh_info(self) -> SimInfo:
        info = self.info()
        if info is None or info.form != "ssh":
            raise SimError(f"no virtual Pi with sshd runs in {self.state_dir}; start one with 'rig sim up'")
        return info

    def ssh_target(self) -> SshTarget:
        info = self._ssh_info()
        return SshTarget("127.0.0.1", info.ssh_port, info.ssh_user, Path(info.ssh_key), Path(info.known_hosts))

    def deploy_target(self) -> DeployTarget:
        info = self._ssh_info()
        supervisorctl = (
            f"{shlex.quote(sys.executable)} -m supervisor.supervisorctl -c {shlex.quote(str(self.conf_file))}"
        )
        return DeployTarget(
            root=info.deploy_root,
            python=VIRTUAL_PI_PYTHON,
            packages="wheelhouse",
            service=supervisor_service(supervisorctl, "firmware", info.firmware_log),
            health_url=info.url,
            health_timeout_s=self.settings.boot_timeout_s,
        )

    def _stop_pid(self, pid: int, timeout: float = 15.0) -> None:
        """SIGTERM our supervisord (it stops the firmware first), SIGKILL its group if it hangs."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            log.warning("supervisord %s did not stop in %.0f s; killing its process group", pid, timeout)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


def _escape(value: str) -> str:
    """supervisord expands %(name)s in its config, so a literal % must be doubled."""
    return value.replace("%", "%%")
