"""Reading a leaked file into an Arrow table (core layer: no web framework, no ORM).

A leak arrives in whatever shape its seller chose: a delimited text file (any of ``, ; TAB |``, with or
without a header row, UTF-8 or Latin-1), Parquet, an Excel workbook, JSON (records, columns, pandas
``split``/``index`` layouts or JSON lines), or a Jupyter notebook whose cell outputs show the rows as
pandas HTML tables, plain-text DataFrame reprs (possibly truncated with ``...`` or wrapped in blocks),
polars or Markdown tables; the outputs showing the same columns are joined (repeats dropped) and the
largest such table is taken. Title lines above a table and total lines below it are dropped; an Excel
workbook gives its fullest sheet's largest table. Delimited files over ``FAST_TEXT_BYTES`` are parsed
by Arrow's reader after sniffing the first lines.

:func:`read_leak` returns one ``pa.Table`` whose columns are numbers (``int64``/``float64``), dates
(``date32``) or strings. What was read and how (format, delimiter, header, encoding, which notebook
outputs were taken, rows skipped) is kept as JSON in the schema metadata under ``biowarden.leak`` and
returned by :func:`leak_info`. Numbers keep their recorded digits: the count of decimals a value carries
is recovered from its shortest decimal representation (:func:`decimals_of`), which is what tells a
rounded cell (an erasure) from a marked one.

Anything that cannot be read raises :class:`LeakReadError` naming the file and the problem.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import os
import re
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

DEFAULT_MAX_BYTES = 2 * 1024**3  # 2 GiB
FAST_TEXT_BYTES = 8 * 1024**2  # delimited files above this are parsed by Arrow's multithreaded reader
MAX_BYTES_ENV = "BIOWARDEN_LEAK_MAX_BYTES"
METADATA_KEY = b"biowarden.leak"

_NULL_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none", "nat", "?", "-", "*", "missing", "<na>"})
_INT_RE = re.compile(r"^[+-]?\d+$")
_FLOAT_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_COMMA_FLOAT_RE = re.compile(r"^[+-]?\d+,\d+$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]00:00(:00)?)?$")
_DELIMITERS = (",", ";", "\t", "|")
_ELLIPSIS = frozenset({"...", "…"})


class LeakReadError(ValueError):
    """A leaked file could not be read; the message names the file and the problem."""


@dataclass
class _Raw:
    """Columns of text cells (``None`` for nulls) before type inference."""

    names: list[str]
    columns: list[list[str | None]]
    info: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------- API


def read_leak(path: str | Path, *, max_bytes: int | None = None, _unpacked: bool = False) -> pa.Table:
    """Read a leaked file (CSV/TSV, Parquet, XLSX, JSON, notebook) into an Arrow table.

    A gzip file, or a zip archive (other than a workbook), is unpacked first: the zip's largest member
    in a readable format is read. ``max_bytes`` (default ``BIOWARDEN_LEAK_MAX_BYTES`` or 2 GiB) refuses
    larger files, and larger unpacked contents, before reading. Raises :class:`LeakReadError` for a
    missing, empty, oversized, binary or malformed file, or one without any table in it.
    """
    p = Path(path)
    limit = _max_bytes(max_bytes)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise LeakReadError(f"{p}: no such file") from None
    except OSError as exc:
        raise LeakReadError(f"{p}: cannot open ({exc.strerror or exc})") from None
    if not p.is_file():
        raise LeakReadError(f"{p}: not a regular file")
    if st.st_size == 0:
        raise LeakReadError(f"{p}: the file is empty")
    if st.st_size > limit:
        raise LeakReadError(
            f"{p}: the file is {st.st_size:,} bytes, over the {limit:,}-byte limit for a leak "
            f"(set {MAX_BYTES_ENV} to raise it)"
        )
    try:
        with p.open("rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise LeakReadError(f"{p}: cannot read ({exc.strerror or exc})") from None

    if not _unpacked and (head.startswith(b"\x1f\x8b") or (head.startswith(b"PK\x03\x04") and not _is_xlsx(p))):
        return _read_archive(p, head, limit)
    fmt = _detect_format(p, head)
    try:
        if fmt == "parquet":
            table, info = _read_parquet(p)
        elif fmt == "xlsx":
            raw = _read_xlsx(p)
            table, info = _infer_table(raw), raw.info
        elif fmt == "delimited" and st.st_size > FAST_TEXT_BYTES:
            table, info = _read_delimited_fast(p)
        else:
            data = p.read_bytes()
            if fmt == "json":
                raw = _read_json_family(p, data)
            else:
                raw = _read_delimited(p, data)
            table, info = _infer_table(raw), raw.info
    except LeakReadError:
        raise
    except MemoryError:
        raise LeakReadError(f"{p}: not enough memory to read the file") from None
    except Exception as exc:  # a malformed file must never crash the caller
        raise LeakReadError(f"{p}: cannot read as {fmt}: {type(exc).__name__}: {exc}") from None

    if table.num_columns == 0 or table.num_rows == 0:
        raise LeakReadError(f"{p}: no rows of data found (read as {info.get('format', fmt)})")
    info.setdefault("format", fmt)
    info["path"] = str(p)
    info["rows"] = table.num_rows
    info["columns"] = table.num_columns
    meta = dict(table.schema.metadata or {})
    meta[METADATA_KEY] = json.dumps(info, sort_keys=True, default=str).encode()
    return table.replace_schema_metadata(meta)


def leak_info(table: pa.Table) -> dict[str, Any]:
    """What :func:`read_leak` recorded about how the table was read (empty dict if none)."""
    meta = table.schema.metadata or {}
    raw = meta.get(METADATA_KEY)
    return json.loads(raw) if raw else {}


def decimals_of(values: np.ndarray, *, max_decimals: int = 8, min_decimals: int = -4) -> np.ndarray:
    """The decimals each number carries in its shortest decimal form (``int8``; nulls/NaN give -128).

    ``171.25 -> 2``, ``171.2 -> 1``, ``171.0 -> 0``, ``120 -> -1`` (a trailing zero of an integer counts
    as a lost digit), ``0 -> 0``. Values with more than ``max_decimals`` decimals give ``max_decimals``.
    """
    x = np.asarray(values, dtype=np.float64)
    out = np.full(x.shape, -128, dtype=np.int8)
    finite = np.isfinite(x)
    todo = finite.copy()
    for k in range(min_decimals, max_decimals + 1):
        scaled = x * (10.0**k) if k >= 0 else x / (10.0 ** (-k))
        ok = todo & (np.abs(scaled - np.round(scaled)) <= 1e-9 * np.maximum(1.0, np.abs(scaled)))
        out[ok] = k
        todo &= ~ok
        if not todo.any():
            break
    out[todo] = max_decimals
    zero = finite & (x == 0)
    out[zero] = 0
    return out


# ------------------------------------------------------------------------------------------ formats


def _max_bytes(max_bytes: int | None) -> int:
    if max_bytes is not None:
        return int(max_bytes)
    env = os.environ.get(MAX_BYTES_ENV)
    if env:
        try:
            return int(env)
        except ValueError:
            raise LeakReadError(f"{MAX_BYTES_ENV}={env!r} is not a number of bytes") from None
    return DEFAULT_MAX_BYTES


def _detect_format(p: Path, head: bytes) -> str:
    ext = p.suffix.lower()
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"PK\x03\x04"):
        if ext in {".xlsx", ".xlsm", ".xltx", ".xltm"} or _is_xlsx(p):
            return "xlsx"
        raise LeakReadError(f"{p}: a zip archive inside an archive; unpack it first")
    if ext == ".parquet":
        raise LeakReadError(f"{p}: not a Parquet file (no PAR1 magic)")
    if ext in {".xlsx", ".xlsm"}:
        raise LeakReadError(f"{p}: not an Excel .xlsx workbook (not a zip archive)")
    if ext == ".xls" or head.startswith(b"\xd0\xcf\x11\xe0"):
        raise LeakReadError(f"{p}: legacy Excel .xls is not supported; save it as .xlsx or CSV")
    if head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"(\xb5/\xfd")):
        raise LeakReadError(f"{p}: a compressed file (bzip2, xz or zstd, or nested); decompress it first")
    if ext in {".json", ".jsonl", ".ndjson", ".ipynb"}:
        return "json"
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped[:1] in (b"{", b"["):
        return "json"
    return "delimited"


_MEMBER_EXTS = (".csv", ".tsv", ".txt", ".tab", ".parquet", ".xlsx", ".json", ".jsonl", ".ndjson", ".ipynb")


def _read_archive(p: Path, head: bytes, limit: int) -> pa.Table:
    """Unpack a gzip file or a zip archive (bounded by ``limit`` bytes) and read what it holds."""
    import gzip
    import tempfile

    def copy_bounded(src: Any, dst: Any, what: str) -> None:
        total = 0
        while chunk := src.read(1 << 20):
            total += len(chunk)
            if total > limit:
                raise LeakReadError(f"{p}: {what} unpacks to over the {limit:,}-byte limit for a leak")
            dst.write(chunk)

    with tempfile.TemporaryDirectory(prefix="biowarden-leak-") as tmp:
        try:
            if head.startswith(b"\x1f\x8b"):
                member = p.stem if p.suffix.lower() == ".gz" else p.name
                out = Path(tmp) / Path(member).name
                with gzip.open(p, "rb") as src, out.open("wb") as dst:
                    copy_bounded(src, dst, "the gzip file")
            else:
                with zipfile.ZipFile(p) as zf:
                    files = [i for i in zf.infolist() if not i.is_dir() and not i.filename.startswith("__MACOSX")]
                    readable = [i for i in files if i.filename.lower().endswith(_MEMBER_EXTS)]
                    if not readable:
                        raise LeakReadError(f"{p}: the zip archive holds no table file ({', '.join(_MEMBER_EXTS)})")
                    info = max(readable, key=lambda i: i.file_size)
                    member = info.filename
                    out = Path(tmp) / (Path(member).name or "member")
                    with zf.open(info) as src, out.open("wb") as dst:
                        copy_bounded(src, dst, f"member {member!r}")
        except LeakReadError:
            raise
        except Exception as exc:  # zipfile and gzip raise many kinds on damaged input
            raise LeakReadError(f"{p}: a broken archive ({type(exc).__name__}: {exc})") from None
        try:
            table = read_leak(out, max_bytes=limit, _unpacked=True)
        except LeakReadError as exc:
            raise LeakReadError(f"{p} ({member}): {str(exc).split(': ', 1)[-1]}") from None
    info_ = leak_info(table)
    info_.update({"path": str(p), "archive": "gzip" if head.startswith(b"\x1f\x8b") else "zip", "member": member})
    meta = dict(table.schema.metadata or {})
    meta[METADATA_KEY] = json.dumps(info_, sort_keys=True, default=str).encode()
    return table.replace_schema_metadata(meta)


def _is_xlsx(p: Path) -> bool:
    try:
        with zipfile.ZipFile(p) as zf:
            return "xl/workbook.xml" in zf.namelist()
    except Exception:  # a damaged zip is not a workbook; reading it later reports the damage
        return False


def _decode_text(p: Path, data: bytes) -> tuple[str, str]:
    sample = data[: 1 << 16]
    if b"\x00" in sample:
        raise LeakReadError(f"{p}: binary content (NUL bytes), not a text table")
    for enc in ("utf-8-sig", "cp1252", "latin-1"):
        try:
            text = data.decode(enc)
        except UnicodeDecodeError:
            continue
        break
    else:  # pragma: no cover - latin-1 decodes every byte string
        raise LeakReadError(f"{p}: undecodable text")
    probe = text[:65536]
    control = sum(1 for ch in probe if (ord(ch) < 32 and ch not in "\t\r\n") or 0x7F <= ord(ch) < 0xA0)
    if probe and control / len(probe) > 0.01:
        raise LeakReadError(f"{p}: binary content (control characters), not a text table")
    return text, ("utf-8" if enc == "utf-8-sig" else enc)


def _read_delimited(p: Path, data: bytes) -> _Raw:
    text, encoding = _decode_text(p, data)
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise LeakReadError(f"{p}: the file holds only blank lines")
    delim = _sniff_delimiter(lines[:200])
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delim, quotechar='"', skipinitialspace=False)
    rows = [r for r in reader if any(c.strip() for c in r)]
    width = max(len(r) for r in rows)
    counts: dict[int, int] = {}
    for r in rows:
        counts[len(r)] = counts.get(len(r), 0) + 1
    mode = max(counts, key=lambda k: (counts[k], k))
    bad = sum(1 for r in rows if len(r) not in (mode, width) and len(r) != mode)
    if len(rows) >= 5 and bad > 0.5 * len(rows):
        raise LeakReadError(f"{p}: not a table: rows have inconsistent numbers of fields")
    good = [(r + [""] * (mode - len(r)))[:mode] for r in rows if len(r) <= mode or not any(r[mode:])]
    skipped = len(rows) - len(good)
    cells = [[(c.strip() or None) for c in r] for r in good]
    cells, trimmed = _drop_preamble(cells)
    skipped += trimmed
    names, body, header = _split_header(cells)
    raw = _Raw(names, _transpose(body, len(names)))
    raw.info = {
        "format": "tsv" if delim == "\t" else "csv",
        "delimiter": delim,
        "encoding": encoding,
        "header": header,
        "skipped_rows": skipped,
    }
    return raw


def _drop_preamble(rows: list[list[Any]]) -> tuple[list[list[Any]], int]:
    """Drop title/comment lines above a table and note lines below it (rows far narrower than the table)."""
    if len(rows) < 3:
        return rows, 0
    filled = [sum(1 for c in r if c is not None and str(c).strip() != "") for r in rows]
    counts: dict[int, int] = {}
    for f in filled:
        counts[f] = counts.get(f, 0) + 1
    typical = max(counts, key=lambda k: (counts[k], k))
    need = max(2, (typical + 1) // 2)

    def note(i: int) -> bool:  # narrow, and led by text rather than a value: a title, comment or total
        if filled[i] >= need:
            return False
        cells = [str(c).strip() for c in rows[i] if c is not None and str(c).strip() != ""]
        return not cells or _kind(cells[0]) == "text"

    lo, hi = 0, len(rows)
    while lo < hi and note(lo):
        lo += 1
    while hi > lo and note(hi - 1):
        hi -= 1
    if typical < 2 or lo >= hi:
        return rows, 0
    return rows[lo:hi], lo + (len(rows) - hi)


def _read_delimited_fast(p: Path) -> tuple[pa.Table, dict[str, Any]]:
    """Large delimited files: sniff on the first lines, then let Arrow parse and type the whole file."""
    import pyarrow.csv as pacsv

    with p.open("rb") as fh:
        sample = fh.read(1 << 20)
    text, encoding = _decode_text(p, sample[: sample.rfind(b"\n") + 1] or sample)
    lines = [ln for ln in text.splitlines() if ln.strip()][:500]
    if not lines:
        raise LeakReadError(f"{p}: the file starts with blank lines only")
    delim = _sniff_delimiter(lines[:200])
    rows = [[(c.strip() or None) for c in r] for r in csv.reader(lines, delimiter=delim)]
    rows, _ = _drop_preamble(rows)
    first = len(lines) - len(rows) if rows else 0  # preamble lines above the table
    names, _, header = _split_header(rows)
    skipped = 0

    def skip(_row: Any) -> str:
        nonlocal skipped
        skipped += 1
        return "skip"

    read_opts = pacsv.ReadOptions(
        encoding="utf8" if encoding == "utf-8" else "latin1",
        skip_rows=first + (1 if header else 0),
        column_names=names,
        block_size=16 << 20,
    )
    parse_opts = pacsv.ParseOptions(delimiter=delim, invalid_row_handler=skip, ignore_empty_lines=True)
    nulls = sorted(_NULL_TOKENS | {t.upper() for t in _NULL_TOKENS} | {"NaN", "N/A", "NA", "None", "Null"})
    conv = pacsv.ConvertOptions(null_values=nulls, strings_can_be_null=True)
    try:
        table = pacsv.read_csv(p, read_options=read_opts, parse_options=parse_opts, convert_options=conv)
    except pa.ArrowInvalid as exc:
        raise LeakReadError(f"{p}: malformed delimited text ({exc})") from None
    cols = {n: _decimal_comma(_normalise_arrow(c)) for n, c in zip(table.column_names, table.columns, strict=True)}
    info = {
        "format": "tsv" if delim == "\t" else "csv",
        "delimiter": delim,
        "encoding": encoding,
        "header": header,
        "skipped_rows": skipped + first,
        "parser": "arrow",
    }
    return pa.table(cols), info


def _decimal_comma(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """A text column of numbers written with a decimal comma (``171,5``) as float64; others unchanged."""
    import pyarrow.compute as pc

    if not pa.types.is_string(col.type) or col.null_count == len(col):
        return col
    ok = pc.match_substring_regex(col, r"^[+-]?\d+(,\d+)?$")
    if not pc.all(ok).as_py():
        return col
    return pc.cast(pc.replace_substring(col, ",", "."), pa.float64())


def _sniff_delimiter(lines: Sequence[str]) -> str:
    best, best_score = ",", -1.0
    for d in _DELIMITERS:
        counts = [len(r) for r in csv.reader(lines, delimiter=d)]
        if not counts:
            continue
        mode = max(set(counts), key=counts.count)
        if mode < 2:
            continue
        share = counts.count(mode) / len(counts)
        score = share * 10 + min(mode, 50) / 50
        if score > best_score:
            best, best_score = d, score
    return best


def _transpose(rows: list[list[str | None]], width: int) -> list[list[str | None]]:
    cols: list[list[str | None]] = [[] for _ in range(width)]
    for r in rows:
        for j in range(width):
            cols[j].append(r[j] if j < len(r) else None)
    return cols


def _kind(v: str | None) -> str:
    if v is None or v.strip().lower() in _NULL_TOKENS:
        return "null"
    s = v.strip()
    if _FLOAT_RE.match(s) or _COMMA_FLOAT_RE.match(s):
        return "num"
    if _DATE_RE.match(s):
        return "date"
    return "text"


def _split_header(rows: list[list[str | None]]) -> tuple[list[str], list[list[str | None]], bool]:
    """Decide by types whether the first row is a header; return (names, body rows, header?)."""
    if not rows:
        return [], [], False
    first, body = rows[0], rows[1:]
    width = len(first)
    header = False
    if body:
        sample = body[:500]
        votes_for = votes_against = 0
        for j in range(width):
            kinds = [_kind(r[j]) for r in sample if j < len(r)]
            kinds = [k for k in kinds if k != "null"]
            if not kinds:
                continue
            main = max(set(kinds), key=kinds.count)
            k0 = _kind(first[j])
            if main in ("num", "date"):
                if k0 == "text":
                    votes_for += 1
                elif k0 == main:
                    votes_against += 1
            elif k0 == "text":
                col_values = {r[j] for r in sample if j < len(r)}
                if first[j] in col_values:
                    votes_against += 1
        named = [c for c in first if c]
        all_text = bool(named) and all(_kind(c) == "text" for c in named)
        # an unnamed first column (pandas' exported index) leaves one header cell empty
        names_unique = len(set(named)) == len(named) >= max(1, width - 1)
        header = names_unique and (votes_for > votes_against or (votes_for == votes_against == 0 and all_text))
    elif all(_kind(c) == "text" for c in first):
        header = True  # a lone header row: no data, caught by the caller
    if header:
        names = [(c or f"column_{j + 1}") for j, c in enumerate(first)]
        return _dedupe_names(names), body, True
    return [f"column_{j + 1}" for j in range(width)], rows, False


def _dedupe_names(names: Iterable[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        n = str(n).strip() or "column"
        if n in seen:
            seen[n] += 1
            out.append(f"{n}.{seen[n]}")
        else:
            seen[n] = 0
            out.append(n)
    return out


def _infer_table(raw: _Raw) -> pa.Table:
    arrays = [_infer_column(col) for col in raw.columns]
    return pa.table(arrays, names=_dedupe_names(raw.names)) if arrays else pa.table({})


def _infer_column(col: list[str | None]) -> pa.Array:
    vals = [None if (v is None or v.strip().lower() in _NULL_TOKENS) else v.strip() for v in col]
    present = [v for v in vals if v is not None]
    if not present:
        return pa.array([None] * len(vals), type=pa.float64())
    if all(_INT_RE.match(v) for v in present):
        try:
            return pa.array([None if v is None else int(v) for v in vals], type=pa.int64())
        except (OverflowError, pa.ArrowInvalid):
            pass
    if all(_FLOAT_RE.match(v) for v in present):
        return pa.array([None if v is None else float(v) for v in vals], type=pa.float64())
    if all(_COMMA_FLOAT_RE.match(v) or _INT_RE.match(v) for v in present):
        return pa.array([None if v is None else float(v.replace(",", ".")) for v in vals], type=pa.float64())
    if all(_DATE_RE.match(v) for v in present):
        try:
            return pa.array([None if v is None else _dt.date.fromisoformat(v[:10]) for v in vals], type=pa.date32())
        except ValueError:
            pass
    return pa.array(vals, type=pa.string())


def _read_parquet(p: Path) -> tuple[pa.Table, dict[str, Any]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(p)
    except (pa.ArrowException, OSError) as exc:
        raise LeakReadError(f"{p}: unreadable Parquet file ({exc})") from None
    cols = []
    for name, col in zip(table.column_names, table.columns, strict=True):
        cols.append((name, _normalise_arrow(col)))
    out = pa.table(dict(cols)) if cols else pa.table({})
    return out, {"format": "parquet"}


def _normalise_arrow(col: pa.ChunkedArray) -> pa.ChunkedArray:
    t = col.type
    if pa.types.is_dictionary(t):
        col = col.cast(t.value_type)
        t = col.type
    if pa.types.is_float32(t) or pa.types.is_float16(t):
        # go through the shortest decimal form so 171.1f stays 171.1, not 171.10000610351562
        arr = col.to_numpy(zero_copy_only=False)
        as_text = np.where(np.isnan(arr), "nan", arr.astype(str))
        return pa.chunked_array([pa.array(as_text.astype(np.float64), from_pandas=True)])
    if pa.types.is_decimal(t):
        return col.cast(pa.float64())
    if pa.types.is_integer(t) and t != pa.int64():
        return col.cast(pa.int64())
    if pa.types.is_large_string(t):
        return col.cast(pa.string())
    if pa.types.is_timestamp(t):
        return col.cast(pa.date32()) if _all_midnight(col) else col
    return col


def _all_midnight(col: pa.ChunkedArray) -> bool:
    import pyarrow.compute as pc

    try:
        d = pc.cast(pc.cast(col, pa.date32()), col.type)
        return bool(pc.all(pc.equal(d, col)).as_py() in (True, None))
    except pa.ArrowException:
        return False


def _cell_text(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return str(int(v))
    if isinstance(v, float):
        if v != v:
            return None
        return repr(v) if not v.is_integer() else str(int(v)) if abs(v) < 1e15 else repr(v)
    if isinstance(v, _dt.datetime):
        return v.date().isoformat() if v.time() == _dt.time() else v.isoformat(sep=" ")
    if isinstance(v, _dt.date):
        return v.isoformat()
    s = str(v).strip()
    return s or None


def _read_xlsx(p: Path) -> _Raw:
    import openpyxl

    try:
        wb = openpyxl.load_workbook(p, read_only=True, data_only=True)
    except Exception as exc:
        raise LeakReadError(f"{p}: unreadable Excel workbook ({type(exc).__name__}: {exc})") from None
    try:
        best: tuple[int, str, list[list[Any]]] | None = None
        for ws in wb.worksheets:
            rows = [list(r) for r in ws.iter_rows(values_only=True)]
            rows = _trim_grid(rows)
            filled = sum(1 for r in rows for c in r if c is not None and str(c).strip() != "")
            if filled and (best is None or filled > best[0]):
                best = (filled, ws.title, rows)
        sheets = len(wb.worksheets)
    finally:
        wb.close()
    if best is None:
        raise LeakReadError(f"{p}: the workbook has no filled cells")
    _, title, grid = best
    cells = [[_cell_text(c) for c in r] for r in grid]
    cells, _ = _drop_preamble(cells)
    cells = _trim_grid(cells)
    names, body, header = _split_header(cells)
    raw = _Raw(names, _transpose(body, len(names)))
    raw.info = {"format": "xlsx", "sheet": title, "sheets": sheets, "header": header}
    return raw


def _trim_grid(rows: list[list[Any]]) -> list[list[Any]]:
    def empty(c: Any) -> bool:
        return c is None or (isinstance(c, str) and not c.strip())

    # several tables on one sheet, one under another: keep the block (between empty rows) with most cells
    blocks: list[list[list[Any]]] = [[]]
    for r in rows:
        if all(empty(c) for c in r):
            if blocks[-1]:
                blocks.append([])
        else:
            blocks[-1].append(r)
    rows = max(blocks, key=lambda b: sum(1 for r in b for c in r if not empty(c)))
    if not rows:
        return []
    width = max(len(r) for r in rows)
    rows = [r + [None] * (width - len(r)) for r in rows]
    used = [j for j in range(width) if any(not empty(r[j]) for r in rows)]
    lo, hi = min(used), max(used)
    return [r[lo : hi + 1] for r in rows]


# --------------------------------------------------------------------------------------------- JSON


def _read_json_family(p: Path, data: bytes) -> _Raw:
    text, _ = _decode_text(p, data)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        doc = _json_lines(p, text)
    if isinstance(doc, dict) and isinstance(doc.get("cells"), list):
        return _read_notebook(p, doc)
    raw = _json_to_raw(p, doc)
    raw.info.setdefault("format", "json")
    return raw


def _json_lines(p: Path, text: str) -> list[Any]:
    out = []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise LeakReadError(f"{p}: malformed JSON (line {i}: {exc.msg})") from None
    if not out:
        raise LeakReadError(f"{p}: no JSON values found")
    return out


def _json_to_raw(p: Path, doc: Any) -> _Raw:
    if isinstance(doc, dict):
        if isinstance(doc.get("columns"), list) and isinstance(doc.get("data"), list):
            names = [str(c) for c in doc["columns"]]
            rows = [list(r) if isinstance(r, list) else [r] for r in doc["data"]]
            return _rows_to_raw(names, rows, "json-split")
        for key in ("data", "rows", "records", "items", "results"):
            if isinstance(doc.get(key), list) and doc[key] and all(isinstance(r, dict) for r in doc[key]):
                return _records_to_raw(doc[key], f"json-records[{key}]")
        values = list(doc.values())
        if values and all(isinstance(v, list) for v in values):
            lengths = {len(v) for v in values}
            if len(lengths) != 1:
                raise LeakReadError(f"{p}: JSON columns have different lengths {sorted(lengths)}")
            raw = _Raw([str(k) for k in doc], [[_cell_text(x) for x in v] for v in values])
            raw.info = {"format": "json-columns"}
            return raw
        if values and all(isinstance(v, dict) for v in values):
            inner = [set(v) for v in values]
            # pandas orient="columns" ({col: {row: value}}) versus orient="index" ({row: {col: value}})
            keys_numeric = all(_INT_RE.match(str(k)) for k in doc)
            if keys_numeric and len(inner) > 0:
                return _records_to_raw(values, "json-index")
            rows_keys: list[str] = []
            seen: set[str] = set()
            for s in values:
                for k in s:
                    if k not in seen:
                        seen.add(k)
                        rows_keys.append(k)
            raw = _Raw([str(k) for k in doc], [[_cell_text(v.get(r)) for r in rows_keys] for v in values])
            raw.info = {"format": "json-columns"}
            return raw
        raise LeakReadError(f"{p}: JSON object is not a table (expected records, columns or split layout)")
    if isinstance(doc, list):
        if not doc:
            raise LeakReadError(f"{p}: the JSON list is empty")
        if all(isinstance(r, dict) for r in doc):
            return _records_to_raw(doc, "json-records")
        if all(isinstance(r, list) for r in doc):
            rows = [[_cell_text(c) for c in r] for r in doc]
            width = max(len(r) for r in rows)
            rows = [r + [None] * (width - len(r)) for r in rows]
            names, body, header = _split_header(rows)
            raw = _Raw(names, _transpose(body, len(names)))
            raw.info = {"format": "json-arrays", "header": header}
            return raw
    raise LeakReadError(f"{p}: JSON document is not a table")


def _records_to_raw(records: Sequence[dict[str, Any]], fmt: str) -> _Raw:
    names: list[str] = []
    seen: set[str] = set()
    for r in records:
        for k in r:
            if k not in seen:
                seen.add(k)
                names.append(k)
    cols = [[_cell_text(_scalar(r.get(k))) for r in records] for k in names]
    raw = _Raw([str(n) for n in names], cols)
    raw.info = {"format": fmt}
    return raw


def _rows_to_raw(names: list[str], rows: list[list[Any]], fmt: str) -> _Raw:
    width = len(names)
    cols = [[_cell_text(_scalar(r[j])) if j < len(r) else None for r in rows] for j in range(width)]
    raw = _Raw(names, cols)
    raw.info = {"format": fmt}
    return raw


def _scalar(v: Any) -> Any:
    if isinstance(v, (list, dict)):
        return json.dumps(v, sort_keys=True)
    return v


# ---------------------------------------------------------------------------------------- notebooks


@dataclass
class _Found:
    names: list[str]
    index: list[str]
    rows: list[list[str | None]]
    where: str
    truncated: bool
    index_name: str = ""


class _TableParser(HTMLParser):
    """Collects every <table> as a list of rows; each row a list of (is_header_cell, text)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[list[tuple[str, list[tuple[bool, str]]]]] = []
        self._stack: list[list[tuple[str, list[tuple[bool, str]]]]] = []
        self._section = "tbody"
        self._row: list[tuple[bool, str]] | None = None
        self._cell: list[str] | None = None
        self._cell_th = False
        self._colspan = 1

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self._stack.append([])
        elif not self._stack:
            return
        elif tag in ("thead", "tbody", "tfoot"):
            self._section = tag
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell, self._cell_th = [], tag == "th"
            span = dict(attrs).get("colspan") or "1"
            self._colspan = int(span) if span.isdigit() else 1

    def handle_endtag(self, tag: str) -> None:
        if not self._stack:
            return
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            text = " ".join("".join(self._cell).split())
            self._row.extend([(self._cell_th, text)] * max(1, min(self._colspan, 1000)))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self._stack[-1].append((self._section, self._row))
            self._row = None
        elif tag == "table":
            self.tables.append(self._stack.pop())
            self._section = "tbody"

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _html_tables(html: str, where: str) -> list[_Found]:
    parser = _TableParser()
    parser.feed(html)
    parser.close()
    found = []
    for rows in parser.tables:
        head = [r for sec, r in rows if sec == "thead"]
        body = [r for sec, r in rows if sec != "thead"]
        if not head and body and all(th for th, _ in body[0]):
            head, body = [body[0]], body[1:]
        if not head or not body:
            continue
        header = [t for _, t in head[0]]
        # pandas puts the index name on a second header row: ('', '', ...) with the name first
        index_name = ""
        if len(head) > 1 and head[-1] and head[-1][0][1] and not any(t for _, t in head[-1][1:]):
            index_name = head[-1][0][1]
        elif len(head) > 1:
            header = [t for _, t in head[-1]] if any(t for _, t in head[-1]) else header
        has_index = bool(body) and all(r and r[0][0] for r in body)
        names = header[1:] if has_index and len(header) == len(body[0]) else header
        if has_index and len(header) == len(body[0]) - 1:
            names = header
        index: list[str] = []
        data_rows: list[list[str | None]] = []
        truncated = False
        for r in body:
            cells = [t for _, t in r]
            if has_index:
                idx, cells = cells[0], cells[1:]
            else:
                idx = str(len(index))
            if cells and all(c in _ELLIPSIS for c in cells):
                truncated = True
                continue
            index.append(idx)
            data_rows.append([c if c != "" else None for c in cells])
        width = len(names)
        data_rows = [(r + [None] * width)[:width] for r in data_rows]
        found.append(_finish(names, index, data_rows, where, truncated, index_name))
    return found


def _finish(
    names: list[str],
    index: list[str],
    rows: list[list[str | None]],
    where: str,
    truncated: bool,
    index_name: str,
) -> _Found:
    keep = [j for j, n in enumerate(names) if n not in _ELLIPSIS]
    if len(keep) != len(names):
        truncated = True
    names = [names[j] for j in keep]
    rows = [[r[j] for j in keep] for r in rows]
    if index_name:
        names = [index_name, *names]
        rows = [[i, *r] for i, r in zip(index, rows, strict=True)]
    elif index and not all(_INT_RE.match(i or "") for i in index):
        names = ["index", *names]
        rows = [[i, *r] for i, r in zip(index, rows, strict=True)]
    return _Found(names, index, rows, where, truncated)


_FOOTER_RE = re.compile(r"^\[\d+ rows x \d+ columns\]$")


def _text_tables(text: str, where: str) -> list[_Found]:
    """Parse pandas' plain-text DataFrame repr (right-aligned columns, wrapped in blocks)."""
    lines = [ln.rstrip() for ln in text.splitlines()]
    blocks: list[list[str]] = []
    cur: list[str] = []
    for ln in lines:
        if not ln.strip() or _FOOTER_RE.match(ln.strip()):
            if cur:
                blocks.append(cur)
            cur = []
        else:
            cur.append(ln)
    if cur:
        blocks.append(cur)
    parsed = [b for b in (_text_block(b) for b in blocks) if b is not None]
    if not parsed:
        return []
    # pandas wraps wide frames into several blocks over the same index: join them side by side
    out: list[_Found] = []
    for names, index, rows, truncated, index_name in parsed:
        if out and out[-1].index == index and not index_name:
            prev = out[-1]
            prev.names.extend(names)
            for pr, r in zip(prev.rows, rows, strict=True):
                pr.extend(r)
            prev.truncated |= truncated
        else:
            rows_copy = [list(r) for r in rows]
            out.append(_Found(list(names), list(index), rows_copy, where, truncated, index_name))
    return [_finish(f.names, f.index, f.rows, f.where, f.truncated, f.index_name) for f in out]


def _text_block(block: list[str]) -> tuple[list[str], list[str], list[list[str | None]], bool, str] | None:
    if len(block) < 2:
        return None
    header = block[0].rstrip(" \\")
    spans = [(m.start(), m.end()) for m in re.finditer(r"\S+", header)]
    if not spans or not header.startswith(" "):
        return None  # pandas leaves the index column's header blank
    body = block[1:]
    index_name = ""
    first = body[0]
    tokens = first.split()
    if len(tokens) == 1 and first.startswith(tokens[0]) and len(body) > 1 and len(first) <= spans[0][0] + 1:
        index_name = tokens[0]  # a named index: its name alone on the second header line (e.g. "eid")
        body = body[1:]
    names = [header[s:e] for s, e in spans]
    ends = [e for _, e in spans]
    rows: list[list[str | None]] = []
    index: list[str] = []
    truncated = False
    for ln in body:
        ln = ln.rstrip(" \\")
        if not ln.strip():
            continue
        first_cell = ln[: ends[0]].strip().split(None, 1)
        if not first_cell:
            return None
        idx = first_cell[0]
        cells: list[str | None] = [first_cell[1].strip() if len(first_cell) > 1 else None]
        for j in range(1, len(ends)):
            cells.append(ln[ends[j - 1] : ends[j]].strip() or None)
        rest = ln[ends[-1] :].strip()
        if rest:
            return None  # not aligned as a DataFrame repr
        if idx in _ELLIPSIS or (cells and all(c in _ELLIPSIS for c in cells if c)):
            truncated = True
            continue
        index.append(idx)
        rows.append(cells)
    if not rows:
        return None
    # every row must fill every column (allowing nulls as NaN text): reject prose that happens to align
    filled = sum(1 for r in rows for c in r if c is not None) / (len(rows) * len(names))
    if filled < 0.5:
        return None
    return names, index, rows, truncated, index_name


_BOX_SPLIT = re.compile(r"[│┆|]")
_BOX_RULE = re.compile(r"^[\s\-:=─━═╪┼╞╡├┤┌┐└┘┬┴+|│┆]*$")
_POLARS_DTYPE = re.compile(
    r"^(i|u|f)(8|16|32|64)$|^(str|bool|date|time|null|cat|object|binary)$|^(datetime|duration|list|array|struct|decimal|enum)\b"
)


def _box_tables(text: str, where: str) -> list[_Found]:
    """Tables drawn with box characters or pipes: polars' repr (``│ a ┆ b │``) and Markdown (``| a | b |``)."""
    blocks: list[list[str]] = []
    cur: list[str] = []
    for ln in text.splitlines():
        st = ln.strip()
        if st[:1] in ("│", "|", "┌", "╞", "├", "└", "╭", "╰"):
            cur.append(st)
        elif cur:
            blocks.append(cur)
            cur = []
    if cur:
        blocks.append(cur)
    found = []
    for block in blocks:
        rows = []
        for ln in block:
            if _BOX_RULE.match(ln):
                continue
            cells = [c.strip() for c in _BOX_SPLIT.split(ln)]
            if cells and cells[0] == "":
                cells = cells[1:]
            if cells and cells[-1] == "":
                cells = cells[:-1]
            rows.append([c[1:-1] if len(c) >= 2 and c[0] == c[-1] == '"' else c for c in cells])
        if len(rows) < 2:
            continue
        names, body = rows[0], rows[1:]
        typed = [c for c in body[0] if c and c not in _ELLIPSIS] if body else []
        if typed and all(_POLARS_DTYPE.match(c) for c in typed):
            body = body[1:]  # polars prints each column's dtype under its name
        width = len(names)
        body = [r for r in body if len(r) == width]
        truncated = False
        data: list[list[str | None]] = []
        for r in body:
            if all(c in _ELLIPSIS for c in r):
                truncated = True
                continue
            data.append([c if c not in ("", "null") else None for c in r])
        if data:
            index = [str(i) for i in range(len(data))]
            found.append(_finish(names, index, data, where, truncated, ""))
    return found


def _read_notebook(p: Path, nb: dict[str, Any]) -> _Raw:
    found: list[_Found] = []
    for ci, cell in enumerate(nb.get("cells") or []):
        if not isinstance(cell, dict):
            continue
        for oi, out in enumerate(cell.get("outputs") or []):
            if not isinstance(out, dict):
                continue
            where = f"cell {ci + 1} output {oi + 1}"
            data = out.get("data") if isinstance(out.get("data"), dict) else {}
            html = _join(data.get("text/html"))
            tables: list[_Found] = []
            if html and "<table" in html.lower():
                tables = _html_tables(html, where + " (html)")
            if not tables:
                plain = _join(data.get("text/plain")) or (
                    _join(out.get("text")) if out.get("output_type") == "stream" else ""
                )
                if plain:
                    tables = _text_tables(plain, where + " (text)") or _box_tables(plain, where + " (text)")
            found.extend(t for t in tables if t.names and t.rows)
    if not found:
        raise LeakReadError(f"{p}: the notebook has no table in its cell outputs")
    # group tables showing the same columns; take the group with the most rows (dropping repeats)
    groups: dict[tuple[str, ...], list[_Found]] = {}
    for t in found:
        groups.setdefault(tuple(t.names), []).append(t)
    key = max(groups, key=lambda k: (sum(len(t.rows) for t in groups[k]), len(k)))
    chosen = groups[key]
    seen: set[tuple[str | None, ...]] = set()
    rows: list[list[str | None]] = []
    for t in chosen:
        for r in t.rows:
            sig = tuple(r)
            if sig in seen:
                continue
            seen.add(sig)
            rows.append(r)
    raw = _Raw(list(key), _transpose(rows, len(key)))
    raw.info = {
        "format": "ipynb",
        "taken": [t.where for t in chosen],
        "truncated": any(t.truncated for t in chosen),
        "tables_found": len(found),
        "tables_skipped": [f"{t.where}: {len(t.rows)}x{len(t.names)}" for t in found if t not in chosen],
    }
    return raw


def _join(v: Any) -> str:
    if isinstance(v, list):
        return "".join(str(x) for x in v)
    return v if isinstance(v, str) else ""
