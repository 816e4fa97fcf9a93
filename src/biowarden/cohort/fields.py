"""The words of the data dictionary: roles, value types and fields (plain dataclasses, core layer).

A column of the cohort is named as in UK Biobank's showcase, ``<field>-<instance>.<array>`` (``50-0.0``);
a field whose values are a set (``Categorical multiple`` such as ICD-10 diagnoses, with their dates) is
held as one Arrow list column named ``<field>-<instance>`` (``41270-0``). The participant column is ``eid``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

PARTICIPANT_COLUMN = "eid"
_COLUMN_RE = re.compile(r"^(?P<field>\d+)-(?P<instance>\d+)(?:\.(?P<array>\d+))?$")


class Role(StrEnum):
    IDENTIFIER = "identifier"  # never released
    QUASI = "quasi"  # quasi-identifier: generalised, measured for re-identification risk
    SENSITIVE = "sensitive"  # diagnoses, medications, operations...
    MEASURE = "measure"  # ordinary measurements: may carry fingerprint marks
    GENETIC = "genetic"  # genotypes: never marked


class ValueType(StrEnum):
    """UK Biobank showcase value types."""

    INTEGER = "Integer"
    CONTINUOUS = "Continuous"
    CATEGORICAL_SINGLE = "Categorical single"
    CATEGORICAL_MULTIPLE = "Categorical multiple"
    DATE = "Date"
    TIME = "Time"
    TEXT = "Text"
    COMPOUND = "Compound"


@dataclass(frozen=True)
class Field:
    """One field of the data dictionary.

    ``precision`` is the number of decimals as recorded (0 for integers, e.g. 1 for height in cm to 0.1);
    ``hierarchy`` names the generalisation hierarchy of a quasi-identifier (a builder spec such as
    ``date:month,quarter,year,5y`` or ``interval:5,10,20`` or ``coding:icd10-chapter`` or ``file:NAME``);
    ``derived_from`` lists the field ids a derived field is computed from (BMI from height and weight),
    with ``derivation`` naming the formula.
    """

    field_id: int
    name: str
    value_type: ValueType
    role: Role
    units: str = ""
    coding: int | None = None
    precision: int | None = None
    instances: int = 1
    array: int = 1
    hierarchy: str | None = None
    derived_from: tuple[int, ...] = ()
    derivation: str | None = None
    category: str = ""
    notes: str = ""
    extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    # The set-valued field whose list this field's values parallel (41280 dates pair with 41270 codes):
    # such a field is held as one Arrow list column per instance too.
    paired_with: int | None = None

    @property
    def multiple(self) -> bool:
        return self.value_type is ValueType.CATEGORICAL_MULTIPLE

    @property
    def listed(self) -> bool:
        """Held as one Arrow list column per instance (set-valued, or parallel to a set-valued field)."""
        return self.multiple or self.paired_with is not None

    def column(self, instance: int = 0, array: int = 0) -> str:
        """The column name for an instance (and array index, for single-valued fields)."""
        if self.listed:
            return f"{self.field_id}-{instance}"
        return f"{self.field_id}-{instance}.{array}"


def parse_column(name: str) -> tuple[int, int, int | None] | None:
    """``"50-0.0"`` -> (50, 0, 0); ``"41270-0"`` -> (41270, 0, None); anything else -> None."""
    m = _COLUMN_RE.match(name)
    if not m:
        return None
    arr = m.group("array")
    return int(m.group("field")), int(m.group("instance")), (int(arr) if arr is not None else None)
