"""The data plane on DuckDB (the default engine): scope, histogram, kernels, the writer, and bad input."""

from __future__ import annotations

import hashlib
import os
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from biowarden.engine import (
    EngineError,
    histogram,
    map_batches,
    open_engine,
    prf_u64,
    scope,
    source_schema,
    write_release,
)
from biowarden.keys import Prf
from tests.engine.util import KeyedRound, assert_same_table

KEY = bytes(range(32))


def sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_scope_selects_sorts_and_keeps_types(edge, edge_path, tmp_path):
    cols = ["41280-0", "54-0.0", "30690-0.0", "53-0.0", "41270-0", "31-0.0"]
    out = tmp_path / "scoped.parquet"
    report = scope(edge_path, cols, out)
    got = pq.read_table(out)
    expected = edge.select(["eid", *cols]).sort_by("eid")
    assert_same_table(got, expected)
    assert report.rows == edge.num_rows
    assert report.columns == ("eid", *cols)
    assert report.bytes == os.path.getsize(out) > 0
    assert report.seconds >= 0


def test_scope_participants_and_sources_agree(edge, edge_path, tmp_path):
    keep = edge.column("eid").to_numpy()[::3]
    from_file = tmp_path / "a.parquet"
    from_table = tmp_path / "b.parquet"
    r1 = scope(edge_path, ["50-0.0", "41280-0"], from_file, participants=pa.array(keep))
    r2 = scope(edge, ["50-0.0", "41280-0"], from_table, participants=set(keep.tolist()) | {42})
    assert r1.rows == r2.rows == len(keep)
    assert pq.read_table(from_file).column("eid").to_pylist() == sorted(keep.tolist())
    assert sha(from_file) == sha(from_table)  # same rows, same bytes, whatever the source


def test_scope_sorted_source_takes_the_streaming_path_with_same_bytes(edge, tmp_path):
    sorted_src = tmp_path / "sorted.parquet"
    shuffled_src = tmp_path / "shuffled.parquet"
    pq.write_table(edge.sort_by("eid"), sorted_src, row_group_size=50)
    pq.write_table(edge, shuffled_src, row_group_size=7)
    scope(sorted_src, ["34-0.0", "41270-0"], tmp_path / "x.parquet")
    scope(shuffled_src, ["34-0.0", "41270-0"], tmp_path / "y.parquet")
    assert sha(tmp_path / "x.parquet") == sha(tmp_path / "y.parquet")


def test_histogram_counts_sorted_nulls_first(edge, edge_path):
    h = histogram(edge_path, ["54-0.0", "31-0.0"])
    assert h.schema == pa.schema(
        [("54-0.0", pa.string()), ("31-0.0", pa.int8()), pa.field("n", pa.int64(), nullable=False)]
    )
    expected = Counter(zip(edge.column("54-0.0").to_pylist(), edge.column("31-0.0").to_pylist(), strict=True))
    got = {(a, b): n for a, b, n in zip(*(h.column(i).to_pylist() for i in range(3)), strict=True)}
    assert got == dict(expected)
    assert h.column("54-0.0")[0].as_py() is None
    keys = [(a is not None, a, b) for a, b in zip(h.column(0).to_pylist(), h.column(1).to_pylist(), strict=True)]
    assert keys == sorted(keys)
    assert h.column("n").to_numpy().sum() == edge.num_rows


def test_histogram_rejects_list_columns(edge_path):
    with pytest.raises(EngineError, match="41270-0"):
        histogram(edge_path, ["41270-0"])


def test_map_batches_runs_kernel_in_eid_order(edge, edge_path):
    kernel = KeyedRound(KEY, "50-0.0")
    out = pa.Table.from_batches(
        list(map_batches(edge_path, kernel, ["eid", "50-0.0"], KeyedRound.schema(pa.float64())))
    )
    ordered = edge.sort_by("eid")
    assert out.column("eid").to_pylist() == ordered.column("eid").to_pylist()
    expected_pid = Prf(KEY).u64(
        ordered.column("eid").to_numpy(), tweak=__import__("biowarden.keys").keys.label_u64("test/pseudonym")
    )
    assert np.array_equal(out.column("pid").to_numpy().view(np.uint64), expected_pid)
    assert out.column("rounded").to_pylist() == np.round(ordered.column("50-0.0").to_numpy()).tolist()


def test_map_batches_casts_to_out_schema_and_filters(edge, edge_path):
    keep = edge.column("eid").to_numpy()[:10]
    out = pa.Table.from_batches(
        list(
            map_batches(
                edge_path,
                KeyedRound(KEY, "30690-0.0"),
                ["eid", "30690-0.0"],
                KeyedRound.schema(pa.float64()),
                participants=keep,
            )
        )
    )
    assert out.schema.field("rounded").type == pa.float64()
    assert sorted(out.column("eid").to_pylist()) == out.column("eid").to_pylist() == sorted(keep.tolist())


def test_writer_is_independent_of_batch_boundaries(edge, tmp_path, monkeypatch):
    import biowarden.engine.writer as w

    monkeypatch.setattr(w, "ROW_GROUP_ROWS", 64)
    table = edge.sort_by("eid")
    write_release(table, tmp_path / "one.parquet")
    write_release(table.to_batches(max_chunksize=17), tmp_path / "many.parquet")
    write_release(iter(table.to_batches(max_chunksize=100)), tmp_path / "iter.parquet")
    assert sha(tmp_path / "one.parquet") == sha(tmp_path / "many.parquet") == sha(tmp_path / "iter.parquet")
    meta = pq.ParquetFile(tmp_path / "one.parquet").metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [64] * 6 + [16]
    assert_same_table(pq.read_table(tmp_path / "one.parquet"), table)


def test_writer_strips_source_metadata(edge, tmp_path):
    noisy = edge.replace_schema_metadata({"pandas": "{}", "source": "somewhere"})
    write_release(noisy, tmp_path / "a.parquet")
    write_release(edge, tmp_path / "b.parquet")
    assert sha(tmp_path / "a.parquet") == sha(tmp_path / "b.parquet")
    assert set(pq.read_schema(tmp_path / "a.parquet").metadata or {}) <= {b"ARROW:schema"}


def test_writer_csv_lists_and_nulls(edge, tmp_path):
    table = edge.sort_by("eid").select(["eid", "41270-0", "41280-0", "54-0.0"]).slice(0, 30)
    out = tmp_path / "r.csv"
    size = write_release(table, out, format="csv")
    text = out.read_text()
    assert size == len(text.encode())
    lines = text.splitlines()
    assert lines[0] == '"eid","41270-0","41280-0","54-0.0"'
    first = table.slice(0, 1).to_pylist()[0]
    diag = "|".join(first["41270-0"]) if first["41270-0"] is not None else ""
    assert lines[1].split(",")[1].strip('"') == diag
    write_release(table.to_batches(max_chunksize=4), tmp_path / "s.csv", format="csv")
    assert (tmp_path / "s.csv").read_bytes() == out.read_bytes()


def test_writer_is_atomic_on_failure(edge, tmp_path):
    out = tmp_path / "r.parquet"
    out.write_bytes(b"previous release")

    def broken():
        yield from edge.to_batches(max_chunksize=50)[:2]
        raise RuntimeError("engine died")

    with pytest.raises(RuntimeError):
        write_release(broken(), out)
    assert out.read_bytes() == b"previous release"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.parquet"]


def test_writer_bad_input(edge, tmp_path):
    with pytest.raises(EngineError, match="format"):
        write_release(edge, tmp_path / "x.xlsx", format="xlsx")
    with pytest.raises(EngineError, match="does not exist"):
        write_release(edge, tmp_path / "nowhere" / "x.parquet")
    with pytest.raises(EngineError, match="no schema"):
        write_release(iter([]), tmp_path / "x.parquet")
    empty = write_release(iter([]), tmp_path / "e.parquet", schema=edge.schema)
    assert empty > 0 and pq.read_table(tmp_path / "e.parquet").num_rows == 0


def test_unknown_columns_are_named(edge_path, tmp_path):
    with pytest.raises(EngineError, match=r"'999-0.0'.*'nope'"):
        scope(edge_path, ["50-0.0", "999-0.0", "nope"], tmp_path / "x.parquet")
    with pytest.raises(EngineError, match="nope"):
        histogram(edge_path, ["nope"])
    with pytest.raises(EngineError, match="nope"):
        list(map_batches(edge_path, KeyedRound(KEY, "50-0.0"), ["nope"], KeyedRound.schema(pa.float64())))
    assert not (tmp_path / "x.parquet").exists()


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(EngineError, match="no such Parquet file"):
        scope(tmp_path / "absent.parquet", ["a"], tmp_path / "x.parquet")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 this is not parquet at all")
    with pytest.raises(EngineError, match="not a readable Parquet file"):
        histogram(bad, ["a"])
    with pytest.raises(EngineError, match="folder"):
        source_schema(tmp_path)


def test_source_without_eid(tmp_path):
    path = tmp_path / "noeid.parquet"
    pq.write_table(pa.table({"a": [1, 2]}), path)
    with pytest.raises(EngineError, match="eid"):
        scope(path, ["a"], tmp_path / "x.parquet")
    assert histogram(path, ["a"]).column("n").to_pylist() == [1, 1]


def test_unknown_engine():
    with pytest.raises(EngineError, match="unknown engine 'postgres'"):
        open_engine("postgres")


def test_engine_handle_is_reusable(edge, edge_path, tmp_path):
    with open_engine("duckdb") as eng:
        a = histogram(edge_path, ["31-0.0"], engine=eng)
        b = histogram(edge, ["31-0.0"], engine=eng)
        scope(edge_path, ["31-0.0"], tmp_path / "x.parquet", engine=eng)
        assert eng.table(edge_path).count().execute() == edge.num_rows
    assert a.equals(b)


def test_prf_u64_threads_match_single_call():
    prf = Prf(KEY)
    x = np.arange(700_000, dtype=np.uint64) * np.uint64(7919)
    one = prf.u64(x, tweak=3)
    assert np.array_equal(prf_u64(prf, x, tweak=3, threads=2), one)
    assert np.array_equal(prf_u64(prf, x, tweak=3, threads=0), one)
    assert np.array_equal(prf_u64(prf, x[:10], tweak=3, threads=4), one[:10])
    assert not np.array_equal(prf_u64(prf, x, tweak=4, threads=2), one)
    with pytest.raises(ValueError):
        prf_u64(prf, x.reshape(2, -1))


def test_scope_on_synthetic_cohort(cohort_path, tmp_path):
    schema = source_schema(cohort_path)
    cols = [c for c in schema.names if c != "eid"][::3]
    report = scope(cohort_path, cols, tmp_path / "s.parquet")
    got = pq.read_table(tmp_path / "s.parquet")
    assert report.rows == got.num_rows == pq.read_metadata(cohort_path).num_rows
    assert got.schema.equals(pa.schema([schema.field(c) for c in ["eid", *cols]]))
    assert pc.all(pc.greater(got["eid"][1:], got["eid"][:-1])).as_py()


def test_prefetch_keeps_order_errors_and_early_stop():
    import threading

    from biowarden.engine.core import prefetch

    assert list(prefetch(iter(range(50)), depth=3)) == list(range(50))

    def failing():
        yield 1
        raise OSError("disk gone")

    got = []
    with pytest.raises(OSError, match="disk gone"):
        for item in prefetch(failing()):
            got.append(item)
    assert got == [1]

    produced = []

    def endless():
        i = 0
        while True:
            produced.append(i)
            yield i
            i += 1

    it = prefetch(endless(), depth=2)
    assert [next(it) for _ in range(3)] == [0, 1, 2]
    it.close()
    assert len(produced) <= 3 + 2 + 1
    assert not [t for t in threading.enumerate() if t.name == "biowarden-prefetch"]


@pytest.mark.parametrize("keep", [None, "every_third", "with_unknown"])
def test_read_columns_in_process_is_the_querys_table(edge, edge_path, keep):
    """The local engine reads whole columns with Arrow's Parquet reader; the table is the one DuckDB's
    ``SELECT ... ORDER BY eid`` gives (the stored rows are out of eid order)."""
    from biowarden.engine import read_columns
    from biowarden.engine.core import _EID_ORDER, _select

    cols = ["eid", "41280-0", "54-0.0", "30690-0.0", "189-0.0", "41270-0", "53-0.0"]
    eids = edge.column("eid").to_numpy()
    participants = {None: None, "every_third": eids[::3], "with_unknown": set(eids[::5].tolist()) | {7}}[keep]
    got = read_columns(edge_path, cols[1:], participants=participants)
    with open_engine("duckdb") as eng:
        schema = pa.schema([source_schema(edge_path).field(c) for c in cols])
        want = eng.to_arrow(_select(eng, edge_path, cols, participants).order_by(_EID_ORDER), schema)
    assert_same_table(got, want)
    assert got.column("eid").to_pylist() == sorted(got.column("eid").to_pylist())
    assert all(c.num_chunks == 1 for c in got.columns)


def test_read_columns_of_a_broken_file_is_a_clear_error(tmp_path):
    from biowarden.engine import read_columns

    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1" + b"\0" * 64 + b"PAR1")
    with pytest.raises(EngineError):
        read_columns(bad, ["50-0.0"])
