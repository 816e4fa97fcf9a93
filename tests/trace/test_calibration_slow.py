"""Long calibration runs (``make test-slow``): innocents are not accused, and the bound holds."""

from __future__ import annotations

import numpy as np
import pytest

from biowarden.trace import attacks, bounds, code

from .conftest import leak_of, run_trace


@pytest.mark.slow
def test_no_innocent_accused_over_200_pipeline_leaks(master, dictionary, keyring, released):
    copies, records = released
    outsiders = list(range(41, 61))
    inside = [r for r in records if r.application_no not in outsiders]
    rng = np.random.default_rng(2026)
    lowest = 0.0
    for k in range(200):
        c = int(rng.integers(1, 4))
        gang = rng.choice(outsiders, c, replace=False)
        strategy = str(rng.choice(["majority", "minority", "interleave", "random", "union"]))
        merged = attacks.merge([copies[int(a)] for a in gang], strategy, seed=k)
        leak, eids = leak_of(attacks.subsample(merged, int(rng.integers(10, 400)), seed=k))
        v = run_trace(leak, eids, master, dictionary, inside, keyring)
        assert v.accused == []
        lowest = min(lowest, v.top_candidates[0]["log10_p_value"])
    assert lowest > -5


@pytest.mark.slow
def test_bound_holds_over_a_million_innocents():
    rng = np.random.default_rng(5)
    n = 200
    secrets = rng.integers(0, 2**64, n, dtype=np.uint64)
    p = code.biases(secrets)
    y = (rng.random(n) < p).astype(np.int8)
    up, down = code.score_weights(p, y)
    q = code.agree_probability(p, y)
    total = 0
    exceed = {5e-3: 0, 1e-4: 0, 2e-6: 0}
    thresholds = {}
    for target in exceed:
        # the smallest score whose bound is below the target
        lo, hi = 0.0, float(up.sum())
        for _ in range(60):
            mid = (lo + hi) / 2
            if bounds.chernoff_logp(mid, up, down, q) < np.log(target):
                hi = mid
            else:
                lo = mid
        thresholds[target] = hi
    for start in range(0, 1_000_000, 50_000):
        del start
        x = rng.random((50_000, n)) < q  # innocents' agreement, exactly Bernoulli(q_i)
        s = np.where(x, up, -down).sum(axis=1)
        total += s.size
        for t, thr in thresholds.items():
            exceed[t] += int((s >= thr).sum())
    for t, k in exceed.items():
        assert k / total <= t + 4 * np.sqrt(t / total)
