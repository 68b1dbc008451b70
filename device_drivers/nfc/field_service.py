"""The sim field as a service of the virtual Pi: ``python -m device_drivers.nfc.field_service``.

The air around a reader does not come and go with a test run: the virtual Pi starts this
process with its other devices, so the firmware's polls are answered from its first boot, after
every power cycle, and between test runs. The rig (a test session, ``rig tap``) lays tags on it
through a control socket, one JSON object per line:

- ``{"op": "place", "file": "/path/red.toml"}`` → ``{"ok": true}``
- ``{"op": "remove"}`` → ``{"ok": true}``
- ``{"op": "status"}`` → ``{"ok": true, "polls": N, "last_poll_age_s": S, "tag": NAME}``

Errors answer ``{"ok": false, "error": "one line"}``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import socket
import socketserver
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .field import FieldError, UdpField
from .tags import Tag, TagError, load_tag

log = logging.getLogger(__name__)


class FieldServiceError(RuntimeError):
    """The field service is not there, or refused a request; one line."""


def serve(field: UdpField, control: Path) -> socketserver.UnixStreamServer:
    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            for raw in self.rfile:
                try:
                    reply = _handle(field, json.loads(raw))
                except (ValueError, TypeError, KeyError, TagError) as exc:
                    reply = {"ok": False, "error": str(exc) or type(exc).__name__}
                self.wfile.write(json.dumps(reply).encode() + b"\n")

    control.unlink(missing_ok=True)
    server = socketserver.ThreadingUnixStreamServer(str(control), Handler)
    server.daemon_threads = True
    return server


def _handle(field: UdpField, request: dict[str, Any]) -> dict[str, Any]:
    op = request["op"]
    if op == "place":
        field.place(load_tag(Path(request["file"])))
        return {"ok": True}
    if op == "remove":
        field.remove()
        return {"ok": True}
    if op == "status":
        age = time.monotonic() - field.last_poll if field.last_poll else None
        tag = field.tag.name if field.tag else None
        return {"ok": True, "polls": field.polls, "last_poll_age_s": age, "tag": tag}
    raise ValueError(f"unknown op {op!r}")


class RemoteField:
    """The rig's side: an NFC backend that lays tags on a running field service."""

    def __init__(self, control: Path, timeout: float = 5.0) -> None:
        self.control = control
        self.timeout = timeout

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(self.timeout)
                conn.connect(str(self.control))
                conn.sendall(json.dumps(request).encode() + b"\n")
                with conn.makefile("rb") as replies:
                    line = replies.readline()
        except OSError as exc:
            raise FieldServiceError(
                f"the virtual Pi's NFC field at {self.control} does not answer ({exc.strerror or exc}); "
                "is the virtual Pi up?"
            ) from None
        if not line:
            raise FieldServiceError(f"the NFC field at {self.control} closed the connection without an answer")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise FieldServiceError(f"the NFC field refused {request['op']}: {reply.get('error')}")
        return reply

    def place(self, tag: Tag) -> None:
        if tag.source is None:
            raise TagError(f"tag {tag.name!r} has no file the field could load")
        self._ask({"op": "place", "file": str(tag.source.resolve())})

    def remove(self) -> None:
        self._ask({"op": "remove"})

    def status(self) -> dict[str, Any]:
        return self._ask({"op": "status"})

    def wait_for_poll(self, timeout: float) -> None:
        """Block until the DUT's reader polls; FieldServiceError says when it last did."""
        first = self.status()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(0.02)
            if self.status()["polls"] > first["polls"]:
                return
        age = first["last_poll_age_s"]
        last = "never" if age is None else f"{age:.1f} s ago"
        raise FieldServiceError(
            f"the DUT's reader did not poll the NFC field within {timeout:g} s (last poll: {last}); "
            "is its NFC on, and was the firmware deployed?"
        )

    def close(self) -> None:
        with contextlib.suppress(FieldServiceError):
            self.remove()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nfc-field", description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, metavar="HOST:PORT", help="where the DUT's udp reader polls")
    parser.add_argument("--control", required=True, type=Path, help="the control socket's path")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    host, _, port = args.listen.rpartition(":")
    try:
        field = UdpField(host, int(port))
    except (FieldError, ValueError) as exc:
        print(f"nfc-field: {exc}", file=sys.stderr)
        return 1
    server = serve(field, args.control)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    threading.Thread(target=server.serve_forever, name="nfc-field-control", daemon=True).start()
    log.info("NFC field on udp %s, control %s", args.listen, args.control)
    stop.wait()
    server.shutdown()
    field.close()
    args.control.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
