"""Shared helpers: timing medians and the one-line summary format."""

import statistics
import time


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def summary(
    name: str, ours: float, peer: float, peer_name: str, unit: str, higher_is_better: bool
) -> str:
    ratio = ours / peer if higher_is_better else peer / ours
    return f"{name}: ours {ours:,.2f} {unit} | {peer_name} {peer:,.2f} {unit} | ratio {ratio:.2f}x"
