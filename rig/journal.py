"""Follows the firmware's journal during a test run: into a file with the artifacts, and onto the
timeline of the test that is running, so a failure shows the firmware's own words beside the events.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .deploy import FOLLOW_READY
from .ssh import ConnectionLost, SshError, SshSession

log = logging.getLogger(__name__)

FOLLOW_FOREVER_S = 10**9  # the follower runs until stopped
QUICK_END_S, MAX_QUICK_ENDS, RETRY_PAUSE_S = 2.0, 5, 0.2


def parse_line(line: str) -> tuple[str, str]:
    """(message, level) of one journal line: the firmware's JSON lines, journald's JSON, or plain text."""
    try:
        record = json.loads(line)
    except ValueError:
        return line, ""
    if not isinstance(record, dict):
        return line, ""
    message = record.get("msg") or record.get("MESSAGE") or line
    level = record.get("level") or record.get("PRIORITY") or ""
    return str(message), str(level)


class JournalFollower:
    def __init__(self, ssh: SshSession, command: str, sink: Path, on_line: Callable[[str], None]) -> None:
        self._ssh = ssh
        self._command = command
        self._sink = sink
        self._on_line = on_line
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="journal-follower", daemon=True)

    def start(self, timeout: float = 10.0) -> None:
        """Start following, and return once the remote side reads from a fixed point: no line is lost."""
        self._thread.start()
        if not self._ready.wait(timeout):
            log.warning("the journal follower did not start within %.0f s; early lines may be missing", timeout)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        self._sink.parent.mkdir(parents=True, exist_ok=True)
        with self._sink.open("a", encoding="utf-8") as out:

            def take(line: str) -> None:
                if line == FOLLOW_READY:  # once per (re)start of the follow command
                    self._ready.set()
                    return
                out.write(line + "\n")
                out.flush()
                self._on_line(line)

            try:
                self._follow(take)
            except SshError as exc:
                log.warning("stopped following the firmware journal: %s", exc)
            finally:
                self._ready.set()  # never leave start() waiting on a follower that died

    def _follow(self, take: Callable[[str], None]) -> None:
        """Follow until stopped. When the connection drops or the follow command is killed (a
        reboot), reconnect and follow again; a command that fails by itself ends the follower."""
        quick_ends = 0
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                result = self._ssh.stream(self._command, take, timeout=FOLLOW_FOREVER_S, stop=self._stop)
            except ConnectionLost as exc:
                why = str(exc)
            else:
                if self._stop.is_set():
                    return
                said = (result.stderr.strip().splitlines() or [f"exit {result.exit_code}"])[-1]
                if result.exit_code != -1:  # it gave up by itself: journalctl missing, log unreadable
                    log.warning("the journal follow command ended by itself: %s", said)
                    return
                why = "the follow command was killed"
            quick_ends = quick_ends + 1 if time.monotonic() - started < QUICK_END_S else 0
            if quick_ends > MAX_QUICK_ENDS:
                log.warning("stopped following the firmware journal: it ended %d times in a row (%s)", quick_ends, why)
                return
            take(f"(journal: {why}; following again once the Pi answers; lines in between may be missing)")
            time.sleep(RETRY_PAUSE_S)  # a dying connection finishes dying, rather than serving one more command
            self._ssh.ensure_connected()  # within the boot timeout, else SshError ends the follower
