"""Mapping leaked columns to master columns and linking leaked rows to master participants."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from biowarden.cohort.fields import Field, Role, ValueType
from biowarden.trace.link import (
    LinkError,
    MasterIndex,
    erased_cells,
    link_rows,
    map_columns,
    map_columns_detailed,
)
from biowarden.trace.read import read_leak

# recorded decimals of the measures that carry marks in the test cohort
MEASURES = {
    "50-0.0": 1,
    "21002-0.0": 1,
    "4080-0.0": 0,
    "4079-0.0": 0,
    "102-0.0": 0,
    "46-0.0": 0,
    "47-0.0": 0,
    "30690-0.0": 3,
    "30760-0.0": 3,
    "30870-0.0": 3,
    "30740-0.0": 3,
    "189-0.0": 2,
}


def make_dictionary() -> list[Field]:
    """The test cohort's data dictionary (value types, roles and recorded precision)."""
    cat, integer, cont = ValueType.CATEGORICAL_SINGLE, ValueType.INTEGER, ValueType.CONTINUOUS
    fields = [
        Field(31, "Sex", cat, Role.QUASI),
        Field(34, "Year of birth", integer, Role.QUASI, precision=0),
        Field(52, "Month of birth", cat, Role.QUASI),
        Field(54, "UK Biobank assessment centre", cat, Role.QUASI),
        Field(53, "Date of attending assessment centre", ValueType.DATE, Role.QUASI),
        Field(20116, "Smoking status", cat, Role.MEASURE),
        Field(21001, "Body mass index (BMI)", cont, Role.MEASURE, precision=4, derived_from=(50, 21002)),
    ]
    names = {50: "Standing height", 21002: "Weight", 4080: "Systolic blood pressure", 4079: "Diastolic",
             102: "Pulse rate", 46: "Hand grip strength (left)", 47: "Hand grip strength (right)",
             30690: "Cholesterol", 30760: "HDL cholesterol", 30870: "Triglycerides", 30740: "Glucose",
             189: "Townsend deprivation index at recruitment"}  # fmt: skip
    for col, p in MEASURES.items():
        fid = int(col.split("-")[0])
        vt = integer if p == 0 else cont
        fields.append(Field(fid, names[fid], vt, Role.QUASI if fid == 189 else Role.MEASURE, precision=p))
    return fields


def make_master(n: int, seed: int = 7) -> pa.Table:
    """A small UK-Biobank-like cohort: quasi-identifiers, correlated measures, biochemistry with nulls."""
    rng = np.random.default_rng(seed)
    sex = rng.integers(0, 2, n)
    height = np.round(np.where(sex == 1, rng.normal(175.5, 7, n), rng.normal(162.5, 6.5, n)), 1)
    weight = np.round(np.clip(height - 100 + rng.normal(-5, 12, n), 35, 200), 1)
    grip_l = np.clip(np.round(np.where(sex == 1, 40, 25) + rng.normal(0, 8, n)), 0, 90)
    grip_r = np.clip(np.round(grip_l + rng.normal(1.5, 3.5, n)), 0, 90)

    def bio(mu: float, sd: float, nd: int) -> pa.Array:
        return pa.array(np.round(np.abs(rng.normal(mu, sd, n)), nd), mask=rng.random(n) < 0.05)

    def ints(mu: float, sd: float) -> pa.Array:
        return pa.array(np.round(rng.normal(mu, sd, n)).astype(np.int64))

    cols = {
        "eid": pa.array(1_000_000 + rng.permutation(n), pa.int64()),
        "31-0.0": pa.array(sex, pa.int64()),
        "34-0.0": pa.array(rng.integers(1937, 1971, n), pa.int64()),
        "52-0.0": pa.array(rng.integers(1, 13, n), pa.int64()),
        "54-0.0": pa.array(rng.choice(np.arange(11001, 11023), n), pa.int64()),
        "20116-0.0": pa.array(rng.choice([-3, 0, 1, 2], n, p=[0.01, 0.55, 0.34, 0.10]), pa.int64()),
        "50-0.0": pa.array(height),
        "21002-0.0": pa.array(weight),
        "21001-0.0": pa.array(np.round(weight / (height / 100) ** 2, 4)),
        "4080-0.0": ints(138, 19),
        "4079-0.0": ints(82, 10.5),
        "102-0.0": ints(69, 11.5),
        "46-0.0": pa.array(grip_l.astype(np.int64)),
        "47-0.0": pa.array(grip_r.astype(np.int64)),
        "30690-0.0": bio(5.7, 1.15, 3),
        "30760-0.0": bio(1.45, 0.38, 3),
        "30870-0.0": bio(1.75, 1.0, 3),
        "30740-0.0": bio(5.1, 1.2, 3),
        "189-0.0": pa.array(np.round(rng.normal(-1.3, 3.1, n), 2)),
    }
    visit = np.datetime64("2006-03-13") + rng.integers(0, 1600, n).astype("timedelta64[D]")
    cols["53-0.0"] = pa.array(visit, pa.date32())
    cols["41270-0"] = pa.array([["I10", "E11"][: int(k)] for k in rng.integers(0, 3, n)], pa.list_(pa.string()))
    return pa.table(cols)


def make_leak(
    master: pa.Table, n_rows: int, seed: int = 1, copy_seed: int | None = None, rows: np.ndarray | None = None
) -> tuple[pa.Table, np.ndarray]:
    """A marked copy's rows (each measure moved by one unit of its last digit half the time), IDs dropped."""
    rng = np.random.default_rng(seed)
    if rows is None:
        rows = rng.choice(master.num_rows, n_rows, replace=False)
    sub = master.take(pa.array(rows))
    mrng = np.random.default_rng(1000 + (seed if copy_seed is None else copy_seed))
    cols = {}
    for name in sub.column_names:
        if name in ("eid", "41270-0"):
            continue
        col = sub.column(name)
        if name in MEASURES:
            vals = col.to_numpy(zero_copy_only=False).astype(float)
            unit = 10.0 ** -MEASURES[name]
            step = mrng.choice([-1.0, 1.0], len(vals)) * (mrng.random(len(vals)) < 0.5) * unit
            new = pa.array(np.round(vals + step, MEASURES[name]), mask=np.isnan(vals))
            cols[name] = new.cast(pa.int64()) if pa.types.is_integer(col.type) else new
        else:
            cols[name] = col
    return pa.table(cols), sub.column("eid").to_numpy()


def with_column(t: pa.Table, name: str, values: np.ndarray | pa.Array) -> pa.Table:
    arr = values if isinstance(values, pa.Array) else pa.array(values, from_pandas=True)
    return t.set_column(t.column_names.index(name), name, arr)


def rounded(t: pa.Table, name: str, decimals: int) -> pa.Table:
    v = t.column(name).to_numpy(zero_copy_only=False).astype(float)
    return with_column(t, name, np.round(v, decimals))


@pytest.fixture(scope="module")
def master() -> pa.Table:
    return make_master(20_000)


@pytest.fixture(scope="module")
def index(master) -> MasterIndex:
    return MasterIndex(master)


def identity(leak: pa.Table) -> dict[str, str]:
    return {c: c for c in leak.column_names}


# ---------------------------------------------------------------------------------------------- linking


@pytest.mark.parametrize("with_dictionary", [True, False])
def test_link_marked_copy(index, with_dictionary):
    leak, truth = make_leak(index.master, 1000)
    assert leak.num_columns == 19
    idx = MasterIndex(index.master, make_dictionary()) if with_dictionary else index
    res = idx.link(leak, identity(leak))
    assert (res.eids == truth).mean() >= 0.99
    assert np.all((res.eids == truth) | (res.eids == -1))  # never a wrong participant
    if with_dictionary:  # categorical fields block exactly; integers and measures are distances
        assert set(res.blocking) == {"31-0.0", "52-0.0", "54-0.0", "20116-0.0"}
    else:  # without a dictionary: runs of consecutive integers are ordered quantities, not labels
        assert res.blocking == [] and len(res.numeric) == 19
    # marks (one unit of the last digit) are evidence, not erasures: only nulls are erased
    for name, erased in res.erased.items():
        nulls = leak.column(name).is_null().to_numpy(zero_copy_only=False)
        np.testing.assert_array_equal(erased, nulls, err_msg=name)
    assert res.precision["30690-0.0"] == 3 and res.precision["4080-0.0"] == 0
    assert np.all(res.distance[res.eids >= 0] < 0.2)


def test_link_rounded_noisy_and_dropped_columns(index):
    leak, truth = make_leak(index.master, 1000, seed=2)
    leak = leak.drop_columns(["52-0.0", "20116-0.0", "21001-0.0", "30870-0.0", "46-0.0"])
    for name in ("30690-0.0", "30760-0.0", "30740-0.0"):
        leak = rounded(leak, name, 1)  # 3 decimals -> 1
    leak = rounded(leak, "21002-0.0", 0)  # weight to whole kilograms
    rng = np.random.default_rng(5)
    noisy = leak.column("189-0.0").to_numpy() + rng.normal(0, 0.2, leak.num_rows)
    leak = with_column(leak, "189-0.0", noisy)
    res = link_rows(leak, index, identity(leak))
    assert (res.eids == truth).mean() >= 0.99
    assert np.mean((res.eids == truth) | (res.eids == -1)) >= 0.999
    for name in ("30690-0.0", "30760-0.0", "30740-0.0", "21002-0.0"):
        assert res.erased[name].all(), name  # every cell lost its last recorded digit(s)
        assert res.observed_decimals[name] < res.precision[name]
    assert not res.erased["50-0.0"].any()
    assert not res.erased["189-0.0"].any()  # noise is not detectable as rounding


def test_link_merged_copies_with_partial_rounding(index):
    master = index.master
    rng = np.random.default_rng(9)
    rows = rng.choice(master.num_rows, 1000, replace=False)
    a, ta = make_leak(master, 0, seed=3, copy_seed=1, rows=rows[:500])
    b, tb = make_leak(master, 0, seed=3, copy_seed=2, rows=rows[500:])
    b = rounded(b, "30690-0.0", 1)  # one institution rounded cholesterol, the other did not
    b = b.cast(a.schema)
    leak = pa.concat_tables([a, b])
    truth = np.concatenate([ta, tb])
    order = rng.permutation(leak.num_rows)
    leak, truth = leak.take(pa.array(order)), truth[order]
    res = index.link(leak, identity(leak))
    assert (res.eids == truth).mean() >= 0.99
    from_b = order >= 500
    chol = res.erased["30690-0.0"]
    nulls = leak.column("30690-0.0").is_null().to_numpy(zero_copy_only=False)
    assert chol[from_b].all()  # every rounded cell is an erasure
    # cells of the unrounded copy are erased only when null or ending in zeros (about 1 in 10)
    assert chol[~from_b & ~nulls].mean() < 0.15


def test_foreign_rows_and_ambiguous_rows_stay_unlinked(index):
    stranger = make_master(300, seed=99)  # people who are not in the master cohort
    leak, _ = make_leak(stranger, 300, seed=4)
    res = index.link(leak, identity(leak))
    assert res.n_linked <= 3
    # sex and birth year alone cannot single anyone out: the ratio test refuses the links
    leak2, truth2 = make_leak(index.master, 200, seed=6)
    leak2 = leak2.select(["31-0.0", "34-0.0", "50-0.0"])
    res2 = index.link(leak2, identity(leak2))
    assert res2.n_linked < 0.2 * leak2.num_rows
    assert np.all(res2.eids[res2.linked] == truth2[res2.linked])
    assert np.all(res2.rows[~res2.linked] == -1)
    # one more measure (weight) is enough to single nearly everyone out
    leak3 = make_leak(index.master, 200, seed=6)[0].select(["31-0.0", "34-0.0", "50-0.0", "21002-0.0"])
    res3 = index.link(leak3, identity(leak3))
    assert res3.n_linked >= 0.9 * leak3.num_rows
    assert np.all(res3.eids[res3.linked] == truth2[res3.linked])


def test_blanked_cells_are_retried_without_them(index):
    leak, truth = make_leak(index.master, 300, seed=8)
    h = leak.column("50-0.0").to_numpy().copy()
    h[::3] = np.nan  # the seller blanked every third height
    leak = with_column(leak, "50-0.0", h)
    c = leak.column("54-0.0").to_pylist()
    c[1::5] = [None] * len(c[1::5])
    leak = with_column(leak, "54-0.0", pa.array(c, pa.int64()))
    res = index.link(leak, identity(leak))
    assert (res.eids == truth).mean() >= 0.97
    assert res.erased["50-0.0"][::3].all()


def test_integers_rounded_to_tens_are_erasures():
    v = np.round(np.random.default_rng(1).normal(138, 19, 500), -1)
    erased, observed = erased_cells(v, 0)
    assert erased.all() and observed == -1
    full = np.round(np.random.default_rng(1).normal(138, 19, 500))
    erased, observed = erased_cells(full, 0)
    assert not erased.any() and observed == 0
    fives = np.round(np.random.default_rng(1).normal(138, 19, 500) / 5) * 5  # to the nearest 5 mmHg
    assert erased_cells(fives, 0)[0].all()
    halves = np.round(np.random.default_rng(2).normal(5.7, 1.1, 300) * 200) / 200  # 3 dp to steps of .005
    assert erased_cells(halves, 3)[0].all()


def test_link_errors(index):
    leak, _ = make_leak(index.master, 10)
    with pytest.raises(LinkError, match="not in the master"):
        index.link(leak, {"50-0.0": "999-0.0"})
    with pytest.raises(LinkError, match="not in the leak"):
        index.link(leak, {"nope": "50-0.0"})
    with pytest.raises(LinkError, match="no mapped column"):
        index.link(leak, {})


def test_link_rows_reuses_the_index_of_a_table(master):
    leak, truth = make_leak(master, 100, seed=12)
    r1 = link_rows(leak, master, identity(leak))
    r2 = link_rows(leak, master, identity(leak))
    np.testing.assert_array_equal(r1.eids, r2.eids)
    assert (r1.eids == truth).mean() >= 0.99


# ---------------------------------------------------------------------------------------------- mapping


def test_map_renamed_and_shuffled_headers(index):
    leak, _ = make_leak(index.master, 150, seed=21)
    names = leak.column_names
    perm = np.random.default_rng(2).permutation(len(names))
    renamed = pa.table({f"col{i}": leak.column(int(j)) for i, j in enumerate(perm)})
    cm = map_columns_detailed(renamed, index)
    want = {f"col{i}": names[int(j)] for i, j in enumerate(perm)}
    assert cm.mapping == want
    assert {m.method for m in cm.matches} == {"linkage"}
    # and the mapping links the rows
    res = index.link(renamed, cm.mapping)
    assert res.n_linked >= 0.98 * renamed.num_rows


def test_map_headerless_tsv_with_pseudonym_column(index, tmp_path):
    leak, truth = make_leak(index.master, 120, seed=22)
    leak = leak.drop_columns(["21001-0.0", "47-0.0"])
    pseudo = pa.array([f"P{x:09d}" for x in np.random.default_rng(3).integers(0, 10**9, leak.num_rows)])
    leak = leak.add_column(0, "pid", pseudo)
    leak = leak.append_column("row", pa.array(np.arange(leak.num_rows)))  # an exported row index
    path = tmp_path / "leak.tsv"
    pacsv.write_csv(leak, path, pacsv.WriteOptions(include_header=False, delimiter="\t"))
    read = read_leak(path)
    cm = map_columns_detailed(read, index)
    names = leak.column_names
    want = {f"column_{i + 1}": n for i, n in enumerate(names) if n not in ("pid", "row")}
    assert cm.mapping == want
    assert cm.identifier_like == ["column_1", f"column_{len(names)}"]
    res = link_rows(read, index, cm.mapping)
    assert (res.eids == truth).mean() >= 0.98


def test_map_by_field_names_and_ukb_header_styles(index):
    leak, _ = make_leak(index.master, 100, seed=23)
    leak = leak.select(["50-0.0", "21002-0.0", "4080-0.0", "31-0.0", "30690-0.0"])
    leak = leak.rename_columns(["Standing height (cm)", "f.21002.0.0", "p4080_i0_a0", "31", "chol"])

    class F:  # a duck-typed dictionary entry (the cohort's Field has these attributes)
        def __init__(self, fid: int, name: str) -> None:
            self.field_id, self.name, self.precision, self.value_type = fid, name, None, ""

    leak = leak.rename_columns([*leak.column_names[:1], "Weight | Instance 0", *leak.column_names[2:]])
    mapping = map_columns(leak, index.master, [F(50, "Standing height"), F(21002, "Weight")])
    assert mapping == {
        "Standing height (cm)": "50-0.0",
        "Weight | Instance 0": "21002-0.0",
        "p4080_i0_a0": "4080-0.0",
        "31": "31-0.0",
        "chol": "30690-0.0",
    }
    cm = map_columns_detailed(leak, index.master, [F(50, "Standing height")])
    methods = {m.leak: m.method for m in cm.matches}
    assert methods["Standing height (cm)"] == "dictionary" and methods["p4080_i0_a0"] == "header"


def test_map_without_refinement_uses_distributions(index):
    leak, _ = make_leak(index.master, 400, seed=24)
    leak = leak.select(["50-0.0", "4080-0.0", "30690-0.0", "54-0.0", "189-0.0"])
    renamed = leak.rename_columns(["a", "b", "c", "d", "e"])
    cm = map_columns_detailed(renamed, index, refine=False)
    assert cm.mapping == {"a": "50-0.0", "b": "4080-0.0", "c": "30690-0.0", "d": "54-0.0", "e": "189-0.0"}
    assert all(m.method == "values" for m in cm.matches)


def test_link_through_generalised_quasi_identifiers(index):
    """A release generalises quasi-identifiers into ranges; the ranges block like categories do."""
    leak, truth = make_leak(index.master, 500, seed=31)
    years = leak.column("34-0.0").to_numpy()
    bands = [f"[{y - y % 5}, {y - y % 5 + 5})" for y in years]
    visits = leak.column("53-0.0").to_numpy(zero_copy_only=False).astype("datetime64[D]")
    months = [str(v)[:7] for v in visits]
    centres = leak.column("54-0.0").to_pylist()
    centres = [None if i % 4 == 0 else c for i, c in enumerate(centres)]  # '*' reads as null
    leak = with_column(leak, "34-0.0", pa.array(bands))
    leak = with_column(leak, "53-0.0", pa.array(months))
    leak = with_column(leak, "54-0.0", pa.array(centres, pa.int64()))
    leak = leak.drop_columns(["52-0.0", "21001-0.0", "30690-0.0", "30760-0.0", "30870-0.0", "30740-0.0"])
    res = index.link(leak, identity(leak))
    assert "34-0.0" in res.blocking and "53-0.0" in res.blocking
    assert (res.eids == truth).mean() >= 0.98
    assert np.all(res.eids[res.linked] == truth[res.linked])
    assert res.erased["34-0.0"].all() and res.erased["53-0.0"].all()  # ranges carry no last digit
    # the same ranges without the measures: every band is one code, so rows stay ambiguous, not wrong
    few = leak.select(["31-0.0", "34-0.0", "53-0.0"])
    res2 = index.link(few, identity(few))
    assert np.all(res2.eids[res2.linked] == truth[res2.linked])


def test_map_generalised_columns_without_headers(index):
    leak, _ = make_leak(index.master, 300, seed=32)
    years = leak.column("34-0.0").to_numpy()
    visits = leak.column("53-0.0").to_numpy(zero_copy_only=False).astype("datetime64[D]")
    leak = with_column(leak, "34-0.0", pa.array([f"[{y - y % 5}, {y - y % 5 + 5})" for y in years]))
    leak = with_column(
        leak, "53-0.0", pa.array([str(v)[:4] + "-Q" + str((int(str(v)[5:7]) - 1) // 3 + 1) for v in visits])
    )
    names = leak.column_names
    renamed = leak.rename_columns([f"c{i}" for i in range(len(names))])
    cm = map_columns_detailed(renamed, index, refine=False)
    assert cm.mapping[f"c{names.index('34-0.0')}"] == "34-0.0"
    assert cm.mapping[f"c{names.index('53-0.0')}"] == "53-0.0"
    cm = map_columns_detailed(renamed, index)
    assert cm.mapping == {f"c{i}": n for i, n in enumerate(names)}


def test_end_to_end_trace_of_a_renamed_merged_leak(tmp_path):
    """Three marked copies merged, IDs stripped, columns renamed and shuffled, written headerless: the
    leak is read, mapped and linked here, and the accusation names the three applications."""
    from biowarden.keys import KeyRing
    from biowarden.trace import attacks, sim
    from biowarden.trace.accuse import trace_file

    keyring = KeyRing(bytes.fromhex("5a" * 32))
    dictionary = sim.dictionary(extra_measures=13)
    cohort = sim.toy_cohort(2000, seed=7, extra_measures=13)
    copies, records = sim.make_releases(cohort, range(1, 13), keyring, dictionary, participants=1600, seed=3)
    merged = attacks.merge([copies[a] for a in (2, 5, 11)], "interleave", seed=1)
    leak = attacks.subsample(merged, 150, seed=2)
    truth = leak.column("eid").to_numpy()
    leak = attacks.reorder_columns(attacks.rename_columns(attacks.strip_ids(leak)), seed=3)
    path = tmp_path / "listing.tsv"
    pacsv.write_csv(leak, path, pacsv.WriteOptions(include_header=False, delimiter="\t"))

    read = read_leak(path)
    cm = map_columns_detailed(read, cohort, dictionary)
    assert len(cm.mapping) == leak.num_columns
    res = link_rows(read, cohort, cm.mapping)
    assert (res.eids == truth).mean() >= 0.98
    verdict = trace_file(path, cohort, dictionary, records, keyring)
    assert {a.application for a in verdict.accused} == {"APP-2", "APP-5", "APP-11"}
    assert verdict.rows_linked >= 0.98 * 150


def test_misleading_headers_are_not_believed(index):
    leak, truth = make_leak(index.master, 300, seed=33)
    names = leak.column_names
    swapped = {"50-0.0": "30690-0.0", "30690-0.0": "50-0.0", "4080-0.0": "189-0.0", "189-0.0": "4080-0.0"}
    lying = leak.rename_columns([swapped.get(n, n) for n in names])
    cm = map_columns_detailed(lying, index)
    assert cm.mapping == {swapped.get(n, n): n for n in names}  # each column back to its true field
    assert sum("values disagree" in note for note in cm.notes) == 4
    res = index.link(lying, cm.mapping)
    assert (res.eids == truth).mean() >= 0.99


def test_swapped_look_alike_headers_are_caught_by_linkage(index):
    leak, _ = make_leak(index.master, 300, seed=34)
    names = leak.column_names
    swap = {"46-0.0": "47-0.0", "47-0.0": "46-0.0"}  # left and right grip: same distribution
    lying = leak.rename_columns([swap.get(n, n) for n in names])
    cm = map_columns_detailed(lying, index)
    assert cm.mapping["46-0.0"] == "47-0.0" and cm.mapping["47-0.0"] == "46-0.0"
    assert cm.mapping == {swap.get(n, n): n for n in names}
    assert "disagrees with the linked rows" in " ".join(cm.notes)


def test_link_rows_reuses_the_index_map_columns_built(master):
    leak, truth = make_leak(master, 200, seed=35)
    dictionary = make_dictionary()
    mapping = map_columns(leak, master, dictionary)
    res = link_rows(leak, master, mapping)  # no dictionary here: the mapping's index is reused
    assert "31-0.0" in res.blocking  # categorical by the dictionary, so it blocks
    assert (res.eids == truth).mean() >= 0.99
