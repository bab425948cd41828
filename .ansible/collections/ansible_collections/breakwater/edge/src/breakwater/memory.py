"""Garbage collection around the watcher's bulk work.

A full list, a full catalog build and a full render each allocate hundreds of
thousands of objects at 10,000 Services.  They are trees -- dictionaries, lists,
frozen dataclasses -- freed by reference counting; the cyclic collector finds
nothing in them, yet its generational passes, triggered by the allocations, scan
everything alive and cost as much as the build itself.  Such work runs with the
collector paused (measured: catalog at 10,000 Services 0.93 s -> 0.45 s).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic collector for a bulk build (nested uses are fine)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def settle_heap() -> None:
    """Collect once, then exempt what is alive from later collections (``gc.freeze``).

    After the first list and catalog the heap holds hundreds of thousands of objects
    that live as long as the watcher (the decoded objects, the catalog): each full
    collection would scan them again, for nothing -- measured at 1,000 Services, a
    full collection cost 8 ms on the event path, a route change's p99 went from 49
    to 35-45 ms without them.  Frozen objects are still freed by reference counting
    when they go; only a cycle among them would be kept, and these are trees.
    """
    gc.collect()
    gc.freeze()
