"""Set-valued date quasi-identifiers: canonical set values, the set hierarchy, classes against a brute-force
grouping, the lattice optimum against exhaustive enumeration, and the 2026 attack on a generalised release."""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections import Counter, defaultdict

import numpy as np
import pyarrow as pa
import pytest

from biowarden.privacy.anonymise import Criteria, Lattice, anonymise, apply_transformation
from biowarden.privacy.data import as_strings, histogram_from_table
from biowarden.privacy.hierarchy import (
    Hierarchy,
    HierarchyError,
    SetHierarchy,
    build_hierarchy,
    flat_hierarchy,
    parse_set_label,
    set_label,
)
from biowarden.privacy.linkage import birthdate_operation_matches, link
from biowarden.privacy.register import synthetic_register
from biowarden.privacy.risk import measure_risk
from biowarden.privacy.setvalued import date_set_columns, date_set_hierarchy, is_date_set
from tests.privacy.test_linkage import small_cohort

D = dt.date
OPS = "41282-0"


def _dates(rows: list[list[dt.date] | None]) -> pa.Array:
    return pa.array(rows, pa.list_(pa.date32()))


def _gen_date(d: dt.date, level: int) -> str:
    """The test's own date generalisation: 0 day, 1 month, 2 quarter, 3 year, 4 five years, 5 ten years."""
    y5, y10 = d.year - d.year % 5, d.year - d.year % 10
    return [
        d.isoformat(),
        f"{d.year:04d}-{d.month:02d}",
        f"{d.year:04d}-Q{(d.month - 1) // 3 + 1}",
        f"{d.year:04d}",
        f"{y5}-{y5 + 4}",
        f"{y10}-{y10 + 9}",
    ][level]


def _brute_key(value, level: int, height: int, kind: str):
    """A record's generalised value computed directly from the raw cell (no hierarchy object)."""
    if level == height - 1:
        return "*"
    if kind == "set":
        return None if value is None else tuple(sorted(_gen_date(d, level) for d in value))
    if kind == "year":
        return value if level == 0 else (value - value % (5 * level))
    return value


def test_set_values_are_canonical():
    a = _dates([[D(2015, 3, 14), D(2012, 1, 2)], None, [], [D(2012, 1, 2), D(2015, 3, 14)], [D(2012, 1, 2)] * 2])
    s = as_strings(a).to_pylist()
    assert s[0] == s[3] == '["2012-01-02","2015-03-14"]'
    assert s[1] == "NULL" and s[2] == "[]" and s[4] == '["2012-01-02","2012-01-02"]'
    assert as_strings(a.slice(2, 2)).to_pylist() == s[2:4]  # slices read their own rows
    # any element text round-trips through the canonical JSON (quotes, separators)
    odd = pa.array([['b"|,', "a"], ["a", 'b"|,'], None], pa.list_(pa.string()))
    texts = as_strings(odd).to_pylist()
    assert texts[0] == texts[1] == set_label(["a", 'b"|,']) and parse_set_label(texts[0]) == ["a", 'b"|,']
    h = histogram_from_table(pa.table({OPS: a}), [OPS])
    assert h.num_classes == 4 and sorted(h.counts.tolist()) == [1, 1, 1, 2]
    assert is_date_set(a.type) and not is_date_set(pa.list_(pa.string())) and not is_date_set(pa.date32())
    schema = pa.schema([("x", a.type), ("y", pa.list_(pa.string())), ("z", pa.date32())])
    assert date_set_columns(schema, ["z", "y", "x", "missing"]) == ["x"]


def test_set_hierarchy_maps_every_element():
    a = _dates([[D(2015, 3, 14), D(2012, 1, 2)], None, [], [D(2012, 2, 20)], [D(2015, 2, 1), D(2012, 1, 3)]])
    h = date_set_hierarchy(OPS, a)
    assert isinstance(h, SetHierarchy) and h.height == 7 and h.is_functional()
    row = h.rows[h.index['["2012-01-02","2015-03-14"]']]
    assert row == [
        '["2012-01-02","2015-03-14"]',
        '["2012-01","2015-03"]',
        '["2012-Q1","2015-Q1"]',
        '["2012","2015"]',
        '["2010-2014","2015-2019"]',
        '["2010-2019","2010-2019"]',
        "*",
    ]
    assert h.rows[h.index["NULL"]] == ["NULL"] * 6 + ["*"] and h.rows[h.index["[]"]] == ["[]"] * 6 + ["*"]
    # two different day-sets merge at the quarter level and stay merged above it (monotone)
    x, y = h.index['["2012-01-02","2015-03-14"]'], h.index['["2012-01-03","2015-02-01"]']
    assert [h.codes[lv][x] == h.codes[lv][y] for lv in range(7)] == [False, False, True, True, True, True, True]
    # applied: every element in place (positions kept for a paired code list), the top hides the whole list
    t = pa.table({OPS: a})
    assert apply_transformation(t, {OPS: h}, {OPS: 1}).column(OPS).to_pylist() == [
        ["2015-03", "2012-01"],
        None,
        [],
        ["2012-02"],
        ["2015-02", "2012-01"],
    ]
    assert apply_transformation(t, {OPS: h}, {OPS: 6}).column(OPS).to_pylist() == [["*"]] * 5
    out = apply_transformation(t, {OPS: h}, [3], qis=[OPS], suppress=np.array([0, 1, 0, 0, 1], bool))
    assert out.column(OPS).to_pylist() == [["2015", "2012"], ["*"], [], ["2012"], ["*"]]
    # the released labels group exactly as the hierarchy's level does
    again = measure_risk(apply_transformation(t, {OPS: h}, {OPS: 2}), [OPS])
    assert again.classes == len(set(h.codes[2].tolist()))
    with pytest.raises(HierarchyError, match="not a set value"):
        build_hierarchy(OPS, "set:date:month,year", ["2015-01-01"])
    with pytest.raises(HierarchyError, match="cannot themselves be sets"):
        build_hierarchy(OPS, "set:set:date:month", ["[]"])


def _small(n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    ops = []
    for k in rng.poisson(0.9, n):
        if rng.random() < 0.05:
            ops.append(None)
            continue
        ops.append([D(2010, 1, 1) + dt.timedelta(days=int(x)) for x in rng.integers(0, 3 * 365, k)])
    return pa.table(
        {
            "sex": pa.array(rng.integers(0, 2, n).astype(str)),
            "year": pa.array(rng.integers(1940, 1960, n), pa.int32()),
            OPS: _dates(ops),
        }
    )


def _hierarchies(t: pa.Table) -> dict:
    return {
        "sex": flat_hierarchy("sex", as_strings(t.column("sex")).to_pylist()),
        "year": build_hierarchy("year", "interval:5,10", as_strings(t.column("year")).to_pylist()),
        OPS: date_set_hierarchy(OPS, t.column(OPS)),
    }


KINDS = {"sex": "flat", "year": "year", OPS: "set"}


def _brute_classes(t: pa.Table, qis: list[str], levels, heights) -> list:
    cols = {q: t.column(q).to_pylist() for q in qis}
    return [
        tuple(_brute_key(cols[q][r], lv, h, KINDS[q]) for q, lv, h in zip(qis, levels, heights, strict=True))
        for r in range(t.num_rows)
    ]


def test_classes_equal_a_brute_force_grouping():
    t = _small(400, seed=11)
    qis = ["sex", "year", OPS]
    hier = _hierarchies(t)
    hist = histogram_from_table(t, qis)
    lat = Lattice(hist, hier, Criteria(k=1), 0.0)
    heights = [hier[q].height for q in qis]
    assert heights == [2, 4, 7]
    for levels in itertools.product(*(range(h) for h in heights)):
        cls, sizes = lat.group(levels)
        ours = cls[hist.row_class]
        brute = _brute_classes(t, qis, levels, heights)
        # the same partition of the records: one brute key per class and one class per brute key
        assert len({(a, b) for a, b in zip(ours.tolist(), brute, strict=True)}) == len(set(brute)) == len(sizes)
        assert sorted(Counter(brute).values()) == sorted(sizes.tolist())
    # a record's set class is its own and not its neighbour's order: a shuffled list is the same value
    shuffled = t.set_column(2, OPS, _dates([None if v is None else v[::-1] for v in t.column(OPS).to_pylist()]))
    assert histogram_from_table(shuffled, qis).num_classes == hist.num_classes


def _brute_optimum(t: pa.Table, qis: list[str], hier: dict, k: int, suppression: float, metric: str):
    heights = [hier[q].height for q in qis]
    n = t.num_rows
    limit = math.floor(suppression * n + 1e-9)
    best = None
    for levels in itertools.product(*(range(h) for h in heights)):
        groups: dict = defaultdict(int)
        for key in _brute_classes(t, qis, levels, heights):
            groups[key] += 1
        sizes = np.array(list(groups.values()))
        supp = int(sizes[sizes < k].sum())
        if supp > limit:
            continue
        kept = sizes[sizes >= k]
        if metric == "discernibility":
            value = float((kept.astype(float) ** 2).sum() + supp * n)
        else:  # precision: level / (height - 1) per record and QI, a suppressed record counts 1
            value = sum((lv / (h - 1) * (n - supp) + supp) / n for lv, h in zip(levels, heights, strict=True)) / len(
                qis
            )
        cand = (round(value, 9), sum(levels), levels)
        if best is None or cand < best:
            best = cand
    return best


@pytest.mark.parametrize("metric", ["discernibility", "precision"])
def test_search_optimum_equals_exhaustive_enumeration(metric):
    t = _small(300, seed=12)
    qis = ["sex", "year", OPS]
    hier = _hierarchies(t)
    for k, suppression in ((2, 0.0), (3, 0.05), (5, 0.1)):
        res = anonymise(t, qis, hier, Criteria(k=k), suppression, metric=metric)
        best = _brute_optimum(t, qis, hier, k, suppression, metric)
        assert res.found and best is not None
        assert tuple(res.levels) == best[2] and round(res.utility[metric], 9) == best[0]
    # and the loss metric: the pruned search finds what evaluating every node finds
    for k, suppression in ((2, 0.02), (4, 0.05)):
        pruned = anonymise(t, qis, hier, Criteria(k=k), suppression)
        every = anonymise(t, qis, hier, Criteria(k=k), suppression, exhaustive=True)
        assert pruned.levels == every.levels and pruned.utility == every.utility
        assert pruned.nodes_evaluated <= every.nodes_evaluated == every.nodes_total


def test_news_attack_fails_on_a_release_generalised_on_operation_dates():
    cohort = small_cohort(20_000, seed=1)
    news = synthetic_register(cohort, 400, seed=7, knowledge="news", operation_noise_days=2)
    attack = birthdate_operation_matches(tolerance_days=3)
    scalar = ["31-0.0", "34-0.0", "52-0.0"]
    hier = {
        "31-0.0": flat_hierarchy("31-0.0", ["0", "1"]),
        "34-0.0": build_hierarchy("34-0.0", "interval:5,10,20", as_strings(cohort.column("34-0.0")).to_pylist()),
        "52-0.0": build_hierarchy("52-0.0", "coding:month-quarter", [str(m) for m in range(1, 13)]),
        OPS: date_set_hierarchy(OPS, cohort.column(OPS)),
    }
    raw = link(news, cohort, attack)

    def release(qis):
        res = anonymise(cohort, qis, hier, Criteria(k=5), 0.01)
        assert res.found
        return res, res.apply(cohort).filter(pa.array(~res.suppressed_records))

    # without the operation dates among the QIs the search leaves them exact: the attack still works
    _, blind = release(scalar)
    before = link(news, blind, attack)
    # with them, every date is generalised with the rest and the attack ends in ambiguity
    res, gated = release([*scalar, OPS])
    after = link(news, gated, attack)
    assert res.transformation[OPS] > 0
    assert raw.correct > 300 and before.correct > 0.5 * raw.correct
    assert after.correct <= 0.02 * raw.correct and after.correct < before.correct
    assert after.true_in[after.in_release].all()  # the truth is still a candidate: ambiguity, not misdirection
    # every class of the generalised release, the operation dates included, has at least 5 records
    assert measure_risk(gated, [*scalar, OPS]).smallest_class >= 5


def test_release_gate_generalises_requested_operation_dates():
    from biowarden.cohort.synth import cohort_dictionary, synthesise_table
    from biowarden.release.pipeline import RiskThreshold, quasi_identifiers, risk_gate

    cohort, _ = synthesise_table(20_000, seed=5)
    dictionary = cohort_dictionary()
    requested = ["eid", "31-0.0", "34-0.0", "54-0.0", "50-0.0", "41272-0", OPS]
    # the operation dates are gated as a set-valued quasi-identifier; the codes list and measures are not
    assert quasi_identifiers(cohort.schema, requested, dictionary) == ["31-0.0", "34-0.0", "54-0.0", OPS]
    table = cohort.select(["eid", "31-0.0", OPS])
    gate = risk_gate(table, dictionary, RiskThreshold(k=5, max_risk=0.2, suppression=0.02))
    top = date_set_hierarchy(OPS, table.column(OPS)).height - 1
    assert gate.qis == ["31-0.0", OPS] and 0 < gate.levels[OPS] < top  # coarsened, not hidden
    released = gate.table.column(OPS)
    assert pa.types.is_list(released.type)
    # list lengths are kept below the top level (the paired codes still line up); the raw days are gone
    raw = cohort.column(OPS).to_pylist()
    out = released.to_pylist()
    day_labels = {d.isoformat() for v in raw if v for d in v}
    assert not any(e in day_labels for v in out if v for e in v)
    hidden = [v == ["*"] for v in out]
    assert 0 < sum(hidden) <= 0.02 * len(out)  # the suppressed participants' lists are hidden whole
    assert all(h or len(a or []) == len(b or []) for a, b, h in zip(raw, out, hidden, strict=True))
    assert gate.risk["smallest_class"] >= 5 or gate.risk["suppressed"] > 0
    assert gate.risk["prosecutor_highest"] <= 0.2 + 1e-9
    # the released table's classes, the operation dates among them, are at least 5 outside the suppressed
    rep = measure_risk(gate.table, gate.qis)
    assert rep.prosecutor.highest <= 0.2 + 1e-9


def test_cumulative_risk_joins_set_valued_holdings():
    from biowarden.privacy.cumulative import cumulative_risk

    eid = pa.array([1, 2, 3, 4], pa.int64())
    new = pa.table({"eid": eid, "sex": ["0", "0", "0", "0"]})
    prior = pa.table(
        {"eid": eid, OPS: _dates([[D(2015, 3, 1), D(2012, 1, 2)], [D(2012, 1, 2), D(2015, 3, 1)], [], []])}
    )
    cum = cumulative_risk(new, [prior])
    assert cum.alone.classes == 1 and cum.together.classes == 2  # the held dates split the one class in two
    assert cum.qis_together == ["sex", OPS]


def test_set_labels_parse_back_exactly():
    """Canonical set texts parse back to their sorted elements, on the fast path and through JSON alike."""
    from biowarden.privacy.hierarchy import parse_set_label, set_label

    cases = [[], ["a"], ["2015-03-14", "2012-01-02"], ['a","b', "c"], ["x\\y"], ['"'], ["", ""], [","], ["é"]]
    for elements in cases:
        assert parse_set_label(set_label(elements)) == sorted(elements)
    assert parse_set_label('["a", "b"]') == ["a", "b"]  # not canonical, still read right


CENTRES = ["11012", "11021", "11011", "11008", "11003", "11020", "11005", "11004"]  # regions not in code order
CODES = ["K40", "K401", "A1", "B12", "\u00c912", "K4", "A10"]  # texts of several widths, one escaped in JSON


def _random_sets(rng: np.random.Generator, n: int, kind: str) -> list:
    out: list = []
    for _ in range(n):
        r = rng.random()
        if r < 0.05:
            out.append(None)
        elif r < 0.12:
            out.append([])
        elif kind == "date":
            days = rng.integers(0, 8 * 365, rng.integers(1, 5))
            out.append([D(2008, 1, 1) + dt.timedelta(days=int(x)) for x in days])
        else:
            pool = CENTRES if kind == "centre" else CODES
            out.append([pool[int(x)] for x in rng.integers(0, len(pool), rng.integers(1, 4))])
    return out


def _reference_set_hierarchy(name: str, sets: list, element) -> Hierarchy:
    """Row by row in Python: one row per distinct set text (in text order), each level's label the sorted
    texts of the elements' labels; missing and empty sets stay as they are below the top."""
    texts = {("NULL" if s is None else set_label([str(e) for e in s])): s for s in sets}
    rows = []
    for text in sorted(texts):
        s = texts[text]
        row = [text]
        for lv in range(1, element.height - 1):
            if not s:
                row.append(text)
                continue
            labels = [element.labels[lv][element.codes[lv][element.index[str(e)]]] for e in s]
            row.append(set_label(labels))
        rows.append([*row, "*"])
    return Hierarchy(name, rows)


@pytest.mark.parametrize(
    ("kind", "spec"),
    [
        ("date", "date:month,quarter,year,5y,10y"),
        ("centre", "coding:ukb-centre-region"),
        ("code", "coding:opcs4-chapter"),
    ],
)
def test_column_wise_set_hierarchy_equals_the_row_by_row_one(kind, spec):
    """Built from the column (codes per level, labels rendered only when read) or from the set texts, the
    hierarchy has the rows, codes (numbered alike), leaves and labels of one built row by row in Python;
    the centre hierarchy's region labels are not in the codes' order, so sets are re-sorted per level; the
    codes' texts differ in width, so the rows are put in order by their texts, not their element codes."""
    from biowarden.privacy.data import set_codes
    from biowarden.privacy.hierarchy import build_set_hierarchy, set_hierarchy

    rng = np.random.default_rng({"date": 5, "centre": 6, "code": 7}[kind])
    sets = _random_sets(rng, 3000, kind)
    typ = pa.date32() if kind == "date" else pa.string()
    column = pa.chunked_array([pa.array(sets[:1000], pa.list_(typ)), pa.array(sets[1000:], pa.list_(typ))])
    texts = as_strings(column).to_pylist()
    element = build_hierarchy(OPS, spec, sorted({str(e) for s in sets if s for e in s}))
    want = _reference_set_hierarchy(OPS, sets, element)
    for got in (set_hierarchy(OPS, set_codes(column), spec), build_set_hierarchy(OPS, texts, spec)):
        assert got.height == want.height == element.height and got.domain_size == want.domain_size
        for lv in range(want.height):
            assert np.array_equal(got.codes[lv], want.codes[lv]), lv
            assert np.array_equal(got.leaves[lv], want.leaves[lv]), lv
        assert got.labels == want.labels and got.rows == want.rows and got.index == want.index
        assert got.is_functional()
    # the distinct sets in their texts' order (many sets here are prefixes of others)
    sets = set_codes(column)
    assert sets.texts().take(pa.array(sets.order())).to_pylist() == sorted(set(texts))
    # every record's row found by its canonical text, with Arrow or from a list
    h = set_hierarchy(OPS, set_codes(column), spec)
    assert h.encode(pa.array(texts)).tolist() == [want.index[t] for t in texts] == h.encode(texts).tolist()
    with pytest.raises(HierarchyError, match="missing from its hierarchy"):
        h.encode(['["1999-01-01"]'])


def test_set_codes_number_sets_as_their_texts_would_be():
    from biowarden.privacy.data import set_codes, set_strings

    rng = np.random.default_rng(9)
    sets = _random_sets(rng, 2000, "date")
    sets[7] = [None, D(2010, 1, 1)]  # a missing element renders as NULL inside the set
    typ = pa.list_(pa.date32())
    column = pa.chunked_array([pa.array(sets[:500], typ), pa.array(sets[500:], typ)])
    reference = ["NULL" if s is None else set_label(["NULL" if e is None else e.isoformat() for e in s]) for s in sets]
    assert set_strings(column).to_pylist() == reference
    sliced = column.combine_chunks().slice(3, 1200)
    assert set_strings(sliced).to_pylist() == reference[3:1203]
    sc = set_codes(column)
    first_seen: dict[str, int] = {}
    assert sc.codes.tolist() == [first_seen.setdefault(t, len(first_seen)) for t in reference]
    assert sc.texts().to_pylist() == list(first_seen)
    assert sc.elements == sorted(sc.elements) and sc.missing.sum() == 1
    as_large = pa.array(sets, pa.large_list(pa.date32()))
    assert set_strings(as_large).to_pylist() == reference


def test_released_classes_known_from_the_search_are_the_released_tables():
    """The gate measures the released table from the search's classes (the kept ones, the suppressed
    records as one): the same report as measuring the table; and where a kept class could read as the
    suppressed records, the search declines to tell."""
    from biowarden.privacy.risk import risk_of_classes

    t = _small(500, seed=13)
    qis = ["sex", "year", OPS]
    hier = _hierarchies(t)
    for k, suppression in ((2, 0.05), (5, 0.1), (3, 0.0), (4, 0.3)):
        res = anonymise(t, qis, hier, Criteria(k=k), suppression)
        sizes = res.released_class_sizes()
        assert sizes is not None and int(sizes.sum()) == t.num_rows
        assert risk_of_classes(sizes, qis).to_dict() == measure_risk(res.apply(t), qis).to_dict()
        assert risk_of_classes(sizes, qis, population=1e6).to_dict() == (
            measure_risk(res.apply(t), qis, population=1e6).to_dict()
        )
    # a value that is itself "*": suppressing the lone "a" merges it with the five "*" records
    v = pa.table({"v": ["*"] * 5 + ["a"]})
    res = anonymise(v, ["v"], {"v": flat_hierarchy("v", ["*", "a"])}, Criteria(k=5), 0.2)
    assert res.levels == [0] and res.suppressed == 1
    assert res.released_class_sizes() is None and measure_risk(res.apply(v), ["v"]).classes == 1


def test_release_gate_refusal_with_operation_dates_names_a_change():
    """A refusal's suggestion is searched (each quasi-identifier left out in turn) with the dates' encoding
    reused; when leaving none out helps, more participants."""
    from biowarden.cohort.synth import cohort_dictionary, synthesise_table
    from biowarden.release.pipeline import ReleaseDenied, RiskThreshold, risk_gate

    cohort, _ = synthesise_table(600, seed=3)
    table = cohort.select(["eid", "31-0.0", OPS])
    with pytest.raises(ReleaseDenied) as few:  # 600 participants never make classes of 1,000
        risk_gate(table, cohort_dictionary(), RiskThreshold(k=1000, max_risk=None, suppression=0.0))
    assert few.value.reason == "DENY_RISK" and "more participants" in few.value.suggestion
    assert OPS in few.value.detail
