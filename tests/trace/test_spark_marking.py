"""Marking on the Spark engine gives the same bytes as on DuckDB and in memory (dotted column names)."""

from __future__ import annotations

import hashlib
import pickle

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from biowarden.engine import map_batches, write_release
from biowarden.trace.embed import MarkingPolicy, MarkKernel, mark_release

pytestmark = pytest.mark.spark

COLUMNS = [
    "eid",
    "31-0.0",  # a quasi-identifier: never marked
    "50-0.0",  # height: marked, one decimal
    "21002-0.0",  # weight: marked
    "21001-0.0",  # BMI: recomputed from the marked height and weight
    "4080-0.0",  # systolic BP: an integer measure
    "30690-0.0",  # cholesterol: three decimals, some missing
    "30800-0.0",  # a measure mostly missing
    "41270-0",  # a list column (ICD-10 codes) travels untouched
]


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_marking_on_spark_matches_duckdb_byte_for_byte(spark, tmp_path, keyring):
    from biowarden.cohort.synth import synthesise_table

    table, dictionary = synthesise_table(1500, seed=21)
    cols = [c for c in COLUMNS if c in table.schema.names]
    assert "41270-0" in cols and "30800-0.0" in cols
    src = tmp_path / "cohort.parquet"
    # row groups, and so batches, of 200 rows: the engines cut the table differently
    pq.write_table(table.select(cols), src, row_group_size=200)
    policy = MarkingPolicy.from_dictionary(dictionary, cols, data=table)
    assert {"50-0.0", "21002-0.0", "4080-0.0", "30690-0.0"} <= set(policy.columns)
    kernel = pickle.loads(pickle.dumps(MarkKernel(policy, 42, keyring)))
    schema = pq.read_schema(src)
    out = {}
    for engine in ("duckdb", "spark"):
        marked = pa.Table.from_batches(list(map_batches(src, kernel, cols, schema, engine=engine)), schema=schema)
        path = tmp_path / f"marked-{engine}.parquet"
        write_release(marked, path, "parquet")
        out[engine] = (marked, path)
    duck, spark_ = out["duckdb"][0], out["spark"][0]
    assert spark_.equals(duck)
    assert _sha(out["spark"][1]) == _sha(out["duckdb"][1])
    # and both are the in-memory marking of the same rows
    ordered = table.select(cols).take(pc.sort_indices(table, sort_keys=[("eid", "ascending")]))
    ref, report = mark_release(ordered, policy, 42, keyring)
    assert duck.equals(ref.cast(schema))
    assert report.cells_changed > 1000 and not duck.column("50-0.0").equals(ordered.column("50-0.0"))
    assert duck.column("31-0.0").equals(ordered.column("31-0.0"))
