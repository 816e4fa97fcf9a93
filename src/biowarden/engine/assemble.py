"""A Parquet file put together from column chunks encoded separately (in parallel, or at different times).

Parquet's writer encodes a row group column by column, and nothing in a column chunk depends on the other
columns: a run of consecutive columns of one row group, written alone to an in-memory Parquet file (a
*piece*) with the release's writer settings, holds exactly the bytes those columns have in a file
written in one go. :func:`encode_piece` makes a piece; :class:`ParquetAssembler` appends pieces to the
output row group by row group, columns in schema order, and writes the footer: the one-go writer's
footer (its schema, key-value metadata and ``created_by``, taken from an empty file written with the same
settings) with each piece's column chunk metadata moved to where its bytes landed. The file is byte for
byte the one ``pyarrow.parquet.ParquetWriter`` writes from the whole rows (the tests compare them), so
pieces can be encoded on several threads (the encoder releases the GIL), and the columns that do not
wait for something (measures, while the risk gate decides the quasi-identifiers' levels) early.

The footer is Thrift's compact protocol; :func:`thrift_decode` and :func:`thrift_encode` read and write it
generically (fields kept in their order with their wire types), so a footer decodes and re-encodes to the
same bytes and only the offsets the assembler moves change.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from biowarden.engine.errors import EngineError

MAGIC = b"PAR1"
# the release's key column (each application's pseudonyms, ascending and distinct): its dictionary would
# hold every value and overflow, so it is delta-encoded instead (a tenth of the encoding time, half the bytes)
DELTA_COLUMNS = frozenset({"pseudonym_id"})

# Thrift compact protocol wire types
_TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT = range(1, 13)


@dataclass
class TStruct:
    """A Thrift struct as it was on the wire: ``fields`` is a list of ``[field id, wire type, value]``."""

    fields: list[list[Any]]

    def get(self, fid: int, default: Any = None) -> Any:
        for f in self.fields:
            if f[0] == fid:
                return f[2]
        return default

    def set(self, fid: int, value: Any) -> None:
        for f in self.fields:
            if f[0] == fid:
                f[2] = value
                return
        raise KeyError(fid)

    def has(self, fid: int) -> bool:
        return any(f[0] == fid for f in self.fields)


@dataclass
class TList:
    etype: int
    items: list[Any]
    wire: int = _LIST


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        b = self.data[self.pos]
        self.pos += 1
        return b

    def varint(self) -> int:
        shift = result = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def value(self, wire: int) -> Any:
        if wire in (_I16, _I32, _I64):
            return self.zigzag()
        if wire == _BINARY:
            n = self.varint()
            out = self.data[self.pos : self.pos + n]
            self.pos += n
            return out
        if wire == _STRUCT:
            return self.struct()
        if wire in (_LIST, _SET):
            head = self.byte()
            size, etype = head >> 4, head & 0x0F
            if size == 15:
                size = self.varint()
            return TList(etype, [self.element(etype) for _ in range(size)], wire)
        if wire == _BYTE:
            return self.byte()
        if wire == _DOUBLE:
            out = struct.unpack_from("<d", self.data, self.pos)[0]
            self.pos += 8
            return out
        raise EngineError(f"unsupported Thrift wire type {wire} in a Parquet footer")

    def element(self, etype: int) -> Any:
        if etype in (_TRUE, _FALSE):  # a boolean element is one byte
            return self.byte()
        return self.value(etype)

    def struct(self) -> TStruct:
        fields: list[list[Any]] = []
        last = 0
        while True:
            head = self.byte()
            if head == 0:
                return TStruct(fields)
            wire, delta = head & 0x0F, head >> 4
            fid = last + delta if delta else self.zigzag()
            last = fid
            fields.append([fid, wire, None if wire in (_TRUE, _FALSE) else self.value(wire)])


def thrift_decode(data: bytes) -> TStruct:
    """Decode one compact-protocol struct (a Parquet footer's ``FileMetaData``)."""
    r = _Reader(data)
    out = r.struct()
    if r.pos != len(data):
        raise EngineError("trailing bytes after the Parquet footer")
    return out


def _varint(n: int, out: bytearray) -> None:
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _zigzag(n: int, out: bytearray) -> None:
    _varint((n << 1) ^ (n >> 63), out)


def _write_value(wire: int, v: Any, out: bytearray) -> None:
    if wire in (_I16, _I32, _I64):
        _zigzag(v, out)
    elif wire == _BINARY:
        _varint(len(v), out)
        out += v
    elif wire == _STRUCT:
        _write_struct(v, out)
    elif wire in (_LIST, _SET):
        n = len(v.items)
        if n < 15:
            out.append((n << 4) | v.etype)
        else:
            out.append(0xF0 | v.etype)
            _varint(n, out)
        for item in v.items:
            if v.etype in (_TRUE, _FALSE):
                out.append(item)
            else:
                _write_value(v.etype, item, out)
    elif wire == _BYTE:
        out.append(v)
    elif wire == _DOUBLE:
        out += struct.pack("<d", v)
    else:
        raise EngineError(f"unsupported Thrift wire type {wire}")


def _write_struct(s: TStruct, out: bytearray) -> None:
    last = 0
    for fid, wire, v in s.fields:
        delta = fid - last
        if 0 < delta <= 15:
            out.append((delta << 4) | wire)
        else:
            out.append(wire)
            _zigzag(fid, out)
        last = fid
        if wire not in (_TRUE, _FALSE):
            _write_value(wire, v, out)
    out.append(0)


def thrift_encode(s: TStruct) -> bytes:
    out = bytearray()
    _write_struct(s, out)
    return bytes(out)


# Parquet footer field ids (parquet.thrift)
_FMD_NUM_ROWS, _FMD_ROW_GROUPS = 3, 4
_RG_COLUMNS, _RG_TOTAL_BYTES, _RG_NUM_ROWS, _RG_FILE_OFFSET, _RG_TOTAL_COMPRESSED, _RG_ORDINAL = 1, 2, 3, 5, 6, 7
_CC_FILE_OFFSET, _CC_META = 2, 3
_CC_OFFSETS = (4, 6)  # offset index, column index (written only with a page index)
_CMD_OFFSETS = (9, 10, 11, 14)  # data page, index page, dictionary page, bloom filter
_CMD_DICT_OFFSET, _CMD_DATA_OFFSET = 11, 9


def _footer(data: bytes) -> tuple[TStruct, int]:
    """A Parquet file's decoded footer and where it starts."""
    if len(data) < 12 or data[:4] != MAGIC or data[-4:] != MAGIC:
        raise EngineError("not a Parquet file")
    n = struct.unpack_from("<I", data, len(data) - 8)[0]
    start = len(data) - 8 - n
    return thrift_decode(data[start : len(data) - 8]), start


def writer_options(compression: str, compression_level: int | None, names: Sequence[str] = ()) -> dict[str, Any]:
    """The release writer's Parquet settings for a file (or piece) whose columns are ``names``: every column
    dictionary-encoded, except :data:`DELTA_COLUMNS` (ascending distinct ids, which a dictionary only
    doubles: delta-encoded). A piece may pass the whole file's names (settings for absent columns are
    ignored), so its column chunks are the whole file's."""
    delta = [n for n in names if n in DELTA_COLUMNS]
    options: dict[str, Any] = {
        "compression": compression,
        "compression_level": compression_level,
        "use_dictionary": [n for n in names if n not in DELTA_COLUMNS] if delta else True,
        "write_statistics": True,
        "version": "2.6",
        "data_page_version": "1.0",
        "store_schema": True,
        "write_page_index": False,
        "write_page_checksum": False,
    }
    if delta:
        options["column_encoding"] = dict.fromkeys(delta, "DELTA_BINARY_PACKED")
    return options


@dataclass
class Piece:
    """Some consecutive columns of one row group, encoded: their column chunks' bytes and metadata."""

    rows: int
    body: bytes  # the column chunks, as they sit in the piece's own file from byte 4
    chunks: list[TStruct]  # their ColumnChunk metadata (offsets relative to the piece's file)
    total_bytes: int
    total_compressed: int
    row_group: TStruct  # the piece's RowGroup metadata (which fields the writer sets, in its order)


def encode_piece(batch: pa.RecordBatch | pa.Table, options: dict[str, Any]) -> Piece:
    """Encode ``batch`` (one row group's worth of some consecutive columns) as a piece; safe on any thread."""
    if batch.num_rows == 0:
        raise EngineError("a piece needs at least one row")
    sink = pa.BufferOutputStream()
    with pq.ParquetWriter(sink, batch.schema, **options) as w:
        if isinstance(batch, pa.RecordBatch):
            w.write_batch(batch, row_group_size=batch.num_rows)
        else:
            w.write_table(batch, row_group_size=batch.num_rows)
    data = sink.getvalue().to_pybytes()
    meta, start = _footer(data)
    groups = meta.get(_FMD_ROW_GROUPS).items
    if len(groups) != 1:  # pragma: no cover - one write of at most row_group_size rows
        raise EngineError("a piece must hold exactly one row group")
    rg = groups[0]
    return Piece(
        rows=batch.num_rows,
        body=data[4:start],
        chunks=list(rg.get(_RG_COLUMNS).items),
        total_bytes=int(rg.get(_RG_TOTAL_BYTES)),
        total_compressed=int(rg.get(_RG_TOTAL_COMPRESSED)),
        row_group=rg,
    )


def _shift(chunk: TStruct, by: int) -> TStruct:
    """A column chunk's metadata with its file positions moved by ``by`` (a position of 0 is no position:
    the writer leaves the deprecated ``file_offset`` at 0; the file's magic occupies byte 0)."""
    fields = []
    for fid, wire, v in chunk.fields:
        if (fid == _CC_FILE_OFFSET or fid in _CC_OFFSETS) and v:
            v = v + by
        elif fid == _CC_META:
            v = TStruct([[f, w, (x + by if f in _CMD_OFFSETS and x else x)] for f, w, x in v.fields])
        fields.append([fid, wire, v])
    return TStruct(fields)


class ParquetAssembler:
    """Write a Parquet file from pieces, row group by row group; the bytes are hashed as they are written.

    ``add_row_group(pieces)`` takes the pieces of one row group, their columns together in schema order;
    ``finish()`` writes the footer and returns (bytes written, SHA-256 hex digest).
    """

    def __init__(self, fh: BinaryIO, schema: pa.Schema, options: dict[str, Any]) -> None:
        self.fh = fh
        self.schema = schema
        sink = pa.BufferOutputStream()
        with pq.ParquetWriter(sink, schema, **options):
            pass
        self.meta, _ = _footer(sink.getvalue().to_pybytes())  # the one-go writer's footer, no row groups yet
        self.columns = self._leaf_count(self.meta)
        self.row_groups: list[TStruct] = []
        self.rows = 0
        self.sha = hashlib.sha256()
        self.pos = 0
        self._write(MAGIC)

    @staticmethod
    def _leaf_count(meta: TStruct) -> int:
        # schema elements without children (field 5, num_children) are leaves: one column chunk each
        return sum(1 for el in meta.get(2).items if not el.has(5))

    def _write(self, data: bytes | memoryview) -> None:
        self.fh.write(data)
        self.sha.update(data)
        self.pos += len(data)

    def add_row_group(self, pieces: Sequence[Piece]) -> None:
        if not pieces:
            raise EngineError("a row group needs at least one piece")
        rows = pieces[0].rows
        if any(p.rows != rows for p in pieces):
            raise EngineError("the pieces of a row group hold different numbers of rows")
        chunks: list[TStruct] = []
        total_bytes = total_compressed = 0
        for p in pieces:
            by = self.pos - 4
            chunks.extend(_shift(c, by) for c in p.chunks)
            self._write(p.body)
            total_bytes += p.total_bytes
            total_compressed += p.total_compressed
        if len(chunks) != self.columns:
            raise EngineError(f"a row group has {len(chunks)} column chunks for {self.columns} columns")
        first = chunks[0].get(_CC_META)
        dict_offset = first.get(_CMD_DICT_OFFSET)
        offset = dict_offset if dict_offset else first.get(_CMD_DATA_OFFSET)
        merged = {
            _RG_COLUMNS: TList(_STRUCT, chunks),
            _RG_TOTAL_BYTES: total_bytes,
            _RG_NUM_ROWS: rows,
            _RG_FILE_OFFSET: offset,
            _RG_TOTAL_COMPRESSED: total_compressed,
            _RG_ORDINAL: len(self.row_groups),
        }
        fields = []
        for fid, wire, _ in pieces[0].row_group.fields:  # the fields the writer sets, in its order
            if fid not in merged:
                raise EngineError(f"unexpected field {fid} in a piece's row group metadata")
            fields.append([fid, wire, merged[fid]])
        self.row_groups.append(TStruct(fields))
        self.rows += rows

    def finish(self) -> tuple[int, str]:
        fields = []
        for fid, wire, v in self.meta.fields:
            if fid == _FMD_NUM_ROWS:
                v = self.rows
            elif fid == _FMD_ROW_GROUPS:
                v = TList(_STRUCT, self.row_groups)
            fields.append([fid, wire, v])
        footer = thrift_encode(TStruct(fields))
        self._write(footer)
        self._write(struct.pack("<I", len(footer)))
        self._write(MAGIC)
        return self.pos, self.sha.hexdigest()
