"""Freed module-sized buffers go back to the OS, so peak RSS does not grow with the number of inputs.

glibc serves a block from its heap instead of its own memory map once a freed mapped block of that
size raised its mmap threshold (the dynamic threshold, up to 32 MB). A dense method forms one input's
dense module at a time, plus masks and sums of 10-50 MB each; under the dynamic threshold those landed
in the heap, which fragments and keeps its high-water mark, so peak RSS still grew with the inputs:
`ties` over 2 vs 8 inputs of one 2048 x 5632 layer, 8 - 2 = 103-127 MiB of growth; with a fixed
1 MiB threshold 44 MiB (fresh processes, load 4-5). Setting the threshold once fixes it for the
process (mallopt turns the dynamic adjustment off); blocks above 1 MiB are then mapped and unmapped
whole, which costs a page fault per page touched, small beside the arithmetic on them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from functools import cache

M_MMAP_THRESHOLD = -3  # glibc's malloc.h
MMAP_THRESHOLD_BYTES = 1 << 20


@cache
def map_large_blocks() -> bool:
    """Fix glibc's mmap threshold at 1 MiB for this process (once); False where it does not apply
    (not Linux/glibc, or refused)."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
