"""engine.assemble: a Parquet file put together from separately encoded column runs is byte for byte the file
the writer makes from the whole rows; the footer codec round-trips; bad pieces are refused."""

from __future__ import annotations

import hashlib
import io
import itertools

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from biowarden.engine import EngineError, write_release
from biowarden.engine import writer as W
from biowarden.engine.assemble import (
    DELTA_COLUMNS,
    ParquetAssembler,
    _footer,
    encode_piece,
    thrift_decode,
    thrift_encode,
    writer_options,
)
from biowarden.engine.writer import plain_schema

OPTIONS = writer_options(W.COMPRESSION, W.COMPRESSION_LEVEL)


def _assembled(table: pa.Table, cuts: list[int], rows: int) -> tuple[bytes, int, str]:
    """The table written through pieces: row groups of ``rows`` rows, columns cut before each of ``cuts``."""
    bounds = [0, *cuts, table.num_columns]
    sink = io.BytesIO()
    asm = ParquetAssembler(sink, plain_schema(table.schema), OPTIONS)
    for start in range(0, table.num_rows, rows):
        part = table.slice(start, rows).combine_chunks()
        asm.add_row_group(
            [encode_piece(part.select(list(range(a, b))), OPTIONS) for a, b in itertools.pairwise(bounds)]
        )
    size, sha = asm.finish()
    return sink.getvalue(), size, sha


@pytest.mark.parametrize("cuts", [[], [1], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [3, 7], [10]])
def test_pieces_give_the_writers_bytes(edge, tmp_path, monkeypatch, cuts):
    monkeypatch.setattr(W, "ROW_GROUP_ROWS", 128)  # 400 rows: three full row groups and a short one
    table = edge.sort_by("eid")
    write_release(table, tmp_path / "whole.parquet")
    whole = (tmp_path / "whole.parquet").read_bytes()
    data, size, sha = _assembled(table, cuts, 128)
    assert data == whole
    assert size == len(whole) and sha == hashlib.sha256(whole).hexdigest()


def test_pieces_of_a_real_cohort_give_the_writers_bytes(cohort_path, tmp_path, monkeypatch):
    monkeypatch.setattr(W, "ROW_GROUP_ROWS", 200)
    table = pq.read_table(cohort_path)
    write_release(table, tmp_path / "whole.parquet")
    cuts = sorted(np.random.default_rng(3).choice(np.arange(1, table.num_columns), 9, replace=False).tolist())
    data, _, _ = _assembled(table, cuts, 200)
    assert data == (tmp_path / "whole.parquet").read_bytes()
    assert pq.read_table(io.BytesIO(data)).equals(table)


def test_the_pseudonym_column_is_delta_encoded_in_the_whole_file_and_in_pieces(edge, tmp_path, monkeypatch):
    """The release's key column (ascending distinct pseudonyms) is written without a dictionary, delta-encoded,
    and the pieces, given the file's column names, still give the writer's bytes."""
    from biowarden.release.datapath import PSEUDONYM_COLUMN

    assert PSEUDONYM_COLUMN in DELTA_COLUMNS
    monkeypatch.setattr(W, "ROW_GROUP_ROWS", 128)
    table = edge.sort_by("eid")
    ids = np.cumsum(np.random.default_rng(5).integers(1, 10**9, table.num_rows))
    table = table.add_column(0, PSEUDONYM_COLUMN, pa.array(ids, pa.int64()))
    write_release(table, tmp_path / "whole.parquet")
    whole = (tmp_path / "whole.parquet").read_bytes()
    meta = pq.ParquetFile(io.BytesIO(whole)).metadata
    for g in range(meta.num_row_groups):
        key, other = meta.row_group(g).column(0), meta.row_group(g).column(1)
        assert key.path_in_schema == PSEUDONYM_COLUMN
        assert "DELTA_BINARY_PACKED" in key.encodings and "RLE_DICTIONARY" not in key.encodings
        assert not key.has_dictionary_page and other.has_dictionary_page
    options = writer_options(W.COMPRESSION, W.COMPRESSION_LEVEL, table.column_names)
    sink = io.BytesIO()
    asm = ParquetAssembler(sink, plain_schema(table.schema), options)
    for start in range(0, table.num_rows, 128):
        part = table.slice(start, 128).combine_chunks()
        asm.add_row_group(
            [
                encode_piece(part.select([0, 1, 2]), options),
                encode_piece(part.select(list(range(3, part.num_columns))), options),
            ]
        )
    asm.finish()
    assert sink.getvalue() == whole
    assert np.array_equal(pq.read_table(io.BytesIO(whole)).column(PSEUDONYM_COLUMN).to_numpy(), ids)


def test_no_row_groups_is_the_writers_empty_file(edge, tmp_path):
    write_release(iter([]), tmp_path / "empty.parquet", schema=edge.schema)
    sink = io.BytesIO()
    size, _ = ParquetAssembler(sink, plain_schema(edge.schema), OPTIONS).finish()
    assert sink.getvalue() == (tmp_path / "empty.parquet").read_bytes() and size == len(sink.getvalue())


def test_footer_decodes_and_encodes_to_the_same_bytes(edge_path):
    data = edge_path.read_bytes()
    meta, start = _footer(data)
    assert thrift_encode(meta) == data[start:-8]
    assert thrift_encode(thrift_decode(thrift_encode(meta))) == data[start:-8]


def test_bad_pieces_are_refused(edge):
    table = edge.sort_by("eid")
    asm = ParquetAssembler(io.BytesIO(), plain_schema(table.schema), OPTIONS)
    a = encode_piece(table.slice(0, 10).select([0, 1]), OPTIONS)
    b = encode_piece(table.slice(0, 11).select(list(range(2, table.num_columns))), OPTIONS)
    with pytest.raises(EngineError, match="different numbers of rows"):
        asm.add_row_group([a, b])
    with pytest.raises(EngineError, match="column chunks"):
        asm.add_row_group([a])
    with pytest.raises(EngineError, match="at least one piece"):
        asm.add_row_group([])
    with pytest.raises(EngineError, match="at least one row"):
        encode_piece(table.slice(0, 0), OPTIONS)
    with pytest.raises(EngineError, match="not a Parquet file"):
        _footer(b"PAR1 something else")
