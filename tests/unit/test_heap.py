"""The set-up heap leaves the collector's view; what tests allocate later is still collected."""

from __future__ import annotations

import gc
import weakref

from rig import heap


class _Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector can free it


def test_the_plugin_froze_the_heap_after_collection() -> None:
    assert gc.get_freeze_count() > 10_000, "the rig's pytest plugin froze the imported libraries' objects"


def test_frozen_objects_leave_collections_and_later_garbage_is_collected() -> None:
    kept = [[n] for n in range(1000)]
    heap.freeze_setup()
    scanned = {id(o) for o in gc.get_objects()}
    assert not any(id(item) in scanned for item in kept), "frozen objects are in no generation"
    node = _Node()
    gone = weakref.ref(node)
    del node
    gc.collect()
    assert gone() is None, "a cycle made after the freeze is still collected"
