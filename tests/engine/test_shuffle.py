"""sort_by_key: rows in key order from any arrival order, in buckets, with clear errors and no leftovers."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from biowarden.engine import EngineError, scan_batches, sort_by_key
from tests.engine.util import edge_table


def _rows(t: pa.Table) -> list[str]:
    """The rows as text (NaN compares equal to NaN)."""
    return [repr(r) for r in t.to_pylist()]


def _batches(table: pa.Table, sizes: list[int]) -> list[pa.RecordBatch]:
    out, start = [], 0
    for n in sizes:
        out.extend(table.slice(start, n).to_batches())
        start += n
    out.extend(table.slice(start).to_batches())
    return [b for b in out if b.num_rows]


@pytest.mark.parametrize("bucket", [1, 7, 64, 1000])
def test_rows_come_out_in_key_order_whatever_the_batching(bucket, tmp_path):
    t = edge_table(300, seed=11)
    rng = np.random.default_rng(3)
    keys = rng.choice(np.arange(10**12, 10**12 + 10**6), size=t.num_rows, replace=False).astype(np.int64)
    t = t.append_column("key", pa.array(keys, pa.int64()))
    expected = t.take(pa.array(np.argsort(keys)))
    for sizes in ([300], [1, 2, 3, 50, 100], [17] * 20):
        got = list(sort_by_key(iter(_batches(t, sizes)), "key", keys, t.schema, bucket, tmpdir=tmp_path))
        assert all(b.num_rows == bucket for b in got[:-1]) and 0 < got[-1].num_rows <= bucket
        assert _rows(pa.Table.from_batches(got, schema=t.schema)) == _rows(expected)
        assert list(tmp_path.iterdir()) == []  # the spill folder is gone


def test_unknown_missing_or_repeated_keys_are_errors(tmp_path):
    t = pa.table({"key": pa.array([5, 3, 9], pa.int64()), "v": [1.0, 2.0, 3.0]})
    with pytest.raises(EngineError, match="not among the expected keys"):
        list(sort_by_key(iter(t.to_batches()), "key", np.array([3, 5, 8]), t.schema, 2, tmpdir=tmp_path))
    with pytest.raises(EngineError, match="missing or repeated"):
        list(sort_by_key(iter(t.to_batches()), "key", np.array([3, 5, 9, 11]), t.schema, 2, tmpdir=tmp_path))
    with pytest.raises(EngineError, match="not distinct"):
        list(sort_by_key(iter(t.to_batches()), "key", np.array([3, 5, 5]), t.schema, 2, tmpdir=tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_a_failing_source_leaves_no_spill(tmp_path):
    t = pa.table({"key": pa.array(np.arange(100), pa.int64())})

    def source():
        yield from t.slice(0, 50).to_batches()
        raise RuntimeError("engine went away")

    with pytest.raises(RuntimeError):
        list(sort_by_key(source(), "key", np.arange(100), t.schema, 16, tmpdir=tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_scan_batches_gives_every_requested_row_once(tmp_path):
    import pyarrow.parquet as pq

    t = edge_table(400, seed=2)
    path = tmp_path / "edge.parquet"
    pq.write_table(t, path, row_group_size=50)
    keep = t.column("eid").to_numpy()[::3]
    got = pa.Table.from_batches(list(scan_batches(path, ["30690-0.0", "54-0.0"], participants=keep, chunk_rows=64)))
    assert got.column_names == ["eid", "30690-0.0", "54-0.0"]
    assert sorted(got.column("eid").to_pylist()) == sorted(keep.tolist())
    assert got.schema.field("30690-0.0").type == t.schema.field("30690-0.0").type
