"""Hand-computed checks of every measure, error cases and property tests on small tables."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from biowarden.privacy.anonymise import Criteria, Lattice, anonymise, apply_transformation
from biowarden.privacy.cumulative import cumulative_risk
from biowarden.privacy.data import DataError, histogram_from_table, read_table
from biowarden.privacy.diversity import SensitiveData, class_diversity, measure_diversity
from biowarden.privacy.explain import explain
from biowarden.privacy.hierarchy import (
    Hierarchy,
    HierarchyError,
    build_hierarchy,
    load_hierarchies,
    parse_hierarchy_text,
)
from biowarden.privacy.population import ClassSizes, population_uniqueness, snb_uniques
from biowarden.privacy.risk import measure_risk

# sizes: (a,x)=3, (a,y)=1, (b,x)=2, (b,y)=1  -> 4 classes, 7 records
SMALL = pa.table({"s": ["a", "a", "a", "a", "b", "b", "b"], "z": ["x", "x", "x", "y", "x", "x", "y"]})


def test_risk_small_table_by_hand():
    r = measure_risk(SMALL, ["s", "z"])
    assert r.records == 7 and r.classes == 4
    assert r.prosecutor.highest == 1.0
    assert r.prosecutor.average == pytest.approx(4 / 7)
    assert r.sample_uniqueness == pytest.approx(2 / 7)
    # risk > 0.2: classes of size 1, 2 and 3 -> all 7 records
    assert r.prosecutor.records_at_risk == pytest.approx(1.0)
    r2 = measure_risk(SMALL, ["s", "z"], threshold=0.4)
    assert r2.prosecutor.records_at_risk == pytest.approx(4 / 7)  # sizes 1, 1 and 2
    assert r.marketer == pytest.approx(4 / 7)  # no population: marketer = classes / n
    assert r.population_uniqueness is None
    assert r.class_size_distribution == [(1, 2), (2, 1), (3, 1)]


def test_journalist_and_kmap_with_population():
    r = measure_risk(SMALL, ["s", "z"], population=70)  # pi = 0.1: F = 10 f
    assert r.journalist.highest == pytest.approx(0.1)
    assert r.k_map == 10
    assert r.marketer == pytest.approx(4 * 0.1 / 7)


def test_population_uniqueness_no_uniques_and_dankar_rule():
    cs = ClassSizes.from_counts(np.array([2, 2, 3]))
    pu = population_uniqueness(cs, 1000)
    assert pu.pitman == pu.zayatz == pu.dankar == 0.0
    cs = ClassSizes.from_counts(np.array([1] * 30 + [2] * 20 + [3] * 10 + [5] * 5))
    small = population_uniqueness(cs, 10_000)
    assert small.dankar_model in ("pitman", "zayatz")
    big = population_uniqueness(cs, 200)  # pi > 0.1: min(Zayatz, SNB)
    assert big.dankar_model in ("zayatz", "snb")
    with pytest.raises(ValueError):
        population_uniqueness(cs, 10)


@pytest.mark.parametrize(
    ("alpha", "beta", "classes", "fraction"),
    [(1.5, 0.3, 200_000, 0.05), (0.8, 0.5, 100_000, 0.2), (2.0, 0.1, 50_000, 0.3)],
)
def test_snb_recovers_uniques_of_a_population_drawn_from_its_model(alpha, beta, classes, fraction):
    # population class sizes F with F - 1 ~ NegBin(alpha, beta); a binomial sample of each class
    rng = np.random.default_rng(2026)
    sizes = 1 + rng.negative_binomial(alpha, beta, size=classes)
    sample = rng.binomial(sizes, fraction)
    cs = ClassSizes.from_counts(sample[sample > 0])
    true_uniques = int((sizes == 1).sum())
    # with the number of population classes known, the moment equations give back the uniques
    assert snb_uniques(cs, float(sizes.sum()), classes=classes) == pytest.approx(true_uniques, rel=0.06)


def test_snb_with_estimated_classes_and_the_uniqueness_report():
    rng = np.random.default_rng(7)
    sizes = 1 + rng.negative_binomial(2.0, 0.1, size=50_000)
    sample = rng.binomial(sizes, 0.3)
    cs = ClassSizes.from_counts(sample[sample > 0])
    true_uniques = int((sizes == 1).sum())
    pu = population_uniqueness(cs, float(sizes.sum()))
    # Shlosser's estimate of the number of classes is close at this sampling fraction
    assert pu.snb * sizes.sum() == pytest.approx(true_uniques, rel=0.1)
    assert pu.dankar_model in ("snb", "zayatz") and pu.dankar <= pu.zayatz


def test_zayatz_full_population_is_sample_uniqueness():
    # when the sample is the population, a sample unique is a population unique
    cs = ClassSizes.from_counts(np.array([1, 1, 1, 2, 4]))
    pu = population_uniqueness(cs, cs.n)
    assert pu.zayatz == pytest.approx(3 / 9)


def test_diversity_by_hand():
    t = pa.table({"q": ["a", "a", "a", "b", "b"], "d": ["x", "y", "y", "x", "x"]})
    h = histogram_from_table(t, ["q"])
    sens = SensitiveData.from_column(t.column("d"), h.row_class, h.num_classes, "d")
    rep = measure_diversity(sens, np.arange(h.num_classes), h.num_classes)
    assert rep.distinct_l == 1
    assert rep.entropy_l == pytest.approx(1.0)
    # overall x=3/5 y=2/5; class b: x=1 -> equal distance 0.4; class a: x=1/3, y=2/3 -> 4/15
    assert rep.t_equal == pytest.approx(0.4)
    ok = class_diversity(sens, np.arange(h.num_classes), h.num_classes, Criteria(l=2, sensitive="d"))
    assert sorted(ok.tolist()) == [False, True]
    ent = class_diversity(
        sens, np.arange(h.num_classes), h.num_classes, Criteria(l=1.8, l_variant="entropy", sensitive="d")
    )
    # class a: exp(H(1/3, 2/3)) = 1.8899 >= 1.8
    assert sorted(ent.tolist()) == [False, True]


def test_recursive_and_ordered_t():
    t = pa.table({"q": ["a"] * 6, "d": ["1", "1", "1", "2", "2", "3"]})
    h = histogram_from_table(t, ["q"])
    sens = SensitiveData.from_column(t.column("d"), h.row_class, 1, "d")
    # r1=3, r2+r3=3 -> (c,2) holds iff 3 < 3c
    assert class_diversity(sens, np.zeros(1, np.int64), 1, Criteria(l=2, l_variant="recursive", c=1.5, sensitive="d"))[
        0
    ]
    assert not class_diversity(
        sens, np.zeros(1, np.int64), 1, Criteria(l=2, l_variant="recursive", c=1, sensitive="d")
    )[0]
    rep = measure_diversity(sens, np.zeros(1, np.int64), 1)
    assert rep.t_ordered == pytest.approx(0.0) and rep.recursive_c == pytest.approx(1.0)


def test_set_valued_sensitive():
    t = pa.table({"q": ["a", "a", "b"], "dx": pa.array([["I10", "E11"], [], ["I10"]], pa.list_(pa.string()))})
    h = histogram_from_table(t, ["q"])
    sens = SensitiveData.from_column(t.column("dx"), h.row_class, h.num_classes, "dx")
    assert sens.set_valued and "(none)" in sens.values
    rep = measure_diversity(sens, np.arange(h.num_classes), h.num_classes)
    assert rep.distinct_l == 1  # class b only has I10


def test_explanations_minimal_unique_sets():
    t = pa.table({"a": ["1", "1", "2", "2"], "b": ["x", "y", "x", "x"], "c": ["p", "p", "p", "q"]})
    h = histogram_from_table(t, ["a", "b", "c"])
    j = int(np.flatnonzero([h.values(i) == {"a": "1", "b": "y", "c": "p"} for i in range(h.num_classes)])[0])
    (e,) = explain(h, [j])
    assert e.minimal_unique_sets == [["b"]]
    k = int(np.flatnonzero([h.values(i) == {"a": "1", "b": "x", "c": "p"} for i in range(h.num_classes)])[0])
    (e,) = explain(h, [k])
    assert e.minimal_unique_sets == [["a", "b"]]


def test_hierarchy_errors_and_builders(tmp_path):
    with pytest.raises(HierarchyError, match="ragged"):
        parse_hierarchy_text("a;x;*\nb;*\n", "col")
    h = parse_hierarchy_text("a;x;*\nb;x;*\n", "col")
    with pytest.raises(HierarchyError, match="missing from its hierarchy"):
        h.encode(["a", "c"])
    (tmp_path / "data_hierarchy_col.csv").write_text("a;x;*\nb;x;*\n")
    assert load_hierarchies(tmp_path)["col"].height == 3
    with pytest.raises(HierarchyError, match="no hierarchy file"):
        load_hierarchies(tmp_path, ["other"])
    d = build_hierarchy("dob", "date:month,quarter,year", ["2001-05-17", "2001-11-02"])
    assert d.rows[0] == ["2001-05-17", "2001-05", "2001-Q2", "2001", "*"]
    iv = build_hierarchy("age", "interval:5,10", ["42", "47", "NULL"])
    assert iv.rows[0] == ["42", "[40, 45)", "[40, 50)", "*"]
    assert iv.rows[-1] == ["NULL", "NULL", "NULL", "*"]
    # widths that do not nest are rounded up to the next multiple, so the hierarchy stays a tree
    tw = build_hierarchy("townsend", "interval:1,2,5,10", ["4.5", "5.5", "-1.25"])
    assert tw.rows[1] == ["4.5", "[4, 5)", "[4, 6)", "[0, 6)", "[0, 12)", "*"]
    assert tw.rows[0] == ["-1.25", "[-2, -1)", "[-2, 0)", "[-6, 0)", "[-12, 0)", "*"]
    assert tw.is_functional()
    with pytest.raises(HierarchyError, match="widths must grow"):
        build_hierarchy("age", "interval:10,5", ["42"])
    icd = build_hierarchy("dx", "coding:icd10-chapter", ["I21.0", "E11"])
    assert icd.rows[1][-2] == "IX Circulatory system"
    with pytest.raises(HierarchyError, match="unknown kind"):
        build_hierarchy("x", "nope:1", ["1"])
    with pytest.raises(HierarchyError, match="not a UK Biobank"):
        build_hierarchy("c", "coding:ukb-centre-region", ["99"])


def test_read_table_detects_delimiter_and_errors(tmp_path):
    p = tmp_path / "d.txt"
    p.write_text("a|b\n1|x\n2|y\n")
    t = read_table(p)
    assert t.column_names == ["a", "b"] and t.column("a").to_pylist() == ["1", "2"]
    with pytest.raises(DataError, match="does not exist"):
        read_table(tmp_path / "missing.csv")
    with pytest.raises(DataError, match="unknown quasi-identifier"):
        histogram_from_table(t, ["a", "zz"])


AGE = Hierarchy("age", [[str(a), f"{a - a % 10}-{a - a % 10 + 9}", "*"] for a in range(20, 60)])
SEX = Hierarchy("sex", [["F", "*"], ["M", "*"]])


def _table(rows):
    return pa.table({"age": [str(a) for a, _, _ in rows], "sex": [s for _, s, _ in rows], "d": [d for _, _, d in rows]})


rows_st = st.lists(
    st.tuples(st.integers(20, 59), st.sampled_from(["F", "M"]), st.sampled_from(["x", "y", "z"])),
    min_size=4,
    max_size=60,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=rows_st,
    k=st.integers(2, 4),
    supp=st.sampled_from([0.0, 0.05, 0.2]),
    metric=st.sampled_from(["loss", "precision", "discernibility", "aecs"]),
)
def test_pruned_search_equals_brute_force_and_satisfies_k(rows, k, supp, metric):
    t = _table(rows)
    hier = {"age": AGE, "sex": SEX}
    crit = Criteria(k=k)
    fast = anonymise(t, ["age", "sex"], hier, crit, supp, metric)
    brute = anonymise(t, ["age", "sex"], hier, crit, supp, metric, exhaustive=True)
    assert fast.found == brute.found
    if not fast.found:
        return
    assert fast.levels == brute.levels
    assert fast.utility[metric] == brute.utility[metric]
    out = apply_transformation(t, hier, fast.levels, qis=["age", "sex"], criteria=crit)
    kept = [
        (a, s)
        for a, s in zip(out.column("age").to_pylist(), out.column("sex").to_pylist(), strict=True)
        if a != "*" or s != "*"
    ]
    # the optimum satisfies k: every released class has at least k records, suppression within the limit
    from collections import Counter

    assert all(c >= k for c in Counter(kept).values())
    assert len(rows) - len(kept) <= math.floor(supp * len(rows) + 1e-9) or fast.levels == [2, 1]


@settings(max_examples=25, deadline=None)
@given(rows=rows_st, l_=st.sampled_from([2, 3]), variant=st.sampled_from(["distinct", "entropy", "recursive"]))
def test_l_diversity_search_equals_brute_force(rows, l_, variant):
    t = _table(rows)
    hier = {"age": AGE, "sex": SEX}
    crit = Criteria(l=l_, l_variant=variant, sensitive="d")
    fast = anonymise(t, ["age", "sex"], hier, crit, 0.1)
    brute = anonymise(t, ["age", "sex"], hier, crit, 0.1, exhaustive=True)
    assert fast.found == brute.found
    if fast.found:
        assert fast.levels == brute.levels


def test_risk_based_criteria_and_loss_bounds():
    rows = [(20 + i % 40, "F" if i % 3 else "M", "x") for i in range(200)]
    t = _table(rows)
    hier = {"age": AGE, "sex": SEX}
    res = anonymise(t, ["age", "sex"], hier, Criteria(max_average_risk=0.05), 0.0)
    assert res.found
    rel = res.apply(t)
    assert measure_risk(rel, ["age", "sex"]).prosecutor.average <= 0.05
    res = anonymise(t, ["age", "sex"], hier, Criteria(max_highest_risk=0.1), 0.0)
    assert measure_risk(res.apply(t), ["age", "sex"]).prosecutor.highest <= 0.1
    lat = Lattice(histogram_from_table(t, ["age", "sex"]), hier, Criteria(k=2), 0.0)
    nodes = lat.nodes()
    for node, bound in zip(nodes, lat.bounds(nodes, "loss"), strict=True):
        assert lat.evaluate(node).utility["loss"] >= bound - 1e-12


def test_criteria_errors():
    with pytest.raises(ValueError, match="at least one"):
        Criteria()
    with pytest.raises(ValueError, match="sensitive"):
        Criteria(l=2)
    with pytest.raises(ValueError, match="population"):
        Criteria(k_map=3)
    with pytest.raises(HierarchyError, match="no hierarchy"):
        anonymise(SMALL, ["s", "z"], {}, Criteria(k=2))


def test_cumulative_risk_joins_on_participant():
    new = pa.table({"eid": [1, 2, 3, 4], "sex": ["F", "F", "M", "M"]})
    prior = pa.table({"eid": [4, 3, 2, 1], "yob": ["1950", "1950", "1951", "1950"]})
    res = cumulative_risk(new, [prior])
    assert res.alone.classes == 2 and res.alone.sample_uniqueness == 0
    # together: (F,1950) (F,1951) (M,1950) x2 -> two uniques
    assert res.qis_together == ["sex", "yob"]
    assert res.together.sample_uniqueness == pytest.approx(0.5)
    with pytest.raises(DataError, match="participant"):
        cumulative_risk(new, [pa.table({"x": [1]})])
