"""The serving process's memory policy: bounded native primitive caches and few malloc arenas.

Applied once by the entry point (:func:`monitor.cli.main`), before torch is imported and before
any thread starts; a value the operator set in the environment is kept.

* ``LRU_CACHE_CAPACITY`` (PyTorch's ideep layer) and ``ONEDNN_PRIMITIVE_CACHE_CAPACITY``
  (oneDNN), both 1024 by default, keep one compiled primitive per input shape. On CPU the model
  runs through oneDNN (bf16 autocast, some fp32 ops), and the classify role's batches come in
  many shapes (items x padded tokens), so the process kept growing: the model alone went from
  482 to 1,290 MiB over 300 batches of mixed shapes, against a flat 166 MiB heap with 64 entries
  each, at the same speed within noise (docs/reliability.md, "Soak").
* glibc malloc arenas: each allocating thread (torch's intra-op threads, kafka-python's IO
  thread, the model owner, the HTTP server) gets its own arena, up to 8 per core, and memory
  freed into one arena is not reused by the others. ``mallopt(M_ARENA_MAX, 2)`` is what
  ``MALLOC_ARENA_MAX=2`` does (the deploy units set that too). Linux with glibc only; a no-op
  elsewhere.

And once the daemon has loaded its model (:func:`freeze_loaded_objects`, from ``finmon run``):
the objects loaded at start move to the garbage collector's permanent generation.
"""

from __future__ import annotations

import ctypes
import gc
import sys
from collections.abc import Mapping, MutableMapping

NATIVE_CACHE_ENTRIES = 64
CACHE_VARIABLES = ("LRU_CACHE_CAPACITY", "ONEDNN_PRIMITIVE_CACHE_CAPACITY")
MALLOC_ARENAS = 2
ARENA_VARIABLE = "MALLOC_ARENA_MAX"
M_ARENA_MAX = -8  # glibc <malloc.h>


def bound_native_caches(
    environ: MutableMapping[str, str], entries: int = NATIVE_CACHE_ENTRIES
) -> None:
    """Cap the ideep and oneDNN primitive caches at ``entries`` unless already set. Takes
    effect only before torch runs its first oneDNN operation."""
    for name in CACHE_VARIABLES:
        environ.setdefault(name, str(entries))


def limit_malloc_arenas(environ: Mapping[str, str], arenas: int = MALLOC_ARENAS) -> bool:
    """``mallopt(M_ARENA_MAX, arenas)``; True when glibc accepted it. False off Linux, without
    glibc's ``mallopt``, or when ``MALLOC_ARENA_MAX`` is set (glibc applied that at start-up)."""
    if ARENA_VARIABLE in environ or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_ARENA_MAX, arenas))


def freeze_loaded_objects() -> int:
    """Move every object alive now to the permanent generation; returns how many it holds.

    With torch, transformers, kafka-python and a model loaded (about 390,000 objects), a full
    collection scanned them all in about 280 ms with the GIL held, stalling every thread of the
    role (each one a latency spike for the items in flight); frozen, a full collection took 7 to
    14 ms (docs/bench-e2e.md, Round 8). Frozen objects are still freed when their last reference
    goes; only reference cycles among them are never collected, so call this once, after start-up
    (a model loaded later, by a hot reload, stays collectable).
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
