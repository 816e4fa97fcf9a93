"""The one release writer both engines share: deterministic, atomic Parquet or CSV from Arrow batches.

The same rows give byte-identical files whichever engine produced them, because nothing in the file
depends on how the rows arrived: batches are re-cut into row groups of exactly ``ROW_GROUP_ROWS`` rows
(each written from one contiguous batch), compression and encodings are fixed, and the only key-value
metadata is the Arrow schema stripped of any metadata the source carried. The file appears under its
final name only when complete (written to a temporary file in the same folder, flushed, then renamed).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from biowarden.engine.assemble import writer_options
from biowarden.engine.errors import EngineError

ROW_GROUP_ROWS = 1 << 17  # 131,072 rows per row group
COMPRESSION = "zstd"
COMPRESSION_LEVEL = 1
LIST_SEPARATOR = "|"  # how a set-valued cell is written in CSV: values joined in their stored order
FORMATS = ("parquet", "csv")

BatchSource = pa.Table | pa.RecordBatchReader | Iterable[pa.RecordBatch]


def plain_schema(schema: pa.Schema) -> pa.Schema:
    """The schema without schema- or field-level metadata (pandas, Spark or Ibis annotations), list items
    named ``element``: the same schema whichever engine or file the rows came from."""
    return pa.schema([_plain_field(f) for f in schema])


def _plain_field(f: pa.Field) -> pa.Field:
    t = f.type
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        # list items are named "element" as Parquet stores them, whatever the producer called them
        inner = _plain_field(t.value_field).with_name("element")
        t = pa.list_(inner) if pa.types.is_list(t) else pa.large_list(inner)
    elif pa.types.is_struct(t):
        t = pa.struct([_plain_field(c) for c in t])
    return pa.field(f.name, t, nullable=f.nullable)


def _iter_batches(batches: BatchSource) -> Iterator[pa.RecordBatch]:
    if isinstance(batches, pa.Table):
        yield from batches.to_batches()
    elif isinstance(batches, pa.RecordBatch):
        yield batches
    else:
        yield from batches


def _row_groups(batches: Iterable[pa.RecordBatch], schema: pa.Schema, rows: int) -> Iterator[pa.RecordBatch]:
    """Re-cut a stream of batches into contiguous batches of exactly ``rows`` rows (the last may be short)."""
    pending: list[pa.RecordBatch] = []
    have = 0
    for b in batches:
        if b.schema != schema:
            try:
                b = b.select(schema.names).cast(schema)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, KeyError) as exc:
                raise EngineError(f"a batch does not match the release schema: {exc}") from None
        while b.num_rows:
            take = min(rows - have, b.num_rows)
            pending.append(b.slice(0, take))
            have += take
            b = b.slice(take)
            if have == rows:
                yield _joined(pending)
                pending, have = [], 0
    if have:
        yield _joined(pending)


def _joined(pending: list[pa.RecordBatch]) -> pa.RecordBatch:
    """One contiguous batch of the pieces (a single piece as it is: concatenating copies every buffer)."""
    return pending[0] if len(pending) == 1 else pa.concat_batches(pending)


def _csv_ready(batch: pa.RecordBatch) -> pa.RecordBatch:
    """List columns become text: values joined by ``|`` (dates in ISO form); empty list -> empty text."""
    cols, fields = [], []
    for f, col in zip(batch.schema, batch.columns, strict=True):
        if pa.types.is_list(f.type) or pa.types.is_large_list(f.type):
            values = pc.cast(col.flatten(), pa.string())
            offsets = col.offsets.to_numpy()
            texts: list[str | None] = []
            vals = values.to_pylist()
            valid = col.is_valid().to_numpy(zero_copy_only=False)
            for i in range(len(col)):
                if not valid[i]:
                    texts.append(None)
                    continue
                part = vals[offsets[i] - offsets[0] : offsets[i + 1] - offsets[0]]
                texts.append(LIST_SEPARATOR.join("" if v is None else v for v in part))
            cols.append(pa.array(texts, pa.string()))
            fields.append(pa.field(f.name, pa.string()))
        else:
            cols.append(col)
            fields.append(f)
    return pa.RecordBatch.from_arrays(cols, schema=pa.schema(fields))


def write_release(
    batches: BatchSource,
    out_path: str | Path,
    format: str = "parquet",
    schema: pa.Schema | None = None,
) -> int:
    """Write the rows to ``out_path`` deterministically and atomically; return the file's size in bytes.

    ``schema`` fixes the column types (each batch is cast to it); by default the first batch's schema,
    without metadata. An empty stream needs ``schema``.
    """
    if format not in FORMATS:
        raise EngineError(f"unknown release format {format!r}: use one of {', '.join(FORMATS)}")
    out_path = Path(out_path)
    if not out_path.parent.is_dir():
        raise EngineError(f"cannot write {out_path}: folder {out_path.parent} does not exist")
    it = _iter_batches(batches)
    if schema is None:
        if isinstance(batches, pa.Table | pa.RecordBatchReader):
            schema = batches.schema
        else:
            first = next(iter(it), None)
            if first is None:
                raise EngineError("nothing to write and no schema given")
            schema = first.schema
            it = _chain(first, it)
    schema = plain_schema(schema)
    tmp = out_path.with_name(f".{out_path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        if format == "parquet":
            _write_parquet(it, schema, tmp)
        else:
            _write_csv(it, schema, tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, out_path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return out_path.stat().st_size


def _chain(first: pa.RecordBatch, rest: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    yield first
    yield from rest


def _write_parquet(it: Iterator[pa.RecordBatch], schema: pa.Schema, path: Path) -> None:
    with pq.ParquetWriter(
        path,
        schema,
        **writer_options(COMPRESSION, COMPRESSION_LEVEL, schema.names),
    ) as w:
        for rg in _row_groups(it, schema, ROW_GROUP_ROWS):
            w.write_batch(rg, row_group_size=ROW_GROUP_ROWS)


def _write_csv(it: Iterator[pa.RecordBatch], schema: pa.Schema, path: Path) -> None:
    csv_schema = _csv_ready(_empty_batch(schema)).schema
    opts = pacsv.WriteOptions(include_header=True, batch_size=ROW_GROUP_ROWS, quoting_style="needed")
    with pacsv.CSVWriter(str(path), csv_schema, write_options=opts) as w:
        for rg in _row_groups(it, schema, ROW_GROUP_ROWS):
            w.write_batch(_csv_ready(rg))


def _empty_batch(schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([pa.array([], f.type) for f in schema], schema=schema)
