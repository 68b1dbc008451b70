"""The DUT's serial console, read line by line into an artifact and onto the timeline.

A reader thread keeps every line with its monotonic stamp, so ``expect`` can look for a pattern
in what arrived after a mark (a test marks before its stimulus). A timeout names the pattern
and shows the last lines that did arrive, which is usually the answer to "why".
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import serial

log = logging.getLogger(__name__)


class ConsoleError(RuntimeError):
    """The console's port cannot be opened."""


class ConsoleTimeout(AssertionError):
    """The expected line did not arrive in time; the message shows the last lines that did."""


@dataclass(frozen=True)
class ConsoleLine:
    mono_ns: int
    text: str


class SerialConsole:
    def __init__(
        self,
        port: str,
        baudrate: int = 115200,
        log_path: Path | None = None,
        on_line: Callable[[ConsoleLine], None] | None = None,
    ) -> None:
        self.port = port
        try:
            self._serial = serial.Serial(port, baudrate, timeout=0.2)
        except (serial.SerialException, OSError) as exc:
            raise ConsoleError(f"cannot open the serial console {port}: {exc}") from None
        self._log = log_path.open("a", encoding="utf-8") if log_path else None
        self.on_line = on_line
        self.lines: list[ConsoleLine] = []
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self.error: str | None = None
        self._thread = threading.Thread(target=self._read, name=f"console-{Path(port).name}", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        pending = b""
        while not self._stop.is_set():
            try:
                chunk = self._serial.read(self._serial.in_waiting or 1)
            except (serial.SerialException, OSError) as exc:
                self.error = f"the serial console {self.port} failed: {exc}"
                log.warning("%s", self.error)
                break
            if not chunk:
                continue
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for raw in complete:
                self._add(raw.rstrip(b"\r").decode("utf-8", errors="replace"))
        with self._changed:
            self._changed.notify_all()

    def _add(self, text: str) -> None:
        line = ConsoleLine(time.monotonic_ns(), text)
        with self._changed:
            self.lines.append(line)
            self._changed.notify_all()
        if self._log is not None:
            self._log.write(text + "\n")
            self._log.flush()
        if self.on_line is not None:
            self.on_line(line)

    def mark(self) -> int:
        """A position in the console's history; ``expect(..., since=mark)`` looks only after it."""
        with self._changed:
            return len(self.lines)

    def expect(self, pattern: str, timeout: float, since: int = 0) -> ConsoleLine:
        """The first line after ``since`` that matches the regular expression ``pattern``."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        checked = since
        with self._changed:
            while True:
                for line in self.lines[checked:]:
                    if regex.search(line.text):
                        return line
                checked = len(self.lines)
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.error is not None:
                    break
                self._changed.wait(remaining)
            tail = [line.text for line in self.lines[since:]][-10:]
        shown = "\n  ".join(tail) if tail else "(nothing arrived)"
        why = f" ({self.error})" if self.error else ""
        raise ConsoleTimeout(f"no console line matched {pattern!r} within {timeout:g} s{why}; last lines:\n  {shown}")

    def write(self, data: bytes) -> None:
        """Send bytes to the DUT (Enter, to make a login prompt answer)."""
        try:
            self._serial.write(data)
        except (serial.SerialException, OSError) as exc:
            raise ConsoleError(f"cannot write to the serial console {self.port}: {exc}") from None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._serial.close()
        if self._log is not None:
            self._log.close()
