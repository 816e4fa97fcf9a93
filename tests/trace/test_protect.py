"""Marking decided from the released data (not the schema), trace options, and the release pipeline's call."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from biowarden.trace.embed import MarkingPolicy, grid_problem
from biowarden.trace.protect import TraceOptions, TraceOptionsError, marking_policy, protect_release
from tests.registry.helpers import START

# the release pipeline's fixtures (a registry with approved applications, a cohort on disk, caps)
from tests.release.conftest import clock, cohort_file, keyring, policy, reg  # noqa: F401


def test_grid_problem_names_finer_and_coarser_columns():
    rng = np.random.default_rng(1)
    height = np.round(rng.normal(170, 10, 2000), 1)
    assert grid_problem(pa.array(height), 1) is None
    assert "more digits" in grid_problem(pa.array(height + 0.03), 1)
    assert "multiple of 10 units" in grid_problem(pa.array(np.round(height)), 1)  # whole cm at 0.1 cm
    bands = pa.array((rng.integers(8, 15, 2000) * 5).astype(np.int64))  # 5-year age bands as numbers
    assert "multiple of 5 units" in grid_problem(bands, 0)
    assert grid_problem(pa.array(rng.integers(90, 180, 2000)), 0) is None
    with_nulls = pa.array(np.round(height, 1), mask=rng.random(2000) < 0.3)
    assert grid_problem(with_nulls, 1) is None
    assert grid_problem(pa.array(np.zeros(50)), 2) == "every value is zero"
    assert grid_problem(pa.array([], type=pa.float64()), 1) is None


def test_release_marking_is_decided_on_the_released_values():
    rng = np.random.default_rng(2)
    n = 3000
    t = pa.table(
        {
            "eid": pa.array(np.arange(1_000_000, 1_000_000 + n)),
            "31-0.0": pa.array(rng.integers(0, 2, n)),  # sex: a QI the gate kept at level 0 (still numeric)
            "34-0.0": pa.array([f"{y}-{y + 4}" for y in rng.integers(1940, 1970, n) // 5 * 5]),  # banded QI
            "50-0.0": pa.array(np.round(rng.normal(170, 10, n), 1)),  # height at its precision: marked
            "21002-0.0": pa.array(np.round(rng.normal(80, 15, n))),  # weight rounded to whole kg: not marked
            "4080-0.0": pa.array((rng.integers(10, 20, n) * 10).astype(np.int64)),  # SBP in bands of 10
            "22182-0.0": pa.array(rng.integers(0, 3, n)),  # a genotype
        }
    )
    d = {
        "31-0.0": ("quasi", 0, "Integer"),
        "34-0.0": ("quasi", 0, "Integer"),
        "50-0.0": ("measure", 1, "Continuous"),
        "21002-0.0": ("measure", 1, "Continuous"),
        "4080-0.0": ("measure", 0, "Integer"),
        "22182-0.0": ("genetic", 0, "Integer"),
    }
    pol = marking_policy(t, d, generalised=["31-0.0", "34-0.0"])
    assert set(pol.columns) == {"50-0.0"}
    assert pol.skipped["31-0.0"] == "excluded by policy" and pol.skipped["34-0.0"] == "excluded by policy"
    assert "multiple of 10 units" in pol.skipped["21002-0.0"]
    assert "multiple of 10 units" in pol.skipped["4080-0.0"]
    assert pol.skipped["22182-0.0"] == "role genetic"
    # the schema alone would have marked the coarse columns
    assert {"21002-0.0", "4080-0.0"} <= set(MarkingPolicy.from_dictionary(d, t.schema.names, schema=t.schema).columns)
    prot = protect_release(t, d, 7, _keyring(), generalised=["31-0.0", "34-0.0"])
    for c in ("31-0.0", "34-0.0", "21002-0.0", "4080-0.0", "22182-0.0"):
        assert prot.table.column(c).equals(t.column(c)), c
    assert not prot.table.column("50-0.0").equals(t.column("50-0.0"))
    summary = prot.summary()
    assert summary["marked_columns"] == ["50-0.0"] and summary["canaries"]["enabled"] is False


def _keyring():
    from biowarden.keys import KeyRing

    return KeyRing(bytes.fromhex("5a" * 32))


def test_trace_options_file(tmp_path):
    assert TraceOptions.load(tmp_path) == TraceOptions()  # no file: canaries off
    (tmp_path / "trace.json").write_text(json.dumps({"canaries": True, "canary_pool": 32}))
    o = TraceOptions.load(tmp_path)
    assert o.canaries and o.canary_pool == 32 and o.fraction == 1.0
    for bad, msg in (
        ({"canaries": "yes"}, "true or false"),
        ({"canary_pool": 0}, "canary_pool"),
        ({"fraction": 1.5}, "fraction"),
        ({"canary": True}, "unknown trace option"),
    ):
        (tmp_path / "trace.json").write_text(json.dumps(bad))
        with pytest.raises(TraceOptionsError, match=msg):
            TraceOptions.load(tmp_path)
    (tmp_path / "trace.json").write_text("{not json")
    with pytest.raises(TraceOptionsError, match="not valid JSON"):
        TraceOptions.load(tmp_path)


def test_pipeline_leaves_coarse_measures_and_generalised_qis_unmarked(db, reg, keyring, cohort_file, policy, tmp_path):  # noqa: F811
    from biowarden.monitor.detectors import MonitorConfig
    from biowarden.release import PSEUDONYM_COLUMN, create_release
    from biowarden.trace.pseudonym import identify

    table, dictionary = pq.read_table(cohort_file[0]), cohort_file[1]
    # the custodian's copy of glucose was recorded to one decimal only, though the dictionary says three
    coarse = pa.array(np.round(np.asarray(table.column("30740-0.0").to_numpy(zero_copy_only=False)), 1))
    table = table.set_column(table.schema.names.index("30740-0.0"), "30740-0.0", coarse)
    path = tmp_path / "cohort.parquet"
    pq.write_table(table, path)
    m = create_release(
        db,
        keyring,
        tmp_path,
        application_id="A-0017",
        out_path=tmp_path / "out.parquet",
        cohort=(path, dictionary),
        egress_policy=policy,
        now=START,
        participants=table.column("eid").to_numpy()[:1200],
        monitor_config=MonitorConfig(cohort_size=3000, bulk_share=0.5),
    )
    marks = m.marks
    assert "30740-0.0" not in marks["marked_columns"]
    assert "multiple of 100 units" in marks["skipped"]["30740-0.0"]
    assert {"50-0.0", "21002-0.0", "30690-0.0"} <= set(marks["marked_columns"])
    for q in m.quasi_identifiers:
        assert q not in marks["marked_columns"] and marks["skipped"][q] in ("excluded by policy", "role quasi")
    assert marks["canaries"] == {"enabled": False, "pool": 0, "carried": 0}
    out = pq.read_table(tmp_path / "out.parquet")
    _app, eids, _ok = identify(out.column(PSEUDONYM_COLUMN).to_numpy(), keyring)
    pos = np.searchsorted(table.column("eid").to_numpy(), eids)
    for col, changed in (("30740-0.0", False), ("30690-0.0", True)):
        master = np.asarray(table.column(col).to_numpy(zero_copy_only=False))[pos]
        released = np.asarray(out.column(col).to_numpy(zero_copy_only=False))
        same = np.array_equal(np.nan_to_num(master, nan=-1), np.nan_to_num(released, nan=-1))
        assert same != changed, col


def test_pipeline_with_canaries_and_tracing_them(db, reg, keyring, cohort_file, policy, tmp_path):  # noqa: F811
    from biowarden.monitor.detectors import MonitorConfig
    from biowarden.release import PSEUDONYM_COLUMN, StoreCatalog, create_release
    from biowarden.trace import attacks, canary
    from biowarden.trace.accuse import trace_table
    from biowarden.trace.pseudonym import identify

    (tmp_path / "trace.json").write_text(json.dumps({"canaries": True}))
    master = pq.read_table(cohort_file[0])
    eids = master.column("eid").to_numpy()
    made = {}
    for app, part in (("A-0017", eids[:1400]), ("A-0020", eids[1400:2800])):
        made[app] = create_release(
            db,
            keyring,
            tmp_path,
            application_id=app,
            out_path=tmp_path / f"{app}.parquet",
            cohort=cohort_file,
            egress_policy=policy,
            now=START,
            participants=part,
            monitor_config=MonitorConfig(cohort_size=3000, bulk_share=0.5),
        )
    m = made["A-0017"]
    out = pq.read_table(tmp_path / "A-0017.parquet")
    apps, ids, ok = identify(out.column(PSEUDONYM_COLUMN).to_numpy(), keyring)
    is_c = canary.is_canary(ids)
    assert ok.all() and set(apps.tolist()) == {m.application_no}
    carried = int(is_c.sum())
    assert m.marks["canaries"] == {"enabled": True, "pool": canary.POOL_SIZE, "carried": carried}
    assert carried >= 3 and out.num_rows == 1400 + carried and m.rows == out.num_rows
    assert set(ids[is_c].tolist()) <= set(canary.assigned(keyring, m.application_no).tolist())
    # a canary's generalised QIs form a class real participants are in
    real = set(zip(*(out.column(q).filter(pa.array(~is_c)).to_pylist() for q in m.quasi_identifiers), strict=True))
    for combo in zip(*(out.column(q).filter(pa.array(is_c)).to_pylist() for q in m.quasi_identifiers), strict=True):
        assert combo in real
    # a bulk dump of that copy with the IDs stripped: the canaries it carried are found and all are its own
    leak = attacks.strip_ids(out, [PSEUDONYM_COLUMN])
    v = trace_table(leak, master, cohort_file[1], StoreCatalog(db), keyring, canary_pool=canary.POOL_SIZE)
    assert "canary" in v.layers_applied and [a.application for a in v.accused] == ["A-0017"]
    layer = v.accused[0].layers["canary"]
    assert layer["received"] == layer["canaries_found"] >= carried - 1
    assert layer["log10_p"] <= (carried - 1) * np.log10(0.5) + 1e-9
    assert {c["canary"] + canary.CANARY_EID_BASE for c in v.accused[0].evidence["canaries"]} <= set(ids[is_c].tolist())
    other = next(c for c in v.top_candidates if c["application"] == "A-0020")
    assert other["log10_p_value"] > -6
    # without the canary pool the tracer neither finds nor scores canaries
    plain = trace_table(leak, master, cohort_file[1], StoreCatalog(db), keyring)
    assert "canary" not in plain.layers_applied and [a.application for a in plain.accused] == ["A-0017"]
