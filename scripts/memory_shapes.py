"""Resident memory of the model alone over batches of mixed shapes (docs/reliability.md, Soak).

    .venv/bin/python scripts/memory_shapes.py --model DIR [--calls 300] [--seed 1]

Loads the model on CPU as the daemon serves it (``model.quantize: auto``: bf16 autocast, through
oneDNN, on CPUs with native bf16), with the prediction cache off and one torch thread, then predicts
``--calls`` batches of 1 to 64 made-up headlines of 3 to 40 words, so nearly every batch has a
new shape (items x padded tokens). Prints one JSON line every 50 calls: RSS, glibc's in-use and
free heap (``mallinfo2``) and the seconds so far. Run it side by side with the cache variables
set differently to compare, e.g. ``LRU_CACHE_CAPACITY=1024 ONEDNN_PRIMITIVE_CACHE_CAPACITY=1024``
(the libraries' defaults) against the 64 that ``finmon`` sets (``monitor/memory.py``); run it
directly, not through ``finmon``, so the variables given are the ones in effect.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import random
import time
from pathlib import Path

VOCABULARY = "oil bank shares rally slide probe chipmaker rates earnings beat miss guidance"
MALLINFO2_FIELDS = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"


class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in MALLINFO2_FIELDS.split(" ")]


def heap_mib() -> dict[str, float]:
    """glibc's heap in use and free (MiB), all arenas."""
    mallinfo2 = ctypes.CDLL(None).mallinfo2
    mallinfo2.restype = MallInfo2
    info = mallinfo2()
    return {
        "heap_in_use_mib": round(info.uordblks / 2**20, 1),
        "heap_free_mib": round(info.fordblks / 2**20, 1),
    }


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="exported FinMon model dir")
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--quantize",
        default="auto",
        help="model.quantize: auto (bf16 autocast where native, as served), bf16, int8, none",
    )
    args = parser.parse_args()
    import torch

    from monitor.classify.engine import TorchClassifier

    torch.set_num_threads(1)
    clf = TorchClassifier.from_dir(
        args.model, device="cpu", cache_items=0, max_batch_items=256, quantize=args.quantize
    )
    rng = random.Random(args.seed)
    words = VOCABULARY.split(" ")
    started = time.monotonic()
    for call in range(args.calls + 1):
        texts = [
            " ".join(rng.choice(words) for _ in range(rng.randint(3, 40))) + f" {call}-{i}"
            for i in range(rng.randint(1, 64))
        ]
        clf.predict(texts)
        if call % 50 == 0:
            row = {"calls": call, "rss_mib": rss_mib(), **heap_mib()}
            print(json.dumps({**row, "sec": round(time.monotonic() - started, 1)}), flush=True)


if __name__ == "__main__":
    main()
