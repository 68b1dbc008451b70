"""The ``rig`` command: the virtual Pi's lifecycle and a live view of a bench's events."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import httpx

from device_drivers.audio import AudioError, analysis, write_wav

from . import __version__, cli_stimulus, paths
from .bench import BenchConfig, BenchFileError, load_bench
from .bench_check import run_check
from .bench_remote import bench_deploy_target, bench_session
from .contract import ContractError, ContractValidator
from .deploy import FOLLOW_READY, Deployer, DeployError, DeployTarget
from .dut import BenchError, Dut, bench_capabilities, running_sim, sim_settings
from .enroll import enroll
from .health import get_health
from .netns import NamespaceError
from .observer import CapturedEvent, WebSocketTestClient
from .report import ReportError, render_report
from .ssh import SshError, SshSession
from .virtual_pi import FORMS, AlreadyRunning, SimError, SimSettings, VirtualPi

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class CliError(Exception):
    """A one-line error for the user, with the exit status to use."""

    def __init__(self, message: str, status: int = EXIT_FAIL) -> None:
        super().__init__(message)
        self.status = status


def _virtual_pi(args: argparse.Namespace) -> VirtualPi:
    settings = SimSettings()
    if getattr(args, "bench", None):
        bench = _load(args.bench)
        if not bench.is_sim:
            raise CliError(f"{args.bench}: [bench] kind is {bench.kind!r}; 'rig sim' needs kind = \"sim\"", EXIT_USAGE)
        settings = sim_settings(bench)
    if getattr(args, "fault", None):
        settings = replace(settings, faults=(*settings.faults, *args.fault))
    if getattr(args, "local", False):
        settings = replace(settings, form="local")
    elif getattr(args, "form", None):
        settings = replace(settings, form=args.form)
    return VirtualPi(Path(args.state_dir), settings)


def cmd_sim_up(args: argparse.Namespace) -> int:
    virtual_pi = _virtual_pi(args)
    if not args.json:
        print(f"starting virtual Pi in {virtual_pi.state_dir} ...", file=sys.stderr)
    try:
        info = virtual_pi.up()
    except AlreadyRunning as exc:
        raise CliError(str(exc)) from None
    except SimError as exc:
        raise CliError(f"virtual Pi did not start: {exc}") from None
    if args.json:
        print(json.dumps(asdict(info)))
    elif info.form != "local":
        where = f"{info.ssh_user}@{info.ssh_host}:{info.ssh_port}"
        if info.form == "netns":
            print(f"virtual Pi {info.hostname} up in {info.boot_s:.2f} s: namespace {info.namespace}, sshd at {where}")
        else:
            print(f"virtual Pi up in {info.boot_s:.2f} s: sshd at {where}")
        print(f"  no firmware yet: put it there with 'rig deploy'; it will answer at {info.url}")
        print(f"  firmware log  {info.firmware_log}")
        print("  then          rig events   |   rig logs   |   stop: rig sim down")
    else:
        print(f"virtual Pi up at {info.url} in {info.boot_s:.2f} s")
        print(f"  firmware log  {info.firmware_log}")
        print(f"  music folder  {info.music_dir}")
        print("  watch events  rig events   |   stop  rig sim down")
    return EXIT_OK


def cmd_sim_status(args: argparse.Namespace) -> int:
    virtual_pi = VirtualPi(Path(args.state_dir))
    info = virtual_pi.info()
    if info is None:
        if args.json:
            print(json.dumps({"running": False, "state_dir": str(virtual_pi.state_dir)}))
        else:
            print(f"no virtual Pi runs (state {virtual_pi.state_dir})")
        return EXIT_FAIL
    program = virtual_pi.program_status()
    try:
        health = get_health(info.url, 2.0).json()["data"]["status"]
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        health = f"unreachable ({type(exc).__name__})"
    if args.json:
        print(json.dumps({"running": True, **asdict(info), "firmware": program, "health": health}))
    else:
        uptime = time.time() - info.started_at
        print(f"virtual Pi at {info.url}: firmware {program}, health {health}, up {uptime:.0f} s")
        print(f"  supervisord PID {info.supervisor_pid}, state {info.state_dir}")
    return EXIT_OK


def cmd_sim_reboot(args: argparse.Namespace) -> int:
    try:
        off = VirtualPi(Path(args.state_dir)).power_cycle(args.off)
    except SimError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    print(f"virtual Pi power-cycled ({off:.1f} s off); its SSH sessions were cut, the firmware restarts by itself")
    return EXIT_OK


def _sim_cable(args: argparse.Namespace, plug: Callable[[VirtualPi], None], done: str) -> int:
    """Pull or put back one of the namespace virtual Pi's cables (its link, its NFC reader)."""
    try:
        plug(VirtualPi(Path(args.state_dir)))
    except (SimError, NamespaceError) as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    print(done)
    return EXIT_OK


def cmd_sim_link(args: argparse.Namespace) -> int:
    return _sim_cable(args, lambda pi: pi.set_link(args.state == "up"), f"virtual Pi link {args.state}")


def cmd_sim_reader(args: argparse.Namespace) -> int:
    state = "plugged in" if args.state == "in" else "unplugged"
    return _sim_cable(args, lambda pi: pi.set_reader(args.state == "in"), f"virtual Pi NFC reader {state}")


def cmd_sim_down(args: argparse.Namespace) -> int:
    stopped = VirtualPi(Path(args.state_dir)).down()
    if stopped is None:
        print("no virtual Pi was running")
    else:
        print(f"stopped virtual Pi at {stopped.url} (supervisord PID {stopped.supervisor_pid})")
    return EXIT_OK


def _events_url(args: argparse.Namespace) -> str:
    if args.url:
        return str(args.url).rstrip("/")
    info = VirtualPi(Path(args.state_dir)).info()
    if info is None:
        raise CliError("no --url given and no virtual Pi runs; start one with 'rig sim up'", EXIT_USAGE)
    return info.url


async def _watch_events(url: str, rooms: list[str], playlists: list[str], contract: Path) -> int:
    try:
        validator = ContractValidator(contract)
    except ContractError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    client = WebSocketTestClient(url, validator, name="events", default_timeout=5.0)
    start = time.monotonic()

    def show(event: CapturedEvent) -> None:
        line = {"t": round(time.monotonic() - start, 3), "event": event.event_type, "data": event.data}
        problems = validator.check_event(event.event_type, event.data) if event.event_type in validator.events else []
        if problems:
            line["contract_violations"] = problems
        print(json.dumps(line), flush=True)

    client.register_callback("*", show)
    try:
        await client.connect()
    except ConnectionError as exc:
        raise CliError(str(exc)) from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        for room in rooms:
            await client.join_room(room)
        for playlist_id in playlists:
            await client.join_room("playlist", playlist_id=playlist_id)
        while not stop.is_set() and client.is_connected:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
    finally:
        connected = client.is_connected
        await client.disconnect()
    if not connected and not stop.is_set():
        raise CliError(f"connection to {url} lost")
    return EXIT_OK


def _stimulus(args: argparse.Namespace, reach: Callable[[BenchConfig | None, Path], cli_stimulus.Stimulus]) -> int:
    bench = _load(args.bench) if args.bench else None
    contract = bench.firmware.contract if bench else paths.DEFAULT_CONTRACT
    try:
        return cli_stimulus.run(reach(bench, Path(args.state_dir)), args.wait, contract)
    except cli_stimulus.StimulusError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None


def cmd_press(args: argparse.Namespace) -> int:
    return _stimulus(args, lambda b, d: cli_stimulus.gpio(b, d, lambda gpio: gpio.press(args.name, args.hold)))


def cmd_turn(args: argparse.Namespace) -> int:
    return _stimulus(args, lambda b, d: cli_stimulus.gpio(b, d, lambda g: g.turn(args.encoder, args.steps, args.rate)))


def cmd_tap(args: argparse.Namespace) -> int:
    return _stimulus(args, lambda b, d: cli_stimulus.nfc(b, d, args.tag, lambda nfc: nfc.tap(args.tag, args.dwell)))


def cmd_say(args: argparse.Namespace) -> int:
    return _stimulus(args, lambda b, d: cli_stimulus.say(b, d, args.clip))


def cmd_listen(args: argparse.Namespace) -> int:
    """Record the DUT's speaker; print the dominant frequency and the level."""
    bench = _load(args.bench) if args.bench else None
    if args.seconds <= 0 or args.seconds > 3600:
        raise CliError(f"SECONDS must be above 0 and at most 3600, not {args.seconds:g}", EXIT_USAGE)
    try:
        _, port = cli_stimulus.audio_port(bench, Path(args.state_dir))
        recording = port.record(args.seconds)
    except cli_stimulus.StimulusError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    except AudioError as exc:
        raise CliError(str(exc)) from None
    out = Path(args.out)
    try:
        write_wav(out, recording.samples, recording.sample_rate)
    except OSError as exc:
        raise CliError(f"cannot write {out}: {exc}") from None
    report = {"file": str(out), "seconds": round(recording.seconds, 3), "heard": recording.describe()}
    if len(recording.samples) >= 64 and not analysis.is_silent(recording.samples):
        report["frequency_hz"] = round(analysis.dominant_frequency(recording.samples, recording.sample_rate), 1)
    level = analysis.dbfs(recording.samples)
    report["level_dbfs"] = round(level, 1) if level > -math.inf else None  # digital silence
    print(json.dumps(report))
    return EXIT_OK


def cmd_console(args: argparse.Namespace) -> int:
    """Follow the serial console: a bench's [serial] port, or the running virtual Pi's pty."""
    bench = _load(args.bench) if args.bench else None
    try:
        dut = cli_stimulus.dut_of(bench, Path(args.state_dir))
        console = dut.console(None, on_line=lambda line: print(line.text, flush=True))
    except (cli_stimulus.StimulusError, BenchError) as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    print(f"following the console on {console.port} (Ctrl-C to stop)", file=sys.stderr)
    deadline = None if args.seconds is None else time.monotonic() + args.seconds
    try:
        while console.error is None and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.1)
    finally:
        console.close()
    if console.error is not None:
        raise CliError(console.error)
    return EXIT_OK


def cmd_events(args: argparse.Namespace) -> int:
    url = _events_url(args)
    print(f"watching {url} (Ctrl-C to stop)", file=sys.stderr)
    try:
        return asyncio.run(_watch_events(url, args.room, args.playlist, Path(args.contract)))
    except (AssertionError, TimeoutError) as exc:
        raise CliError(str(exc).splitlines()[0]) from None


@dataclass
class Remote:
    """A Pi or virtual Pi reached over SSH, with what a deploy needs to know about it."""

    ssh: SshSession
    target: DeployTarget
    firmware: Path


def _load(path: str) -> BenchConfig:
    try:
        return load_bench(Path(path))
    except BenchFileError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None


def _remote(args: argparse.Namespace) -> Remote:
    """A Pi bench file's Pi; otherwise (no bench file, or a sim one) the virtual Pi in the state folder."""
    bench = _load(args.bench) if args.bench else None
    firmware = Path(args.firmware) if getattr(args, "firmware", None) else None
    if bench is not None and bench.kind == "pi":
        if bench.ssh is None:
            raise CliError(f"{args.bench}: no [ssh] section: the bench has no SSH host to talk to", EXIT_USAGE)
        session, target = bench_session(bench), bench_deploy_target(bench)
        return Remote(session, target, firmware or bench.firmware.path)
    virtual_pi = VirtualPi(Path(args.state_dir))
    try:
        session = SshSession(virtual_pi.ssh_target(), enroll_hint="rig sim up", boot_timeout_s=20)
        target = virtual_pi.deploy_target()
    except SimError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    return Remote(session, target, firmware or (bench.firmware.path if bench else paths.FIRMWARE_DIR))


class DeployProgress:
    """A progress bar for files and bytes on a terminal; a plain line per tenth in CI logs."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.tenth = -1

    def __call__(self, name: str, files_done: int, files: int, done: int, total: int) -> None:
        share = done / total if total else 1.0
        if self.tty:
            bar = "#" * int(share * 30)
            print(
                f"\r  [{bar:<30}] {files_done}/{files} files {done / 1e6:6.2f}/{total / 1e6:.2f} MB",
                end="",
                file=sys.stderr,
            )
            if files_done == files:
                print(file=sys.stderr)
        elif int(share * 10) > self.tenth or files_done == files:
            self.tenth = int(share * 10)
            print(f"deploy: {files_done}/{files} files, {done}/{total} bytes ({name})", file=sys.stderr)


def cmd_deploy(args: argparse.Namespace) -> int:
    remote = _remote(args)
    try:
        with remote.ssh:
            deployer = Deployer(remote.ssh, remote.target, progress=DeployProgress())
            if args.rollback:
                print(f"rolled back to release {deployer.rollback()}; the firmware is healthy")
                return EXIT_OK
            if args.plan:
                local, changes = deployer.plan(remote.firmware)
                for line in changes.describe(local):
                    print(line)
                print(
                    f"plan: {len(changes.added)} to add, {len(changes.changed)} to change, "
                    f"{len(changes.removed)} to remove, {changes.unchanged} unchanged; nothing sent"
                )
                return EXIT_OK
            result = deployer.deploy(remote.firmware)
    except (SshError, DeployError, ValueError) as exc:
        raise CliError(str(exc)) from None
    if result.noop:
        print(f"nothing to deploy: {result.line()}")
    elif result.restart_only:
        print(
            "nothing to send, but an interrupted deploy had switched without a restart: "
            f"restarted {result.line()}; healthy at {remote.target.health_url}"
        )
    else:
        print(f"deployed {result.line()}; healthy at {remote.target.health_url}")
    return EXIT_OK


def cmd_logs(args: argparse.Namespace) -> int:
    remote = _remote(args)
    try:
        with remote.ssh:
            if args.follow:
                remote.ssh.stream(
                    remote.target.service.follow,
                    lambda line: None if line == FOLLOW_READY else print(line, flush=True),
                    timeout=10**9,
                )
            else:
                print(Deployer(remote.ssh, remote.target).journal(args.lines), end="")
    except SshError as exc:
        raise CliError(str(exc)) from None
    return EXIT_OK


def cmd_ssh(args: argparse.Namespace) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise CliError("nothing to run: give a command after --, e.g. rig ssh -- uname -a", EXIT_USAGE)
    remote = _remote(args)
    try:
        with remote.ssh:
            result = remote.ssh.stream(
                " ".join(command),
                lambda line: print(line, flush=True),
                lambda line: print(line, file=sys.stderr, flush=True),
                timeout=args.timeout,
            )
    except SshError as exc:
        raise CliError(str(exc)) from None
    return result.exit_code


def _bench_with_ssh(path: str) -> BenchConfig:
    bench = _load(path)
    if bench.ssh is None:
        raise CliError(f"{path}: no [ssh] section: the bench has no SSH host to talk to", EXIT_USAGE)
    return bench


def cmd_enroll(args: argparse.Namespace) -> int:
    bench = _bench_with_ssh(args.bench)
    assert bench.ssh is not None
    confirm = (lambda prompt: input(prompt).strip().lower() in ("y", "yes")) if sys.stdin.isatty() else None
    try:
        result = enroll(
            bench.ssh.host,
            bench.ssh.port,
            bench.ssh.known_hosts,
            accept_new=args.accept_new,
            replace=args.replace,
            confirm=confirm,
            timeout=bench.ssh.connect_timeout_s,
            fix_command=f"rig enroll --bench {args.bench}",
        )
    except SshError as exc:
        raise CliError(str(exc)) from None
    print(f"{result.outcome}: {result.name} {result.fingerprint} in {bench.ssh.known_hosts}")
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    """The bench check, part by part, as a table; exit 1 when a part failed (a bench error)."""
    bench = _load(args.bench) if args.bench else _load(str(paths.SIM_BENCH))
    try:
        if bench.is_sim:
            device = running_sim(Path(args.state_dir), bench)
        else:
            assert bench.dut.url is not None  # load_bench guarantees it for kind = "pi"
            device = Dut("bench", bench.dut.url, bench, bench_capabilities(bench))
    except BenchError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    if not args.json:
        print(f"checking bench {bench.name!r} ({device.mode}) at {device.url} ...", file=sys.stderr)
    try:
        report = run_check(device)
    finally:
        device.stop()
    if args.json:
        print(json.dumps({"bench": bench.name, "url": device.url, **report.as_dict()}))
    else:
        for line in report.table():
            print(line)
    return EXIT_OK if report.ok else EXIT_FAIL


def cmd_report(args: argparse.Namespace) -> int:
    """Render the run's artifacts as one self-contained HTML page."""
    try:
        target = render_report(Path(args.artifacts), Path(args.out) if args.out else None)
    except ReportError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    print(f"report: {target}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rig", description="Hardware-in-the-loop rig for Raspberry Pi firmware.")
    parser.add_argument("--version", action="version", version=f"rig {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail to stderr")
    commands = parser.add_subparsers(dest="command", required=True)
    default_state = str(paths.state_home() / "sim")

    sim = commands.add_parser("sim", help="run a virtual Pi on this machine").add_subparsers(
        dest="action", required=True
    )
    up = sim.add_parser("up", help="start a virtual Pi in the background")
    up.add_argument("--json", action="store_true", help="print one JSON object (url, port, PIDs, paths)")
    up.add_argument("--bench", metavar="FILE", help="sim bench file for firmware path, faults and timeouts")
    up.add_argument("--fault", action="append", metavar="FAULT", help="add a contract-breaking firmware mode")
    up.add_argument(
        "--form",
        choices=("auto", *FORMS),
        help="netns: a namespace host (root); ssh: sshd on loopback; local: no sshd (default auto: netns as root)",
    )
    up.add_argument("--local", action="store_true", help="no sshd: run the firmware straight from its tree (form c)")
    up.set_defaults(func=cmd_sim_up)
    status = sim.add_parser("status", help="say what runs")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_sim_status)
    down = sim.add_parser("down", help="stop everything 'up' started")
    down.set_defaults(func=cmd_sim_down)
    reboot = sim.add_parser("reboot", help="power-cycle the virtual Pi: every process and SSH session stops")
    reboot.add_argument("--off", type=float, default=1.0, metavar="S", help="seconds without power (default 1)")
    reboot.set_defaults(func=cmd_sim_reboot)
    link = sim.add_parser("link", help="take the namespace virtual Pi's network link down or up")
    link.add_argument("state", choices=("down", "up"))
    link.set_defaults(func=cmd_sim_link)
    reader = sim.add_parser("reader", help="unplug the namespace virtual Pi's NFC reader (out) or plug it in (in)")
    reader.add_argument("state", choices=("out", "in"))
    reader.set_defaults(func=cmd_sim_reader)
    for sub in (up, status, down, reboot, link, reader):
        sub.add_argument(
            "--state-dir", default=default_state, help=f"the virtual Pi's folder (default {default_state})"
        )

    check = commands.add_parser("check", help="check the bench part by part (SSH, firmware, Socket.IO, GPIO, ...)")
    check.add_argument("--bench", metavar="FILE", help="a bench file (default: the running virtual Pi)")
    check.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    check.add_argument("--state-dir", default=default_state, help=argparse.SUPPRESS)
    check.set_defaults(func=cmd_check)

    report = commands.add_parser("report", help="render a run's artifacts as one self-contained HTML page")
    report.add_argument("artifacts", metavar="ARTIFACTS", help="the run's --artifacts folder")
    report.add_argument("--out", metavar="FILE.html", help="where the page goes (default ARTIFACTS/report.html)")
    report.set_defaults(func=cmd_report)

    enrol = commands.add_parser("enroll", help="first contact: show the bench's SSH host key and pin it")
    enrol.add_argument("--bench", required=True, metavar="FILE", help="bench file with an [ssh] section")
    enrol.add_argument(
        "--accept-new", action="store_true", help="record an unknown key without asking (never replaces)"
    )
    enrol.add_argument("--replace", action="store_true", help="replace a pinned key that changed (after a reinstall)")
    enrol.set_defaults(func=cmd_enroll)

    dep = commands.add_parser("deploy", help="put a firmware tree on the bench's Pi (or the virtual Pi) over SSH")
    dep.add_argument("--firmware", metavar="DIR", help="the firmware tree (default: the bench file's)")
    dep.add_argument("--plan", action="store_true", help="print what would change and send nothing")
    dep.add_argument("--rollback", action="store_true", help="switch back to the previous release")
    dep.set_defaults(func=cmd_deploy)
    logs = commands.add_parser("logs", help="print the firmware service's journal")
    logs.add_argument("-n", "--lines", type=int, default=50, help="how many lines (default 50)")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines until interrupted")
    logs.set_defaults(func=cmd_logs)
    run = commands.add_parser("ssh", help="run one command on the bench's Pi: rig ssh -- CMD")
    run.add_argument("--timeout", type=float, default=300.0, help="seconds before the command is abandoned")
    run.add_argument("command", nargs=argparse.REMAINDER)
    run.set_defaults(func=cmd_ssh)
    for sub in (dep, logs, run):
        sub.add_argument("--bench", metavar="FILE", help="a Pi bench file (default: the running virtual Pi)")
        sub.add_argument("--state-dir", default=default_state, help=argparse.SUPPRESS)

    events = commands.add_parser("events", help="print each Socket.IO event as one JSON line until interrupted")
    events.add_argument("--url", help="firmware base URL (default: the running virtual Pi)")
    events.add_argument("--room", action="append", default=[], help="join a room, e.g. playlists (repeatable)")
    events.add_argument("--playlist", action="append", default=[], metavar="ID", help="join one playlist's room")
    events.add_argument("--contract", default=str(paths.DEFAULT_CONTRACT), help="contract to flag violations with")
    events.add_argument("--state-dir", default=default_state, help=argparse.SUPPRESS)
    events.set_defaults(func=cmd_events)

    press = commands.add_parser("press", help="press a button of the wiring map; prints the broadcasts in reply")
    press.add_argument("name", help="a line of the bench's [gpio.lines], e.g. next, previous, play_pause")
    press.add_argument("--hold", type=float, default=0.1, metavar="S", help="seconds pressed (default 0.1)")
    press.set_defaults(func=cmd_press)
    turn = commands.add_parser("turn", help="turn an encoder by STEPS detents (negative: counter-clockwise)")
    turn.add_argument("encoder", help="an encoder of the bench's [gpio.encoders], e.g. volume")
    turn.add_argument("steps", type=int)
    turn.add_argument("--rate", type=float, default=20.0, help="detents per second (default 20)")
    turn.set_defaults(func=cmd_turn)
    tap = commands.add_parser("tap", help="lay a named tag on the DUT's reader and take it away")
    tap.add_argument("tag", help="a tag of fixtures/tags (or the bench's [nfc] tags), e.g. red")
    tap.add_argument("--dwell", type=float, default=0.5, metavar="S", help="seconds on the reader (default 0.5)")
    tap.set_defaults(func=cmd_tap)
    say = commands.add_parser("say", help="play a clip or WAV into the DUT's microphone; prints the broadcasts")
    say.add_argument("clip", help="a clip of fixtures/audio (e.g. command-next-track) or a WAV file")
    say.set_defaults(func=cmd_say)
    for sub, wait in ((press, 1.0), (turn, 1.0), (tap, 1.0), (say, 3.0)):  # speech: the clip, VAD and decode
        sub.add_argument("--bench", metavar="FILE", help="a Pi bench file (default: the running virtual Pi)")
        sub.add_argument(
            "--wait", type=float, default=wait, metavar="S", help=f"collect broadcasts this long (default {wait:g})"
        )
        sub.add_argument("--state-dir", default=default_state, help=argparse.SUPPRESS)
    listen = commands.add_parser("listen", help="record the DUT's speaker; prints frequency and level")
    listen.add_argument("seconds", type=float, metavar="SECONDS")
    listen.add_argument("--out", required=True, metavar="FILE.wav", help="where the recording goes")
    listen.add_argument("--bench", metavar="FILE", help="a Pi bench file with [audio] (default: the virtual Pi)")
    listen.add_argument("--state-dir", default=default_state, help=argparse.SUPPRESS)
    listen.set_defaults(func=cmd_listen)
    console = commands.add_parser("console", help="follow the DUT's serial console until interrupted")
    console.add_argument("--bench", metavar="FILE", help="a Pi bench file with [serial] (default: the virtual Pi)")
    console.add_argument("--for", dest="seconds", type=float, metavar="S", help="stop after S seconds")
    console.add_argument("--state-dir", default=default_state, help=argparse.SUPPRESS)
    console.set_defaults(func=cmd_console)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args.func(args))
    except CliError as exc:
        print(f"rig: {exc}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `rig ssh -- ... | head`: the reader left; stop quietly, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + 13


if __name__ == "__main__":
    sys.exit(main())
