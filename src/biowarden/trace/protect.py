"""What the release pipeline calls to protect a release: canary participants (if the custodian enabled
them), then the cell-level fingerprint, both decided from the released data itself.

The custodian's settings live in ``HOME/trace.json`` (:class:`TraceOptions`; everything off or default when
the file is absent). Canaries are off by default; when on, the option is recorded in every release's
manifest (and so in the ledger), which is how it is disclosed to governance.

Which columns carry marks is decided on the table as it is released (after the risk gate generalised its
quasi-identifiers), not on the schema: quasi-identifiers the gate generalised, genotypes, identifiers and
sensitive fields never carry marks, and a measure carries marks only where its released values are recorded
at the dictionary's precision, neither finer nor coarser (:func:`biowarden.trace.embed.grid_problem`), and
spread widely enough that a one-unit move does not show.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from biowarden.cohort.fields import PARTICIPANT_COLUMN
from biowarden.keys import KeyRing
from biowarden.trace import canary
from biowarden.trace.embed import MarkingPolicy, MarkReport, mark_release

OPTIONS_FILE = "trace.json"


class TraceOptionsError(ValueError):
    """``trace.json`` is malformed; the message names the problem."""


@dataclass(frozen=True)
class TraceOptions:
    """The custodian's fingerprint and canary settings for record-level releases."""

    canaries: bool = False  # add canary participants to releases (disclosed to governance)
    canary_pool: int = canary.POOL_SIZE  # canaries in the pool; each application gets about half
    mark_dates: bool = False  # dates may move by one day
    fraction: float = 1.0  # share of eligible cells that carry a mark

    def __post_init__(self) -> None:
        if not isinstance(self.canaries, bool) or not isinstance(self.mark_dates, bool):
            raise TraceOptionsError("canaries and mark_dates are true or false")
        if not isinstance(self.canary_pool, int) or not 1 <= self.canary_pool <= canary.MAX_POOL_SIZE:
            raise TraceOptionsError(f"canary_pool must be a whole number from 1 to {canary.MAX_POOL_SIZE}")
        if not isinstance(self.fraction, int | float) or not 0.0 < float(self.fraction) <= 1.0:
            raise TraceOptionsError("fraction must lie in (0, 1]")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TraceOptions:
        if not isinstance(d, dict):
            raise TraceOptionsError("trace.json must hold a JSON object")
        unknown = sorted(set(d) - {f for f in cls.__dataclass_fields__})
        if unknown:
            raise TraceOptionsError(f"unknown trace option(s): {', '.join(unknown)}")
        return cls(**d)

    @classmethod
    def load(cls, home_or_file: str | Path) -> TraceOptions:
        """Read ``HOME/trace.json`` (or the given file) if it exists, else the defaults."""
        path = Path(home_or_file)
        if path.is_dir():
            path = path / OPTIONS_FILE
        if not path.exists():
            return cls()
        try:
            return cls.from_dict(json.loads(path.read_text("utf-8")))
        except json.JSONDecodeError as exc:
            raise TraceOptionsError(f"{path.name} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
        except TypeError as exc:
            raise TraceOptionsError(f"{path.name}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Protection:
    """A protected release: the table (still on master eids), what was marked, the canaries it carries."""

    table: pa.Table
    policy: MarkingPolicy
    report: MarkReport
    canary_eids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    options: TraceOptions = field(default_factory=TraceOptions)

    def summary(self) -> dict[str, Any]:
        """For the release manifest: the marks, and the canary setting with the number carried."""
        out = self.report.to_dict()
        out["canaries"] = {
            "enabled": self.options.canaries,
            "pool": self.options.canary_pool if self.options.canaries else 0,
            "carried": int(self.canary_eids.size),
        }
        return out


def marking_policy(
    table: pa.Table,
    dictionary: Any,
    *,
    generalised: Iterable[str] = (),
    options: TraceOptions | None = None,
    eid_column: str = PARTICIPANT_COLUMN,
) -> MarkingPolicy:
    """The marking policy for a table about to be released, decided from its own values.

    ``generalised`` names the columns the risk gate generalised (never marked, whatever their type).
    """
    options = options or TraceOptions()
    cols = [c for c in table.schema.names if c != eid_column]
    return MarkingPolicy.from_dictionary(
        dictionary,
        cols,
        allow_dates=options.mark_dates,
        fraction=float(options.fraction),
        exclude=[c for c in generalised if c in cols],
        data=table,
    )


def protect_release(
    table: pa.Table,
    dictionary: Any,
    application_no: int,
    keyring: KeyRing,
    *,
    generalised: Iterable[str] = (),
    options: TraceOptions | None = None,
    master: pa.Table | str | Path | None = None,
    eid_column: str = PARTICIPANT_COLUMN,
) -> Protection:
    """Protect a release (rows on master eids, after the risk gate) for ``application_no``.

    With canaries on, ``master`` (the cohort: a table or its Parquet file) supplies the canaries' donors;
    they are shaped like the release (:func:`biowarden.trace.canary.place_canaries`) and appended, and then
    every row is marked. Which columns carry marks is decided on the participants' rows alone.
    """
    options = options or TraceOptions()
    generalised = list(generalised)
    policy = marking_policy(table, dictionary, generalised=generalised, options=options, eid_column=eid_column)
    canary_eids = np.zeros(0, dtype=np.int64)
    if options.canaries:
        if master is None:
            raise ValueError("canary participants need the cohort to draw their donors from")
        cohort = _cohort_for(master, table.schema.names, eid_column)
        rows, canary_eids = canary.place_canaries(
            table, cohort, application_no, keyring, generalised, dictionary, options.canary_pool, eid_column
        )
        if rows.num_rows:
            table = pa.concat_tables([table, rows])
    marked, report = mark_release(table, policy, application_no, keyring)
    return Protection(marked, policy, report, canary_eids, options)


def _cohort_for(master: pa.Table | str | Path, columns: list[str], eid_column: str) -> pa.Table:
    """The cohort's columns a canary needs: the release's, the participant column and sex."""
    if isinstance(master, pa.Table):
        names = master.schema.names
    else:
        import pyarrow.parquet as pq

        names = pq.read_schema(master).names
    wanted = [eid_column, *[c for c in columns if c in names and c != eid_column]]
    if canary.SEX_COLUMN in names and canary.SEX_COLUMN not in wanted:
        wanted.append(canary.SEX_COLUMN)
    if isinstance(master, pa.Table):
        return master.select(wanted)
    import pyarrow.parquet as pq

    return pq.read_table(master, columns=wanted)


def canary_pool_for_tracing(options: TraceOptions) -> int:
    """The canary pool the tracer must consider (0 when the custodian never enabled canaries)."""
    return options.canary_pool if options.canaries else 0
