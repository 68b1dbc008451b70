"""A bench borrowed from a shared lab through labgrid's coordinator (``--lg-place NAME``).

A lab runs one ``labgrid-coordinator``; each rig host runs a ``labgrid-exporter`` that publishes
its bench as resources: labgrid's own ``NetworkService`` for the Pi's SSH address, and one ``Rig*``
resource per bench-file table for the wiring (the exporter passes classes it does not know through
unchanged). A run acquires the place, which is the lab-wide "one run per bench", turns the
resources into bench tables laid over an optional base bench file, and releases the place at the
end, also when the run fails.

The rig talks to the coordinator through ``labgrid-client``, labgrid's documented interface for
scripts and CI, from labgrid's own environment: installed beside the rig, labgrid would replace
pyserial with its fork and load its pytest plugin into every run (whose process-wide step logger
breaks pytest's in-process runs).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from . import paths
from .bench import BenchConfig, Origin, bench_from_tables, read_bench_tables

log = logging.getLogger(__name__)

DEFAULT_COORDINATOR = "127.0.0.1:20408"  # labgrid's own default port
DEFAULT_FIRMWARE_PORT = 8000  # the firmware's HTTP port when the place has no RigDut resource
CALL_TIMEOUT_S = 30.0  # one labgrid-client call; a coordinator that stops answering is an error
POLL_S = 2.0  # how often a run waiting for a busy place asks again
LABGRID_VENV = paths.PROJECT_ROOT / ".venv-labgrid"  # where make test's bootstrap installs labgrid

# The rig's own resource classes, each one table of the bench file (README: "A shared lab").
TABLE_OF_CLASS = {
    "RigDut": "dut",
    "RigGpio": "gpio",
    "RigNfc": "nfc",
    "RigSerial": "serial",
    "RigAudio": "audio",
    "RigPower": "power",
}
LIST_KEYS = {("gpio", "loopback")}  # a list in the bench file; a comma-separated string in a resource


class PlaceError(Exception):
    """The place cannot be used; ``str()`` is the one-line explanation."""


def labgrid_client() -> Path:
    """``$RIG_LABGRID_CLIENT``, else labgrid-client on PATH, else the one the bootstrap installed."""
    chosen = os.environ.get("RIG_LABGRID_CLIENT") or shutil.which("labgrid-client")
    candidate = Path(chosen) if chosen else LABGRID_VENV / "bin" / "labgrid-client"
    if not candidate.is_file():
        raise PlaceError(
            "--lg-place needs labgrid-client: pipx install labgrid, or set RIG_LABGRID_CLIENT (make test installs "
            f"one in {LABGRID_VENV})"
        )
    return candidate


def holder_in(why: str) -> str:
    """HOST/USER from labgrid-client's "Place P is already acquired by HOST/USER. To work ..."
    (HOST may be a dotted name)."""
    return why.split("already acquired by", 1)[1].split()[0].rstrip(".")


class LabPlace:
    """A labgrid place: acquire, read its resources as bench tables, release."""

    def __init__(self, coordinator: str, name: str) -> None:
        self.coordinator, self.name = coordinator, name
        self.acquired = False
        self._client: Path | None = None

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """One labgrid-client call on this place; its output goes to the log."""
        if self._client is None:
            self._client = labgrid_client()
        command = [str(self._client), "-x", self.coordinator, "-p", self.name, *args]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=CALL_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise PlaceError(
                f"labgrid coordinator {self.coordinator}: no answer to {args[0]} within {CALL_TIMEOUT_S:.0f} s"
            ) from None
        for line in (done.stdout + done.stderr).splitlines():
            log.info("labgrid-client %s: %s", args[0], line)
        if done.returncode != 0 and "connect to coordinator" in done.stderr:
            raise PlaceError(f"labgrid coordinator {self.coordinator}: unreachable (is labgrid-coordinator running?)")
        return done

    @staticmethod
    def _why(done: subprocess.CompletedProcess[str]) -> str:
        """labgrid-client's own one-line reason, without its "Error: " prefix."""
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        return (lines[-1] if lines else f"labgrid-client exit status {done.returncode}").removeprefix("Error: ")

    def acquire(
        self, *, wait: bool = True, timeout: float = 3600.0, on_wait: Callable[[str], None] | None = None
    ) -> str | None:
        """Acquire the place, waiting while another run holds it; returns what was recovered, if anything.

        The caller already holds this host's bench lock for the place, so a place this very host and
        user acquired was left behind by a killed run: it is released and taken over.
        """
        deadline = time.monotonic() + timeout
        told = False
        recovered = None
        while True:
            done = self._run("acquire")
            if done.returncode == 0:
                self.acquired = True
                return recovered
            why = self._why(done)
            if "You have already acquired place" in why and recovered is None:
                released = self._run("release")
                if released.returncode != 0:
                    raise PlaceError(f"labgrid place {self.name!r}: {self._why(released)}")
                recovered = f"released labgrid place {self.name!r}, left acquired by a killed run on this host"
                continue
            if "already acquired by" not in why:
                raise PlaceError(f"labgrid place {self.name!r}: {why}")
            holder = holder_in(why)
            if not wait or time.monotonic() >= deadline:
                waited = f" (waited {timeout:.0f} s)" if wait else ""
                raise PlaceError(f"labgrid place {self.name!r} is acquired by {holder}{waited}")
            if on_wait is not None and not told:
                on_wait(holder)
                told = True
            time.sleep(POLL_S)

    def tables(self) -> tuple[dict[str, Any], list[str]]:
        """The acquired place's resources as bench tables, and the resources as labgrid lists them."""
        done = self._run("env")
        if done.returncode != 0:
            raise PlaceError(f"labgrid place {self.name!r}: {self._why(done)}")
        try:
            env = yaml.safe_load(done.stdout)
            entries = env["targets"][self.name]["resources"]
        except (yaml.YAMLError, KeyError, TypeError) as exc:
            raise PlaceError(f"labgrid place {self.name!r}: unexpected labgrid-client env output ({exc})") from None
        resources: dict[tuple[str, str], dict[str, Any]] = {}
        for entry in entries:
            ((cls, args),) = entry.items()
            args = dict(args or {})
            resources[(args.pop("name", cls), cls)] = args
        listed = [f"{cls}/{name}" for name, cls in sorted(resources)]
        return tables_from_resources(self.name, resources), listed

    def release(self) -> None:
        """Give the place back (idempotent); a failure is logged, never raised over a test result."""
        if not self.acquired:
            return
        try:
            done = self._run("release")
        except PlaceError as exc:
            log.error("%s", exc)
            return
        if done.returncode != 0:
            log.error("labgrid place %r: release failed: %s", self.name, self._why(done))
            return
        self.acquired = False


def tables_from_resources(place: str, resources: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    """Bench tables from a place's resources, keyed by (name, class) as labgrid gives them.

    ``NetworkService`` is the Pi's SSH (address, username, port); ``RigGpioLine`` named LINE is
    ``[gpio.lines.LINE]``; every other ``Rig*`` class is the table ``TABLE_OF_CLASS`` names.
    Classes the rig does not use (a power switch labgrid drives, say) are left to labgrid.
    """
    tables: dict[str, Any] = {}
    services = [args for (_, cls), args in resources.items() if cls == "NetworkService"]
    if len(services) != 1:
        raise PlaceError(
            f"labgrid place {place!r}: expected one NetworkService resource (the Pi's SSH address), "
            f"found {len(services)}"
        )
    service = services[0]
    ssh = {"host": service["address"], "port": service.get("port", 22)}
    if service.get("username"):
        ssh["user"] = service["username"]
    tables["ssh"] = ssh
    for (name, cls), args in sorted(resources.items()):
        if cls == "RigGpioLine":
            tables.setdefault("gpio", {}).setdefault("lines", {})[name] = dict(args)
        elif cls in TABLE_OF_CLASS:
            table = TABLE_OF_CLASS[cls]
            if table in tables and table != "gpio":
                raise PlaceError(f"labgrid place {place!r}: two resources of class {cls}")
            values = {
                key: [part.strip() for part in value.split(",")]
                if (table, key) in LIST_KEYS and isinstance(value, str)
                else value
                for key, value in args.items()
            }
            tables.setdefault(table, {}).update(values)
    dut = tables.setdefault("dut", {})
    port = dut.pop("port", DEFAULT_FIRMWARE_PORT)
    dut.setdefault("url", f"http://{service['address']}:{port}")
    return tables


def bench_for_place(place: str, tables: dict[str, Any], base: Path | None) -> BenchConfig:
    """The place's tables laid over the base bench file's (the lab's known_hosts, keys, timeouts,
    firmware and deploy settings); the bench is named after the place and is a Pi unless the base says."""
    raw: dict[str, Any] = read_bench_tables(base) if base is not None else {}
    raw["bench"] = {**raw.get("bench", {}), "name": place}
    raw["bench"].setdefault("kind", "pi")
    for table, values in tables.items():
        merged = raw.setdefault(table, {})
        for key, value in values.items():
            if isinstance(value, dict):
                merged.setdefault(key, {}).update(value)
            else:
                merged[key] = value
    label = f"labgrid place {place!r}" + (f" over {base}" if base is not None else "")
    folder = base.parent if base is not None else Path.cwd()
    return bench_from_tables(raw, Origin(label, folder), source=base)
