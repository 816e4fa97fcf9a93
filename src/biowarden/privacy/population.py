"""Population uniqueness estimators from a sample's equivalence-class size distribution.

Given ``f_j`` (the number of sample classes of size ``j``), the sample size ``n`` and the population size
``N`` (sampling fraction ``pi = n / N``), each estimator gives the expected number of population-unique
records; divided by ``N`` it is the *population uniqueness* ARX reports.

- Pitman (Hoshino 2001): the Pitman sampling formula with parameters (theta, alpha) fitted by maximum
  likelihood; uniques = Gamma(theta+1) / Gamma(theta+alpha) * N^alpha.
- Zayatz (1991): the share of sample uniques that are population uniques, estimated with hypergeometric
  probabilities of drawing a class of each observed size exactly once; uniques = f_1 * share / pi.
- SNB (Chen and Keller-McNulty 1998): population class sizes F with F - 1 ~ NegBin(alpha, beta), sampled
  binomially with fraction pi; alpha and beta solve E[c1] = c1, E[c2] = c2 (the expected numbers of
  sample classes of sizes 1 and 2), the number K of non-empty population classes comes from Haas et al.'s
  third Shlosser-type estimator; uniques = K * beta^alpha. ARX's implementation multiplies by
  (1 - d)^(alpha + 2) in the second equation where the model divides (its own Jacobian divides), and
  parenthesises the estimator's denominator as (1-pi)^i f_i (1+pi)^i - 1 instead of
  (1-pi)^i ((1+pi)^i - 1) f_i; biowarden follows the model (checked on data drawn from it).
- Dankar et al. (2012) decision rule: for pi <= 0.1 use Pitman (Zayatz if Pitman fails); otherwise the
  smaller of Zayatz and SNB (Zayatz if SNB fails). This is also the rule ARX documents.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special


@dataclass(frozen=True)
class ClassSizes:
    """The distribution of equivalence-class sizes: ``sizes[i]`` occurs ``freq[i]`` times."""

    sizes: np.ndarray
    freq: np.ndarray

    @classmethod
    def from_counts(cls, counts: np.ndarray) -> ClassSizes:
        counts = np.asarray(counts, dtype=np.int64)
        counts = counts[counts > 0]
        sizes, freq = np.unique(counts, return_counts=True)
        return cls(sizes.astype(np.int64), freq.astype(np.int64))

    @property
    def n(self) -> int:
        return int((self.sizes * self.freq).sum())

    @property
    def classes(self) -> int:
        return int(self.freq.sum())

    def of_size(self, size: int) -> int:
        hit = np.nonzero(self.sizes == size)[0]
        return int(self.freq[hit[0]]) if len(hit) else 0


def _valid(x: float) -> bool:
    return x is not None and not math.isnan(x) and x != 0.0


def pitman_uniques(cs: ClassSizes, population: float) -> float:
    """Expected population uniques under Pitman's model (NaN when the fit fails)."""
    n, u = float(cs.n), float(cs.classes)
    c1 = float(cs.of_size(1))
    c2 = float(cs.of_size(2)) or 1.0
    if c1 == 0:
        return 0.0
    big = cs.sizes > 1
    sizes, freq = cs.sizes[big].astype(float), cs.freq[big].astype(float)

    # moment-type starting point (Hoshino 2001)
    c = c1 * (c1 - 1.0) / c2
    t0 = (n * u * c - c1 * (n - 1.0) * (2.0 * u + c)) / (2.0 * c1 * u + c1 * c - n * c)
    a0 = (t0 * (c1 - n) + (n - 1.0) * c1) / (n * u)

    def inside(t: float, a: float) -> bool:
        return math.isfinite(t) and math.isfinite(a) and 0.0 < a < 1.0 and t > -a and abs(t) < 1e12

    if not inside(t0, a0):
        return math.nan

    def score(x: np.ndarray) -> np.ndarray:
        t, a = float(x[0]), float(x[1])
        if not inside(t, a):
            return np.array([1e6, 1e6])
        q = t / a
        s1 = (special.digamma(q + u) - special.digamma(q + 1.0)) / a  # sum_{i<u} 1/(t+i a)
        s2 = special.digamma(t + n) - special.digamma(t + 1.0)  # sum_{i<n} 1/(t+i)
        s3 = (u - 1.0) / a - q * s1  # sum_{i<u} i/(t+i a)
        s4 = float((freq * (special.digamma(sizes - a) - special.digamma(1.0 - a))).sum())
        return np.array([s1 - s2, s3 - s4])

    def jac(x: np.ndarray) -> np.ndarray:
        t, a = float(x[0]), float(x[1])
        if not inside(t, a):
            return np.eye(2)
        i = np.arange(1.0, u) if u < 5e6 else None
        if i is not None:
            d = t + i * a
            d_tt = -(1.0 / d**2).sum()
            d_ta = -(i / d**2).sum()
            d_aa = -(i * i / d**2).sum()
        else:  # pragma: no cover - enormous class counts
            q = t / a
            d_tt = -(special.polygamma(1, q + 1.0) - special.polygamma(1, q + u)) / a**2
            d_ta = d_tt * 0.0
            d_aa = d_tt * 0.0
        d_tt += special.polygamma(1, t + 1.0) - special.polygamma(1, t + n)
        d_aa -= float((freq * (special.polygamma(1, 1.0 - a) - special.polygamma(1, sizes - a))).sum())
        return np.array([[d_tt, d_ta], [d_ta, d_aa]])

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            sol = optimize.root(
                score, np.array([t0, a0]), jac=jac, method="hybr", options={"xtol": 1e-12, "maxfev": 400}
            )
            t, a = float(sol.x[0]), float(sol.x[1])
            ok = sol.success and np.all(np.abs(score(sol.x)) < 1e-6)
        except (ValueError, FloatingPointError, ZeroDivisionError):
            ok = False
        if not ok:
            return math.nan
    if math.isnan(a) or math.isnan(t) or a == 0:
        return math.nan
    try:
        val = math.exp(math.lgamma(t + 1.0) - math.lgamma(t + a) + a * math.log(population))
    except (ValueError, OverflowError):
        return math.nan
    return val if 0.0 <= val <= population else math.nan


def _log_hyper_p1(population: float, successes: np.ndarray, sample: float) -> np.ndarray:
    """log P(X = 1) for X ~ Hypergeometric(population, successes, sample)."""
    N, K, n = population, successes.astype(float), sample

    def lnc(a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
        return (
            special.gammaln(np.asarray(a) + 1)
            - special.gammaln(np.asarray(b) + 1)
            - special.gammaln(np.asarray(a) - np.asarray(b) + 1)
        )

    return np.log(K) + lnc(N - K, n - 1) - lnc(N, n)


def zayatz_uniques(cs: ClassSizes, population: float) -> float:
    """Expected population uniques under Zayatz's model (as ARX computes it)."""
    c1 = cs.of_size(1)
    if c1 == 0:
        return 0.0
    n, u = float(cs.n), float(cs.classes)
    pi = n / population
    logp = _log_hyper_p1(population, cs.sizes, n)
    # normalise in log space for stability
    m = logp.max()
    weights = (cs.freq / u) * np.exp(logp - m)
    p1 = (c1 / u) * math.exp(float(_log_hyper_p1(population, np.array([1]), n)[0]) - m)
    share = p1 / float(weights.sum())
    return c1 * share / pi


def _shlosser(cs: ClassSizes, f: float) -> float:
    sizes, freq = cs.sizes.astype(float), cs.freq.astype(float)
    f2 = f * f
    v1 = float((sizes * f2 * (1 - f2) ** (sizes - 1) * freq).sum())
    v2 = float(((1 - f) ** sizes * ((1 + f) ** sizes - 1) * freq).sum())
    v3 = float(((1 - f) ** sizes * freq).sum())
    v4 = float((sizes * f * (1 - f) ** (sizes - 1) * freq).sum())
    if v2 <= 0 or v4 <= 0:  # the whole population was sampled: no class is unseen
        return float(cs.classes)
    return cs.classes + cs.of_size(1) * (v1 / v2) * (v3 / v4) ** 2


def snb_uniques(cs: ClassSizes, population: float, classes: float | None = None) -> float:
    """Expected population uniques under the SNB model (NaN when the fit fails).

    ``classes`` is the number of non-empty population classes when known; otherwise it is estimated.
    """
    c1, c2 = float(cs.of_size(1)), float(cs.of_size(2))
    if c1 == 0:
        return 0.0
    f = cs.n / population
    k = float(classes) if classes is not None else _shlosser(cs, f)

    def eqs(x: np.ndarray) -> np.ndarray:
        a, b = float(x[0]), float(x[1])
        if not (a > 0 and 0 < b < 1):
            return np.array([1e6, 1e6])
        d = (1 - f) * (1 - b)
        if not 1 - d > 0:
            return np.array([1e6, 1e6])
        e1 = k * f * (b / (1 - d)) ** a * (a * d / (1 - d) + 1) - c1
        e2 = k * a * b**a * f * f * (1 - b) / 2 / (1 - d) ** (a + 2) * (2 - (1 - a) * d) - c2
        return np.array([e1 / max(c1, 1.0), e2 / max(c2, 1.0)])

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        for a0 in (0.5, 1.0, 2.0, 0.1, 5.0):
            for b0 in (0.5, 0.1, 0.9, 0.01, 0.99):
                try:
                    sol = optimize.root(eqs, np.array([a0, b0]), method="hybr")
                except (ValueError, FloatingPointError):
                    continue
                a, b = float(sol.x[0]), float(sol.x[1])
                if sol.success and a > 0 and 0 < b < 1 and np.all(np.abs(eqs(sol.x)) < 1e-8):
                    val = k * b**a
                    if 0 <= val <= population:
                        return val
    return math.nan


@dataclass(frozen=True)
class PopulationUniqueness:
    """Population uniqueness (fraction of the population that is unique) per estimator."""

    pitman: float
    zayatz: float
    snb: float
    dankar: float
    dankar_model: str
    sampling_fraction: float

    def as_dict(self) -> dict[str, float | str]:
        return {
            "pitman": self.pitman,
            "zayatz": self.zayatz,
            "snb": self.snb,
            "dankar": self.dankar,
            "dankar_model": self.dankar_model,
            "sampling_fraction": self.sampling_fraction,
        }


def population_uniqueness(
    cs: ClassSizes, population: float, models: tuple[str, ...] | None = None
) -> PopulationUniqueness:
    """All estimators and Dankar's choice; estimates that fail are reported as NaN (Dankar never is)."""
    if population < cs.n:
        raise ValueError(f"population size {population:,.0f} is smaller than the sample ({cs.n:,})")
    pi = cs.n / population
    if cs.of_size(1) == 0:
        return PopulationUniqueness(0.0, 0.0, 0.0, 0.0, "none", pi)
    want = set(models or ("pitman", "zayatz", "snb"))
    pit = pitman_uniques(cs, population) if "pitman" in want or pi <= 0.1 else math.nan
    zay = zayatz_uniques(cs, population)
    snb = snb_uniques(cs, population) if "snb" in want or pi > 0.1 else math.nan
    if pi <= 0.1:
        if _valid(pit):
            dk, model = pit, "pitman"
        else:
            dk, model = zay, "zayatz"
    elif _valid(snb):
        dk, model = (zay, "zayatz") if zay < snb else (snb, "snb")
    else:
        dk, model = zay, "zayatz"
    dk = dk if _valid(dk) else 0.0
    return PopulationUniqueness(pit / population, zay / population, snb / population, dk / population, model, pi)
