"""Put a stream of Arrow batches into the order of an int64 key, in bounded memory.

A release leaves in pseudonym order (row position must say nothing about the master eid), but rows are
produced in whatever order the engine scans them. The full set of keys is known before the rows arrive
(one pseudonym per participant), so the sort is a single bucket pass: the key's rank fixes the bucket,
``rows_per_bucket`` rows each (the writer's row-group size), and every bucket is spilled to its own
uncompressed Arrow IPC file as its rows arrive. Afterwards each bucket is read back, sorted by key and
yielded as one batch. Peak memory is about two buckets (the read and the sorted copy) plus one input
batch, whatever the number of rows; disk use is the rows once, in a temporary folder removed at the end.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from biowarden.engine.errors import EngineError


def sort_by_key(
    batches: Iterable[pa.RecordBatch],
    key: str,
    keys: np.ndarray,
    schema: pa.Schema,
    rows_per_bucket: int,
    tmpdir: str | Path | None = None,
) -> Iterator[pa.RecordBatch]:
    """Yield the rows of ``batches`` in ascending ``key`` order, one batch of ``rows_per_bucket`` rows at a
    time (the last may be shorter). ``keys`` is every key the rows carry, each exactly once; the batches
    must match ``schema`` (``key`` one of its int64 columns). An unknown or repeated key is an error."""
    keys = np.asarray(keys, dtype=np.int64)
    if keys.size == 0:
        return
    if rows_per_bucket < 1:
        raise EngineError("rows_per_bucket must be at least 1")
    ordered = np.sort(keys, kind="stable")
    if ordered.size > 1 and not (ordered[1:] > ordered[:-1]).all():
        raise EngineError(f"the {key!r} keys are not distinct")
    if key not in schema.names or not pa.types.is_int64(schema.field(key).type):
        raise EngineError(f"the sort key {key!r} must be an int64 column of the rows")
    buckets = (ordered.size + rows_per_bucket - 1) // rows_per_bucket
    folder = Path(tempfile.mkdtemp(prefix="biowarden-sort-", dir=tmpdir))
    try:
        writers: list[pa.ipc.RecordBatchStreamWriter | None] = [None] * buckets
        sinks: list = [None] * buckets
        counts = np.zeros(buckets, dtype=np.int64)
        options = pa.ipc.IpcWriteOptions(compression=None)
        try:
            for b in batches:
                if b.num_rows == 0:
                    continue
                if not b.schema.equals(schema):
                    raise EngineError("a batch does not match the schema of the rows being sorted")
                k = b.column(key).to_numpy(zero_copy_only=False)
                rank = np.searchsorted(ordered, k)
                if (rank >= ordered.size).any() or (ordered[np.minimum(rank, ordered.size - 1)] != k).any():
                    raise EngineError(f"a row carries a {key!r} that is not among the expected keys")
                bucket = rank // rows_per_bucket
                grouped = b.take(pa.array(np.argsort(rank)))  # runs in key order: the final take reads them in order
                sizes = np.bincount(bucket, minlength=buckets)
                start = 0
                for i in np.flatnonzero(sizes):
                    part = grouped.slice(start, int(sizes[i]))
                    start += int(sizes[i])
                    if writers[i] is None:
                        sinks[i] = pa.OSFile(str(folder / f"{i}.arrows"), "wb")
                        writers[i] = pa.ipc.new_stream(sinks[i], schema, options=options)
                    writers[i].write_batch(part)
                    counts[i] += part.num_rows
        finally:
            for w, s in zip(writers, sinks, strict=True):
                if w is not None:
                    with contextlib.suppress(Exception):
                        w.close()
                if s is not None:
                    with contextlib.suppress(Exception):
                        s.close()
        expected = np.full(buckets, rows_per_bucket, dtype=np.int64)
        expected[-1] = ordered.size - rows_per_bucket * (buckets - 1)
        if not np.array_equal(counts, expected):
            raise EngineError(
                f"{int(counts.sum())} rows arrived for {ordered.size} keys (a key is missing or repeated)"
            )
        for i in range(buckets):
            path = folder / f"{i}.arrows"
            with pa.OSFile(str(path), "rb") as src:
                table = pa.ipc.open_stream(src).read_all().combine_chunks()
            path.unlink()
            k = table.column(key).to_numpy()
            order = np.argsort(k, kind="stable")
            if k.size > 1 and not (k[order][1:] > k[order][:-1]).all():
                raise EngineError(f"a {key!r} key is repeated")
            out = table.take(pa.array(order)).combine_chunks()
            del table
            batch = out.to_batches()[0] if out.num_rows else None
            if batch is not None:
                yield batch
    finally:
        shutil.rmtree(folder, ignore_errors=True)
