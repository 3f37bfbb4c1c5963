"""The OpenMP teams behind numba's parallel kernels (threading layer "omp": libgomp).

libgomp gives each thread that starts parallel regions a team of its own, kept until that
thread exits. While the process holds more of these threads than it has CPUs, libgomp lets a
team's workers spin only about a hundred times after a region before they sleep, so every
region then waits for a futex wake-up: a small region took 56 us instead of 18 on a two-core
machine once a second thread started regions after the main thread had. A forward pass runs
hundreds of regions, so the forward passes of generation all run on one thread
(llm.batching), and threads that hand work to it give their own team back first: release().
"""

import ctypes
import os

OMP_PAUSE_SOFT = 1  # omp_pause_resource_t
_pause = None


def _function():
    """libgomp's omp_pause_resource_all when the process has loaded libgomp, else None (then
    looked up again next time: numba loads it with its first parallel kernel). A libgomp
    older than OpenMP 5.0, or a system without dlopen's RTLD_NOLOAD, has none."""
    global _pause
    if _pause is None:
        no_load = getattr(os, "RTLD_NOLOAD", None)
        if no_load is None:
            _pause = False
            return None
        try:
            lib = ctypes.CDLL("libgomp.so.1", mode=no_load)
        except OSError:
            return None
        try:
            fn = lib.omp_pause_resource_all
        except AttributeError:
            _pause = False
            return None
        fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
        _pause = fn
    return _pause or None


def release() -> bool:
    """Give back the calling thread's OpenMP team, if it has one (its next parallel region
    starts a new one, about 0.1 ms). False when the process has no libgomp or the call is
    inside a parallel region."""
    fn = _function()
    return fn is not None and fn(OMP_PAUSE_SOFT) == 0
