"""How idle OpenMP threads wait between kernels during training, chosen once at start.

A training step runs hundreds of short kernels. When the CPU is otherwise idle, letting torch's
OpenMP threads spin briefly between kernels (the libgomp default) is fastest; when other processes
want the cores, spinning threads steal them and every step slows down, so threads should sleep at
once (``OMP_WAIT_POLICY=PASSIVE``). Measured with a bf16 MiniLM-L6 step (batch 32, real tweets,
2 threads) on the 2-core benchmark machine:

- idle CPU: PASSIVE 285 ms/step, libgomp default 228 ms/step;
- two training processes sharing the CPU: PASSIVE 300 ms/step each, spinning 820 ms/step each.

Only effective before torch is imported; an ``OMP_WAIT_POLICY`` set by the user always wins.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

# Share of the machine's CPU time used by others above which training threads sleep at once.
BUSY_SHARE = 0.25
SAMPLE_SEC = 0.5
PROC_STAT = Path("/proc/stat")


def busy_share(before: Sequence[int], after: Sequence[int]) -> float:
    """Busy share of CPU time between two ``/proc/stat`` "cpu" lines (user nice system idle
    iowait irq softirq steal ...): 0.0 idle, 1.0 fully busy."""
    deltas = [b - a for a, b in zip(before, after, strict=False)]
    total = sum(deltas)
    if total <= 0:
        return 0.0
    idle = deltas[3] + (deltas[4] if len(deltas) > 4 else 0)
    return max(0.0, min(1.0, 1.0 - idle / total))


def _cpu_times(stat: Path) -> list[int] | None:
    try:
        first = stat.read_text("ascii").splitlines()[0].split()
    except (OSError, IndexError):
        return None
    return [int(v) for v in first[1:]] if first and first[0] == "cpu" else None


def measure_busy_share(stat: Path = PROC_STAT, sample_sec: float = SAMPLE_SEC) -> float | None:
    """CPU busy share over ``sample_sec`` (None where ``/proc/stat`` is unreadable). Blocking."""
    before = _cpu_times(stat)
    time.sleep(sample_sec)
    after = _cpu_times(stat)
    if before is None or after is None:
        return None
    return busy_share(before, after)


def choose_wait_policy(busy: float | None) -> str | None:
    """``PASSIVE`` on a busy (or unknown) CPU; None (libgomp default: short spin) when idle."""
    return None if busy is not None and busy < BUSY_SHARE else "PASSIVE"


def set_training_wait_policy() -> str:
    """Set ``OMP_WAIT_POLICY`` for this training process; returns the policy in force."""
    if "torch" in sys.modules or "OMP_WAIT_POLICY" in os.environ:
        return os.environ.get("OMP_WAIT_POLICY", "default")
    policy = choose_wait_policy(measure_busy_share())
    if policy is not None:
        os.environ["OMP_WAIT_POLICY"] = policy
    return policy or "default"


__all__ = ["busy_share", "choose_wait_policy", "measure_busy_share", "set_training_wait_policy"]
