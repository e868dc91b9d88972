"""How the C allocator gives memory back while large inputs are read (glibc only).

Reading allocates and frees a 1 MB block of text at a time, among many small objects that
live on. glibc serves a freed block's size from the heap from then on (its mmap threshold
rises with each large block freed), and the small objects allocated after each block pin
that heap: a long read keeps tens of MB it no longer uses. Fixing the threshold at glibc's
default keeps large blocks mapped on their own, so each is given back when freed, at
the cost of mapping fresh pages for each one (about 5 % more time to read a log).
"""

from __future__ import annotations

import ctypes
import sys

# mallopt parameters (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
THRESHOLD = 128 * 1024  # glibc's default; setting it turns off the rising threshold


def give_back_large_blocks() -> bool:
    """Keep blocks of ``THRESHOLD`` bytes or more out of the heap; False where unsupported.

    Process-wide, inherited by forked workers; calling it again changes nothing.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018 - glibc only: musl's mallopt does nothing
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, THRESHOLD))
