"""Sim backend: drives a virtual Pi's mock pins through the control socket of ``mockpins``."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path
from typing import Any

from .driver import GpioError
from .wiring import Line


class MockPinsBackend:
    def __init__(self, path: Path, timeout: float = 5.0) -> None:
        self.path = path
        self.timeout = timeout
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._stream: Any = None

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    self._sock.settimeout(self.timeout)
                    self._sock.connect(str(self.path))
                    self._stream = self._sock.makefile("rwb")
                self._stream.write(json.dumps(request).encode() + b"\n")
                self._stream.flush()
                raw = self._stream.readline()
            except OSError as exc:
                self._drop()
                raise GpioError(f"the virtual Pi's mock pins at {self.path} do not answer: {exc}") from None
            if not raw:
                self._drop()
                raise GpioError(f"the virtual Pi's mock pins at {self.path} hung up (did the firmware restart?)")
        reply = json.loads(raw)
        if not reply.get("ok"):
            raise GpioError(f"mock pins refused {request}: {reply.get('error')}")
        return reply

    def _drop(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock = self._stream = None

    def drive(self, line: Line, level: int) -> float:
        """The firmware's gpiozero callbacks have run when this returns: the answer's ``t`` is the
        virtual Pi's monotonic clock (this machine's) just after them."""
        return float(self._ask({"op": "drive", "pin": line.dut_pin, "level": level})["t"])

    def sense(self, line: Line) -> int:
        return int(self._ask({"op": "read", "pin": line.dut_pin})["level"])

    def close(self) -> None:
        with self._lock:
            self._drop()
