"""The sim backend: the RF field in front of a virtual Pi's reader, on nfcpy's ``udp`` transport.

The firmware's reader opens ``udp:HOST:PORT`` (nfcpy's udp driver) and sends its polls here.
The field holds that port for as long as the rig runs and answers in nfcpy's udp wire format
(``"212F <hex>"``, ``"RFOFF"``). A placed tag answers through nfcpy's ``Type3TagEmulation``.

Why not nfcpy's own listen side: it binds the port only while it listens and closes it between
activations, and nfcpy's udp reader waits a hard-coded 1 s for each discovery poll that gets no
answer. A tap would then take seconds. Here:

- a discovery poll to an empty field gets ``RFOFF`` at once, which nfcpy's ``sense`` takes as
  "no target". It also gets ``RFOFF`` when it asks for a technology the placed tag lacks
  (type A or B), so a poll costs one loopback round trip, not one second;
- a command of an activation whose tag has gone gets silence, as from a real tag: the reader's
  presence check then times out in milliseconds. nfcpy's type 3 exchange cannot take ``RFOFF``.
  That holds even once a tag lies there again: a removal ends the activation, so a tag laid back
  before the reader's next presence check (two taps in quick succession) is found as a new
  arrival, not taken for the first tap's tag still resting there.

Discovery polls come from a fresh socket (nfcpy's reader reopens it at every ``sense``), so
the sender's address tells a poll from a command of the current activation.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import select
import socket
import threading
import time
from binascii import hexlify, unhexlify

import nfc.tag.tt3

from .tags import Tag
from .type3 import emulation

log = logging.getLogger(__name__)

RFOFF = b"RFOFF"


class FieldError(RuntimeError):
    """The field cannot take its port."""


class UdpField:
    def __init__(self, host: str, port: int) -> None:
        self.address = (host, port)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self._sock.bind(self.address)
        except OSError as exc:
            self._sock.close()
            if exc.errno == errno.EADDRINUSE:
                raise FieldError(f"the NFC field {host}:{port} is held by another process") from None
            raise FieldError(f"cannot open the NFC field at {host}:{port}: {exc.strerror or exc}") from None
        self._lock = threading.Lock()
        self._tag: Tag | None = None
        self._emulation: nfc.tag.tt3.Type3TagEmulation | None = None
        self._activated_by: tuple[str, int] | None = None
        # The activation a removal cut: silent until the reader closes its socket or polls from another.
        self._ended: tuple[str, int] | None = None
        self.polls = 0  # datagrams from the reader, RFOFF excluded
        self.last_poll = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"nfc-field-{port}", daemon=True)
        self._thread.start()

    # -- the rig's side ------------------------------------------------------------------------
    def place(self, tag: Tag) -> None:
        emulated = emulation(tag)  # raises TagError for a tag that cannot be emulated
        with self._lock:
            self._tag, self._emulation, self._activated_by = tag, emulated, None

    def remove(self) -> None:
        with self._lock:
            self._tag, self._emulation = None, None
            if self._activated_by is not None:
                self._ended, self._activated_by = self._activated_by, None

    @property
    def tag(self) -> Tag | None:
        return self._tag

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close()

    # -- the reader's side ---------------------------------------------------------------------
    def _serve(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._sock], [], [], 0.2)
            if not ready:
                continue
            try:
                datagram, sender = self._sock.recvfrom(2048)
            except OSError:
                continue
            if datagram.startswith(RFOFF):
                self._muted(sender)
                continue  # nothing to answer
            reply = self._answer(datagram, sender)
            if reply is not None:
                with contextlib.suppress(OSError):  # a reader gone meanwhile
                    self._sock.sendto(reply, sender)

    def _muted(self, sender: tuple[str, int]) -> None:
        """The reader closed a socket (nfcpy sends RFOFF from it first): a later socket on the
        same port is a new one, and its polls are answered."""
        with self._lock:
            if sender == self._ended:
                self._ended = None

    def _answer(self, datagram: bytes, sender: tuple[str, int]) -> bytes | None:
        try:
            brty_raw, payload = datagram.split()
            brty, command = brty_raw.decode("ascii"), bytearray(unhexlify(payload))
        except (ValueError, UnicodeDecodeError):
            log.debug("nfc field: malformed datagram %r from %s", datagram[:40], sender)
            return None
        with self._lock:
            self.polls += 1
            self.last_poll = time.monotonic()
            if sender == self._ended:
                return None  # the removed tag's activation: a departed tag is silent
            self._ended = None  # the reader has moved on to a poll of its own
            emulated, activated_by = self._emulation, self._activated_by
            fresh = sender != activated_by
            if emulated is None or not brty.endswith("F"):
                return RFOFF if fresh else None
            response = emulated.process_command(command) if command and command[0] == len(command) else None
            if response is None:
                return RFOFF if fresh else None
            self._activated_by = sender
        return b"%s %s" % (brty_raw, hexlify(response))
