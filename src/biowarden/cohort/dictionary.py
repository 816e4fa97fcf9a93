"""The data dictionary: an ordered set of fields, read from and written to a showcase-layout TSV.

The file layout is UK Biobank's public showcase dictionary (``Data_Dictionary_Showcase.tsv``: tab-
separated, one field per line, the columns of ``SHOWCASE_COLUMNS``) followed by biowarden's annotation
columns (``ANNOTATION_COLUMNS``):

- ``Role``: identifier, quasi, sensitive, measure or genetic (see ``Role``);
- ``Precision``: decimals as recorded, numeric fields only;
- ``Hierarchy``: the generalisation hierarchy spec of a quasi-identifier (see ``parse_hierarchy_spec``);
- ``DerivedFrom``: comma-separated field ids a derived field is computed from, ``Derivation`` its formula
  name (see ``biowarden.cohort.derive``);
- ``PairedWith``: for a field whose values parallel a set-valued field (41280 dates of the 41270 codes),
  that field's id; such fields are held as one list column per instance.

``read_dictionary`` reads an annotated file (``Role`` required); ``read_showcase`` imports a plain showcase
file, assigning roles from a built-in table of known field ids and the value types and recording which
fields were defaulted. Any problem is a ``DictionaryError`` naming the line and the field.

Genotypes: UK Biobank has no showcase field per SNP, so biowarden numbers genotype columns in a local
range, ``GENOTYPE_FIELD_MIN``..``GENOTYPE_FIELD_MAX`` (900000-999999, far above the showcase's ids); each
holds one SNP's allele count 0/1/2 and is named like any showcase column (``900001-0.0``).
"""

from __future__ import annotations

import itertools
import math
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pyarrow as pa

from biowarden.cohort.fields import PARTICIPANT_COLUMN, Field, Role, ValueType, parse_column

SHOWCASE_COLUMNS: tuple[str, ...] = (
    "Path",
    "Category",
    "FieldID",
    "Field",
    "Participants",
    "Items",
    "Stability",
    "ValueType",
    "Units",
    "ItemType",
    "Strata",
    "Sexed",
    "Instances",
    "Array",
    "Coding",
    "Notes",
    "Link",
)
ANNOTATION_COLUMNS: tuple[str, ...] = ("Role", "Precision", "Hierarchy", "DerivedFrom", "Derivation", "PairedWith")
ALL_COLUMNS: tuple[str, ...] = SHOWCASE_COLUMNS + ANNOTATION_COLUMNS
REQUIRED_SHOWCASE: tuple[str, ...] = ("FieldID", "Field", "ValueType")
# Showcase columns kept verbatim in Field.extra for a faithful round trip.
_PASSTHROUGH = ("Path", "Participants", "Items", "Stability", "ItemType", "Strata", "Sexed", "Link")

GENOTYPE_FIELD_MIN = 900_000
GENOTYPE_FIELD_MAX = 999_999

DATE_LEVELS: tuple[str, ...] = ("day", "month", "quarter", "year", "5y", "10y")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_NUMERIC = (ValueType.INTEGER, ValueType.CONTINUOUS)

# The participant column is not a showcase field; it is described by this pseudo-field (never released).
PARTICIPANT_FIELD = Field(
    field_id=0,
    name="Participant identifier (eid)",
    value_type=ValueType.INTEGER,
    role=Role.IDENTIFIER,
    precision=0,
    notes="The master participant id; replaced by per-application pseudonyms in every release.",
)


class DictionaryError(ValueError):
    """A malformed data dictionary or an unknown field/column; the message names the line and field."""


# --------------------------------------------------------------------------------------------------
# Hierarchy specs


@dataclass(frozen=True)
class HierarchySpec:
    """A parsed generalisation hierarchy spec.

    kind ``date``: params are the levels in order (subset of ``DATE_LEVELS``);
    ``interval``: increasing positive band widths (floats); ``coding``: (name,) of a built-in coding
    hierarchy (``icd10-chapter``, ``ukb-centre-region``...); ``file``: (name,) of an ARX-layout CSV in the
    hierarchies folder.
    """

    kind: str
    params: tuple

    def __str__(self) -> str:
        if self.kind == "interval":
            return "interval:" + ",".join(_fmt_number(w) for w in self.params)
        return f"{self.kind}:" + ",".join(str(p) for p in self.params)


def _fmt_number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


_HIERARCHY_TYPES: dict[str, tuple[ValueType, ...]] = {
    "date": (ValueType.DATE,),
    "interval": _NUMERIC,
    "coding": (ValueType.CATEGORICAL_SINGLE, ValueType.CATEGORICAL_MULTIPLE, ValueType.INTEGER),
    "file": (
        ValueType.INTEGER,
        ValueType.CONTINUOUS,
        ValueType.CATEGORICAL_SINGLE,
        ValueType.CATEGORICAL_MULTIPLE,
        ValueType.DATE,
        ValueType.TIME,
        ValueType.TEXT,
    ),
}


def parse_hierarchy_spec(spec: str, value_type: ValueType | None = None) -> HierarchySpec:
    """Parse ``date:...``, ``interval:...``, ``coding:NAME`` or ``file:NAME``; with a value type, check fit.

    Raises ``DictionaryError`` naming the problem.
    """
    if not isinstance(spec, str) or ":" not in spec:
        raise DictionaryError(f"hierarchy spec {spec!r} is not of the form KIND:PARAMS")
    kind, _, rest = spec.strip().partition(":")
    kind = kind.strip().lower()
    rest = rest.strip()
    if kind not in _HIERARCHY_TYPES:
        raise DictionaryError(f"hierarchy spec {spec!r}: unknown kind {kind!r} (date, interval, coding, file)")
    if not rest:
        raise DictionaryError(f"hierarchy spec {spec!r}: no parameters")
    params: tuple
    if kind == "date":
        levels = tuple(p.strip().lower() for p in rest.split(","))
        for lv in levels:
            if lv not in DATE_LEVELS:
                raise DictionaryError(
                    f"hierarchy spec {spec!r}: unknown date level {lv!r} (one of {', '.join(DATE_LEVELS)})"
                )
        order = [DATE_LEVELS.index(lv) for lv in levels]
        if any(b <= a for a, b in itertools.pairwise(order)):
            raise DictionaryError(
                f"hierarchy spec {spec!r}: date levels must be distinct and in the order {','.join(DATE_LEVELS)}"
            )
        params = levels
    elif kind == "interval":
        widths: list[float] = []
        for p in rest.split(","):
            try:
                w = float(p.strip())
            except ValueError:
                raise DictionaryError(f"hierarchy spec {spec!r}: band width {p.strip()!r} is not a number") from None
            if not math.isfinite(w) or w <= 0:
                raise DictionaryError(f"hierarchy spec {spec!r}: band width {p.strip()!r} must be positive")
            widths.append(w)
        if any(b <= a for a, b in itertools.pairwise(widths)):
            raise DictionaryError(f"hierarchy spec {spec!r}: band widths must increase")
        params = tuple(widths)
    else:
        if not _NAME_RE.match(rest) or ".." in rest:
            raise DictionaryError(f"hierarchy spec {spec!r}: {rest!r} is not a valid {kind} name")
        params = (rest,)
    if value_type is not None and value_type not in _HIERARCHY_TYPES[kind]:
        raise DictionaryError(f"hierarchy spec {spec!r} does not fit value type {value_type.value!r}")
    return HierarchySpec(kind, params)


# --------------------------------------------------------------------------------------------------
# Fit rules

_ROLE_TYPES: dict[Role, tuple[ValueType, ...]] = {
    Role.IDENTIFIER: tuple(ValueType),
    Role.SENSITIVE: tuple(ValueType),
    Role.QUASI: tuple(v for v in ValueType if v is not ValueType.COMPOUND),
    Role.MEASURE: (
        ValueType.INTEGER,
        ValueType.CONTINUOUS,
        ValueType.CATEGORICAL_SINGLE,
        ValueType.CATEGORICAL_MULTIPLE,
        ValueType.DATE,
        ValueType.TIME,
    ),
    Role.GENETIC: (ValueType.INTEGER, ValueType.CATEGORICAL_SINGLE),
}


def check_field(f: Field) -> None:
    """Raise DictionaryError if the field's role, precision, hierarchy or derivation do not fit."""
    where = f"field {f.field_id} ({f.name!r})"
    if f.field_id < 1:
        raise DictionaryError(f"{where}: field id must be a positive integer")
    if not f.name:
        raise DictionaryError(f"{where}: empty field name")
    if f.value_type not in _ROLE_TYPES[f.role]:
        raise DictionaryError(f"{where}: role {f.role.value!r} does not fit value type {f.value_type.value!r}")
    if f.precision is not None:
        if f.value_type not in _NUMERIC:
            raise DictionaryError(f"{where}: precision given for non-numeric value type {f.value_type.value!r}")
        if f.precision < 0 or f.precision > 12:
            raise DictionaryError(f"{where}: precision {f.precision} out of range 0-12")
        if f.value_type is ValueType.INTEGER and f.precision != 0:
            raise DictionaryError(f"{where}: an Integer field has precision 0, not {f.precision}")
    if f.hierarchy:
        if f.role in (Role.IDENTIFIER, Role.GENETIC):
            raise DictionaryError(f"{where}: role {f.role.value!r} takes no hierarchy (it is never generalised)")
        try:
            parse_hierarchy_spec(f.hierarchy, f.value_type)
        except DictionaryError as exc:
            raise DictionaryError(f"{where}: {exc}") from None
    if f.instances < 1 or f.array < 1:
        raise DictionaryError(f"{where}: Instances and Array must be at least 1")
    if f.derivation and not f.derived_from:
        raise DictionaryError(f"{where}: Derivation {f.derivation!r} without DerivedFrom")
    if f.paired_with is not None and f.multiple:
        raise DictionaryError(f"{where}: a Categorical multiple field cannot itself be PairedWith another")


def arrow_type_fits(f: Field, typ: pa.DataType) -> bool:
    """Whether an Arrow column type can hold the field's values (list columns for listed fields)."""
    if f.listed:
        if not (pa.types.is_list(typ) or pa.types.is_large_list(typ)):
            return False
        typ = typ.value_type
    elif pa.types.is_list(typ) or pa.types.is_large_list(typ):
        return False
    vt = f.value_type
    if vt is ValueType.INTEGER:
        return pa.types.is_integer(typ)
    if vt is ValueType.CONTINUOUS:
        return pa.types.is_floating(typ) or pa.types.is_integer(typ) or pa.types.is_decimal(typ)
    if vt in (ValueType.CATEGORICAL_SINGLE, ValueType.CATEGORICAL_MULTIPLE):
        return pa.types.is_integer(typ) or pa.types.is_string(typ) or pa.types.is_large_string(typ)
    if vt is ValueType.DATE:
        return pa.types.is_date(typ) or pa.types.is_timestamp(typ)
    if vt is ValueType.TIME:
        return pa.types.is_timestamp(typ) or pa.types.is_time(typ)
    if vt is ValueType.TEXT:
        return pa.types.is_string(typ) or pa.types.is_large_string(typ)
    return True  # Compound: anything


# --------------------------------------------------------------------------------------------------
# The dictionary


class Dictionary:
    """An ordered, immutable set of fields with lookups by id, column and role.

    ``defaulted`` maps field ids whose role was assigned by default on a showcase import to the reason.
    """

    def __init__(self, fields: Iterable[Field], defaulted: dict[int, str] | None = None) -> None:
        self._fields: tuple[Field, ...] = tuple(fields)
        self._by_id: dict[int, Field] = {}
        for f in self._fields:
            if f.field_id in self._by_id:
                raise DictionaryError(f"duplicate field id {f.field_id} ({f.name!r})")
            check_field(f)
            self._by_id[f.field_id] = f
        for f in self._fields:
            for src in f.derived_from:
                if src not in self._by_id:
                    raise DictionaryError(f"field {f.field_id} ({f.name!r}) is derived from unknown field {src}")
            if f.paired_with is not None:
                other = self._by_id.get(f.paired_with)
                if other is None or not other.multiple:
                    raise DictionaryError(
                        f"field {f.field_id} ({f.name!r}) is PairedWith {f.paired_with}, "
                        "which is not a Categorical multiple field of this dictionary"
                    )
        self.defaulted: dict[int, str] = dict(defaulted or {})
        self._col_map: dict[str, Field] | None = None

    # -- container protocol
    def __len__(self) -> int:
        return len(self._fields)

    def __iter__(self) -> Iterator[Field]:
        return iter(self._fields)

    def __contains__(self, item: object) -> bool:
        if isinstance(item, int):
            return item in self._by_id
        if isinstance(item, str):
            return item in self._column_map() or item == PARTICIPANT_COLUMN
        return False

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Dictionary) and self._fields == other._fields

    def __repr__(self) -> str:
        return f"Dictionary({len(self._fields)} fields)"

    @property
    def fields(self) -> tuple[Field, ...]:
        return self._fields

    # -- lookups
    def field(self, field_id: int) -> Field:
        try:
            return self._by_id[int(field_id)]
        except (KeyError, ValueError):
            raise DictionaryError(f"unknown field id {field_id!r}") from None

    def get(self, field_id: int) -> Field | None:
        return self._by_id.get(field_id)

    def field_columns(self, f: Field | int) -> list[str]:
        """The column names of one field over its instances (and array indices, if not a list column)."""
        if isinstance(f, int):
            f = self.field(f)
        if f.listed:
            return [f.column(i) for i in range(f.instances)]
        return [f.column(i, a) for i in range(f.instances) for a in range(f.array)]

    def _column_map(self) -> dict[str, Field]:
        if self._col_map is None:
            self._col_map = {c: f for f in self._fields for c in self.field_columns(f)}
        return self._col_map

    def for_column(self, column: str) -> Field:
        """The field a column belongs to (``eid`` maps to ``PARTICIPANT_FIELD``)."""
        if column == PARTICIPANT_COLUMN:
            return PARTICIPANT_FIELD
        f = self._column_map().get(column)
        if f is not None:
            return f
        parsed = parse_column(column)
        if parsed is None:
            raise DictionaryError(f"column {column!r} is not a dictionary column (expected FIELD-INSTANCE.ARRAY)")
        fid, inst, arr = parsed
        f = self._by_id.get(fid)
        if f is None:
            raise DictionaryError(f"column {column!r}: unknown field id {fid}")
        raise DictionaryError(
            f"column {column!r}: field {fid} ({f.name!r}) has no instance {inst}"
            + ("" if arr is None else f" array index {arr}")
            + (" (it is held as a list column)" if f.listed and arr is not None else "")
        )

    def role_of(self, column: str) -> Role:
        return self.for_column(column).role

    def columns(self, roles: Iterable[Role] | None = None) -> list[str]:
        """All columns in dictionary order (not including ``eid``), optionally only of some roles."""
        wanted = set(roles) if roles is not None else None
        return [c for f in self._fields if wanted is None or f.role in wanted for c in self.field_columns(f)]

    def by_role(self, role: Role | str) -> list[Field]:
        role = Role(role)
        return [f for f in self._fields if f.role is role]

    def quasi_columns(self, scalar_only: bool = False) -> list[str]:
        """Columns of quasi-identifiers; with ``scalar_only`` leave out list columns (6138, 6142...)."""
        return [c for f in self.by_role(Role.QUASI) if not (scalar_only and f.listed) for c in self.field_columns(f)]

    def list_columns(self) -> list[str]:
        return [c for f in self._fields if f.listed for c in self.field_columns(f)]

    def columns_by_role(self) -> dict[Role, list[str]]:
        return {r: self.columns([r]) for r in Role}

    def derived(self) -> list[Field]:
        return [f for f in self._fields if f.derived_from]

    def subset(self, field_ids: Iterable[int]) -> Dictionary:
        """The dictionary restricted to some fields (plus whatever their derivations and pairs need)."""
        keep = {int(i) for i in field_ids}
        for i in list(keep):
            self.field(i)
        changed = True
        while changed:
            changed = False
            for f in self._fields:
                if f.field_id in keep:
                    need = set(f.derived_from) | ({f.paired_with} if f.paired_with is not None else set())
                    if not need <= keep:
                        keep |= need
                        changed = True
        return Dictionary([f for f in self._fields if f.field_id in keep])

    def with_field(self, f: Field) -> Dictionary:
        """A copy with ``f`` replacing the field of the same id (or appended)."""
        if f.field_id in self._by_id:
            return Dictionary([f if g.field_id == f.field_id else g for g in self._fields], self.defaulted)
        return Dictionary([*self._fields, f], self.defaulted)


# --------------------------------------------------------------------------------------------------
# Reading and writing


def _clean(text: str) -> str:
    return text.replace("\t", " ").replace("\r", " ").replace("\n", " ")


def _field_row(f: Field) -> dict[str, str]:
    row = {c: "" for c in ALL_COLUMNS}
    for c in _PASSTHROUGH:
        row[c] = f.extra.get(c, "")
    row.update(
        Category=f.category,
        FieldID=str(f.field_id),
        Field=f.name,
        ValueType=f.value_type.value,
        Units=f.units,
        Instances=str(f.instances),
        Array=str(f.array),
        Coding="" if f.coding is None else str(f.coding),
        Notes=f.notes,
        Role=f.role.value,
        Precision="" if f.precision is None else str(f.precision),
        Hierarchy=f.hierarchy or "",
        DerivedFrom=",".join(str(i) for i in f.derived_from),
        Derivation=f.derivation or "",
        PairedWith="" if f.paired_with is None else str(f.paired_with),
    )
    if not row["Link"]:
        row["Link"] = f"http://biobank.ndph.ox.ac.uk/showcase/field.cgi?id={f.field_id}" if f.field_id < 900_000 else ""
    return {k: _clean(v) for k, v in row.items()}


def dictionary_tsv(d: Dictionary) -> str:
    lines = ["\t".join(ALL_COLUMNS)]
    for f in d:
        row = _field_row(f)
        lines.append("\t".join(row[c] for c in ALL_COLUMNS))
    return "\n".join(lines) + "\n"


def write_dictionary(d: Dictionary, path: str | os.PathLike[str]) -> Path:
    """Write the annotated TSV atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = dictionary_tsv(d).encode("utf-8")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _read_rows(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DictionaryError(f"{path}: no such dictionary file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DictionaryError(f"{path}: cannot read dictionary ({exc.__class__.__name__}: {exc})") from None
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise DictionaryError(f"{path}: empty dictionary (no header line)")
    header = [h.strip() for h in lines[0].split("\t")]
    unknown = [h for h in header if h not in ALL_COLUMNS]
    if unknown:
        raise DictionaryError(f"{path} line 1: unknown column(s) {', '.join(map(repr, unknown))}")
    dup = sorted({h for h in header if header.count(h) > 1})
    if dup:
        raise DictionaryError(f"{path} line 1: duplicate column(s) {', '.join(map(repr, dup))}")
    rows: list[tuple[int, dict[str, str]]] = []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) > len(header):
            raise DictionaryError(f"{path} line {lineno}: {len(cells)} cells but the header has {len(header)}")
        cells += [""] * (len(header) - len(cells))
        rows.append((lineno, {h: c.strip() for h, c in zip(header, cells, strict=True)}))
    return header, rows


def _int(value: str, what: str, where: str, default: int | None = None) -> int | None:
    if value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise DictionaryError(f"{where}: {what} {value!r} is not an integer") from None


def _parse_row(row: dict[str, str], where: str, role: Role) -> Field:
    vt_raw = row.get("ValueType", "")
    try:
        vt = ValueType(vt_raw)
    except ValueError:
        allowed = ", ".join(v.value for v in ValueType)
        raise DictionaryError(f"{where}: bad value type {vt_raw!r} (one of {allowed})") from None
    derived: tuple[int, ...] = ()
    if row.get("DerivedFrom"):
        derived = tuple(
            _int(p.strip(), "DerivedFrom id", where) or 0 for p in row["DerivedFrom"].split(",") if p.strip()
        )
    f = Field(
        field_id=_int(row["FieldID"], "FieldID", where) or 0,
        name=row.get("Field", ""),
        value_type=vt,
        role=role,
        units=row.get("Units", ""),
        coding=_int(row.get("Coding", ""), "Coding", where),
        precision=_int(row.get("Precision", ""), "Precision", where),
        instances=_int(row.get("Instances", ""), "Instances", where, 1) or 0,
        array=_int(row.get("Array", ""), "Array", where, 1) or 0,
        hierarchy=row.get("Hierarchy") or None,
        derived_from=derived,
        derivation=row.get("Derivation") or None,
        category=row.get("Category", ""),
        notes=row.get("Notes", ""),
        extra={c: row[c] for c in _PASSTHROUGH if row.get(c)},
        paired_with=_int(row.get("PairedWith", ""), "PairedWith", where),
    )
    try:
        check_field(f)
    except DictionaryError as exc:
        raise DictionaryError(f"{where}: {exc}") from None
    return f


def _build(path: Path, parsed: list[tuple[int, Field]], defaulted: dict[int, str]) -> Dictionary:
    seen: dict[int, int] = {}
    for lineno, f in parsed:
        if f.field_id in seen:
            raise DictionaryError(
                f"{path} line {lineno}: duplicate field id {f.field_id} ({f.name!r}; first on line {seen[f.field_id]})"
            )
        seen[f.field_id] = lineno
    try:
        return Dictionary([f for _, f in parsed], defaulted)
    except DictionaryError as exc:
        raise DictionaryError(f"{path}: {exc}") from None


def read_dictionary(path: str | os.PathLike[str]) -> Dictionary:
    """Read an annotated dictionary (showcase columns plus at least ``Role``)."""
    path = Path(path)
    header, rows = _read_rows(path)
    missing = [c for c in (*REQUIRED_SHOWCASE, "Role") if c not in header]
    if missing:
        hint = " (a plain showcase file? use read_showcase)" if missing == ["Role"] else ""
        raise DictionaryError(f"{path} line 1: missing required column(s) {', '.join(missing)}{hint}")
    parsed: list[tuple[int, Field]] = []
    for lineno, row in rows:
        where = f"{path} line {lineno} (field {row.get('FieldID') or '?'})"
        try:
            role = Role(row["Role"])
        except ValueError:
            raise DictionaryError(
                f"{where}: bad role {row['Role']!r} (one of {', '.join(r.value for r in Role)})"
            ) from None
        parsed.append((lineno, _parse_row(row, where, role)))
    return _build(path, parsed, {})


# Known showcase fields and the role biowarden gives them on import (the rest default by value type).
KNOWN_ROLES: dict[int, Role] = {
    # quasi-identifiers: demographics, dates, places, socio-economic status
    31: Role.QUASI,  # Sex
    34: Role.QUASI,  # Year of birth
    52: Role.QUASI,  # Month of birth
    53: Role.QUASI,  # Date of attending assessment centre
    54: Role.QUASI,  # UK Biobank assessment centre
    21003: Role.QUASI,  # Age when attended assessment centre
    21022: Role.QUASI,  # Age at recruitment
    189: Role.QUASI,  # Townsend deprivation index at recruitment
    21000: Role.QUASI,  # Ethnic background
    22001: Role.QUASI,  # Genetic sex
    20074: Role.QUASI,  # Home location at assessment - east co-ordinate (rounded)
    20075: Role.QUASI,  # Home location at assessment - north co-ordinate (rounded)
    22702: Role.QUASI,  # Home location east co-ordinate (older location history)
    22704: Role.QUASI,  # Home location north co-ordinate (older location history)
    20118: Role.QUASI,  # Home area population density - urban or rural
    129: Role.QUASI,  # Place of birth in UK - north co-ordinate
    130: Role.QUASI,  # Place of birth in UK - east co-ordinate
    1647: Role.QUASI,  # Country of birth (UK/elsewhere)
    20115: Role.QUASI,  # Country of birth (non-UK origin)
    6138: Role.QUASI,  # Qualifications
    6142: Role.QUASI,  # Current employment status
    738: Role.QUASI,  # Average total household income before tax
    132: Role.QUASI,  # Job code at visit
    40000: Role.QUASI,  # Date of death
    40007: Role.QUASI,  # Age at death
    # sensitive: diagnoses, causes of death, operations, medications, cancers
    41270: Role.SENSITIVE,  # Diagnoses - ICD10
    41280: Role.SENSITIVE,  # Date of first in-patient diagnosis - ICD10
    41271: Role.SENSITIVE,  # Diagnoses - ICD9
    41272: Role.SENSITIVE,  # Operative procedures - OPCS4
    41282: Role.SENSITIVE,  # Date of first operative procedure - OPCS4
    41202: Role.SENSITIVE,  # Diagnoses - main ICD10
    41204: Role.SENSITIVE,  # Diagnoses - secondary ICD10
    40001: Role.SENSITIVE,  # Underlying (primary) cause of death: ICD10
    40002: Role.SENSITIVE,  # Contributory (secondary) causes of death: ICD10
    40006: Role.SENSITIVE,  # Type of cancer: ICD10
    40005: Role.SENSITIVE,  # Date of cancer diagnosis
    20001: Role.SENSITIVE,  # Cancer code, self-reported
    20002: Role.SENSITIVE,  # Non-cancer illness code, self-reported
    20003: Role.SENSITIVE,  # Treatment/medication code
    20544: Role.SENSITIVE,  # Mental health problems ever diagnosed by a professional
}

KNOWN_HIERARCHIES: dict[int, str] = {
    34: "interval:5,10,20",
    52: "coding:month-quarter",
    53: "date:month,quarter,year",
    54: "coding:ukb-centre-region",
    21003: "interval:5,10,20",
    21022: "interval:5,10,20",
    189: "interval:1,2,5,10",
    21000: "coding:ukb-ethnicity-group",
    20074: "interval:5000,10000,50000,100000",
    20075: "interval:5000,10000,50000,100000",
    41270: "coding:icd10-chapter",
    41272: "coding:opcs4-chapter",
}


def default_role(field_id: int, value_type: ValueType) -> tuple[Role, str]:
    """The role a showcase field gets on import, and why."""
    if field_id in KNOWN_ROLES:
        return KNOWN_ROLES[field_id], "known field"
    if GENOTYPE_FIELD_MIN <= field_id <= GENOTYPE_FIELD_MAX:
        return Role.GENETIC, "biowarden-local genotype range"
    if value_type in (ValueType.TEXT, ValueType.COMPOUND):
        return Role.IDENTIFIER, f"defaulted: {value_type.value} may carry identifying free text (never released)"
    if value_type is ValueType.DATE:
        return Role.QUASI, "defaulted: dates of events are quasi-identifiers"
    return Role.MEASURE, f"defaulted: {value_type.value} field not in the known table"


def read_showcase(path: str | os.PathLike[str]) -> Dictionary:
    """Import a plain showcase dictionary (no biowarden annotations, or only some of them).

    Fields without a ``Role`` get one from ``KNOWN_ROLES`` or their value type; known quasi-identifiers
    get their standard hierarchy. ``Dictionary.defaulted`` maps each field whose role was defaulted (not
    in the known table) to the reason.
    """
    path = Path(path)
    header, rows = _read_rows(path)
    missing = [c for c in REQUIRED_SHOWCASE if c not in header]
    if missing:
        raise DictionaryError(f"{path} line 1: missing required column(s) {', '.join(missing)}")
    parsed: list[tuple[int, Field]] = []
    defaulted: dict[int, str] = {}
    for lineno, row in rows:
        where = f"{path} line {lineno} (field {row.get('FieldID') or '?'})"
        fid = _int(row["FieldID"], "FieldID", where) or 0
        try:
            vt = ValueType(row.get("ValueType", ""))
        except ValueError:
            allowed = ", ".join(v.value for v in ValueType)
            raise DictionaryError(f"{where}: bad value type {row.get('ValueType')!r} (one of {allowed})") from None
        if row.get("Role"):
            try:
                role = Role(row["Role"])
            except ValueError:
                raise DictionaryError(f"{where}: bad role {row['Role']!r}") from None
        else:
            role, why = default_role(fid, vt)
            if why != "known field":
                defaulted[fid] = why
            if not row.get("Hierarchy") and role is Role.QUASI and fid in KNOWN_HIERARCHIES:
                row = {**row, "Hierarchy": KNOWN_HIERARCHIES[fid]}
        if fid == 41280 and not row.get("PairedWith"):
            row = {**row, "PairedWith": "41270"}
        if fid == 41282 and not row.get("PairedWith"):
            row = {**row, "PairedWith": "41272"}
        parsed.append((lineno, _parse_row(row, where, role)))
    # drop pairings whose partner is absent from this file rather than failing a partial showcase
    ids = {f.field_id for _, f in parsed}
    parsed = [
        (ln, replace(f, paired_with=None) if f.paired_with is not None and f.paired_with not in ids else f)
        for ln, f in parsed
    ]
    return _build(path, parsed, defaulted)


def load_any_dictionary(path: str | os.PathLike[str]) -> Dictionary:
    """Read an annotated dictionary, or import a plain showcase file if it has no ``Role`` column."""
    path = Path(path)
    header, _ = _read_rows(path)
    return read_dictionary(path) if "Role" in header else read_showcase(path)


__all__ = [
    "ALL_COLUMNS",
    "ANNOTATION_COLUMNS",
    "DATE_LEVELS",
    "GENOTYPE_FIELD_MAX",
    "GENOTYPE_FIELD_MIN",
    "PARTICIPANT_FIELD",
    "SHOWCASE_COLUMNS",
    "Dictionary",
    "DictionaryError",
    "HierarchySpec",
    "arrow_type_fits",
    "check_field",
    "default_role",
    "load_any_dictionary",
    "parse_hierarchy_spec",
    "read_dictionary",
    "read_showcase",
    "write_dictionary",
]
