"""Give big freed buffers back to the system (glibc's malloc), so a long-running process's RSS
is what it uses, not the high-water mark of its longest utterance."""

from __future__ import annotations

import ctypes
import os

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter (malloc.h)
MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's own starting value, kept fixed


def return_large_buffers() -> bool:
    """Serve every allocation of 128 KiB or more with its own mapping, freed when it is.

    glibc starts that way, but raises the threshold each time such a buffer is freed (up to
    32 MiB); from then on onnxruntime's and numpy's per-utterance buffers come from the heap,
    whose freed memory mostly stays in RSS. Fixing the threshold, as ``MALLOC_MMAP_THRESHOLD_``
    would, stops that (the memory benchmark: ~10 MB less). A value the user set in that
    variable is left alone. False where the C library has no ``mallopt`` (or ignores it).
    """
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
