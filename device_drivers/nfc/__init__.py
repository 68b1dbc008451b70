"""NFC: the rig presents named tags to the DUT's reader.

Tags are named in ``fixtures/tags/`` (``tags.py``). Backends: ``field`` answers a virtual Pi's
nfcpy udp reader (sim); ``card`` emulates the tag on the rig's own USB reader (nfcpy card
emulation, Type 3); ``actuator`` moves real tags onto the antenna with gpiozero devices.
"""

from .driver import Nfc, NfcBackend
from .tags import Tag, TagError, TagShelf

__all__ = ["Nfc", "NfcBackend", "Tag", "TagError", "TagShelf"]
