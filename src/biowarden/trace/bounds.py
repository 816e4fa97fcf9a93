"""Rigorous tail bounds for an innocent application's evidence (all in natural-log space).

An innocent application's Tardos score on a leak is a sum of independent two-point variables
``Z_i = up_i`` (probability ``q_i``) or ``-down_i`` (probability ``1 - q_i``) with mean zero and variance
one (see :mod:`biowarden.trace.code`). Given the biases and the leaked symbols (which do not depend on the
innocent's symbols), these are exact, so the bounds below hold for this very case, not asymptotically:

- :func:`chernoff_logp`: the exact Chernoff bound ``min_l exp(K(l) - l s)`` with ``K`` the cumulant
  generating function computed from the actual ``q_i``, ``up_i``, ``down_i``. Any ``l >= 0`` gives a valid
  bound, so an imperfect numerical minimum only loosens it.
- :func:`bennett_logp`: Bennett's inequality from the variance (the count of positions) and the largest
  ``up_i``: cheaper, looser, used to screen many candidates at once.
- :func:`binomial_logsf`: ``P(Binomial(n, q) >= k)`` for pseudonym and canary evidence.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

_GRID = np.concatenate([[0.0], np.geomspace(1e-4, 60.0, 96)])


def _cgf(lam: np.ndarray, up: np.ndarray, down: np.ndarray, log_q: np.ndarray, log_1q: np.ndarray):
    """K(l) = sum_i log(q_i e^{l up_i} + (1 - q_i) e^{-l down_i}) for each l (vectorised over l)."""
    lam = np.atleast_1d(lam)[:, None]
    return np.logaddexp(log_q + lam * up, log_1q - lam * down).sum(axis=1)


def chernoff_logp(score: float, up: np.ndarray, down: np.ndarray, q: np.ndarray) -> float:
    """Natural log of the exact Chernoff bound on ``P(S >= score)`` for an innocent (<= 0)."""
    up = np.asarray(up, dtype=np.float64)
    if up.size == 0 or score <= 0:
        return 0.0
    down = np.asarray(down, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    log_q, log_1q = np.log(q), np.log1p(-q)
    if score > up.sum() + 1e-9:
        # an innocent cannot reach this score at all; report the (finite) chance of agreeing everywhere
        return float(log_q.sum())
    scale = 1.0 / max(float(np.max(up)), 1.0)
    grid = _GRID * scale
    vals = _cgf(grid, up, down, log_q, log_1q) - grid * score
    i = int(np.argmin(vals))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
    best = float(vals[i])
    # golden-section refinement inside the bracket (f is convex in l)
    g = (np.sqrt(5.0) - 1.0) / 2.0
    a, b = lo, hi
    for _ in range(30):
        c1, c2 = b - g * (b - a), a + g * (b - a)
        pts = np.array([c1, c2])
        f1, f2 = _cgf(pts, up, down, log_q, log_1q) - pts * score
        best = min(best, float(f1), float(f2))
        if f1 < f2:
            b = c2
        else:
            a = c1
    return min(0.0, best)


def bennett_logp(score: np.ndarray, n: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Natural log of Bennett's bound on ``P(S >= score)`` (variance ``n``, each term at most ``b``)."""
    score = np.asarray(score, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    b = np.maximum(np.asarray(b, dtype=np.float64), 1e-12)
    with np.errstate(divide="ignore", invalid="ignore"):
        u = b * np.maximum(score, 0.0) / np.maximum(n, 1e-300)
        h = (1.0 + u) * np.log1p(u) - u
        out = -(n / (b * b)) * h
    out = np.where((n <= 0) | (score <= 0), 0.0, out)
    return np.minimum(out, 0.0)


def binomial_logsf(k: np.ndarray | int, n: np.ndarray | int, q: float) -> np.ndarray:
    """Natural log of ``P(Binomial(n, q) >= k)`` (0 where ``k <= 0``)."""
    k = np.asarray(k, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    out = stats.binom.logsf(k - 1, n, q)
    return np.where(k <= 0, 0.0, np.minimum(out, 0.0))


def log_to_p(logp: float | np.ndarray) -> float | np.ndarray:
    """A p-value from its natural log (underflows to 0.0 below ~1e-308; keep the log for reporting)."""
    return np.exp(logp)
