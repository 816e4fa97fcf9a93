"""Set-valued date quasi-identifiers: a participant's operation (or diagnosis) dates as one quasi-identifier.

The 2026 re-identification used an approximate birth date plus the date of one operation. Operation dates
(UK Biobank field 41282, OPCS-4) are held as a list per participant, so they cannot be a scalar
quasi-identifier; here a list of dates is one lattice dimension: its value is the sorted tuple of its
dates (``biowarden.privacy.data.set_strings``), generalised by mapping every date through the date
hierarchy day -> month -> quarter -> year, and ``*`` on top hides the whole list
(``biowarden.privacy.hierarchy.SetHierarchy``). Risk measures, the histogram and the lattice search
then treat it like any other quasi-identifier.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from biowarden.privacy.data import SetCodes, is_set_valued, set_codes
from biowarden.privacy.hierarchy import DATE_SET_SPEC, SetHierarchy, set_hierarchy

__all__ = ["DATE_SET_SPEC", "date_set_columns", "date_set_hierarchy", "is_date_set"]


def is_date_set(typ: pa.DataType) -> bool:
    """A list column of dates or timestamps (dates of operations, diagnoses...)."""
    return is_set_valued(typ) and (pa.types.is_date(typ.value_type) or pa.types.is_timestamp(typ.value_type))


def date_set_columns(schema: pa.Schema, columns: Sequence[str]) -> list[str]:
    """The requested columns that are lists of dates: outsiders can know one of these dates (a news story,
    a hospital stay), so a release gates them as quasi-identifiers."""
    return [c for c in columns if c in schema.names and is_date_set(schema.field(c).type)]


def date_set_hierarchy(
    name: str, column: pa.ChunkedArray | pa.Array | SetCodes, spec: str = DATE_SET_SPEC
) -> SetHierarchy:
    """The set hierarchy of a list-of-dates column, or of its :func:`~biowarden.privacy.data.set_codes`
    encoding (day -> month -> quarter -> year -> ``*`` by default), built column-wise (see
    :class:`~biowarden.privacy.hierarchy.SetHierarchy`)."""
    return set_hierarchy(name, column if isinstance(column, SetCodes) else set_codes(column), spec)
