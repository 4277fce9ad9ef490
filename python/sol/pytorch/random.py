"""SOL's random numbers: the seed each call of a model passes to its kernels (training-mode
dropout draws its mask from it). `sol.set_seed(n)` makes a run reproducible; every call takes the
next seed of the sequence, so successive calls draw different masks."""

from __future__ import annotations

import os
import threading

__all__ = ["set_seed", "next_seed"]

_lock = threading.Lock()
_seed = int.from_bytes(os.urandom(8), "little") >> 1
_calls = 0


def set_seed(seed: int) -> int:
    """Restart the sequence of call seeds from `seed`; returns the previous seed."""
    global _seed, _calls
    with _lock:
        previous, _seed, _calls = _seed, int(seed), 0
    return previous


def next_seed() -> int:
    """The seed of the next call (a non-negative int64)."""
    global _calls
    with _lock:
        value = (_seed * 0x2545F4914F6CDD1D + _calls * 0x9E3779B97F4A7C15) % (1 << 63)
        _calls += 1
    return value
