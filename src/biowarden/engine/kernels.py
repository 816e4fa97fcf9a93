"""Vectorised helpers for Arrow-batch kernels.

``prf_u64`` evaluates the keyed PRF (``biowarden.keys.Prf``) over a large array, optionally on several
threads: the AES work inside ``cryptography`` releases the GIL, so contiguous slices run in parallel and
the result is identical to a single ``prf.u64`` call.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from biowarden.keys import Prf

_MIN_PER_THREAD = 1 << 18  # below this a thread costs more than it saves


def prf_u64(prf: Prf, x: np.ndarray, tweak: int = 0, threads: int = 1) -> np.ndarray:
    """``prf.u64(x, tweak)`` for a 1-d array, split over ``threads`` threads (0 = one per CPU)."""
    xs = np.asarray(x)
    if xs.ndim != 1:
        raise ValueError("prf_u64 takes a one-dimensional array")
    if threads <= 0:
        threads = os.cpu_count() or 1
    threads = max(1, min(threads, xs.shape[0] // _MIN_PER_THREAD))
    if threads == 1:
        return prf.u64(xs, tweak)
    out = np.empty(xs.shape[0], dtype=np.uint64)
    bounds = np.linspace(0, xs.shape[0], threads + 1).astype(np.int64)

    def run(i: int) -> None:
        out[bounds[i] : bounds[i + 1]] = prf.u64(xs[bounds[i] : bounds[i + 1]], tweak)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(run, range(threads)))
    return out
