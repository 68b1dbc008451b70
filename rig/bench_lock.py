"""One run per bench: a lock file with a lease, so two runs never press the same buttons.

The lock is a file created with O_EXCL in a folder every run of the lab sees (``RIG_LOCK_DIR``,
by default the user's state folder; an NFS share works, since nothing relies on flock). It says
who holds it: PID, host, user, command and a lease that the holder renews from a thread. A run
that finds it waits, saying who holds it, or fails at once (``--no-wait``). A lock is stale, and
taken over, when its lease ran out (the holder's host died or was cut off) or, on the same host,
when the holder's process is gone (a run killed with SIGKILL never renews nor releases).
"""

from __future__ import annotations

import contextlib
import getpass
import json
import logging
import os
import re
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from . import paths
from .procs import process_alive

log = logging.getLogger(__name__)

DEFAULT_LEASE_S = 60.0
POLL_S = 0.5


class BenchBusy(RuntimeError):
    """The bench is held by another run (``--no-wait``, or the wait timed out)."""


@dataclass(frozen=True)
class Holder:
    pid: int
    host: str
    user: str
    command: str
    since: float
    lease_until: float
    token: str

    def describe(self) -> str:
        since = time.strftime("%H:%M:%S", time.localtime(self.since))
        left = self.lease_until - time.time()
        return f"PID {self.pid} ({self.user}@{self.host}: {self.command}) since {since}, lease {left:.0f} s left"

    def stale(self) -> str | None:
        """Why this holder no longer holds the bench, or None while it does."""
        if time.time() > self.lease_until:
            return f"its lease ran out {time.time() - self.lease_until:.0f} s ago"
        if self.host == socket.gethostname() and not process_alive(self.pid):
            return f"its process {self.pid} is gone"
        return None


def lock_dir() -> Path:
    return Path(os.environ.get("RIG_LOCK_DIR") or paths.state_home() / "locks")


class BenchLock:
    """``acquire`` then ``release`` (or ``with``); the lease is renewed until released."""

    def __init__(self, bench: str, folder: Path | None = None, lease_s: float = DEFAULT_LEASE_S) -> None:
        self.bench = bench
        self.folder = folder or lock_dir()
        self.path = self.folder / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', bench)}.lock"
        self.lease_s = lease_s
        self.token = uuid.uuid4().hex
        self.recovered: str | None = None  # why a stale lock was taken over, for the run's log
        self._renewer: threading.Thread | None = None
        self._stop = threading.Event()

    def holder(self) -> Holder | None:
        """Who holds the bench now (None: free, or a lock file being written this instant)."""
        try:
            return Holder(**json.loads(self.path.read_text()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as exc:
            # A half-written or foreign file: treat it as held until its age says otherwise.
            with contextlib.suppress(OSError):
                age = time.time() - self.path.stat().st_mtime
                if age > self.lease_s:
                    return Holder(0, "?", "?", f"unreadable lock file ({exc})", 0.0, 0.0, "?")
            return None

    def _me(self) -> Holder:
        now = time.time()
        command = " ".join(Path(sys.argv[0]).name if i == 0 else a for i, a in enumerate(sys.argv))[:200]
        return Holder(
            os.getpid(), socket.gethostname(), getpass.getuser(), command, now, now + self.lease_s, self.token
        )

    def _try_create(self) -> bool:
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as out:
            out.write(json.dumps(asdict(self._me())))
        return True

    def _take_over(self, stale: Holder, why: str) -> None:
        """Move the stale file aside under a name of our own; if what we moved was not the stale
        holder's (a third run took over first), put it back without clobbering anything."""
        aside = self.path.with_name(f"{self.path.name}.stale-{self.token}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        try:
            moved = json.loads(aside.read_text()).get("token")
        except (OSError, ValueError, AttributeError):
            moved = stale.token
        if moved != stale.token:
            with contextlib.suppress(FileExistsError):
                os.link(aside, self.path)
        else:
            self.recovered = f"took over the lock of {stale.describe()}: {why}"
            log.warning("bench %s: %s", self.bench, self.recovered)
        aside.unlink(missing_ok=True)

    def acquire(
        self,
        *,
        wait: bool = True,
        timeout: float = 3600.0,
        on_wait: Callable[[Holder], None] | None = None,
        say_every_s: float = 30.0,
    ) -> None:
        """Take the bench; wait (up to ``timeout``) while another live run holds it, telling
        ``on_wait`` who it is at once and every ``say_every_s``."""
        deadline = time.monotonic() + timeout
        said_at: float | None = None
        while True:
            if self._try_create():
                self._start_renewing()
                return
            holder = self.holder()
            if holder is None:
                time.sleep(0.05)  # released or being written this instant: try again
                continue
            why = holder.stale()
            if why is not None:
                self._take_over(holder, why)
                continue
            message = f"bench {self.bench!r} is in use by {holder.describe()} (lock {self.path})"
            if not wait:
                raise BenchBusy(message)
            if time.monotonic() >= deadline:
                raise BenchBusy(f"{message}; gave up after waiting {timeout:g} s")
            if on_wait is not None and (said_at is None or time.monotonic() - said_at >= say_every_s):
                said_at = time.monotonic()
                on_wait(holder)
            time.sleep(min(POLL_S, max(deadline - time.monotonic(), 0.01)))

    def _start_renewing(self) -> None:
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew, name=f"lease-{self.bench}", daemon=True)
        self._renewer.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            holder = self.holder()
            if holder is None or holder.token != self.token:
                log.error("bench %s: the lock was taken from this run (%s)", self.bench, holder and holder.describe())
                return
            renewed = asdict(holder) | {"lease_until": time.time() + self.lease_s}
            partial = self.path.with_name(f"{self.path.name}.renew-{self.token}")
            partial.write_text(json.dumps(renewed))
            os.replace(partial, self.path)

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)
            self._renewer = None
        holder = self.holder()
        if holder is not None and holder.token == self.token:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> BenchLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
