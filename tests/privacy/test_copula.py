"""Rocher et al. (2019) estimator: rectangle probabilities, formulas, correlation fit and calibration."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from scipy.stats import binom, multivariate_normal

from biowarden.privacy.copula import (
    CopulaModel,
    adaptive_probabilities,
    calibration_table,
    combo_histogram,
    encode_columns,
    fit_copula,
    fit_copula_codes,
    kappa_from_p,
    rectangle_probabilities,
    reidentification_likelihood,
    rocher_report,
    uniqueness_from_p,
)


def _random_corr(d: int, seed: int, scale: float = 0.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(d, d)) * scale
    c = a @ a.T + np.eye(d)
    s = np.sqrt(np.diag(c))
    return c / np.outer(s, s)


def _known_model(seed: int = 5) -> CopulaModel:
    rng = np.random.default_rng(seed)
    margs = [
        np.array([0.54, 0.46]),  # sex
        rng.dirichlet(np.full(30, 2.0)),  # birth year
        np.full(12, 1 / 12),  # birth month
        rng.dirichlet(np.full(22, 3.0)),  # centre
        rng.dirichlet(np.ones(10)),  # deprivation decile
    ]
    return CopulaModel(qis=[f"q{j}" for j in range(5)], marginals=margs, corr=_random_corr(5, seed))


def test_identity_correlation_gives_product_of_marginals():
    m = CopulaModel(
        qis=["a", "b", "c"],
        marginals=[np.array([0.2, 0.8]), np.array([0.1, 0.3, 0.6]), np.array([0.5, 0.25, 0.25])],
        corr=np.eye(3),
    )
    combos = np.array([[0, 0, 0], [1, 2, 1], [0, 1, 2]])
    p = rectangle_probabilities(m, combos)
    np.testing.assert_allclose(p, [0.2 * 0.1 * 0.5, 0.8 * 0.6 * 0.25, 0.2 * 0.3 * 0.25], rtol=1e-9)


def test_two_dimensional_rectangles_match_scipy():
    m = CopulaModel(
        qis=["a", "b"],
        marginals=[np.full(30, 1 / 30), np.full(50, 1 / 50)],
        corr=np.array([[1.0, 0.6], [0.6, 1.0]]),
    )
    combos = np.array([[3, 10], [0, 0], [29, 49], [15, 25], [0, 49]])
    p = rectangle_probabilities(m, combos, points=256)
    ta, tb = m.thresholds(0), m.thresholds(1)
    mvn = multivariate_normal(mean=[0, 0], cov=m.corr)
    exact = [
        mvn.cdf(np.clip([ta[a + 1], tb[b + 1]], -9, 9), lower_limit=np.clip([ta[a], tb[b]], -9, 9)) for a, b in combos
    ]
    np.testing.assert_allclose(p, exact, rtol=5e-3, atol=1e-9)


def test_probabilities_of_all_cells_sum_to_one():
    m = CopulaModel(
        qis=["a", "b", "c"],
        marginals=[np.array([0.3, 0.7]), np.array([0.2, 0.2, 0.6]), np.array([0.1, 0.4, 0.3, 0.2])],
        corr=_random_corr(3, 1, scale=0.8),
    )
    grid = np.stack(np.meshgrid(np.arange(2), np.arange(3), np.arange(4), indexing="ij"), -1).reshape(-1, 3)
    p = rectangle_probabilities(m, grid, points=256)
    assert (p > 0).all()
    assert abs(p.sum() - 1.0) < 2e-3
    # and they agree with the frequencies of a large sample drawn from the same model
    codes = m.sample(200_000, seed=3)
    combos, counts, _ = combo_histogram(codes)
    lookup = {tuple(c): k for k, c in enumerate(grid)}
    freq = np.zeros(len(grid))
    for c, n in zip(combos, counts, strict=True):
        freq[lookup[tuple(c)]] = n / len(codes)
    assert np.abs(freq - p).max() < 0.005


def test_uniqueness_and_kappa_formulas_against_binomial():
    n = 50
    for p in (1e-4, 0.01, 0.05, 0.3):
        k = np.arange(n)
        expected_kappa = float((binom.pmf(k, n - 1, p) / (1 + k)).sum())
        assert kappa_from_p(np.array([p]), n)[0] == pytest.approx(expected_kappa, rel=1e-9)
        assert uniqueness_from_p(np.array([p]), n)[0] == pytest.approx(binom.pmf(0, n - 1, p), rel=1e-9)
    # limits: a combination nobody else can share is always re-identified; a population of one too
    assert kappa_from_p(np.array([0.0]), 10**8)[0] == 1.0
    assert kappa_from_p(np.array([0.37]), 1)[0] == pytest.approx(1.0)
    assert uniqueness_from_p(np.array([1e-12]), 67_000_000)[0] == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("population", [10_000, 1_000_000, 67_000_000])
def test_adaptive_points_change_the_likelihoods_little(population, monkeypatch):
    model = _known_model()
    combos, _, _ = combo_histogram(model.sample(20_000, seed=4))
    full = rectangle_probabilities(model, combos, points=64)
    fast = adaptive_probabilities(model, combos, population, points=64, tol=1e-2)
    k_full, k_fast = kappa_from_p(full, population), kappa_from_p(fast, population)
    x_full, x_fast = uniqueness_from_p(full, population), uniqueness_from_p(fast, population)
    # per record within a few tolerances; the distribution's mean far closer
    assert np.abs(k_fast - k_full).max() < 0.03 and np.abs(x_fast - x_full).max() < 0.03
    assert abs(k_fast.mean() - k_full.mean()) < 1e-3 and abs(x_fast.mean() - x_full.mean()) < 1e-3
    # refined combinations get exactly the full estimate; tol=0 is the full estimate everywhere
    refined = fast != rectangle_probabilities(model, combos, points=16)
    assert refined.any()
    np.testing.assert_allclose(fast[refined], full[refined], rtol=1e-12)
    np.testing.assert_array_equal(adaptive_probabilities(model, combos, population, tol=0), full)
    # one thread or several give the same numbers
    monkeypatch.setenv("BIOWARDEN_THREADS", "1")
    np.testing.assert_array_equal(adaptive_probabilities(model, combos, population, tol=1e-2), fast)


def test_fit_recovers_latent_correlation():
    model = _known_model()
    codes = model.sample(40_000, seed=11)
    fitted = fit_copula_codes(codes, [len(m) for m in model.marginals])
    assert np.abs(fitted.corr - model.corr).max() < 0.05
    for got, want in zip(fitted.marginals, model.marginals, strict=True):
        assert np.abs(got - want).max() < 0.01


def test_estimator_is_calibrated_on_a_known_population():
    model = _known_model()
    population = model.sample(100_000, seed=2)
    cal = calibration_table(population, 5_000, seed=3)
    # the population truth spans the whole range, so the check is not trivially 0 or 1
    assert 0.05 < cal.true_uniqueness < 0.5
    assert abs(cal.estimated_uniqueness - cal.true_uniqueness) < 0.03
    assert abs(cal.estimated_correctness - cal.true_correctness) < 0.03
    for row in cal.deciles:
        assert abs(row["estimated_uniqueness"] - row["true_uniqueness"]) < 0.07
        assert abs(row["estimated_kappa"] - row["true_correctness"]) < 0.07
    # deciles are ordered by the estimate and the truth follows it
    truth = [row["true_correctness"] for row in cal.deciles]
    assert truth[-1] > truth[0] + 0.3
    # a model that ignores the dependence (independent marginals) is worse calibrated per record
    assert cal.mae_correctness < 0.2


def test_rocher_report_on_an_arrow_table():
    model = _known_model()
    codes = model.sample(3_000, seed=7)
    table = pa.table(
        {
            "31-0.0": pa.array(codes[:, 0], pa.int8()),
            "34-0.0": pa.array(1936 + codes[:, 1], pa.int32()),
            "52-0.0": pa.array(1 + codes[:, 2], pa.int32()),
            "54-0.0": pa.array([f"centre-{c:02d}" for c in codes[:, 3]]),
            "189-0.0": pa.array([None if c == 0 else float(c) - 4.5 for c in codes[:, 4]]),
        }
    )
    qis = table.column_names
    rep = rocher_report(table, qis, population=67_000_000)
    assert rep.records == 3_000 and rep.kappa.shape == (3_000,)
    assert 0 < rep.distinct_combinations <= 3_000
    assert ((rep.kappa > 0) & (rep.kappa <= 1)).all()
    assert (rep.uniqueness <= rep.kappa + 1e-12).all()  # unique implies correct
    d = rep.to_dict()
    assert d["records"] == 3_000 and set(d["share_above"]) >= {"0.05", "0.2", "0.5"}
    assert d["quantiles"]["q05"] <= d["quantiles"]["q50"] <= d["quantiles"]["q95"]
    assert sum(b["records"] for b in d["histogram"]) == 3_000
    # a bigger population makes everyone less identifiable; the same seed gives the same answer
    small = rocher_report(table, qis, population=10_000)
    assert small.mean_kappa > rep.mean_kappa
    again = rocher_report(table, qis, population=10_000)
    np.testing.assert_array_equal(small.kappa, again.kappa)
    # the model encodes the table back to the same codes and scores them the same way
    fitted = fit_copula(table, qis)
    enc, _ = encode_columns(table, qis)
    np.testing.assert_array_equal(fitted.encode(table), enc)
    k = reidentification_likelihood(fitted, enc[:5], population=10_000)
    np.testing.assert_allclose(k, small.kappa[:5])


def test_bad_input_is_named():
    t = pa.table({"a": [1, 2, 3], "b": [[1], [2], [3]]})
    with pytest.raises(ValueError, match=r"unknown quasi-identifier.*zz"):
        rocher_report(t, ["a", "zz"], population=10)
    with pytest.raises(ValueError, match="nested type"):
        rocher_report(t, ["a", "b"], population=10)
    with pytest.raises(ValueError, match="smaller than the sample"):
        rocher_report(t, ["a"], population=2)
    with pytest.raises(ValueError, match="no quasi-identifiers"):
        rocher_report(t, [], population=10)
    m = fit_copula(t, ["a"])
    with pytest.raises(ValueError, match="out of range"):
        rectangle_probabilities(m, np.array([[7]]))
