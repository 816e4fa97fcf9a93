"""The synthetic cohort: determinism, schema and precision, and the correlations it promises."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from biowarden.cohort.derive import compute_derived
from biowarden.cohort.dictionary import arrow_type_fits, read_dictionary
from biowarden.cohort.fields import PARTICIPANT_COLUMN, Role, ValueType
from biowarden.cohort.synth import (
    CENTRES,
    GENERATOR_VERSION,
    SNPS,
    read_manifest,
    synthesise,
    synthesise_table,
)

N = 20_000


@pytest.fixture(scope="module")
def cohort():
    return synthesise_table(N, seed=7)


def col(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy(zero_copy_only=False)


def contains(lists: pa.ChunkedArray, code: str) -> np.ndarray:
    """Whether each row's list holds ``code``."""
    arr = lists.combine_chunks()
    parents = pc.list_parent_indices(arr).to_numpy()
    hit = pc.equal(pc.list_flatten(arr), code).to_numpy(zero_copy_only=False)
    out = np.zeros(len(arr), dtype=bool)
    out[parents[hit]] = True
    return out


def test_same_seed_same_table_and_different_seed_differs(cohort):
    table, _ = cohort
    again, _ = synthesise_table(N, seed=7)
    assert again.equals(table)
    other, _ = synthesise_table(N, seed=8)
    assert not other.column("50-0.0").equals(table.column("50-0.0"))


def test_chunk_size_does_not_change_output(tmp_path):
    a = synthesise(25_000, 3, tmp_path / "a", chunk_rows=10_000)
    b = synthesise(25_000, 3, tmp_path / "b", chunk_rows=50_000)
    ta, tb = pq.read_table(a.parquet), pq.read_table(b.parquet)
    assert ta.equals(tb)
    assert pq.ParquetFile(a.parquet).metadata.num_row_groups == 3
    mem, _ = synthesise_table(25_000, 3)
    assert mem.equals(ta)
    assert (tmp_path / "a" / "dictionary.tsv").read_bytes() == (tmp_path / "b" / "dictionary.tsv").read_bytes()
    assert read_manifest(tmp_path / "a") == {
        "generator": GENERATOR_VERSION,
        "participants": 25_000,
        "seed": 3,
        "columns": a.columns,
    }
    assert not [p for p in (tmp_path / "a").iterdir() if p.name.startswith(".")]  # no temp files left


def test_schema_matches_dictionary_and_precision(cohort):
    table, d = cohort
    assert table.column_names == [PARTICIPANT_COLUMN, *d.columns()]
    assert table.num_columns >= 100
    for name in d.columns():
        f = d.for_column(name)
        assert arrow_type_fits(f, table.schema.field(name).type), name
        if f.value_type is ValueType.CONTINUOUS and f.precision is not None:
            v = col(table, name).astype(np.float64)
            v = v[~np.isnan(v)]
            assert np.array_equal(v, np.round(v, f.precision)), name
    eid = col(table, PARTICIPANT_COLUMN)
    assert np.all(np.diff(eid) > 0)  # sorted and unique
    assert eid.min() >= 1_000_000 and eid.max() <= 5_999_999
    assert len(d.by_role(Role.GENETIC)) == len(SNPS) == 40


def test_demographics_are_plausible(cohort):
    table, _ = cohort
    yob, age = col(table, "34-0.0"), col(table, "21022-0.0")
    assert yob.min() >= 1934 and yob.max() <= 1971
    assert age.min() >= 37 and age.max() <= 74 and 54 < age.mean() < 60
    dates = col(table, "53-0.0").astype("datetime64[D]")
    assert dates.min() >= np.datetime64("2006-01-01") and dates.max() <= np.datetime64("2010-12-31")
    assert 0.40 < col(table, "31-0.0").mean() < 0.50  # share of men
    centres = col(table, "54-0.0")
    assert set(np.unique(centres)) <= {c[0] for c in CENTRES} and len(np.unique(centres)) >= 20
    recomputed = compute_derived(cohort[1].field(21022), {34: yob, 52: col(table, "52-0.0"), 53: dates})
    assert np.array_equal(recomputed, age)
    assert np.all(col(table, "20074-0.0") % 1000 == 0) and np.all(col(table, "20075-0.0") % 1000 == 0)
    british = (col(table, "21000-0.0") == 1001).mean()
    assert 0.8 < british < 0.95


def test_correlations_hold(cohort):
    table, _ = cohort
    male = col(table, "31-0.0") == 1
    height, weight, bmi = col(table, "50-0.0"), col(table, "21002-0.0"), col(table, "21001-0.0")
    assert height[male].mean() - height[~male].mean() > 10
    assert col(table, "47-0.0")[male].mean() > col(table, "47-0.0")[~male].mean() + 10
    # BMI is exactly weight / height^2 at its recorded precision
    assert np.array_equal(bmi, np.round(weight / (height / 100.0) ** 2, 4))
    assert 26 < bmi.mean() < 29
    age, sbp = col(table, "21022-0.0"), col(table, "4080-0.0")
    assert np.corrcoef(age, sbp)[0, 1] > 0.2
    assert sbp[age >= 65].mean() - sbp[age < 50].mean() > 10
    assert np.corrcoef(sbp, col(table, "4079-0.0"))[0, 1] > 0.4
    # Townsend follows the centre: Barts (inner London) more deprived than Reading and Oxford
    centre, town = col(table, "54-0.0"), col(table, "189-0.0")
    assert town[centre == 11012].mean() - town[np.isin(centre, [11007, 11002])].mean() > 3
    # diagnoses: rates rise with age; smokers get more lung disease; diabetics have high HbA1c
    dx = table.column("41270-0")
    n_dx = pc.list_value_length(dx).to_numpy()
    assert n_dx[age >= 65].mean() > 1.5 * n_dx[age < 50].mean()

    def has(code: str) -> np.ndarray:
        return contains(dx, code)

    smoking = col(table, "20116-0.0")
    copd = has("J449")
    assert copd[smoking == 2].mean() > 4 * copd[smoking == 0].mean()
    assert col(table, "30750-0.0")[has("E119")].mean() > col(table, "30750-0.0")[~has("E119")].mean() + 10
    assert not has("C61")[~male].any()
    # diagnosis dates parallel the codes and are ordered
    dates = table.column("41280-0")
    assert pc.list_value_length(dates).equals(pc.list_value_length(dx))
    flat = pc.list_flatten(dates).to_numpy().astype("datetime64[D]")
    assert flat.min() >= np.datetime64("1997-04-01") and flat.max() <= np.datetime64("2022-10-31")
    # cataract operations follow cataract diagnoses
    ops = table.column("41272-0")
    lens = contains(ops, "C751")
    assert lens[has("H269")].mean() > 0.5 > lens[~has("H269")].mean()


def test_genotypes_follow_hardy_weinberg(cohort):
    table, d = cohort
    white = np.isin(col(table, "21000-0.0"), [1001, 1002, 1003])
    for f in d.by_role(Role.GENETIC)[:10]:
        g = col(table, f.column())[white]
        assert set(np.unique(g)) <= {0, 1, 2}
        p = g.mean() / 2
        het = (g == 1).mean()
        assert abs(het - 2 * p * (1 - p)) < 0.02, f.name


def test_uniqueness_query_runs_on_parquet(tmp_path):
    rep = synthesise(5_000, 1, tmp_path / "c")
    d = read_dictionary(rep.dictionary)
    assert d.field(21001).derivation == "bmi"
    con = duckdb.connect()
    share = con.execute(
        f"""SELECT avg(CASE WHEN n = 1 THEN 1 ELSE 0 END) FROM (
            SELECT count(*) AS n FROM read_parquet('{rep.parquet}')
            GROUP BY "31-0.0", "34-0.0", "52-0.0", "54-0.0", "20074-0.0", "20075-0.0")"""
    ).fetchone()[0]
    assert share > 0.9  # sex, birth month and home km cell single nearly everyone out


def test_bad_arguments(tmp_path):
    for n, s in [(0, 1), (-5, 1), (10, -1), (6_000_000, 1)]:
        with pytest.raises(ValueError):
            synthesise(n, s, tmp_path / "x")
