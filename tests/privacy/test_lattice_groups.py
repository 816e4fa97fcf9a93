"""The search's incremental regrouping (a node's classes derived from a finer node's) equals grouping the raw rows."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa

from biowarden.privacy.anonymise import Criteria, Lattice, anonymise, apply_transformation
from biowarden.privacy.data import histogram_from_table
from biowarden.privacy.diversity import SensitiveData
from biowarden.privacy.hierarchy import Hierarchy
from tests.privacy.conftest import ADULT_QIS


def _classes_from_rows(table: pa.Table, hier, qis, levels) -> dict[tuple[str, ...], int]:
    """Reference: generalise every raw row and count the distinct label tuples with Arrow."""
    gen = apply_transformation(table.select(qis), hier, levels, qis=qis)
    grouped = gen.group_by(qis).aggregate([([], "count_all")]).to_pydict()
    return {tuple(grouped[q][j] for q in qis): int(grouped["count_all"][j]) for j in range(len(grouped["count_all"]))}


def _classes_from_lattice(lat: Lattice, levels) -> dict[tuple[str, ...], int]:
    g = lat.groups(tuple(levels))
    return {
        tuple(lat.hier[i].labels[lv][g.codes[i, c]] for i, lv in enumerate(levels)): int(g.sizes[c])
        for c in range(len(g.sizes))
    }


def test_incremental_groups_equal_raw_grouping_on_adult(adult, adult_hierarchies):
    hist = histogram_from_table(adult, ADULT_QIS)
    # a small byte budget forces evictions, so nodes are derived from varied bases (and from the root)
    lat = Lattice(hist, adult_hierarchies, Criteria(k=5), 0.01, cache_bytes=2 << 20)
    rng = random.Random(7)
    nodes = [tuple(int(x) for x in n) for n in lat.nodes()]
    # visit finer nodes first (so coarser ones are derived), then a random sample in random order
    sample = sorted(rng.sample(nodes, 40), key=sum) + rng.sample(nodes, 20)
    for levels in sample:
        lat.evaluate(levels)
    for levels in sample[::4]:
        assert _classes_from_lattice(lat, levels) == _classes_from_rows(adult, adult_hierarchies, ADULT_QIS, levels)
    assert lat.cache.bytes <= 2 << 20 or len(lat.cache.entries) == 1


def test_warm_and_cold_lattices_agree_with_l_diversity(adult, adult_hierarchies):
    hist = histogram_from_table(adult, ADULT_QIS)
    sens = SensitiveData.from_column(adult.column("salary-class"), hist.row_class, hist.num_classes)
    crit = Criteria(k=2, l=2, sensitive="salary-class")
    warm = Lattice(hist, adult_hierarchies, crit, 0.02, sensitive=sens)
    rng = random.Random(11)
    nodes = [tuple(int(x) for x in n) for n in warm.nodes()]
    sample = sorted(rng.sample(nodes, 60), key=sum)
    warm_results = [warm.evaluate(levels) for levels in sample]
    assert len(warm.cache.entries) > 1
    for levels, got in zip(sample[::5], warm_results[::5], strict=True):
        cold = Lattice(hist, adult_hierarchies, crit, 0.02, sensitive=sens)  # only the root is cached
        want = cold.evaluate(levels)
        assert (got.anonymous, got.suppressed, got.classes) == (want.anonymous, want.suppressed, want.classes)
        assert got.utility == want.utility
        cls, sizes = cold.group(levels)
        assert got.suppressed == int(sizes[cold.failing_classes(cls, sizes)].sum())


def test_non_tree_hierarchy_is_regrouped_from_rows():
    # level 1 label "a" has two parents at level 2: classes at level 2 are not unions of level-1 classes
    h = Hierarchy("v", [["1", "a", "x", "*"], ["2", "a", "y", "*"], ["3", "b", "y", "*"]])
    assert not h.is_functional()
    w = Hierarchy("w", [["p", "*"], ["q", "*"]])
    t = pa.table({"v": ["1", "1", "2", "3", "3", "3", "2"], "w": ["p", "q", "p", "p", "q", "q", "p"]})
    hier = {"v": h, "w": w}
    lat = Lattice(histogram_from_table(t, ["v", "w"]), hier, Criteria(k=2), 0.0)
    for levels in [(1, 0), (1, 1), (2, 0), (2, 1), (3, 0), (3, 1), (0, 1)]:
        lat.evaluate(levels)
        assert _classes_from_lattice(lat, levels) == _classes_from_rows(t, hier, ["v", "w"], levels)
    assert lat.up[0][1, 2] is None and lat.up[0][1, 3] is not None


def test_result_suppressed_rows_match_the_released_table(adult, adult_hierarchies):
    res = anonymise(adult, ADULT_QIS, adult_hierarchies, Criteria(k=5), suppression=0.01)
    out = res.apply(adult)
    stars = np.array(out.column("sex").to_pylist(), dtype=object) == "*"
    assert int(stars.sum()) == res.suppressed == 273
