"""Linkage-attack simulation: interval semantics, exact outcomes, blocking vs brute force, registers."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from biowarden.privacy.linkage import (
    Match,
    _parse_date_label,
    _parse_number_label,
    birthdate_operation_matches,
    link,
    register_matches,
)
from biowarden.privacy.register import coarsen_release, synthetic_register

D = dt.date


def small_cohort(n: int, seed: int) -> pa.Table:
    """A cohort-like table with the showcase's column names (eid, sex, birth, centre, area, operations)."""
    rng = np.random.default_rng(seed)
    eid = np.sort(rng.choice(np.arange(1_000_000, 6_000_000), n, replace=False))
    sex = rng.integers(0, 2, n)
    year = rng.integers(1936, 1971, n)
    month = rng.integers(1, 13, n)
    centre = rng.choice([11001, 11002, 11003, 11004, 11005, 11006], n)
    east = (rng.integers(300, 500, n) * 1000).astype(np.int32)
    north = (rng.integers(200, 600, n) * 1000).astype(np.int32)
    townsend = np.round(rng.normal(-1.5, 3.0, n), 2)
    n_ops = rng.poisson(0.8, n)
    offsets = np.concatenate([[0], np.cumsum(n_ops)]).astype(np.int32)
    total = int(offsets[-1])
    op_days = rng.integers((D(1995, 1, 1) - D(1970, 1, 1)).days, (D(2022, 1, 1) - D(1970, 1, 1)).days, total)
    codes = rng.choice(["C751", "W401", "H229", "K401", "M651"], total)
    return pa.table(
        {
            "eid": pa.array(eid, pa.int64()),
            "31-0.0": pa.array(sex, pa.int32()),
            "34-0.0": pa.array(year, pa.int32()),
            "52-0.0": pa.array(month, pa.int32()),
            "54-0.0": pa.array(centre, pa.int32()),
            "189-0.0": pa.array(townsend),
            "20074-0.0": pa.array(east),
            "20075-0.0": pa.array(north),
            "41272-0": pa.ListArray.from_arrays(pa.array(offsets), pa.array(codes)),
            "41282-0": pa.ListArray.from_arrays(
                pa.array(offsets), pa.array(op_days.astype(np.int32)).cast(pa.date32())
            ),
        }
    )


def test_labels_read_as_intervals():
    assert _parse_number_label("1950-1954") == (1950, 1954)
    lo, hi = _parse_number_label("[1950, 1955)")
    assert lo == 1950 and 1954.99 < hi < 1955
    assert _parse_number_label("[-2, -1[")[0] == -2 and _parse_number_label("[-2, -1[")[1] < -1
    assert _parse_number_label("<1940")[1] < 1940 and _parse_number_label(">=70") == (70, np.inf)
    assert _parse_number_label("*") == (-np.inf, np.inf) == _parse_number_label("NULL")
    assert _parse_number_label("Q2") == (4, 6)
    assert _parse_number_label("Q5") is None and _parse_number_label("Leeds") is None
    day = lambda d: float((d - D(1970, 1, 1)).days)  # noqa: E731
    assert _parse_date_label("2015-03-14") == (day(D(2015, 3, 14)),) * 2
    assert _parse_date_label("2015-02") == (day(D(2015, 2, 1)), day(D(2015, 2, 28)))
    assert _parse_date_label("2015-Q4") == (day(D(2015, 10, 1)), day(D(2015, 12, 31)))
    assert _parse_date_label("1950-1954") == (day(D(1950, 1, 1)), day(D(1954, 12, 31)))
    assert _parse_date_label("2015-13") is None


def _release() -> pa.Table:
    dates = [[D(2015, 3, 14)], [D(2015, 3, 20), D(2001, 1, 1)], [], [D(2015, 3, 15)], None, [D(2010, 6, 1)]]
    return pa.table(
        {
            "eid": pa.array([1, 2, 3, 4, 5, 6], pa.int64()),
            "31-0.0": pa.array([1, 1, 0, 0, 1, 1], pa.int32()),
            "34-0.0": pa.array([1950, 1950, 1950, 1962, 1950, 1971], pa.int32()),
            "52-0.0": pa.array([3, 3, 3, 7, 3, 12], pa.int32()),
            "41282-0": pa.array(dates, pa.list_(pa.date32())),
        }
    )


def test_exact_outcomes_on_a_hand_made_release():
    release = _release()
    register = pa.table(
        {
            "name": ["Ann Smith", "Bob Jones", "Cy Hall", "Di Ward", "Ed Bell", "Flo Khan"],
            "true_eid": pa.array([1, 2, -1, 4, 6, 3], pa.int64()),
            "31-0.0": pa.array([1, 1, 1, 0, 1, 0], pa.int32()),
            "34-0.0": pa.array([1950, 1950, 1950, 1962, 1971, 1950], pa.int32()),
            "52-0.0": pa.array([3, 3, 3, None, 12, 3], pa.int32()),
            "operation_date": pa.array(
                [D(2015, 3, 16), D(2015, 3, 21), D(2001, 1, 2), D(2015, 3, 12), D(2010, 7, 1), D(2015, 3, 14)],
                pa.date32(),
            ),
        }
    )
    res = link(register, release, birthdate_operation_matches(tolerance_days=3))
    # Ann: row 2's operation (20 Mar) is 4 days off and row 5 has no operation list: only row 1 is left
    assert res.candidates.tolist() == [1, 1, 1, 1, 0, 0]
    assert res.matched.tolist() == [0, 1, 1, 3, -1, -1]
    # Cy is not a participant but shares row 2's birth and an operation date: a wrong re-identification
    assert res.true_in.tolist() == [True, True, False, True, False, False]
    assert res.in_release.tolist() == [True, True, False, True, True, True]
    d = res.to_dict()
    assert (d["correct"], d["wrong"], d["ambiguous"], d["no_match"]) == (3, 1, 0, 2)
    assert d["precision"] == pytest.approx(0.75) and d["recall"] == pytest.approx(3 / 5)
    assert res.names[0] == "Ann Smith"
    # without the operation the same people are ambiguous (sex + birth year + month only)
    res2 = link(register, release, birthdate_operation_matches()[:3])
    assert res2.candidates.tolist() == [3, 3, 3, 1, 1, 1]
    assert res2.guess_expected_correct == pytest.approx(1 / 3 + 1 / 3 + 1 + 1 + 1)


def test_generalised_release_is_matched_through_its_intervals():
    release = coarsen_release(_release(), year_band=5, operation_dates="month")
    assert release.column("34-0.0").to_pylist()[:4] == ["1950-1954", "1950-1954", "1950-1954", "1960-1964"]
    assert release.column("41282-0").to_pylist()[1] == ["2015-03", "2001-01"]
    register = pa.table(
        {
            "true_eid": pa.array([1, 4], pa.int64()),
            "31-0.0": pa.array([1, 0], pa.int32()),
            "34-0.0": pa.array([1952, 1962], pa.int32()),
            "52-0.0": pa.array([3, 7], pa.int32()),
            "operation_date": pa.array([D(2015, 3, 14), D(2015, 3, 15)], pa.date32()),
        }
    )
    res = link(register, release, birthdate_operation_matches())
    # person 1: rows 1 and 2 both had an operation in March 2015 and are men born 1950-1954
    assert res.candidates.tolist() == [2, 1]
    assert res.correct == 1 and res.ambiguous == 1
    # groups: a release whose months are labelled by season
    rel = _release().set_column(3, "52-0.0", pa.array(["spring", "spring", "spring", "summer", "*", "autumn"]))
    groups = {"spring": (3, 4, 5), "summer": (6, 7, 8), "autumn": (9, 10, 11)}
    res3 = link(register, rel, [Match("31-0.0", "31-0.0"), Match("52-0.0", "52-0.0", groups=groups)])
    assert res3.candidates.tolist() == [3, 1]


def test_categories_and_wildcards():
    release = pa.table({"eid": pa.array([1, 2, 3], pa.int64()), "centre": ["Leeds", "*", "Bristol"]})
    register = pa.table({"true_eid": pa.array([1, 3], pa.int64()), "centre": ["Leeds", "Glasgow"]})
    res = link(register, release, register_matches(["centre"]))
    assert res.candidates.tolist() == [2, 1]
    assert res.true_in.tolist() == [True, False]


def _brute_force(register: pa.Table, release: pa.Table) -> np.ndarray:
    reg = register.to_pylist()
    rel = release.to_pylist()
    out = []
    for p in reg:
        k = 0
        for row in rel:
            ok = p["31-0.0"] == row["31-0.0"]
            band = row["34-0.0"]
            if band != "*":
                lo, hi = (int(x) for x in band.split("-"))
                ok &= lo <= p["34-0.0"] <= hi
            if row["189-0.0"] is not None and p["189-0.0"] is not None:
                ok &= abs(row["189-0.0"] - p["189-0.0"]) <= 0.5 + 1e-9
            ok &= any(abs((d - p["operation_date"]).days) <= 3 for d in (row["41282-0"] or []))
            k += bool(ok)
        out.append(k)
    return np.array(out)


def test_blocked_linking_equals_brute_force():
    cohort = small_cohort(1500, seed=4)
    rng = np.random.default_rng(9)
    years = cohort.column("34-0.0").to_numpy()
    bands = [("*" if rng.random() < 0.05 else f"{y - y % 5}-{y - y % 5 + 4}") for y in years]
    town = cohort.column("189-0.0").to_pylist()
    town = [None if rng.random() < 0.05 else t for t in town]
    release = cohort.set_column(2, "34-0.0", pa.array(bands)).set_column(5, "189-0.0", pa.array(town))
    register = synthetic_register(cohort, 150, seed=2, knowledge="news", operation_noise_days=2)
    register = register.append_column("189-0.0", cohort.take(pa.array(np.arange(150))).column("189-0.0"))
    matches = [
        Match("31-0.0", "31-0.0"),
        Match("34-0.0", "34-0.0"),
        Match("189-0.0", "189-0.0", tolerance=0.5),
        Match("operation_date", "41282-0", tolerance=3),
    ]
    res = link(register, release, matches)
    assert res.signatures > 64  # the blocking index is in use
    np.testing.assert_array_equal(res.candidates, _brute_force(register, release))


def test_attacks_on_raw_and_coarsened_cohort():
    cohort = small_cohort(20_000, seed=1)
    outsiders = small_cohort(5_000, seed=2)
    electoral = synthetic_register(cohort, 400, seed=3, outsiders=outsiders, outsider_share=0.25)
    assert electoral.num_rows == 400 and int((electoral.column("true_eid").to_numpy() < 0).sum()) == 100
    assert set(electoral.column_names) >= {"name", "true_eid", "31-0.0", "20074-0.0"}
    on = ["31-0.0", "34-0.0", "52-0.0", "20074-0.0", "20075-0.0"]
    raw = link(electoral, cohort, register_matches(on))
    assert raw.correct >= 0.9 * raw.in_release.sum()
    assert raw.correct + raw.wrong + raw.ambiguous + raw.no_match == 400
    # every participant's own row is compatible with what the register truly knows
    assert raw.true_in[raw.in_release].all()
    coarse = coarsen_release(cohort)
    kept = [m for m in register_matches(on) if m.release in coarse.column_names]
    gen = link(electoral, coarse, kept)
    assert gen.correct < 0.05 * raw.correct
    assert gen.true_in[gen.in_release].all()

    news = synthetic_register(cohort, 300, seed=5, knowledge="news", operation_noise_days=2)
    assert news.column("operation_date").null_count == 0
    raw_news = link(news, cohort, birthdate_operation_matches(tolerance_days=2))
    assert raw_news.true_in.all() and raw_news.correct > 250
    band = synthetic_register(cohort, 300, seed=5, knowledge="news", birth="band")
    assert band.column("52-0.0").null_count == 300
    band_res = link(band, cohort, birthdate_operation_matches(tolerance_days=0))
    assert band_res.true_in.all() and band_res.correct < raw_news.correct
    gen_news = link(news, coarsen_release(cohort), birthdate_operation_matches(tolerance_days=2))
    assert gen_news.true_in.all() and gen_news.correct < raw_news.correct
    # deterministic
    again = synthetic_register(cohort, 300, seed=5, knowledge="news", operation_noise_days=2)
    assert again.equals(news)


def test_bad_input_is_named():
    release = _release()
    register = pa.table({"true_eid": pa.array([1], pa.int64()), "31-0.0": pa.array([1], pa.int32())})
    with pytest.raises(ValueError, match=r"register has no column '34-0\.0'"):
        link(register, release, register_matches(["31-0.0", "34-0.0"]))
    with pytest.raises(ValueError, match="no attributes"):
        link(register, release, [])
    odd = release.set_column(2, "34-0.0", pa.array(["1950-1954", "x", "*", "1960-1964", "*", "*"]))
    reg = register.append_column("34-0.0", pa.array([1950], pa.int32()))
    res = link(reg, odd, register_matches(["34-0.0"]))  # an unreadable label makes it a category column
    assert res.candidates.tolist() == [3]
    named = register.append_column("name", pa.array(["Ann Smith"]))
    with pytest.raises(ValueError, match="truth column 'name' must hold integer"):
        link(named, release, register_matches(["31-0.0"]), register_truth="name")
    with pytest.raises(ValueError, match="expected 6"):
        link(register, release, register_matches(["31-0.0"]), release_truth=np.arange(3))
    with pytest.raises(ValueError, match="news register needs column"):
        synthetic_register(release.drop_columns(["41282-0"]), 2, knowledge="news")
