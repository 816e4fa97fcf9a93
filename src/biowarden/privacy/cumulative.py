"""Cumulative risk: a new release together with what the same application or institution already holds.

Leaks combine extracts. If an application already received sex and birth year, and now asks for birth
month and assessment centre, whoever holds both copies can join them on the participant and see all four
quasi-identifiers at once. The cumulative risk is the risk of the union of the released QI columns,
joined on the participant (``eid``): prior releases are left-joined onto the new one so that each
participant of the new release carries every QI value anyone in the holder's scope has received.
A column released more than once at different generalisation levels is kept once per release (named
``<column>@<i>``), since the finer copy is what an attacker would use together with the coarser one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa

from biowarden.cohort.fields import PARTICIPANT_COLUMN
from biowarden.privacy.data import DataError, as_strings
from biowarden.privacy.risk import RiskReport, measure_risk


@dataclass
class CumulativeRisk:
    alone: RiskReport
    together: RiskReport
    qis_together: list[str]
    prior_releases: int

    def to_dict(self) -> dict:
        return {
            "alone": self.alone.to_dict(),
            "together": self.together.to_dict(),
            "qis_together": self.qis_together,
            "prior_releases": self.prior_releases,
        }


def combine_releases(
    new: pa.Table, prior: Sequence[pa.Table], participant: str = PARTICIPANT_COLUMN
) -> tuple[pa.Table, list[str]]:
    """The new release's participants with the union of all releases' QI columns (strings)."""
    for i, t in enumerate([new, *prior]):
        if participant not in t.column_names:
            raise DataError(f"release {i} has no participant column {participant!r}")
    ids = new.column(participant)
    columns: dict[str, pa.Array] = {participant: ids.combine_chunks()}
    seen: dict[str, pa.Array] = {}
    for c in new.column_names:
        if c != participant:
            columns[c] = as_strings(new.column(c))
            seen[c] = columns[c]
    new_ids = pa.table({participant: ids})
    for i, t in enumerate(prior):
        # one row per participant in a prior release (set-valued columns as their canonical text first)
        t = pa.table({c: t.column(c) if c == participant else as_strings(t.column(c)) for c in t.column_names})
        t = t.group_by(participant).aggregate([(c, "min") for c in t.column_names if c != participant])
        t = t.rename_columns([participant, *[c.removesuffix("_min") for c in t.column_names[1:]]])
        joined = new_ids.join(t, participant, join_type="left outer")
        # join does not keep order: re-align on the new release's participant order
        order = pa.compute.index_in(ids, joined.column(participant))
        joined = joined.take(order)
        for c in t.column_names:
            if c == participant:
                continue
            vals = as_strings(joined.column(c))
            if c in seen and vals.equals(seen[c]):
                continue
            name = c if c not in columns else f"{c}@{i + 1}"
            columns[name] = vals
            seen.setdefault(c, vals)
    table = pa.table(columns)
    return table, [c for c in table.column_names if c != participant]


def cumulative_risk(
    new: pa.Table,
    prior: Sequence[pa.Table],
    population: float | None = None,
    participant: str = PARTICIPANT_COLUMN,
    threshold: float = 0.2,
) -> CumulativeRisk:
    """Risk of ``new`` (its non-participant columns are the QIs) alone and joined with ``prior`` releases."""
    qis_new = [c for c in new.column_names if c != participant]
    if not qis_new:
        raise DataError("the new release has no quasi-identifier columns")
    alone = measure_risk(new, qis_new, population=population, threshold=threshold)
    table, qis = combine_releases(new, prior, participant)
    together = measure_risk(table, qis, population=population, threshold=threshold)
    return CumulativeRisk(alone, together, qis, len(prior))
