"""The custodian's export policy: caps per export, rolling quotas per scope, coverage limits.

Defaults follow the lessons of April 2026 and the peers in DESIGN.md: record-level exports are capped per
request (OpenSAFELY caps a released file at 5,000 rows; a research extract needs more, so the default cap is
set by cells and bytes as well as rows), rolling windows stop many small pulls adding up to one, and a
whole-cohort pull of many fields is refused unless the access committee grants an exception.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

SCOPES = ("researcher", "application", "institution")
COVERAGE_SCOPES = ("application", "institution")


EGRESS_FILE = "egress.json"  # the custodian's export policy, in the home


class EgressPolicyError(ValueError):
    """The export policy is malformed; the message names the setting."""


@dataclass(frozen=True)
class ExportCaps:
    max_rows: int = 100_000
    max_cells: int = 2_500_000
    max_bytes: int = 512 * 1024 * 1024


@dataclass(frozen=True)
class Quota:
    """At most ``max_*`` leave per ``scope`` in any window of ``window_seconds`` (None: no limit on that)."""

    scope: str
    window_seconds: int
    max_rows: int | None = None
    max_cells: int | None = None
    max_bytes: int | None = None
    max_exports: int | None = None


@dataclass(frozen=True)
class CoverageLimit:
    """Cumulative coverage of a scope, over all time: distinct participants, and participant x field cells.

    ``max_participant_share`` is the share of the cohort's participants that may have left to the scope;
    ``max_cell_share`` the share of the cohort's participant x field cells.
    """

    scope: str
    max_participant_share: float
    max_cell_share: float


@dataclass(frozen=True)
class EgressPolicy:
    caps: ExportCaps = field(default_factory=ExportCaps)
    quotas: tuple[Quota, ...] = (
        Quota("researcher", 86_400, max_cells=5_000_000, max_exports=20),
        Quota("application", 7 * 86_400, max_cells=15_000_000),
        Quota("institution", 30 * 86_400, max_cells=40_000_000),
    )
    coverage: tuple[CoverageLimit, ...] = (
        CoverageLimit("application", max_participant_share=0.5, max_cell_share=0.05),
        CoverageLimit("institution", max_participant_share=0.6, max_cell_share=0.08),
    )
    # A single export covering at least this share of the cohort with at least this many fields is a
    # whole-cohort pull: refused unless the committee granted an exception for the application.
    whole_cohort_share: float = 0.5
    whole_cohort_fields: int = 10

    def __post_init__(self) -> None:
        for q in self.quotas:
            if q.scope not in SCOPES:
                raise EgressPolicyError(f"quota scope {q.scope!r} is not one of {', '.join(SCOPES)}")
            if q.window_seconds <= 0:
                raise EgressPolicyError(f"quota window for {q.scope} must be positive")
            limits = (q.max_rows, q.max_cells, q.max_bytes, q.max_exports)
            if all(v is None for v in limits) or any(v is not None and v < 0 for v in limits):
                raise EgressPolicyError(f"quota for {q.scope} needs at least one non-negative limit")
        for c in self.coverage:
            if c.scope not in COVERAGE_SCOPES:
                raise EgressPolicyError(f"coverage scope {c.scope!r} is not one of {', '.join(COVERAGE_SCOPES)}")
            for name in ("max_participant_share", "max_cell_share"):
                v = getattr(c, name)
                if not 0.0 <= v <= 1.0:
                    raise EgressPolicyError(f"coverage {name} for {c.scope} must be within [0, 1], got {v}")
        for name in ("max_rows", "max_cells", "max_bytes"):
            if getattr(self.caps, name) <= 0:
                raise EgressPolicyError(f"caps.{name} must be positive")
        if not 0.0 < self.whole_cohort_share <= 1.0 or self.whole_cohort_fields < 1:
            raise EgressPolicyError("whole_cohort_share must be in (0, 1] and whole_cohort_fields >= 1")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EgressPolicy:
        known = {"caps", "quotas", "coverage", "whole_cohort_share", "whole_cohort_fields"}
        unknown = set(data) - known
        if unknown:
            raise EgressPolicyError(f"unknown egress policy settings: {', '.join(sorted(unknown))}")
        try:
            kwargs: dict[str, Any] = {}
            if "caps" in data:
                kwargs["caps"] = ExportCaps(**data["caps"])
            if "quotas" in data:
                kwargs["quotas"] = tuple(Quota(**q) for q in data["quotas"])
            if "coverage" in data:
                kwargs["coverage"] = tuple(CoverageLimit(**c) for c in data["coverage"])
            for k in ("whole_cohort_share", "whole_cohort_fields"):
                if k in data:
                    kwargs[k] = data[k]
        except TypeError as exc:
            raise EgressPolicyError(f"malformed egress policy: {exc}") from None
        return cls(**kwargs)

    @classmethod
    def load(cls, path: Path) -> EgressPolicy:
        """Read ``path`` (JSON) if it exists, else the defaults."""
        if not path.exists():
            return cls()
        try:
            return cls.from_dict(json.loads(path.read_text("utf-8")))
        except json.JSONDecodeError as exc:
            raise EgressPolicyError(f"{path.name} is not valid JSON: {exc.msg} at line {exc.lineno}") from None


@dataclass(frozen=True)
class ExportRequest:
    """One record-level export: who takes what. ``participants`` are eids (uint32-range integers)."""

    researcher: str
    application: str
    institution: str
    participants: np.ndarray
    fields: tuple[str, ...]
    bytes: int
    at: datetime
    release_id: str = ""
    exception_id: int | None = None

    @property
    def rows(self) -> int:
        return len(self.participants)

    @property
    def cells(self) -> int:
        return self.rows * len(self.fields)


@dataclass(frozen=True)
class EgressDecision:
    allow: bool
    reason: str  # stable reason code: ALLOW, DENY_CAP_ROWS, DENY_QUOTA_CELLS, DENY_COVERAGE_PARTICIPANTS, ...
    detail: str  # plain words
    suggestion: str | None = None  # the smallest change that would pass, where one exists
    usage: dict[str, Any] = field(default_factory=dict)
