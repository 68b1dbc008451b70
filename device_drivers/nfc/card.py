"""Card emulation on a real reader: the rig's own NFC reader (RC-S380, or a PN53x such as the
PN533 and PN532) pretends to be the tag, lying on the DUT's antenna. nfcpy drives the reader;
its Type 3 emulation answers the DUT's commands with the tag's memory (``type3.py``).

Readers without Type 3 listen mode in nfcpy (ACR122U, for one) cannot do this; benches with
them use the actuator backend and real tags.
"""

from __future__ import annotations

import contextlib
import logging
import threading

import nfc
import nfc.tag.tt3

from .tags import Tag
from .type3 import local_target, serve_ndef

log = logging.getLogger(__name__)

# How long one listen lasts. 'remove' stops a tag that no reader has activated within this; an
# activated tag stops at the reader's next command. nfcpy's listen answers a poll that comes late
# in a slice and then returns at the slice's end, so the reader's next command finds no tag: a
# short slice loses activations (measured here: most of them at 0.25 s).
LISTEN_SLICE_S = 1.0


class CardEmulationError(RuntimeError):
    """The rig's reader cannot be opened or cannot emulate."""


class CardEmulator:
    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self._clf = nfc.ContactlessFrontend(path)
        except OSError as exc:
            raise CardEmulationError(
                f"cannot open the rig's NFC reader {path!r}: {exc.strerror or exc} "
                "(is it plugged in, and is the user in the plugdev group?)"
            ) from None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.activations = 0

    def place(self, tag: Tag) -> None:
        self.remove()
        target = local_target(tag)  # raises TagError for a tag that cannot be emulated
        self._stop.clear()
        self._thread = threading.Thread(target=self._emulate, args=(tag, target), name="nfc-card", daemon=True)
        self._thread.start()

    def remove(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=LISTEN_SLICE_S + 3)
        if self._thread.is_alive():
            log.warning("card emulation on %s did not stop within %.1f s", self.path, LISTEN_SLICE_S + 3)
        self._thread = None

    def close(self) -> None:
        self.remove()
        with contextlib.suppress(OSError):
            self._clf.close()

    def _emulate(self, tag: Tag, target: nfc.clf.LocalTarget) -> None:
        def on_connect(emulated: nfc.tag.tt3.Type3TagEmulation) -> bool:
            self.activations += 1
            serve_ndef(emulated, tag)
            return True  # nfcpy then answers commands until the DUT lets go or 'remove' stops it

        options = {
            "on-startup": lambda _: target,
            "on-connect": on_connect,
            "on-release": lambda _: False,  # keep listening: the tag still lies on the antenna
            "timeout": LISTEN_SLICE_S,
        }
        try:
            self._clf.connect(card=options, terminate=self._stop.is_set)
        except OSError as exc:
            log.error("card emulation on %s failed: %s", self.path, exc)
