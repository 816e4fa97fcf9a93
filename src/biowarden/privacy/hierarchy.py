"""Generalisation hierarchies: ARX-layout files and built-in builders (dates, intervals, codings).

A hierarchy for one quasi-identifier is a table with one row per original value and one column per level:
level 0 is the value itself, the last level is usually ``*``. This module reads ARX's layout
(``;``-separated, no header, one row per value) and builds hierarchies from the data dictionary's spec
strings:

- ``date:day,month,quarter,year,5y,10y`` (any subset, in order; ``*`` is added on top),
- ``interval:W1,W2,...`` (numbers: bands of width W1, then W2, ...; each width a multiple of the last),
- ``coding:icd10-chapter`` (ICD-10 code -> 3-character category -> block -> chapter) and
  ``coding:ukb-centre-region`` (UK Biobank assessment centre -> region -> country),
- ``file:NAME`` (a file named NAME in the hierarchies folder),
- ``set:SPEC`` (a set-valued column, e.g. ``set:date:month,quarter,year`` for a participant's operation
  dates: every element generalised by SPEC, the record's value being the sorted tuple of generalised
  elements; the top level ``*`` hides the whole set, its size included).

Everything here is encoded once into integer arrays so that the search can generalise distinct
combinations with NumPy indexing.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from biowarden.privacy.data import SetCodes, SetTexts, code_strings, set_codes, sort_within

TOP = "*"
NULL_VALUE = "NULL"  # how biowarden.privacy.data renders a missing value


class HierarchyError(ValueError):
    """A hierarchy that cannot be used: ragged, missing values, unknown column, bad spec."""


class Hierarchy:
    """A materialised hierarchy: ``rows[v][l]`` is value ``v`` generalised to level ``l``.

    Encoded views (built on construction): ``codes[l][v]`` the label index of value ``v`` at level ``l``
    (labels numbered in order of first appearance down the rows); ``leaves[l][c]`` how many level-0 values
    label ``c`` of level ``l`` covers (ARX's domain share numerator). ``labels[l]`` are the distinct labels of
    level ``l``, ``index`` maps a level-0 value string to its row, and ``rows`` is the table itself: these
    three are read from the encoded views on first use, so a hierarchy built from codes (a set hierarchy
    over hundreds of thousands of sets) renders its label texts only if someone reads them.
    """

    def __init__(self, name: str, rows: Sequence[Sequence[str]]) -> None:
        if not rows:
            raise HierarchyError(f"hierarchy for column {name!r} is empty")
        width = len(rows[0])
        for i, row in enumerate(rows):
            if len(row) != width:
                raise HierarchyError(
                    f"hierarchy for column {name!r} is ragged: row {i + 1} ({row[0]!r}) has "
                    f"{len(row)} levels, the first row has {width}"
                )
        self._from_columns(name, [pa.array([row[level] for row in rows], pa.string()) for level in range(width)])
        self._rows = [list(row) for row in rows]

    @classmethod
    def from_columns(cls, name: str, columns: Sequence[pa.Array]) -> Hierarchy:
        """The hierarchy whose level ``l`` is ``columns[l]`` (Arrow string arrays of equal length, one item per
        value): encoded with Arrow, the rows read back only if someone asks for them."""
        if not columns or not len(columns[0]):
            raise HierarchyError(f"hierarchy for column {name!r} is empty")
        if any(len(c) != len(columns[0]) for c in columns):
            raise HierarchyError(f"hierarchy for column {name!r} is ragged: its levels differ in length")
        h = cls.__new__(cls)
        h._from_columns(name, columns)
        return h

    def _from_columns(self, name: str, columns: Sequence[pa.Array]) -> None:
        first = pc.dictionary_encode(columns[0], null_encoding="encode")
        if len(first.dictionary) < len(columns[0]):
            seen: set[str] = set()
            twice = next(v for v in columns[0].to_pylist() if v in seen or seen.add(v))
            raise HierarchyError(f"hierarchy for column {name!r} lists value {twice!r} twice")
        codes, labels = [], []
        for column in columns:
            enc = pc.dictionary_encode(column, null_encoding="encode")
            codes.append(np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64))
            labels.append(enc.dictionary)
        self._encoded(name, codes, [len(lab) for lab in labels], labels)

    def _encoded(self, name: str, codes: list[np.ndarray], counts: list[int], labels: list[pa.Array | None]) -> None:
        """Set the encoded views: ``codes`` and the number of labels per level, and the labels of the levels
        where they are already rendered (None where :meth:`_render` renders them when read)."""
        self.name = name
        self.codes = codes
        self.leaves = [np.bincount(c, minlength=m).astype(np.int64) for c, m in zip(codes, counts, strict=True)]
        self._label_arrays = list(labels)
        self._labels: _Levels | None = None
        self._rows: list[list[str]] | None = None
        self._index: dict[str, int] | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.domain_size} values, {self.height} levels)"

    @property
    def height(self) -> int:
        """Number of levels (level 0 included)."""
        return len(self.codes)

    @property
    def domain_size(self) -> int:
        return len(self.codes[0])

    def num_labels(self, level: int) -> int:
        """How many distinct labels level ``level`` has (without rendering them)."""
        return len(self.leaves[level])

    def label_array(self, level: int) -> pa.Array:
        """The labels of a level as an Arrow string array (rendered on first use)."""
        arr = self._label_arrays[level]
        if arr is None:
            arr = self._label_arrays[level] = self._render(level)
        return arr

    def _render(self, level: int) -> pa.Array:
        raise HierarchyError(f"hierarchy for column {self.name!r} has no labels for level {level}")

    @property
    def labels(self) -> Sequence[list[str]]:
        """The labels of every level (``labels[l]``, a list of strings, rendered when first read)."""
        if self._labels is None:
            self._labels = _Levels(self)
        return self._labels

    @property
    def rows(self) -> list[list[str]]:
        if self._rows is None:
            cols = [self.label_array(lv).take(pa.array(self.codes[lv])).to_pylist() for lv in range(self.height)]
            self._rows = [list(row) for row in zip(*cols, strict=True)]
        return self._rows

    @property
    def values(self) -> pa.Array:
        """The level-0 values, in row order."""
        return self.label_array(0)

    @property
    def index(self) -> dict[str, int]:
        if self._index is None:
            self._index = {v: i for i, v in enumerate(self.values.to_pylist())}
        return self._index

    def encode(self, values: Sequence[str] | pa.Array) -> np.ndarray:
        """Row indices of the given level-0 values; a clear error for a value the hierarchy lacks."""
        if isinstance(values, SetTexts):
            values = values.sets.texts()
        arr = values if isinstance(values, pa.Array) else pa.array(list(values), pa.string())
        if len(arr) == 0:
            return np.zeros(0, dtype=np.int64)
        pos = pc.index_in(arr, value_set=self.values)
        if pos.null_count:
            missing = arr.filter(pos.is_null()).to_pylist()
            shown = ", ".join(repr(m) for m in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise HierarchyError(f"column {self.name!r}: value(s) {shown}{more} missing from its hierarchy")
        return np.asarray(pos.to_numpy(zero_copy_only=False), dtype=np.int64)

    def rows_of(self, dictionary: Sequence[str]) -> np.ndarray:
        """Row indices of a histogram dictionary's values (:meth:`encode`)."""
        return self.encode(dictionary)

    def up_is_tree(self, lower: int, upper: int) -> bool:
        """True when every label of level ``lower`` has a single label at level ``upper``."""
        parent = np.full(self.num_labels(lower), -1, dtype=np.int64)
        parent[self.codes[lower]] = self.codes[upper]
        return bool(np.array_equal(parent[self.codes[lower]], self.codes[upper]))

    def is_functional(self) -> bool:
        """True when every label of level l has a single parent at level l+1 (a tree)."""
        for level in range(self.height - 1):
            parent = np.full(self.num_labels(level), -1, dtype=np.int64)
            child, up = self.codes[level], self.codes[level + 1]
            parent[child] = up
            if not np.array_equal(parent[child], up):
                return False
        return True


class _Levels(Sequence[list[str]]):
    """A hierarchy's labels level by level, each level's list made when first read."""

    def __init__(self, h: Hierarchy) -> None:
        self.h = h
        self._lists: dict[int, list[str]] = {}

    def __len__(self) -> int:
        return self.h.height

    def __getitem__(self, level):  # a level, or a slice of levels, as for a list
        if isinstance(level, slice):
            return [self[i] for i in range(*level.indices(len(self)))]
        if level < 0:
            level += len(self)
        if not 0 <= level < len(self):
            raise IndexError(level)
        if level not in self._lists:
            self._lists[level] = self.h.label_array(level).to_pylist()
        return self._lists[level]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<labels of {self.h!r}>"


# ----------------------------------------------------------------------------------------------- files


def parse_hierarchy_text(text: str, name: str, delimiter: str = ";") -> Hierarchy:
    """Parse ARX's layout: one row per value, ``delimiter``-separated levels, no header."""
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    rows = [[cell.strip() for cell in row] for row in reader if row and any(c.strip() for c in row)]
    return Hierarchy(name, rows)


def read_hierarchy_file(path: str | Path, name: str | None = None) -> Hierarchy:
    path = Path(path)
    if not path.is_file():
        raise HierarchyError(f"hierarchy file {path} does not exist")
    text = path.read_text(encoding="utf-8-sig")
    first = text.splitlines()[0] if text.strip() else ""
    delimiter = ";" if ";" in first else ("\t" if "\t" in first else ",")
    return parse_hierarchy_text(text, name or column_of_hierarchy_file(path.name) or path.stem, delimiter)


_HIER_RE = re.compile(r"^.*_hierarchy_(?P<col>.+)\.csv$")


def column_of_hierarchy_file(filename: str) -> str | None:
    """``adult_hierarchy_age.csv`` -> ``age``; ``age.csv`` -> ``age``; other files -> None."""
    m = _HIER_RE.match(filename)
    if m:
        return m.group("col")
    if filename.endswith(".csv"):
        return filename[: -len(".csv")]
    return None


def load_hierarchies(
    folder: str | Path, columns: Iterable[str] | None = None, required: bool = True
) -> dict[str, Hierarchy]:
    """All hierarchies of a folder (``<column>.csv`` or ``<anything>_hierarchy_<column>.csv``).

    With ``columns`` only those are loaded, and (when ``required``) a column without a file is an error.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise HierarchyError(f"hierarchies folder {folder} does not exist")
    files: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        col = column_of_hierarchy_file(p.name)
        if col is None or not p.is_file():
            continue
        # an explicit `<anything>_hierarchy_<col>.csv` wins over a plain `<col>.csv`
        if col not in files or "_hierarchy_" in p.name:
            files[col] = p
    wanted = list(columns) if columns is not None else list(files)
    missing = [c for c in wanted if c not in files]
    if not required:
        wanted = [c for c in wanted if c in files]
    elif missing:
        raise HierarchyError(f"no hierarchy file in {folder} for column(s): {', '.join(missing)}")
    return {c: read_hierarchy_file(files[c], c) for c in wanted}


# -------------------------------------------------------------------------------------------- builders

_DATE_LEVELS = ("day", "month", "quarter", "year", "5y", "10y")


def parse_spec(spec: str) -> tuple[str, list[str]]:
    if spec.strip().lower().startswith("set:"):
        return "set", [spec.strip()[4:].strip()]
    return _parse_spec(spec)


def _parse_spec(spec: str) -> tuple[str, list[str]]:
    """``"date:month,year"`` -> ``("date", ["month", "year"])``; ``"file:x.csv"`` -> ``("file", ["x.csv"])``."""
    if ":" not in spec:
        raise HierarchyError(f"hierarchy spec {spec!r} is not of the form KIND:ARGS")
    kind, _, args = spec.partition(":")
    kind = kind.strip().lower()
    if kind not in ("date", "interval", "coding", "file"):
        raise HierarchyError(f"hierarchy spec {spec!r}: unknown kind {kind!r} (date, interval, coding, file)")
    parts = [a.strip() for a in args.split(",")] if kind != "file" else [args.strip()]
    if not parts or any(not p for p in parts):
        raise HierarchyError(f"hierarchy spec {spec!r} has an empty argument")
    return kind, parts


def _as_date(v: str) -> date:
    try:
        return datetime.fromisoformat(v[:10]).date()
    except ValueError as e:
        raise HierarchyError(f"{v!r} is not an ISO date (YYYY-MM-DD)") from e


def _date_label(d: date, level: str) -> str:
    if level == "day":
        return d.isoformat()
    if level == "month":
        return f"{d.year:04d}-{d.month:02d}"
    if level == "quarter":
        return f"{d.year:04d}-Q{(d.month - 1) // 3 + 1}"
    if level == "year":
        return f"{d.year:04d}"
    width = int(level[:-1])
    lo = d.year - d.year % width
    return f"{lo}-{lo + width - 1}"


def build_date_hierarchy(name: str, values: Iterable[str], levels: Sequence[str]) -> Hierarchy:
    """Dates (ISO strings; ``YYYY-MM`` and ``YYYY`` accepted when the finest level is coarser)."""
    for lv in levels:
        if lv not in _DATE_LEVELS:
            raise HierarchyError(f"date hierarchy for {name!r}: unknown level {lv!r} ({', '.join(_DATE_LEVELS)})")
    order = [_DATE_LEVELS.index(lv) for lv in levels]
    if order != sorted(order) or len(set(order)) != len(order):
        raise HierarchyError(f"date hierarchy for {name!r}: levels must go from fine to coarse")
    distinct = sorted(set(values))
    dates = [_as_date(v if len(v) >= 10 else (v + "-01" if len(v) == 7 else v + "-01-01")) for v in distinct]
    parts = np.array([(d.year, d.month, d.toordinal()) for d in dates], dtype=np.int64).reshape(-1, 3)
    columns = [pa.array(distinct, pa.string())]
    columns.extend(_date_labels(dates, parts, lv) for lv in levels)
    columns.append(pa.array([TOP] * len(distinct), pa.string()))
    # a first level equal to the value itself (day on day-dates) is not a generalisation: drop it
    if distinct and columns[0].equals(columns[1]):
        del columns[1]
    return Hierarchy.from_columns(name, columns)


def _date_labels(dates: Sequence[date], parts: np.ndarray, level: str) -> pa.Array:
    """Every date's label at ``level`` (``parts``: each date's year, month and ordinal), each distinct label
    rendered once (by :func:`_date_label`)."""
    year, month = parts[:, 0], parts[:, 1]
    if level == "day":
        key = parts[:, 2]
    elif level == "month":
        key = year * 12 + month - 1
    elif level == "quarter":
        key = year * 4 + (month - 1) // 3
    elif level == "year":
        key = year
    else:
        width = int(level[:-1])
        key = year - year % width
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    labels = pa.array([_date_label(dates[i], level) for i in first.tolist()], pa.string())
    return labels.take(pa.array(inverse.reshape(-1)))


def _num(v: str) -> float:
    try:
        return float(v)
    except ValueError as e:
        raise HierarchyError(f"{v!r} is not a number") from e


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def build_interval_hierarchy(name: str, values: Iterable[str], widths: Sequence[str]) -> Hierarchy:
    """Numbers into bands ``[lo, lo+w)`` of each width in turn, then ``*``.

    Bands must nest (each band a union of the finer bands) for the hierarchy to be a tree, so a width
    that is not a multiple of the previous one is rounded up to the next multiple (``1,2,5,10`` gives bands
    of 1, 2, 6 and 12); the labels always state the band actually used.
    """
    ws = [_num(w) for w in widths]
    if any(w <= 0 for w in ws):
        raise HierarchyError(f"interval hierarchy for {name!r}: widths must be positive")
    for i in range(1, len(ws)):
        if ws[i] < ws[i - 1]:
            raise HierarchyError(f"interval hierarchy for {name!r}: widths must grow ({', '.join(widths)})")
        ratio = ws[i] / ws[i - 1]
        if abs(ratio - round(ratio)) > 1e-9:
            ws[i] = math.ceil(ratio) * ws[i - 1]
        else:
            ws[i] = round(ratio) * ws[i - 1]
    rows = []
    for v in sorted(set(values), key=_num):
        x = _num(v)
        row = [v]
        for w in ws:
            lo = np.floor(x / w) * w
            row.append(f"[{_fmt(lo)}, {_fmt(lo + w)})")
        row.append(TOP)
        rows.append(row)
    return Hierarchy(name, rows)


# ICD-10 chapters by code range (WHO ICD-10, 2019): (first, last, chapter label).
ICD10_CHAPTERS: tuple[tuple[str, str, str], ...] = (
    ("A00", "B99", "I Infectious and parasitic"),
    ("C00", "D48", "II Neoplasms"),
    ("D50", "D89", "III Blood and immune"),
    ("E00", "E90", "IV Endocrine, nutritional, metabolic"),
    ("F00", "F99", "V Mental and behavioural"),
    ("G00", "G99", "VI Nervous system"),
    ("H00", "H59", "VII Eye and adnexa"),
    ("H60", "H95", "VIII Ear and mastoid"),
    ("I00", "I99", "IX Circulatory system"),
    ("J00", "J99", "X Respiratory system"),
    ("K00", "K93", "XI Digestive system"),
    ("L00", "L99", "XII Skin and subcutaneous tissue"),
    ("M00", "M99", "XIII Musculoskeletal and connective tissue"),
    ("N00", "N99", "XIV Genitourinary system"),
    ("O00", "O99", "XV Pregnancy and childbirth"),
    ("P00", "P96", "XVI Perinatal conditions"),
    ("Q00", "Q99", "XVII Congenital anomalies"),
    ("R00", "R99", "XVIII Symptoms and abnormal findings"),
    ("S00", "T98", "XIX Injury and poisoning"),
    ("V01", "Y98", "XX External causes"),
    ("Z00", "Z99", "XXI Factors influencing health status"),
    ("U00", "U99", "XXII Special purposes"),
)


def icd10_chapter(code: str) -> str:
    cat = code.replace(".", "").strip().upper()[:3]
    for first, last, label in ICD10_CHAPTERS:
        if first <= cat <= last:
            return label
    raise HierarchyError(f"{code!r} is not an ICD-10 code")


def icd10_block(code: str) -> str:
    """A ten-category block inside the chapter (e.g. ``I20-I29``), clipped to the chapter's range."""
    cat = code.replace(".", "").strip().upper()[:3]
    if len(cat) < 3 or not cat[0].isalpha() or not cat[1:].isdigit():
        raise HierarchyError(f"{code!r} is not an ICD-10 code")
    n = int(cat[1:])
    lo = n - n % 10
    return f"{cat[0]}{lo:02d}-{cat[0]}{lo + 9:02d}"


# UK Biobank assessment centres (coding 10) -> region -> country.
UKB_CENTRES: dict[str, tuple[str, str, str]] = {
    "11012": ("Barts", "London", "England"),
    "11021": ("Birmingham", "West Midlands", "England"),
    "11011": ("Bristol", "South West", "England"),
    "11008": ("Bury", "North West", "England"),
    "11003": ("Cardiff", "Wales", "Wales"),
    "11024": ("Cheadle (revisit)", "North West", "England"),
    "11020": ("Croydon", "London", "England"),
    "11005": ("Edinburgh", "Scotland", "Scotland"),
    "11004": ("Glasgow", "Scotland", "Scotland"),
    "11018": ("Hounslow", "London", "England"),
    "11010": ("Leeds", "Yorkshire and the Humber", "England"),
    "11016": ("Liverpool", "North West", "England"),
    "11001": ("Manchester", "North West", "England"),
    "11017": ("Middlesborough", "North East", "England"),
    "11009": ("Newcastle", "North East", "England"),
    "11013": ("Nottingham", "East Midlands", "England"),
    "11002": ("Oxford", "South East", "England"),
    "11007": ("Reading", "South East", "England"),
    "11014": ("Sheffield", "Yorkshire and the Humber", "England"),
    "10003": ("Stockport (pilot)", "North West", "England"),
    "11006": ("Stoke", "West Midlands", "England"),
    "11022": ("Swansea", "Wales", "Wales"),
    "11023": ("Wrexham", "Wales", "Wales"),
    "11025": ("Cheadle (imaging)", "North West", "England"),
    "11026": ("Reading (imaging)", "South East", "England"),
    "11027": ("Newcastle (imaging)", "North East", "England"),
    "11028": ("Bristol (imaging)", "South West", "England"),
}


def _centre_key(v: str) -> str:
    s = v.strip()
    if s.endswith(".0"):
        s = s[:-2]
    return s


def build_coding_hierarchy(name: str, values: Iterable[str], coding: str) -> Hierarchy:
    rows = []
    if coding == "icd10-chapter":
        for v in sorted(set(values)):
            cat = v.replace(".", "").strip().upper()[:3]
            row = [v, cat, icd10_block(v), icd10_chapter(v), TOP]
            rows.append(row)
        # when the values are already 3-character categories, drop the duplicate level
        if rows and all(r[0] == r[1] for r in rows):
            rows = [[r[0], *r[2:]] for r in rows]
    elif coding == "ukb-centre-region":
        for v in sorted(set(values)):
            entry = UKB_CENTRES.get(_centre_key(v))
            if entry is None:
                raise HierarchyError(f"column {name!r}: {v!r} is not a UK Biobank assessment centre (coding 10)")
            rows.append([v, entry[1], entry[2], TOP])
    elif coding == "month-quarter":
        for v in sorted(set(values), key=lambda x: (len(x), x)):
            try:
                m = int(float(v))
            except ValueError:
                raise HierarchyError(f"column {name!r}: {v!r} is not a month number (1-12)") from None
            if not 1 <= m <= 12:
                raise HierarchyError(f"column {name!r}: {v!r} is not a month number (1-12)")
            rows.append([v, f"Q{(m - 1) // 3 + 1}", TOP])
    elif coding == "ukb-ethnicity-group":
        # UK Biobank coding 1001: four-digit codes belong to the group of their first digit
        for v in sorted(set(values)):
            s = _centre_key(v)
            group = s[0] if len(s) == 4 and s.isdigit() else s
            rows.append([v, group, TOP])
    elif coding == "opcs4-chapter":
        for v in sorted(set(values)):
            s = v.strip().upper()
            if not s or not s[0].isalpha():
                raise HierarchyError(f"column {name!r}: {v!r} is not an OPCS-4 code")
            rows.append([v, s[:3], s[0], TOP])
        if rows and all(r[0] == r[1] for r in rows):
            rows = [[r[0], *r[2:]] for r in rows]
    else:
        raise HierarchyError(
            f"unknown coding hierarchy {coding!r} "
            "(icd10-chapter, ukb-centre-region, month-quarter, ukb-ethnicity-group, opcs4-chapter)"
        )
    return Hierarchy(name, rows)


def build_hierarchy(name: str, spec: str, values: Iterable[str], folder: str | Path | None = None) -> Hierarchy:
    """A hierarchy for column ``name`` from a dictionary spec string, covering ``values``."""
    kind, args = parse_spec(spec)
    values = list(values)
    if kind == "set":
        return build_set_hierarchy(name, values, args[0], folder)
    if kind != "file" and NULL_VALUE in values:
        # missing values generalise to themselves until the top
        h = build_hierarchy(name, spec, [v for v in values if v != NULL_VALUE], folder)
        return Hierarchy(name, [*h.rows, [NULL_VALUE] * (h.height - 1) + [TOP]])
    if kind == "date":
        return build_date_hierarchy(name, values, args)
    if kind == "interval":
        return build_interval_hierarchy(name, values, args)
    if kind == "coding":
        if len(args) != 1:
            raise HierarchyError(f"hierarchy spec {spec!r}: a coding hierarchy takes one name")
        return build_coding_hierarchy(name, values, args[0])
    if folder is None:
        raise HierarchyError(f"hierarchy spec {spec!r} names a file but no hierarchies folder was given")
    path = Path(folder) / args[0]
    if not path.suffix:
        path = path.with_suffix(".csv")
    return read_hierarchy_file(path, name)


def flat_hierarchy(name: str, values: Iterable[str]) -> Hierarchy:
    """The trivial two-level hierarchy (value -> ``*``) for a quasi-identifier without one."""
    return Hierarchy(name, [[v, TOP] for v in sorted(set(values))])


# ----------------------------------------------------------------------------------- set-valued columns

DATE_SET_SPEC = "date:month,quarter,year,5y,10y"  # day -> month -> quarter -> year -> 5 and 10 years -> *


def set_label(elements: Iterable[str]) -> str:
    """The canonical text of a set of values (as ``biowarden.privacy.data.set_strings`` renders a list cell)."""
    return json.dumps(sorted(elements), separators=(",", ":"))


def parse_set_label(value: str, name: str = "") -> list[str] | None:
    """The elements of a canonical set text; None for a missing set (``NULL``)."""
    if value == NULL_VALUE:
        return None
    if value == "[]":
        return []
    if value.startswith('["') and value.endswith('"]') and "\\" not in value:
        # no escapes, and no quote but the elements' own: '","' can only separate elements (set_label's text)
        parts = value[2:-2].split('","')
        if value.count('"') == 2 * len(parts):
            return parts
    try:
        elements = json.loads(value)
    except json.JSONDecodeError:
        elements = None
    if not isinstance(elements, list) or not all(isinstance(e, str) for e in elements):
        raise HierarchyError(f"column {name!r}: {value!r} is not a set value (a JSON list of strings)")
    return elements


class SetHierarchy(Hierarchy):
    """A hierarchy over set values (canonical texts, see :func:`set_label`) built from an element hierarchy.

    Level ``l`` below the top maps every element of a set to its level-``l`` label in ``element`` and sorts
    the result (the same multiset of generalised elements is the same value, so equivalence classes and
    the histogram work unchanged); the top level is ``*`` for the whole set. Coarsening every element
    coarsens the tuple, so the hierarchy is a tree whenever ``element`` is, and the lattice search stays
    exact. A missing set stays missing below the top; an empty set stays empty.

    Built column-wise from :class:`~biowarden.privacy.data.SetCodes`: at a level each set's element codes
    are mapped to their labels' codes (in label text order, so a sorted set stays sorted when the element
    hierarchy is monotone, and is re-sorted otherwise) and the sets are dictionary-encoded as byte strings
    of those codes; where the element hierarchy is a tree from the level below, only one set per label of
    the level below is generalised (its label there decides its label here). Codes are numbered as for any
    hierarchy (first appearance down the rows, the rows in the order of their level-0 texts); label texts,
    those of level 0 included, are rendered only when read.
    """

    def __init__(
        self,
        name: str,
        sets: SetCodes,
        element: Hierarchy,
        row_sets: np.ndarray,
        values: pa.Array | None = None,
    ) -> None:
        """Row ``r`` is set ``row_sets[r]`` of ``sets``, with level-0 text ``values[r]`` (distinct; the sets'
        canonical texts when None); ``element`` generalises the elements (``sets.elements``), its own top
        level replaced by the set's."""
        self.element = element
        self._sets = sets
        self._row_sets = np.asarray(row_sets, dtype=np.int64)
        rows = len(self._row_sets)
        codes: list[np.ndarray] = [np.arange(rows, dtype=np.int64)]
        counts = [rows]
        labels: list[pa.Array | None] = [values]
        for level in range(1, element.height - 1):
            below = codes[-1]
            if level > 1 and element.up_is_tree(level - 1, level):
                first = first_rows(below)  # one set per label of the level below
                enc = pc.dictionary_encode(self._keys(level, self._row_sets[first]), null_encoding="encode")
                label_of = np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
                codes.append(label_of[below])
            else:
                enc = pc.dictionary_encode(self._keys(level, self._row_sets), null_encoding="encode")
                codes.append(np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64))
            counts.append(len(enc.dictionary))
            labels.append(None)
        codes.append(np.zeros(rows, dtype=np.int64))
        counts.append(1)
        labels.append(pa.array([TOP], pa.string()))
        self._encoded(name, codes, counts, labels)

    def _keys(self, level: int, ids: np.ndarray) -> pa.Array:
        """Sets ``ids`` generalised to ``level``, as byte strings of their label codes (null for a missing set)."""
        per_element, _ = self._label_order(level)
        sets = self._sets
        if len(ids) == sets.num_sets:  # every set: generalise them in place, then pick
            gen, lens = self._generalised(level), np.diff(sets.offsets)
            return code_strings(gen, lens, len(per_element), sets.missing).take(pa.array(ids))
        flat, lens = sets.gather(ids)
        gen = per_element[flat]
        if _unsorted(per_element):
            gen = sort_within(gen, lens, len(per_element))
        return code_strings(gen, lens, len(per_element), sets.missing[ids])

    @property
    def sets(self) -> SetCodes:
        """The encoding the hierarchy was built from."""
        return self._sets

    def rows_of(self, dictionary: Sequence[str]) -> np.ndarray:
        """Row indices of a histogram dictionary's values (see :meth:`Hierarchy.encode`); the rows of the
        distinct sets of the very encoding the hierarchy was built from are known without their texts."""
        if (
            isinstance(dictionary, SetTexts)
            and dictionary.sets is self._sets
            and len(self._row_sets) == len(dictionary)
        ):
            rows = np.full(len(dictionary), -1, dtype=np.int64)
            rows[self._row_sets] = np.arange(len(self._row_sets), dtype=np.int64)
            if not (rows < 0).any():
                return rows
        return self.encode(dictionary)

    def _label_order(self, level: int) -> tuple[np.ndarray, list[str]]:
        """(each element's level-``level`` label as its rank in label text order, the labels in that order)."""
        texts = self.element.labels[level]
        by_text = sorted(range(len(texts)), key=texts.__getitem__)
        rank = np.empty(len(texts), dtype=np.int64)
        rank[np.asarray(by_text, dtype=np.int64)] = np.arange(len(texts))
        rows = self.element.encode(self._sets.elements)
        return rank[self.element.codes[level][rows]], [texts[i] for i in by_text]

    def _generalised(self, level: int) -> np.ndarray:
        """Every distinct set's elements at ``level`` (label ranks, ascending within each set)."""
        per_element, _ = self._label_order(level)
        gen = per_element[self._sets.flat]
        if _unsorted(per_element):
            gen = sort_within(gen, np.diff(self._sets.offsets), len(per_element))
        return gen

    def _render(self, level: int) -> pa.Array:
        """The canonical texts of a level's labels: each label's first set, its elements generalised (at
        level 0, the sets' own texts)."""
        sets = self._sets
        if level == 0:
            return sets.texts().take(pa.array(self._row_sets))
        chosen = self._row_sets[first_rows(self.codes[level])]
        per_element, texts = self._label_order(level)
        flat, lens = sets.gather(chosen)
        gen = per_element[flat]
        if _unsorted(per_element):
            gen = sort_within(gen, lens, len(per_element))
        label_sets = SetCodes(texts, gen, np.concatenate([[0], np.cumsum(lens)]), sets.missing[chosen], chosen)
        return label_sets.texts()


def _unsorted(per_element: np.ndarray) -> bool:
    """Whether mapping ascending element codes through ``per_element`` can leave a set out of order."""
    return len(per_element) > 1 and bool((per_element[1:] < per_element[:-1]).any())


def first_rows(codes: np.ndarray) -> np.ndarray:
    """The first row of each code, for codes numbered in order of first appearance (so the first rows are
    where a code exceeds every code before it)."""
    codes = np.asarray(codes)
    if not len(codes):
        return np.zeros(0, dtype=np.int64)
    new = np.empty(len(codes), dtype=bool)
    new[0] = True
    np.greater(codes[1:], np.maximum.accumulate(codes)[:-1], out=new[1:])
    return np.flatnonzero(new)


def _element_hierarchy(name: str, sets: SetCodes, element_spec: str, folder: str | Path | None) -> Hierarchy:
    if parse_spec(element_spec)[0] == "set":
        raise HierarchyError(f"hierarchy for {name!r}: a set's elements cannot themselves be sets")
    if sets.elements:
        return build_hierarchy(name, element_spec, sets.elements, folder)
    return Hierarchy(name, [[NULL_VALUE, TOP]])  # no element anywhere: only the top level generalises


def set_hierarchy(
    name: str, sets: SetCodes, element_spec: str = DATE_SET_SPEC, folder: str | Path | None = None
) -> SetHierarchy:
    """The :class:`SetHierarchy` of an encoded set-valued column (its rows the column's distinct sets, in
    the order of their canonical texts), elements generalised by ``element_spec`` (any spec but another
    ``set:``)."""
    return SetHierarchy(name, sets, _element_hierarchy(name, sets, element_spec, folder), sets.order())


def build_set_hierarchy(
    name: str, values: Iterable[str], element_spec: str = DATE_SET_SPEC, folder: str | Path | None = None
) -> SetHierarchy:
    """A :class:`SetHierarchy` covering the set texts ``values`` (canonical, see :func:`set_label`),
    elements generalised by ``element_spec`` (any spec but another ``set:``)."""
    if parse_spec(element_spec)[0] == "set":
        raise HierarchyError(f"hierarchy for {name!r}: a set's elements cannot themselves be sets")
    distinct = sorted(set(values))
    sets = set_codes(pa.array([parse_set_label(v, name) for v in distinct], pa.list_(pa.string())))
    element = _element_hierarchy(name, sets, element_spec, folder)
    return SetHierarchy(name, sets, element, sets.codes, pa.array(distinct, pa.string()))
