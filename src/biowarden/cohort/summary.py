"""Quick summaries of a cohort: sample uniqueness of quasi-identifier combinations (DuckDB GROUP BY).

Sample uniqueness is the share of participants whose combination of values occurs once in the cohort;
it is the raw, ungeneralised view of how identifying a set of columns is (the privacy area estimates
population risk properly). The heavy scan runs in DuckDB over the Parquet file, never in Python loops.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# (label, columns): cumulative combinations of the showcase's quasi-identifiers
DEFAULT_COMBINATIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("sex + birth year", ("31-0.0", "34-0.0")),
    ("sex + birth year + month", ("31-0.0", "34-0.0", "52-0.0")),
    ("sex + birth year + month + centre", ("31-0.0", "34-0.0", "52-0.0", "54-0.0")),
    ("sex + birth year + month + ethnicity + centre", ("31-0.0", "34-0.0", "52-0.0", "21000-0.0", "54-0.0")),
    ("sex + birth year + month + assessment date", ("31-0.0", "34-0.0", "52-0.0", "53-0.0")),
    ("sex + birth year + month + Townsend", ("31-0.0", "34-0.0", "52-0.0", "189-0.0")),
    ("sex + birth year + month + home 1 km cell", ("31-0.0", "34-0.0", "52-0.0", "20074-0.0", "20075-0.0")),
    ("centre + home 1 km cell", ("54-0.0", "20074-0.0", "20075-0.0")),
)


@dataclass(frozen=True)
class Uniqueness:
    label: str
    columns: tuple[str, ...]
    unique_share: float  # share of participants unique on the combination
    classes: int  # distinct combinations
    participants: int


def _q(col: str) -> str:
    return '"' + col.replace('"', '""') + '"'


def sample_uniqueness(
    parquet: str | os.PathLike[str],
    combinations: tuple[tuple[str, tuple[str, ...]], ...] = DEFAULT_COMBINATIONS,
    top: int | None = None,
) -> list[Uniqueness]:
    """Sample uniqueness of each combination present in the file, most identifying first."""
    import duckdb

    path = str(Path(parquet))
    con = duckdb.connect()
    try:
        con.execute("SET threads TO 2")
        available = {r[0] for r in con.execute("SELECT name FROM parquet_schema(?)", [path]).fetchall()}
        out: list[Uniqueness] = []
        for label, cols in combinations:
            if not set(cols) <= available:
                continue
            group = ", ".join(_q(c) for c in cols)
            row = con.execute(
                f"SELECT coalesce(sum(n) FILTER (WHERE n = 1), 0), count(*), coalesce(sum(n), 0) "
                f"FROM (SELECT count(*) AS n FROM read_parquet(?) GROUP BY {group})",
                [path],
            ).fetchone()
            uniques, classes, total = int(row[0]), int(row[1]), int(row[2])
            out.append(Uniqueness(label, tuple(cols), uniques / total if total else 0.0, classes, total))
    finally:
        con.close()
    out.sort(key=lambda u: (-u.unique_share, u.label))
    return out[:top] if top else out
