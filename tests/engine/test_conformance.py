"""DuckDB and Spark give identical results: scope (byte-identical files), histogram and a keyed kernel.

One SparkSession (the session-scoped ``spark`` fixture) serves the whole module; the runs on each cohort
happen once and every test compares their outputs.
"""

from __future__ import annotations

import hashlib

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from biowarden.engine import EngineError, histogram, map_batches, open_engine, scope, source_schema
from tests.engine.util import KeyedRound, assert_same_table, edge_table

pytestmark = pytest.mark.spark

KEY = bytes(range(1, 33))


def _run(eng, source, scope_cols, qi, kernel_col, out, keep):
    value_type = source_schema(source).field(kernel_col).type
    report = scope(source, scope_cols, out / f"scope-{eng.name}.parquet", engine=eng, participants=keep)
    return {
        "report": report,
        "scope": pq.read_table(out / f"scope-{eng.name}.parquet"),
        "sha": hashlib.sha256((out / f"scope-{eng.name}.parquet").read_bytes()).hexdigest(),
        "hist": histogram(source, qi, engine=eng),
        "kernel": pa.Table.from_batches(
            list(
                map_batches(
                    source, KeyedRound(KEY, kernel_col), ["eid", kernel_col], KeyedRound.schema(value_type), engine=eng
                )
            ),
            schema=KeyedRound.schema(value_type),
        ),
    }


@pytest.fixture(scope="module")
def runs(spark, tmp_path_factory):
    from biowarden.cohort.synth import synthesise_table

    out = tmp_path_factory.mktemp("conformance")
    edge = edge_table(300, seed=9)
    edge_path = out / "edge.parquet"
    pq.write_table(edge, edge_path, row_group_size=64)
    cohort, _ = synthesise_table(400, seed=3)
    cohort_path = out / "cohort.parquet"
    pq.write_table(cohort, cohort_path)
    cases = {
        "edge": (
            edge_path,
            ["41280-0", "54-0.0", "30690-0.0", "53-0.0", "41270-0", "31-0.0", "189-0.0"],
            ["54-0.0", "31-0.0", "34-0.0"],
            "30690-0.0",
            edge.column("eid").to_numpy()[::2],
        ),
        "synthetic": (
            cohort_path,
            [c for c in cohort.column_names if c != "eid"],
            ["31-0.0", "34-0.0", "52-0.0", "54-0.0"],
            "50-0.0",
            None,
        ),
    }
    results: dict[str, dict[str, dict]] = {}
    duck = open_engine("duckdb")
    sparkeng = open_engine("spark")
    for case, (src, cols, qi, kcol, keep) in cases.items():
        d = out / case / "duckdb"
        s = out / case / "spark"
        d.mkdir(parents=True)
        s.mkdir(parents=True)
        results[case] = {
            "duckdb": _run(duck, src, cols, qi, kcol, d, keep),
            "spark": _run(sparkeng, src, cols, qi, kcol, s, keep),
        }
    duck.close()
    sparkeng.close()
    return results


CASES = ["edge", "synthetic"]


@pytest.mark.parametrize("case", CASES)
def test_scope_files_are_byte_identical(runs, case):
    d, s = runs[case]["duckdb"], runs[case]["spark"]
    assert_same_table(d["scope"], s["scope"])
    assert d["sha"] == s["sha"]
    assert d["report"].rows == s["report"].rows > 0
    assert d["report"].bytes == s["report"].bytes


@pytest.mark.parametrize("case", CASES)
def test_histograms_are_identical(runs, case):
    d, s = runs[case]["duckdb"], runs[case]["spark"]
    assert_same_table(d["hist"], s["hist"])
    assert d["hist"].num_rows > 1


@pytest.mark.parametrize("case", CASES)
def test_kernel_outputs_are_identical(runs, case):
    d, s = runs[case]["duckdb"], runs[case]["spark"]
    assert_same_table(d["kernel"], s["kernel"])
    eids = d["kernel"].column("eid").to_pylist()
    assert eids == sorted(eids)


def test_spark_types_are_restored(runs):
    """Spark has no list-item names, reads int8 as ByteType etc.: the released schema is the source's."""
    scoped = runs["edge"]["spark"]["scope"]
    assert scoped.schema.field("41280-0").type == pa.list_(pa.field("element", pa.date32()))
    assert scoped.schema.field("30690-0.0").type == pa.float32()
    assert scoped.schema.field("31-0.0").type == pa.int8()


def test_spark_errors_are_clear(spark, tmp_path):
    eng = open_engine("spark")
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"eid": [1, 2], "a": pa.array([1, 2], pa.uint64())}), path)
    with pytest.raises(EngineError, match="unknown column"):
        histogram(path, ["b"], engine=eng)
    with pytest.raises(EngineError, match="cannot hold"):
        list(map_batches(path, _identity, ["eid"], pa.schema([("x", pa.uint64())]), engine=eng))
    with pytest.raises(EngineError, match=r"KeyError.*missing"):
        list(map_batches(path, _identity, ["eid"], pa.schema([("missing", pa.int64())]), engine=eng))


def _identity(batch: pa.RecordBatch) -> pa.RecordBatch:
    return batch
