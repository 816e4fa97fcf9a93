"""Re-identification risk of a table (or a histogram) over its quasi-identifiers.

All figures come from the histogram of distinct QI combinations, computed once:

- prosecutor risk (the attacker knows the person is in the data): 1 / f_k for a record in a class of size
  f_k; reported as highest, average (= classes / n) and the share of records whose risk exceeds a
  threshold (El Emam's 0.2 by default);
- journalist risk (the attacker matches against the population): 1 / F_k with F_k the population size
  of the class; F_k comes from an identification table when given, else it is estimated as
  max(f_k, f_k / pi) with pi the sampling fraction;
- marketer risk (expected share of records re-identified when all are matched): mean of f_k / F_k over
  classes and records, i.e. (1/n) * sum_k f_k / F_k;
- sample uniqueness (share of records in classes of size 1); population uniqueness (Pitman, Zayatz,
  SNB, Dankar's rule, see :mod:`biowarden.privacy.population`); k-map (smallest F_k).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pyarrow as pa

from biowarden.privacy.data import Histogram, histogram_from_table
from biowarden.privacy.population import ClassSizes, PopulationUniqueness, population_uniqueness

UK_POPULATION = 63_705_000
DEFAULT_THRESHOLD = 0.2


@dataclass(frozen=True)
class RiskSummary:
    highest: float
    average: float
    records_at_risk: float  # share of records with risk > threshold
    threshold: float


@dataclass
class RiskReport:
    qis: list[str]
    records: int
    classes: int
    smallest_class: int
    largest_class: int
    average_class_size: float
    sample_uniqueness: float
    prosecutor: RiskSummary
    journalist: RiskSummary
    marketer: float
    population: float | None
    population_uniqueness: PopulationUniqueness | None
    k_map: int
    class_size_distribution: list[tuple[int, int]] = field(default_factory=list)  # (size, classes)
    risk_histogram: list[tuple[str, float]] = field(default_factory=list)  # (risk band, share of records)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["population_uniqueness"] = (
            self.population_uniqueness.as_dict() if self.population_uniqueness is not None else None
        )
        d["class_size_distribution"] = [list(x) for x in self.class_size_distribution]
        d["risk_histogram"] = [list(x) for x in self.risk_histogram]
        return _clean(d)


def _clean(obj):
    if isinstance(obj, float) and (math.isnan(obj) or math.isinf(obj)):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


RISK_BANDS = (0.0, 1e-6, 0.001, 0.01, 0.02, 0.05, 0.1, 0.2, 0.33, 0.5, 1.0)


def risk_histogram(counts: np.ndarray, bands: Sequence[float] = RISK_BANDS) -> list[tuple[str, float]]:
    """Share of records per prosecutor-risk band ``(lo, hi]``."""
    counts = np.asarray(counts)
    n = counts.sum()
    risk = 1.0 / counts
    out = []
    for lo, hi in itertools.pairwise(bands):
        sel = (risk > lo) & (risk <= hi)
        out.append((f"({lo:g}, {hi:g}]", float(counts[sel].sum() / n) if n else 0.0))
    return out


def summarise(risk_per_class: np.ndarray, counts: np.ndarray, threshold: float) -> RiskSummary:
    n = counts.sum()
    if n == 0:
        return RiskSummary(0.0, 0.0, 0.0, threshold)
    return RiskSummary(
        highest=float(risk_per_class.max()),
        average=float((risk_per_class * counts).sum() / n),
        records_at_risk=float(counts[risk_per_class > threshold].sum() / n),
        threshold=threshold,
    )


def population_class_sizes(
    hist: Histogram, population: float | None, identification: Histogram | None = None
) -> np.ndarray:
    """F_k for every sample class: from an identification histogram (same QIs) or estimated from pi."""
    counts = hist.counts.astype(float)
    if identification is not None:
        if identification.qis != hist.qis:
            raise ValueError("the identification table must have the same quasi-identifiers")
        ident = {}
        for j in range(identification.num_classes):
            key = tuple(identification.dictionaries[i][c] for i, c in enumerate(identification.codes[j]))
            ident[key] = identification.counts[j]
        big = np.empty(hist.num_classes)
        for j in range(hist.num_classes):
            key = tuple(hist.dictionaries[i][c] for i, c in enumerate(hist.codes[j]))
            big[j] = max(float(ident.get(key, 0)), counts[j])
        return big
    if population is None:
        return counts
    pi = hist.n / population
    return np.maximum(counts, counts / pi)


def measure_risk(
    source: pa.Table | Histogram,
    qis: Sequence[str] | None = None,
    population: float | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    identification: pa.Table | Histogram | None = None,
) -> RiskReport:
    """The full risk analysis of a table (or a precomputed histogram) over ``qis``.

    ``population`` is the size of the population the data was sampled from (None: the data is the
    population, no population uniqueness); ``identification`` an optional population table (e.g. a
    register) giving exact F_k for journalist risk and k-map.
    """
    if isinstance(source, Histogram):
        hist = source
        if qis is not None and list(qis) != hist.qis:
            raise ValueError(f"the histogram is over {hist.qis}, not {list(qis)}")
    else:
        if not qis:
            raise ValueError("name the quasi-identifiers")
        hist = histogram_from_table(source, qis)
    ident = None
    if identification is not None:
        ident = (
            identification if isinstance(identification, Histogram) else histogram_from_table(identification, hist.qis)
        )
    if hist.n == 0:
        raise ValueError("the data has no records")
    big = population_class_sizes(hist, population, ident)
    return _report(hist.qis, hist.counts, big, population, threshold)


def risk_of_classes(
    sizes: np.ndarray, qis: Sequence[str], population: float | None = None, threshold: float = DEFAULT_THRESHOLD
) -> RiskReport:
    """The risk analysis (:func:`measure_risk`) of a table known only by its equivalence classes' sizes over
    ``qis`` (such as a released table, from the search that made it): journalist risk and k-map then use
    the sampling fraction, as without an identification table."""
    counts = np.asarray(sizes, dtype=np.int64)
    if counts.sum() == 0:
        raise ValueError("the data has no records")
    big = counts.astype(float)
    if population is not None:
        big = np.maximum(big, big / (counts.sum() / population))
    return _report(list(qis), counts, big, population, threshold)


def _report(
    qis: Sequence[str], counts: np.ndarray, big: np.ndarray, population: float | None, threshold: float
) -> RiskReport:
    n = int(counts.sum())
    if n == 0:
        raise ValueError("the data has no records")
    cs = ClassSizes.from_counts(counts)
    pros = summarise(1.0 / counts, counts, threshold)
    jour = summarise(1.0 / big, counts, threshold)
    marketer = float((counts / big).sum() / n)
    pu = population_uniqueness(cs, float(population)) if population is not None else None
    return RiskReport(
        qis=list(qis),
        records=n,
        classes=len(counts),
        smallest_class=int(counts.min()),
        largest_class=int(counts.max()),
        average_class_size=n / len(counts),
        sample_uniqueness=float(counts[counts == 1].sum() / n),
        prosecutor=pros,
        journalist=jour,
        marketer=marketer,
        population=float(population) if population is not None else None,
        population_uniqueness=pu,
        k_map=int(np.floor(big.min())),
        class_size_distribution=[(int(s), int(f)) for s, f in zip(cs.sizes, cs.freq, strict=True)],
        risk_histogram=risk_histogram(counts),
    )


def record_risks(hist: Histogram) -> np.ndarray:
    """Prosecutor risk of every record (needs a histogram built from rows)."""
    if hist.row_class is None:
        raise ValueError("per-record risks need a histogram built from the table's rows")
    return 1.0 / hist.counts[hist.row_class]
