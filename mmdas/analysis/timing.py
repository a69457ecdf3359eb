"""Timing for the benchmarks: warm each variant until it settles, then alternate them.

Machines are noisy, so variants are compared within one run: after each has been warmed until
its time settles (the first calls of a shape pay for allocator growth, oneDNN primitive
creation and caches; one fixed warm-up count left the first measured row of a run up to 2x
slow), the variants run in turn each round and the median per variant is reported.
"""
import statistics
import time
from typing import Callable, Dict, List

import torch

#: Warm-up ends when the last ``SETTLE_RUNS`` times are within this fraction of their median.
SETTLE_TOLERANCE = 0.1
SETTLE_RUNS = 3
MAX_WARMUP_RUNS = 30


def sync(device: str) -> None:
    if device == 'cuda':
        torch.cuda.synchronize()


def time_once(fn: Callable, device: str = 'cpu') -> float:
    """Seconds of one call of ``fn`` (the device synchronised before and after)."""
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def warm_until_settled(fn: Callable,
                       device: str = 'cpu',
                       tolerance: float = SETTLE_TOLERANCE,
                       runs: int = SETTLE_RUNS,
                       max_runs: int = MAX_WARMUP_RUNS) -> int:
    """Call ``fn`` until its last ``runs`` times lie within ``tolerance`` of their median (at
    most ``max_runs`` calls); return how many calls that took."""
    times: List[float] = []
    while len(times) < max_runs:
        times.append(time_once(fn, device))
        last = times[-runs:]
        if len(last) == runs:
            middle = statistics.median(last)
            if all(abs(t - middle) <= tolerance * middle for t in last):
                break
    return len(times)


def alternate(fns: Dict[str, Callable], rounds: int, device: str = 'cpu') -> Dict[str, float]:
    """Median seconds of each fn over ``rounds`` rounds in which the fns run in turn, after
    each fn was warmed until settled."""
    for fn in fns.values():
        warm_until_settled(fn, device)
    times: Dict[str, List[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            times[name].append(time_once(fn, device))
    return {name: statistics.median(ts) for name, ts in times.items()}


def no_grad_forward(module: torch.nn.Module, x: torch.Tensor) -> Callable:
    """A call of ``module(x)`` without autograd."""

    def run():
        with torch.no_grad():
            module(x)

    return run
