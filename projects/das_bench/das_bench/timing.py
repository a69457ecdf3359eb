"""Timing for the benchmarks: warm each variant until it settles, then alternate them; latency
against map size and its growth exponent; peak memory.

Machines are noisy, so variants are compared within one run: after each has been warmed until
its time settles (the first calls of a shape pay for allocator growth, oneDNN primitive
creation and caches; one fixed warm-up count left the first measured row of a run up to 2x
slow), the variants run in turn each round and the median per variant is reported.
"""
import statistics
import time
from typing import Callable, Dict, List, Sequence

import numpy as np
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
    """Median seconds of each fn over ``rounds`` rounds in which the fns run in turn (every
    other round in reverse order), after each fn was warmed until settled."""
    for fn in fns.values():
        warm_until_settled(fn, device)
    times: Dict[str, List[float]] = {name: [] for name in fns}
    names = list(fns)
    for round_ in range(rounds):  # every other round in reverse: no variant always goes first
        for name in names if round_ % 2 == 0 else reversed(names):
            times[name].append(time_once(fns[name], device))
    return {name: statistics.median(ts) for name, ts in times.items()}


def no_grad_forward(module: torch.nn.Module, x: torch.Tensor) -> Callable:
    """A call of ``module(x)`` without autograd."""

    def run():
        with torch.no_grad():
            module(x)

    return run


def latency_by_size(modules: Dict[str, torch.nn.Module],
                    channels: int,
                    sizes: Sequence[int],
                    rounds: int,
                    device: str = 'cpu') -> Dict[str, List[float]]:
    """Forward seconds of each module on a ``channels x size x size`` map, per size (the
    modules alternating at each size)."""
    times: Dict[str, List[float]] = {name: [] for name in modules}
    for size in sizes:
        x = torch.randn(1, channels, size, size, device=device)
        med = alternate({n: no_grad_forward(m, x) for n, m in modules.items()}, rounds, device)
        for name in modules:
            times[name].append(med[name])
    return times


def growth_exponent(sizes: Sequence[int], seconds: Sequence[float]) -> float:
    """``k`` of ``t ~ pixels ** k`` fitted on the larger two thirds of the sizes (where fixed
    per-call costs no longer dominate): 1 = linear in the pixels, 2 = quadratic."""
    fit = slice(len(sizes) // 3, None)
    pixels = np.array([s * s for s in sizes], float)
    return float(np.polyfit(np.log(pixels[fit]), np.log(np.asarray(seconds))[fit], 1)[0])


def peak_rss_bytes() -> int:
    """Peak resident size of this process's own address space (``VmHWM``). Unlike
    ``getrusage``'s ``ru_maxrss``, it starts afresh at exec, so a child started by a large
    parent does not report the parent's peak."""
    with open('/proc/self/status') as f:
        line = next(line for line in f if line.startswith('VmHWM:'))
    return int(line.split()[1]) * 1024
