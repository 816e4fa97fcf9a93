"""An unsupervised ranking of actors by how unlike the others their recent activity is: a list for custodian
review that never suspends anyone on its own.

Each actor (researcher, application or institution) gets a vector of signals over a window of activities:
exports, log total and largest export in cells (rows x fields), share of the cohort covered by the union of
its exports, exports per active day, the shares of its activity at night and at weekends (shrunk towards
none for actors with few activities), denied requests, and how many networks and clients it used. Every
signal is put on a robust scale (median and MAD across the actors; where more than half the actors share
one value, the mean absolute deviation from the median; never below a floor per signal), and the actor's
score is its Stahel-Donoho outlyingness (Stahel 1981, Donoho 1982): the largest robust z-score of its
projection over many directions, here the signal axes themselves and 256 random unit directions drawn from
a fixed seed, each projection standardised by its own median and MAD (floored at half a unit). Medians
and MADs are not dragged by a few extreme actors, so strange actors do not hide each other the way they
would under a mean and covariance, and an actor unusual only in a combination of signals (each within
range) still stands out; the ranking is deterministic.

What it is not: it has no threshold and raises no alert; it files nothing and asks for no action. A high
score says "unlike the rest in this window", which includes the innocent (a new genomics project pulling
its first large study population looks unusual too); the detectors and the ladder decide, and the ranking
only orders what a custodian might look at next. With fewer than ``MIN_ACTORS`` actors there is no
population to compare with and every score is 0. Only NumPy and pyroaring are used.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from pyroaring import BitMap

from biowarden.monitor.activity import Activity, decode_participants

SIGNALS = (
    "exports",
    "log_cells",
    "log_max_cells",
    "coverage",
    "exports_per_day",
    "night_share",
    "weekend_share",
    "denied",
    "networks",
    "clients",
)
# the smallest scale of each signal (in its own units): a difference below this never counts as unusual
FLOORS = np.array([1.0, 0.5, 0.5, 0.002, 0.5, 0.1, 0.1, 1.0, 1.0, 1.0])
# night and weekend shares are counted as if each actor had SHRINK more daytime weekday activities: one
# activity at 3 a.m. is not "all of its activity at night" (few activities, little evidence)
SHRINK = 4
SCOPES = ("researcher", "application", "institution")
MIN_ACTORS = 8
DIRECTIONS = 256
PROJECTION_FLOOR = 0.5
SEED = 2026
NIGHT_HOURS = frozenset(range(6))


@dataclass
class _Tally:
    exports: int = 0
    cells: int = 0
    max_cells: int = 0
    participants: BitMap = field(default_factory=BitMap)
    days: set = field(default_factory=set)
    night: int = 0
    weekend: int = 0
    activities: int = 0
    denied: int = 0
    networks: set = field(default_factory=set)
    clients: set = field(default_factory=set)


@dataclass(frozen=True)
class Ranked:
    scope: str
    target: str
    rank: int
    score: float  # Stahel-Donoho outlyingness: robust SDs from the population along the worst direction
    signals: dict[str, float]
    why: list[dict[str, float | str]]  # the signals furthest from the population (robust z), largest first

    def to_dict(self) -> dict:
        return {
            "scope": self.scope,
            "target": self.target,
            "rank": self.rank,
            "score": self.score,
            "signals": self.signals,
            "why": self.why,
        }


def _key(act: Activity, scope: str) -> str:
    return act.researcher if scope == "researcher" else act.application if scope == "application" else act.institution


def signals(activities: Iterable[Activity], scope: str, cohort_size: int) -> tuple[list[str], np.ndarray]:
    """Actors (sorted) and their signal matrix (actors x ``SIGNALS``)."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}: use one of {', '.join(SCOPES)}")
    if cohort_size < 1:
        raise ValueError("the cohort size must be positive")
    tallies: dict[str, _Tally] = {}
    for act in activities:
        name = _key(act, scope)
        if not name:
            continue
        t = tallies.get(name)
        if t is None:
            t = tallies[name] = _Tally()
        t.activities += 1
        t.days.add(act.at.date())
        if act.at.hour in NIGHT_HOURS:
            t.night += 1
        if act.at.weekday() >= 5:
            t.weekend += 1
        if act.network:
            t.networks.add(act.network)
        if act.client:
            t.clients.add(act.client)
        if act.kind == "denied":
            t.denied += 1
            continue
        t.exports += 1
        cells = act.rows * act.fields
        t.cells += cells
        t.max_cells = max(t.max_cells, cells)
        if act.participants is None and act.encoded:
            act.participants = decode_participants(act.encoded)
        if act.participants is not None:
            t.participants |= act.participants
    names = sorted(tallies)
    x = np.zeros((len(names), len(SIGNALS)))
    for i, name in enumerate(names):
        t = tallies[name]
        x[i] = (
            t.exports,
            math.log1p(t.cells),
            math.log1p(t.max_cells),
            len(t.participants) / cohort_size,
            t.exports / max(len(t.days), 1),
            t.night / (t.activities + SHRINK),
            t.weekend / (t.activities + SHRINK),
            t.denied,
            len(t.networks),
            len(t.clients),
        )
    return names, x


def _robust_scale(x: np.ndarray, floor: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Column medians and scales: 1.4826 MAD, or 1.2533 x the mean absolute deviation from the median where
    the MAD is 0 (more than half the values are equal), never below ``floor``."""
    med = np.median(x, axis=0)
    dev = np.abs(x - med)
    mad = 1.4826 * np.median(dev, axis=0)
    mean_ad = 1.2533 * dev.mean(axis=0)
    return med, np.maximum(np.where(mad > 0, mad, mean_ad), floor)


def outlyingness(x: np.ndarray, *, directions: int = DIRECTIONS, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """Stahel-Donoho outlyingness of each row of ``x`` (and the rows' robust z per column), over the column
    axes and ``directions`` random unit directions of the robustly standardised columns."""
    n, d = x.shape
    if n < MIN_ACTORS:
        return np.zeros(n), np.zeros_like(x)
    med, scale = _robust_scale(x, FLOORS[:d] if d == len(FLOORS) else 1e-9)
    z = (x - med) / scale
    rng = np.random.default_rng(seed)
    u = rng.standard_normal((d, directions))
    u /= np.linalg.norm(u, axis=0)
    proj = z @ np.hstack([np.eye(d), u])
    # a projection's scale is floored at PROJECTION_FLOOR robust units: a population packed into a thinner
    # band than that (actors that nearly all share a value) magnifies a difference at most 1/PROJECTION_FLOOR
    # times, while a point off a tight relation between signals still stands out
    pmed, pscale = _robust_scale(proj, PROJECTION_FLOOR)
    return (np.abs(proj - pmed) / pscale).max(axis=1), z


def rank(
    activities: Iterable[Activity], scope: str, cohort_size: int, *, limit: int | None = None, why: int = 3
) -> list[Ranked]:
    """Actors of ``scope`` ranked by outlyingness, most unusual first (ties by name)."""
    names, x = signals(activities, scope, cohort_size)
    scores, z = outlyingness(x)
    order = sorted(range(len(names)), key=lambda i: (-scores[i], names[i]))
    out: list[Ranked] = []
    for r, i in enumerate(order[: limit if limit is not None else len(order)], start=1):
        top = sorted(range(len(SIGNALS)), key=lambda j: (-abs(z[i, j]), j))[:why]
        out.append(
            Ranked(
                scope,
                names[i],
                r,
                round(float(scores[i]), 3),
                {s: round(float(v), 6) for s, v in zip(SIGNALS, x[i], strict=True)},
                [
                    {"signal": SIGNALS[j], "value": round(float(x[i, j]), 6), "z": round(float(z[i, j]), 2)}
                    for j in top
                    if z[i, j]
                ],
            )
        )
    return out


def window_start(now: datetime, days: int) -> datetime:
    if not 1 <= days <= 366:
        raise ValueError("the window is between 1 and 366 days")
    return now - timedelta(days=days)
