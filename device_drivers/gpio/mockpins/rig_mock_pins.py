"""gpiozero's MockFactory, driven from outside the firmware's process: the rig's GPIO sim backend.

The firmware runs unmodified with ``GPIOZERO_PIN_FACTORY=rigmock``. This factory serves a Unix
socket at ``$RIG_MOCK_PINS_SOCKET`` on which the rig drives input pins as a wire would and reads
output pins as a probe would. One JSON object per line each way:

    {"op": "drive", "pin": 16, "level": 0}  ->  {"ok": true, "t": 123.456}
    {"op": "read", "pin": 16}               ->  {"ok": true, "level": 1, "function": "input"}
    {"op": "pins"}                          ->  {"ok": true, "pins": {"16": {"level": 1, "function": "input"}}}

A drive runs the firmware's gpiozero callbacks on the socket's thread before it answers, so the
answer's ``t`` (this process's monotonic clock) is when the firmware saw the edge.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from typing import Any

from gpiozero.pins.mock import MockFactory

log = logging.getLogger(__name__)
SOCKET_ENV = "RIG_MOCK_PINS_SOCKET"


class ControlledMockFactory(MockFactory):
    def __init__(self, revision: str | None = None, pin_class: Any = None) -> None:
        super().__init__(revision, pin_class)
        self._lock = threading.Lock()  # one drive at a time, as one wire carries one level
        path = os.environ.get(SOCKET_ENV)
        if not path:
            log.warning("%s is not set: the mock pins cannot be driven from outside", SOCKET_ENV)
            return
        if os.path.exists(path):
            os.unlink(path)
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(path)
        os.chmod(path, 0o660)
        self._server.listen(8)
        threading.Thread(target=self._accept, name="rig-mock-pins", daemon=True).start()
        log.info("mock pins driven through %s", path)

    def _accept(self) -> None:
        while True:
            connection, _ = self._server.accept()
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        with connection, connection.makefile("rwb") as stream:
            for raw in stream:
                try:
                    reply = self._handle(json.loads(raw))
                except Exception as exc:  # any bad request gets its answer; the firmware runs on
                    reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                stream.write(json.dumps(reply).encode() + b"\n")
                stream.flush()

    def _handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op not in ("drive", "read", "pins"):
            return {"ok": False, "error": f"unknown op {op!r}; known: drive, read, pins"}
        if op == "pins":
            return {"ok": True, "pins": {str(info.name): self._describe(pin) for info, pin in self.pins.items()}}
        pin = self.pin(int(request["pin"]))
        if op == "drive":
            if pin.function != "input":
                return {"ok": False, "error": f"GPIO{request['pin']} is an output of the firmware; it cannot be driven"}
            with self._lock:
                if request["level"]:
                    pin.drive_high()
                else:
                    pin.drive_low()
                return {"ok": True, "t": time.monotonic()}
        return {"ok": True, **self._describe(pin)}

    @staticmethod
    def _describe(pin: Any) -> dict[str, Any]:
        return {"level": int(pin.state), "function": pin.function}
