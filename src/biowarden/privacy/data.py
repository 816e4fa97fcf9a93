"""Reading DATA (Parquet or delimited text) and the histogram of distinct quasi-identifier combinations.

The histogram is the compact summary every risk measure and the anonymisation search work on: one row
per distinct combination of quasi-identifier values (integer codes into per-column dictionaries) with its
record count, plus, for each record, the index of its combination (so that per-record results and
sensitive attributes can be attached without touching the raw rows again).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

NULL_VALUE = "NULL"


class DataError(ValueError):
    """DATA that cannot be read or used: missing file, unknown column, bad format."""


def detect_delimiter(sample: str) -> str:
    """The delimiter of a delimited text sample (``;``, ``,``, tab or ``|``)."""
    lines = [ln for ln in sample.splitlines() if ln.strip()][:20]
    if not lines:
        raise DataError("the file is empty")
    try:
        return csv.Sniffer().sniff("\n".join(lines), delimiters=";,\t|").delimiter
    except csv.Error:
        counts = {d: lines[0].count(d) for d in ";,\t|"}
        best = max(counts, key=lambda d: counts[d])
        if counts[best] == 0:
            return ","
        return best


def read_table(path: str | Path) -> pa.Table:
    """Parquet (by magic bytes) or delimited text with the delimiter detected; every text column as string."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {path} does not exist")
    with path.open("rb") as f:
        head = f.read(65536)
    if head[:4] == b"PAR1":
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path)
        except Exception as e:  # pyarrow raises several types for corrupt files
            raise DataError(f"cannot read Parquet file {path}: {e}") from e
    import pyarrow.csv as pcsv

    try:
        sample = head.decode("utf-8-sig")
    except UnicodeDecodeError:
        sample = head.decode("latin-1")
    delimiter = detect_delimiter(sample)
    try:
        header = next(csv.reader([sample.splitlines()[0].lstrip("\ufeff")], delimiter=delimiter))
        return pcsv.read_csv(
            path,
            parse_options=pcsv.ParseOptions(delimiter=delimiter),
            convert_options=pcsv.ConvertOptions(
                column_types={h: pa.string() for h in header}, strings_can_be_null=False
            ),
        )
    except (pa.ArrowInvalid, StopIteration, IndexError) as e:
        raise DataError(f"cannot read delimited file {path}: {e}") from e


def is_set_valued(typ: pa.DataType) -> bool:
    """A list column: one set of values per record (diagnoses, operation dates...)."""
    return pa.types.is_list(typ) or pa.types.is_large_list(typ)


@dataclass
class SetCodes:
    """A set-valued column as integers: its distinct sets, each a sorted run of element codes, and every
    record's set.

    ``elements`` are the distinct element texts (as :func:`as_strings` renders them) in text order, an
    element's code being its index there; the distinct sets are numbered in order of first appearance
    among the records (so ``codes`` numbers records exactly as dictionary-encoding their canonical texts
    would); set ``s`` holds ``flat[offsets[s]:offsets[s + 1]]`` (ascending) and is a missing list when
    ``missing[s]``. Two lists with the same multiset of element texts, in any order, are one set.
    """

    elements: list[str]
    flat: np.ndarray
    offsets: np.ndarray
    missing: np.ndarray
    codes: np.ndarray

    @property
    def num_sets(self) -> int:
        return len(self.missing)

    def texts(self) -> pa.Array:
        """The canonical text of every distinct set (a compact JSON list of its sorted element texts, ``[]``
        for an empty list, ``NULL`` for a missing one), rendered with Arrow: only the distinct elements
        pass through Python."""
        import json

        quoted = pa.array([json.dumps(e) for e in self.elements], pa.string())
        lists = pa.LargeListArray.from_arrays(pa.array(self.offsets, pa.int64()), quoted.take(pa.array(self.flat)))
        text = pc.binary_join_element_wise("[", pc.binary_join(lists, ","), "]", "")
        return pc.if_else(pa.array(self.missing), pa.scalar(NULL_VALUE, pa.string()), text).cast(pa.string())

    def gather(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The elements of sets ``ids``, one run after another, and the runs' lengths."""
        ids = np.asarray(ids, dtype=np.int64)
        starts = self.offsets[ids]
        lens = self.offsets[ids + 1] - starts
        owner = run_owner(lens)
        within = np.arange(len(owner), dtype=np.int64) - (np.cumsum(lens) - lens)[owner]
        return self.flat[starts[owner] + within], lens

    def order(self) -> np.ndarray:
        """The distinct sets in the order of their canonical texts. When every element's quoted text has the
        same width and no escape (dates), the texts compare as their runs of element codes followed by an
        end mark above every code (',' sorts before ']', '"' before ']', and a missing set's ``NULL`` before
        '['), so the runs are sorted as big-endian byte strings instead of the texts."""
        import json

        quoted = [json.dumps(e) for e in self.elements]
        if len({len(q) for q in quoted}) > 1 or any("\\" in q for q in quoted):
            return np.asarray(pc.array_sort_indices(self.texts()).to_numpy(zero_copy_only=False), dtype=np.int64)
        end = len(self.elements)
        width = _code_width(end + 1)
        lens = np.diff(self.offsets)
        ends = np.cumsum(lens + 1)
        runs = np.full(int(ends[-1]) if len(ends) else 0, end, dtype=f">u{width}")
        owner = run_owner(lens, len(self.flat))
        runs[(ends - lens - 1)[owner] + (np.arange(len(self.flat)) - self.offsets[:-1][owner])] = self.flat
        offsets = np.concatenate([[0], ends * width]).astype(np.int64)
        validity, nulls = None, int(self.missing.sum())
        if nulls:
            validity = pa.array(~self.missing).buffers()[1]
        keys = pa.Array.from_buffers(
            pa.large_binary(), len(lens), [validity, pa.py_buffer(offsets), pa.py_buffer(runs)], null_count=nulls
        )
        order = pc.array_sort_indices(keys, null_placement="at_start")
        return np.asarray(order.to_numpy(zero_copy_only=False), dtype=np.int64)


class SetTexts(Sequence[str]):
    """The canonical texts of an encoding's distinct sets as a sequence of strings, rendered on first use
    (a histogram's dictionary for a set-valued column: the search itself only needs its length)."""

    def __init__(self, sets: SetCodes) -> None:
        self.sets = sets
        self._texts: list[str] | None = None

    def _list(self) -> list[str]:
        if self._texts is None:
            self._texts = self.sets.texts().to_pylist()
        return self._texts

    def __len__(self) -> int:
        return self.sets.num_sets

    def __getitem__(self, i):  # an index or a slice, as for a list
        return self._list()[i]

    def __iter__(self):
        return iter(self._list())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"SetTexts({len(self)} sets)"


def set_codes(column: pa.ChunkedArray | pa.Array) -> SetCodes:
    """Encode a set-valued column (see :class:`SetCodes`) without a Python object per record or per set:
    each list's element codes are sorted within the list and the lists are dictionary-encoded as byte
    strings of their codes."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not is_set_valued(arr.type):
        raise DataError(f"column of type {arr.type} is not set-valued")
    lens = np.asarray(pc.list_value_length(arr).fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
    enc = pc.dictionary_encode(arr.flatten(), null_encoding="encode")  # flatten skips null lists, honours slicing
    texts = as_strings(enc.dictionary).to_pylist()
    elements = sorted(set(texts))
    code_of = {t: i for i, t in enumerate(elements)}
    rank = np.array([code_of[t] for t in texts], dtype=np.int64)
    elem = rank[np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64)]
    elem = sort_within(elem, lens, len(elements))
    null = np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    keys = code_strings(elem, lens, len(elements), null)
    denc = pc.dictionary_encode(keys, null_encoding="encode")
    codes = np.asarray(denc.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    flat, offsets, missing = _decode_code_strings(denc.dictionary, len(elements))
    return SetCodes(elements, flat, offsets, missing, codes)


def sort_within(values: np.ndarray, lens: np.ndarray, radix: int) -> np.ndarray:
    """``values`` (codes below ``radix``, in consecutive runs of ``lens``) sorted within each run."""
    if len(values) < 2:
        return values
    owner = run_owner(lens, len(values))
    radix = max(int(radix), 1)
    if len(lens) * radix < 2**62:
        key = owner * radix + values
        key.sort(kind="stable")  # a merge of presorted runs: fast on keys whose major part is already sorted
        return key - owner * radix  # the runs keep their places: owner is the key's major part
    return values[np.lexsort((values, owner))]


def run_owner(lens: np.ndarray, total: int | None = None) -> np.ndarray:
    """The run of every item of consecutive runs of ``lens`` items (``np.repeat(arange, lens)``, by a
    cumulative sum)."""
    lens = np.asarray(lens, dtype=np.int64)
    total = int(lens.sum()) if total is None else total
    full = np.flatnonzero(lens)
    marks = np.zeros(total, dtype=np.int64)
    if len(full):
        starts = np.cumsum(lens)[full] - lens[full]
        marks[starts] = np.diff(full, prepend=0)
    return np.cumsum(marks)


def _code_width(radix: int) -> int:
    return 1 if radix <= 1 << 8 else 2 if radix <= 1 << 16 else 4


def code_strings(values: np.ndarray, lens: np.ndarray, radix: int, null: np.ndarray | None = None) -> pa.Array:
    """Runs of codes (below ``radix``) as one byte string each (fixed-width codes, so equal strings are equal
    runs), null where ``null``: a column Arrow can hash and dictionary-encode."""
    width = _code_width(radix)
    data = np.ascontiguousarray(values, dtype=f"<u{width}")
    ends = np.cumsum(lens, dtype=np.int64) * width
    large = len(ends) > 0 and int(ends[-1]) >= 2**31
    offsets = np.concatenate([[0], ends]).astype(np.int64 if large else np.int32)
    validity, nulls = None, 0
    if null is not None and null.any():
        validity, nulls = pa.array(~null).buffers()[1], int(null.sum())
    return pa.Array.from_buffers(
        pa.large_binary() if large else pa.binary(),
        len(lens),
        [validity, pa.py_buffer(offsets), pa.py_buffer(data)],
        null_count=nulls,
    )


def _decode_code_strings(keys: pa.Array, radix: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(codes, offsets in codes, null) of byte strings made by :func:`code_strings`."""
    width = _code_width(radix)
    m = len(keys)
    off_type = np.int64 if pa.types.is_large_binary(keys.type) else np.int32
    _, off_buf, data_buf = keys.buffers()
    off = np.frombuffer(off_buf, dtype=off_type)[keys.offset : keys.offset + m + 1].astype(np.int64)
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    raw = data[int(off[0]) : int(off[-1])] if m else data[:0]
    flat = raw.view(f"<u{width}").astype(np.int64)
    missing = np.asarray(keys.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    return flat, (off - off[0]) // width, missing


def set_strings(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """The canonical text of every set-valued cell: its elements' texts, sorted, as a compact JSON list.

    Two records with the same multiset of values (in any order) get the same text, so a list column works
    as one quasi-identifier: ``[2015-03-14, 2012-01-02]`` and ``[2012-01-02, 2015-03-14]`` are one value
    (``'["2012-01-02","2015-03-14"]'``); an empty list is ``[]``, a missing list ``NULL``. Elements are
    rendered as :func:`as_strings` renders scalars. Only the distinct sets are rendered (see :func:`set_codes`).
    """
    sets = set_codes(column)
    return sets.texts().take(pa.array(sets.codes))


def as_strings(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """A column as strings (numbers as their shortest text, dates ISO, nulls as ``NULL``, sets by
    :func:`set_strings`)."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    if is_set_valued(arr.type):
        return set_strings(arr)
    if pa.types.is_floating(arr.type):
        # whole floats print without the trailing ".0" so they meet hierarchies written as integers;
        # formatted once per distinct value
        enc = pc.dictionary_encode(arr)
        labels = pa.array(
            [
                NULL_VALUE if v is None or np.isnan(v) else (str(int(v)) if float(v).is_integer() else repr(float(v)))
                for v in enc.dictionary.to_pylist()
            ],
            pa.string(),
        )
        return pc.fill_null(pc.take(labels, enc.indices), NULL_VALUE)
    if not pa.types.is_string(arr.type) and not pa.types.is_large_string(arr.type):
        try:
            arr = pc.cast(arr, pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
            raise DataError(f"column of type {arr.type} cannot be used as a quasi-identifier") from e
    return pc.fill_null(arr, NULL_VALUE)


def check_columns(table: pa.Table, columns: Sequence[str], what: str = "quasi-identifier") -> None:
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise DataError(
            f"unknown {what} column(s): {', '.join(missing)} (the data has {', '.join(table.column_names)})"
        )
    if len(set(columns)) != len(columns):
        raise DataError(f"{what} columns listed twice: {', '.join(columns)}")


@dataclass
class Histogram:
    """Distinct quasi-identifier combinations and their counts.

    ``codes[j, i]`` is the code of combination ``j`` in column ``qis[i]`` (an index into
    ``dictionaries[i]``); ``counts[j]`` its number of records; ``row_class[r]`` the combination of record
    ``r`` (None when the histogram came from an engine summary rather than rows).
    """

    qis: list[str]
    dictionaries: list[Sequence[str]]  # a list of strings per column (a set-valued column's: SetTexts)
    codes: np.ndarray
    counts: np.ndarray
    row_class: np.ndarray | None = None

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    @property
    def num_classes(self) -> int:
        return len(self.counts)

    def values(self, j: int) -> dict[str, str]:
        return {q: self.dictionaries[i][self.codes[j, i]] for i, q in enumerate(self.qis)}


def unique_inverse(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(key, return_inverse=True)`` for integer keys, by hashing (Arrow) and sorting only the
    distinct keys: the same result, several times faster when there are far fewer distinct keys than keys."""
    key = np.asarray(key)
    if len(key) < 2:
        uniq, inverse = np.unique(key, return_inverse=True)
        return uniq, inverse.reshape(-1)
    enc = pc.dictionary_encode(pa.array(key))
    distinct = np.asarray(enc.dictionary.to_numpy(zero_copy_only=False))
    order = np.argsort(distinct, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order), dtype=np.int64)
    return distinct[order], rank[np.asarray(enc.indices.to_numpy(zero_copy_only=False))]


def _group_codes(columns: list[np.ndarray], sizes: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group rows by their code tuple: (distinct codes matrix, counts, inverse)."""
    n = len(columns[0]) if columns else 0
    if not columns:
        return np.zeros((1 if n else 0, 0), np.int64), np.array([n] if n else [], np.int64), np.zeros(n, np.int64)
    space = 1
    for s in sizes:
        space *= max(s, 1)
    if space < 2**62:
        key = np.zeros(n, dtype=np.int64)
        for col, s in zip(columns, sizes, strict=True):
            key *= max(s, 1)
            key += col
        uniq, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
        codes = np.empty((len(uniq), len(columns)), dtype=np.int64)
        rest = uniq.copy()
        for i in range(len(columns) - 1, -1, -1):
            s = max(sizes[i], 1)
            codes[:, i] = rest % s
            rest //= s
        return codes, counts.astype(np.int64), inverse.astype(np.int64)
    mat = np.stack(columns, axis=1)
    codes, inverse, counts = np.unique(mat, axis=0, return_inverse=True, return_counts=True)
    return codes.astype(np.int64), counts.astype(np.int64), inverse.reshape(-1).astype(np.int64)


def encode_column(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, Sequence[str]]:
    """Dictionary-encode a column as strings: (codes, dictionary).

    The column is encoded in its own type and only the distinct values are rendered as strings (values
    that render alike, such as a null and a NaN, share one code); a set-valued column's dictionary is its
    distinct sets' canonical texts (:class:`SetTexts`, see :func:`set_codes`).
    """
    codes, labels, _ = _encode(column)
    return codes, labels


def _encode(column: pa.ChunkedArray | pa.Array, sets: SetCodes | None = None) -> tuple[np.ndarray, Sequence[str], bool]:
    """(codes, labels, whether distinct values were merged because they render alike)."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    if is_set_valued(arr.type):  # a set is one value, named by its canonical text
        sets = sets if sets is not None else set_codes(arr)
        if len(sets.codes) != len(arr):
            raise DataError(f"the set encoding has {len(sets.codes)} records, the column {len(arr)}")
        return sets.codes, SetTexts(sets), True  # lists of the same elements in another order merge
    enc = pc.dictionary_encode(arr, null_encoding="encode")
    labels = as_strings(enc.dictionary).to_pylist()
    codes = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    if len(set(labels)) == len(labels):
        return codes, labels, False
    distinct: dict[str, int] = {}
    remap = np.array([distinct.setdefault(v, len(distinct)) for v in labels], dtype=np.int64)
    return remap[codes], list(distinct), True


def histogram_from_table(table: pa.Table, qis: Sequence[str], sets: Mapping[str, SetCodes] | None = None) -> Histogram:
    """The histogram of distinct QI combinations of an Arrow table (pyarrow/NumPy, one pass).

    ``sets`` are :func:`set_codes` encodings the caller already made of some of the table's set-valued
    columns (by column name), used instead of encoding those columns again; a set hierarchy built from
    the same encoding then finds its rows without comparing texts (see ``anonymise.Lattice``).
    """
    qis = list(qis)
    check_columns(table, qis)
    sets = sets or {}
    cols, dicts = [], []
    for q in qis:
        codes, dictionary, _ = _encode(table.column(q), sets.get(q))
        cols.append(codes)
        dicts.append(dictionary)
    codes, counts, inverse = _group_codes(cols, [len(d) for d in dicts])
    return Histogram(qis, dicts, codes, counts, inverse)


def histogram_from_counts(
    summary: pa.Table, qis: Sequence[str], count_column: str = "count", distinct: bool = False
) -> Histogram:
    """A histogram from a summary table (one row per combination plus a count column).

    With ``distinct`` the rows are known to be distinct combinations (as the engine's group-by gives), so
    they are regrouped only where two values render as the same string.
    """
    qis = list(qis)
    check_columns(summary, [*qis, count_column], "summary")
    cols, dicts, merged = [], [], False
    for q in qis:
        codes, dictionary, m = _encode(summary.column(q))
        cols.append(codes)
        dicts.append(dictionary)
        merged |= m
    weights = summary.column(count_column).to_numpy(zero_copy_only=False).astype(np.int64)
    if distinct and not merged:
        mat = np.stack(cols, axis=1) if cols else np.zeros((len(weights), 0), np.int64)
        return Histogram(qis, dicts, mat, weights, None)
    codes, _, inverse = _group_codes(cols, [len(d) for d in dicts])
    counts = np.bincount(inverse, weights=weights, minlength=len(codes)).astype(np.int64)
    return Histogram(qis, dicts, codes, counts, None)


ENGINE_COUNT_COLUMN = "n"  # biowarden.engine.histogram's count column


def histogram_from_engine(summary: pa.Table, qis: Sequence[str]) -> Histogram:
    """The histogram from ``biowarden.engine.histogram``'s result (the QI columns and their count ``n``)."""
    return histogram_from_counts(summary, qis, ENGINE_COUNT_COLUMN, distinct=True)


def engine_histogram(source: str | Path | pa.Table, qis: Sequence[str], engine: str = "duckdb") -> Histogram:
    """The histogram computed once in the data plane: the engine (DuckDB, or Spark at scale) groups a
    Parquet file or table by the QIs, reading only those columns; per-record results are not available."""
    from biowarden.engine import EngineError, histogram

    try:
        summary = histogram(source, list(qis), engine)
    except EngineError as e:
        raise DataError(str(e)) from e
    return histogram_from_engine(summary, qis)


def is_parquet(path: str | Path) -> bool:
    """True when the file starts with Parquet's magic bytes."""
    with Path(path).open("rb") as f:
        return f.read(4) == b"PAR1"
