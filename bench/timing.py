"""Timing shared by the benchmark scripts."""

import statistics
import time


def median_time(fn, runs: int, warmup: int) -> float:
    """Median wall time in seconds of `runs` calls of `fn` after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
