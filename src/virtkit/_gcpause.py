"""Pause Python's cyclic garbage collector around a bounded burst of allocation.

Evaluating a large configuration creates hundreds of thousands of small,
acyclic objects (tokens, words, AST nodes, contexts).  Each allocation burst
triggers generation-2 collections that walk all of them again: on a
5,000-entry grub.cfg the collector was a fifth of the run.  Reference counting
still frees everything acyclic at once; the few cycles wait until the
collector is re-enabled.  Memory stays bounded by ``Limits`` (steps, sizes,
entries) and, in the worker, by its address-space rlimit.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["gc_paused"]


@contextmanager
def gc_paused() -> Iterator[None]:
    """Disable the cyclic collector for the block; restore its previous state after (nesting is fine)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
