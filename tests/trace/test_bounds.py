from __future__ import annotations

import numpy as np

from biowarden.trace import bounds, code


def _case(n, seed):
    rng = np.random.default_rng(seed)
    secrets = rng.integers(0, 2**64, n, dtype=np.uint64)
    p = code.biases(secrets)
    y = (rng.random(n) < 0.5).astype(np.int8)
    return p, y, rng


def test_biases_follow_the_cut_off_arcsine_law():
    secrets = np.random.default_rng(1).integers(0, 2**64, 200_000, dtype=np.uint64)
    p = code.biases(secrets)
    assert p.min() >= code.BIAS_CUTOFF - 1e-12 and p.max() <= 1 - code.BIAS_CUTOFF + 1e-12
    assert abs(p.mean() - 0.5) < 0.01
    # arcsine: much more mass near the ends than a uniform law
    assert np.mean(p < 0.1) > 0.15


def test_innocent_scores_have_mean_zero_and_variance_one():
    p, y, rng = _case(200, 2)
    x = (rng.random((20_000, p.size)) < p).astype(np.int8)
    s = code.scores(x, y, p)
    assert abs(s.mean()) < 0.01 and abs(s.var() - 1) < 0.03


def test_chernoff_is_a_valid_and_tighter_bound_than_bennett():
    p, y, rng = _case(300, 3)
    up, down = code.score_weights(p, y)
    q = code.agree_probability(p, y)
    x = rng.random((100_000, p.size)) < q  # agreement of 100,000 simulated innocents
    s = np.where(x, up, -down).sum(axis=1)
    for thr in (10.0, 25.0, 40.0):
        emp = np.mean(s >= thr)
        ch = np.exp(bounds.chernoff_logp(thr, up, down, q))
        be = np.exp(bounds.bennett_logp(thr, p.size, up.max()))
        assert emp <= ch + 3 * np.sqrt(ch / s.size) + 1e-12
        assert ch <= be + 1e-15


def test_impossible_scores_and_empty_cases():
    assert bounds.chernoff_logp(5.0, np.zeros(0), np.zeros(0), np.zeros(0)) == 0.0
    assert bounds.chernoff_logp(-1.0, np.ones(3), np.ones(3), np.full(3, 0.5)) == 0.0
    assert np.isclose(bounds.chernoff_logp(10.0, np.ones(3), np.ones(3), np.full(3, 0.5)), np.log(0.125))
    assert np.isclose(bounds.chernoff_logp(3.0, np.ones(3), np.ones(3), np.full(3, 0.5)), np.log(0.125))


def test_binomial_tail():
    assert bounds.binomial_logsf(0, 10, 0.5) == 0.0
    assert np.isclose(np.exp(bounds.binomial_logsf(10, 10, 0.5)), 2.0**-10)
