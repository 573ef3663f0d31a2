"""Give freed memory back to the operating system.

glibc's malloc raises its mmap threshold after large blocks are freed (up to 32 MB), so the large,
short-lived buffers a worker allocates all the time (fetch responses, internal batch records of up
to 512 KiB, their decoded reports) come from the heap afterwards, and the heap keeps what they leave
behind. Measured in the 1,000,000-report soak (`make bench SOAK=1`): the ingest + correlate worker
reached 485 MB by 279K reports; `malloc_trim(0)` brought it to 267 MB at once: more than 200 MB
were free memory that malloc kept. A fixed mmap threshold sends those buffers to mmap (unmapped when
freed) and a periodic trim returns what remains. Elsewhere than glibc both are no-ops.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

M_MMAP_THRESHOLD = -3  # mallopt parameter (malloc.h)
MMAP_THRESHOLD_BYTES = 256 * 1024
TRIM_EVERY_SECONDS = 30.0


def _glibc() -> ctypes.CDLL | None:
    if platform.libc_ver()[0] != "glibc":
        return None
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name) if name else None


_LIBC = _glibc()


def fix_mmap_threshold() -> bool:
    """Large blocks always from mmap: freed, they go back to the OS. True if set."""
    return _LIBC is not None and bool(_LIBC.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))


def trim() -> bool:
    """Return the free memory at the top of every malloc arena to the OS. True if some was."""
    return _LIBC is not None and bool(_LIBC.malloc_trim(0))
