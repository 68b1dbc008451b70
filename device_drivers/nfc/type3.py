"""A named tag as an NFC Forum Type 3 tag, answered by nfcpy's own ``Type3TagEmulation``.

The same emulation serves the sim field (``field.py``) and card emulation on a USB reader
(``card.py``): nfcpy decodes each command (polling, read and write without encryption) and this
module supplies the tag's memory: the attribute block and the NDEF message, read-only.
"""

from __future__ import annotations

import struct

import nfc.clf
import nfc.tag.tt3

from .tags import Tag, TagError

NDEF_READ_SERVICE = 0x000B
NDEF_WRITE_SERVICE = 0x0009
BLOCK = 16
BLOCKS_PER_READ = 4  # Nbr: what the attribute block tells a reader it may ask for at once


def attribute_block(message: bytes) -> bytes:
    """Block 0 of a Type 3 NDEF tag (NFC Forum T3T operation spec): version 1.0, read-only."""
    blocks = max(1, -(-len(message) // BLOCK))
    head = struct.pack(">BBBH4xBB", 0x10, BLOCKS_PER_READ, 1, blocks, 0x00, 0x00) + len(message).to_bytes(3, "big")
    return head + struct.pack(">H", sum(head))


def sensf_res(tag: Tag) -> bytes:
    """The polling response: 0x01, IDm, PMm, system code (nfcpy's LocalTarget layout)."""
    return b"\x01" + tag.identifier + tag.pmm + tag.system_code


def local_target(tag: Tag) -> nfc.clf.LocalTarget:
    if tag.type != "type3":
        raise TagError(f"tag {tag.name!r} is a {tag.type} tag; only type3 tags can be emulated")
    return nfc.clf.LocalTarget("212F", sensf_res=bytearray(sensf_res(tag)))


def serve_ndef(emulation: nfc.tag.tt3.Type3TagEmulation, tag: Tag) -> None:
    """Give an nfcpy Type 3 emulation the tag's memory (read service only: the tag is read-only)."""
    message = tag.ndef_message
    memory = attribute_block(message) + message.ljust(-(-len(message) // BLOCK) * BLOCK, b"\0")

    def read(block_number: int, rb: bool, re: bool) -> bytearray | None:
        start = block_number * BLOCK
        return bytearray(memory[start : start + BLOCK]) if start < len(memory) else None

    emulation.add_service(NDEF_READ_SERVICE, read, None)
    emulation.add_service(NDEF_WRITE_SERVICE, None, None)


def emulation(tag: Tag) -> nfc.tag.tt3.Type3TagEmulation:
    """A ready emulation, for a transport that feeds it commands itself (the sim field).

    ``clf`` is None because such a transport sends the responses; nfcpy uses ``clf`` only to send.
    """
    target = local_target(tag)
    target.tt3_cmd = bytearray(b"\x00\xff\xff\x00\x00")  # the polling that activates it
    emulated = nfc.tag.tt3.Type3TagEmulation(None, target)
    serve_ndef(emulated, tag)
    return emulated
