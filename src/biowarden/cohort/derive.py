"""Derived fields: the formulas named in a dictionary's ``Derivation`` column.

A derived field is recomputed from its inputs (``DerivedFrom``) with exactly these functions: the
synthetic cohort uses them to write the data, and anything that changes an input (a fingerprint mark on
height or weight, generalisation) recomputes the derived value the same way, so that the derived field
never betrays the change (Ji et al.: marks must respect the data's correlations).

- ``bmi``: ``weight / (height / 100) ** 2`` from 21002 (kg) and 50 (cm), rounded to the field's precision.
- ``age_at_recruitment``: whole years from the first of the birth month (34 year, 52 month) to the date of
  attending the assessment centre (53): ``year(53) - 34 - (month(53) < 52)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from biowarden.cohort.fields import Field


def _bmi(inputs: Mapping[int, np.ndarray], precision: int | None) -> np.ndarray:
    weight = np.asarray(inputs[21002], dtype=np.float64)
    height = np.asarray(inputs[50], dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        bmi = weight / (height / 100.0) ** 2
    return np.round(bmi, precision) if precision is not None else bmi


def _age_at_recruitment(inputs: Mapping[int, np.ndarray], precision: int | None) -> np.ndarray:
    yob = np.asarray(inputs[34], dtype=np.int64)
    mob = np.asarray(inputs[52], dtype=np.int64)
    when = np.asarray(inputs[53]).astype("datetime64[D]")
    months = when.astype("datetime64[M]").astype(np.int64)
    year = months // 12 + 1970
    month = months % 12 + 1
    return (year - yob - (month < mob)).astype(np.int64)


DERIVATIONS: dict[str, tuple[tuple[int, ...], Callable[[Mapping[int, np.ndarray], int | None], np.ndarray]]] = {
    "bmi": ((21002, 50), _bmi),
    "age_at_recruitment": ((34, 52, 53), _age_at_recruitment),
}


class DerivationError(ValueError):
    """An unknown derivation or missing inputs."""


def compute_derived(f: Field, inputs: Mapping[int, np.ndarray]) -> np.ndarray:
    """Recompute a derived field from its inputs (a mapping field id -> values)."""
    if not f.derivation or f.derivation not in DERIVATIONS:
        raise DerivationError(f"field {f.field_id} ({f.name!r}): unknown derivation {f.derivation!r}")
    needed, fn = DERIVATIONS[f.derivation]
    missing = [i for i in needed if i not in inputs]
    if missing:
        raise DerivationError(f"field {f.field_id} ({f.name!r}): missing input field(s) {missing}")
    return fn(inputs, f.precision)
