"""Linkage-attack simulation: link an external register (names + some quasi-identifiers) to a release.

An attacker holds a register (an electoral roll, a news story, social media): one row per person with a
name and what is known about them, possibly coarse ("born 1950-1954", "aged about 60") or noisy ("operated
on around 14 March 2015"). A release is an Arrow table, raw or generalised: its cells are exact values,
intervals ("1950-1954", "[1950, 1955[", "<1940", ">=70"), suppressed ("*" or null), or, for set-valued
fields such as OPCS-4 operation dates (``41282-0``), lists of values.

Every known value and every release cell becomes a closed interval ``[lo, hi]`` on a common axis (numbers;
dates as days since 1970; categories as codes of a shared codebook): an exact value is a point, a
suppressed cell is ``(-inf, inf)``, an unknown register value too, and a register value with a tolerance
``t`` is ``[v - t, v + t]``. A register person and a release row are *compatible* when every attribute's
intervals overlap (for a list column: when some element of the row's list overlaps). The attacker's
candidates are all compatible rows.

Attacks scored against the simulator's ground truth (the true participant of each register person, and of
each release row, which the custodian knows even when the release is pseudonymised):

* unique-match: the attacker names the person only when exactly one row is compatible; it is correct when
  that row is the person's own, wrong otherwise (someone else, or a person who is not in the release at
  all). Zero candidates is no match; several is ambiguous.
* guess: the attacker picks one compatible row at random; its expected number of correct
  re-identifications is the sum over register people of ``1[own row is a candidate] / candidates``.

Linking works on the distinct release signatures (the histogram of the scalar attributes' cells), blocked
by a sorted index on the most selective attribute, so a register of thousands against 500,000 rows takes
seconds, and a generalised release (few signatures) far less.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "LinkageResult",
    "Match",
    "birthdate_operation_matches",
    "link",
    "register_matches",
]

_INF = np.inf
_WILDCARDS = {"", "*", "**", "***", "?", "NA", "N/A", "null", "NULL", "None", "suppressed"}
_QUARTER_RE = re.compile(r"^\s*Q([1-4])\s*$")  # a quarter of birth months
_DATE_QUARTER_RE = re.compile(r"^\s*(\d{4})-Q([1-4])\s*$")
_YEAR_BAND_RE = re.compile(r"^\s*(\d{4})\s*-\s*(\d{4})\s*$")
_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_RANGE_RE = re.compile(rf"^\s*({_NUM})\s*(?:-|–|—|\.\.|to)\s*({_NUM})\s*$")
_BRACKET_RE = re.compile(rf"^\s*([\[(])\s*({_NUM}|-inf|-∞)?\s*[,;]\s*({_NUM}|inf|\+inf|∞)?\s*([\])\[])\s*$")
_CMP_RE = re.compile(rf"^\s*(<=|>=|<|>|≤|≥)\s*({_NUM})\s*$")
_DATE_RE = re.compile(r"^\s*(\d{4})(?:-(\d{1,2})(?:-(\d{1,2}))?)?\s*$")
_DATE_RANGE_RE = re.compile(
    r"^\s*(\d{4}(?:-\d{1,2}(?:-\d{1,2})?)?)\s*(?:/|\.\.|to| - )\s*(\d{4}(?:-\d{1,2}(?:-\d{1,2})?)?)\s*$"
)
_EPOCH = dt.date(1970, 1, 1)


@dataclass(frozen=True)
class Match:
    """One attribute the attacker links on.

    ``register``/``release`` name the columns on each side. ``tolerance`` widens each known register value
    by that much on both sides (days for dates). ``groups`` maps a release label (e.g. a quarter "Q1") to
    the values it stands for; the label then covers their range.
    """

    register: str
    release: str
    tolerance: float = 0.0
    groups: dict[str, tuple[Any, ...]] = field(default_factory=dict, hash=False, compare=False)


def register_matches(columns: list[str]) -> list[Match]:
    """Exact-value matching on the same-named columns (an electoral-roll style attack)."""
    return [Match(c, c) for c in columns]


def birthdate_operation_matches(
    tolerance_days: int = 3,
    operation_register: str = "operation_date",
    operation_release: str = "41282-0",
    with_sex: bool = True,
) -> list[Match]:
    """The 2026 attack: approximate birth date (year, month) plus the date of one operation +- a few days."""
    out = [Match("34-0.0", "34-0.0"), Match("52-0.0", "52-0.0")]
    if with_sex:
        out.insert(0, Match("31-0.0", "31-0.0"))
    out.append(Match(operation_register, operation_release, tolerance=float(tolerance_days)))
    return out


# --------------------------------------------------------------------------------------------- intervals


def _days(d: dt.date) -> float:
    return float((d - _EPOCH).days)


def _parse_date_token(tok: str) -> tuple[float, float] | None:
    m = _DATE_RE.match(tok)
    if not m:
        return None
    y, mo, d = int(m.group(1)), m.group(2), m.group(3)
    try:
        if mo is None:
            return _days(dt.date(y, 1, 1)), _days(dt.date(y, 12, 31))
        mo_i = int(mo)
        if d is None:
            nxt = dt.date(y + (mo_i == 12), mo_i % 12 + 1, 1)
            return _days(dt.date(y, mo_i, 1)), _days(nxt) - 1
        v = _days(dt.date(y, mo_i, int(d)))
        return v, v
    except ValueError:
        return None


def _parse_number_label(s: str) -> tuple[float, float] | None:
    t = s.strip()
    if t in _WILDCARDS:
        return -_INF, _INF
    try:
        v = float(t)
        return v, v
    except ValueError:
        pass
    m = _RANGE_RE.match(t)
    if m:
        a, b = float(m.group(1)), float(m.group(2))
        return (a, b) if a <= b else None
    m = _BRACKET_RE.match(t)
    if m:
        lo = -_INF if m.group(2) in (None, "-inf", "-∞") else float(m.group(2))
        hi = _INF if m.group(3) in (None, "inf", "+inf", "∞") else float(m.group(3))
        if m.group(1) == "(" and np.isfinite(lo):
            lo = np.nextafter(lo, _INF)
        if m.group(4) in (")", "[") and np.isfinite(hi):
            hi = np.nextafter(hi, -_INF)
        return (lo, hi) if lo <= hi else None
    m = _QUARTER_RE.match(t)
    if m:
        q = int(m.group(1))
        return 3.0 * q - 2, 3.0 * q
    m = _CMP_RE.match(t)
    if m:
        op, v = m.group(1), float(m.group(2))
        if op in ("<",):
            return -_INF, np.nextafter(v, -_INF)
        if op in ("<=", "≤"):
            return -_INF, v
        if op in (">",):
            return np.nextafter(v, _INF), _INF
        return v, _INF
    return None


def _parse_date_label(s: str) -> tuple[float, float] | None:
    t = s.strip()
    if t in _WILDCARDS:
        return -_INF, _INF
    one = _parse_date_token(t)
    if one is not None:
        return one
    m = _DATE_QUARTER_RE.match(t)
    if m:
        y, q = int(m.group(1)), int(m.group(2))
        end = dt.date(y + 1, 1, 1) if q == 4 else dt.date(y, 3 * q + 1, 1)
        return _days(dt.date(y, 3 * q - 2, 1)), _days(end) - 1
    m = _YEAR_BAND_RE.match(t)
    if m and int(m.group(1)) <= int(m.group(2)):
        return _days(dt.date(int(m.group(1)), 1, 1)), _days(dt.date(int(m.group(2)), 12, 31))
    m = _DATE_RANGE_RE.match(t)
    if m:
        a, b = _parse_date_token(m.group(1)), _parse_date_token(m.group(2))
        if a and b and a[0] <= b[1]:
            return a[0], b[1]
    return None


def _flat(col: pa.ChunkedArray | pa.Array) -> tuple[pa.Array, np.ndarray | None]:
    """(values, list offsets or None) of a scalar or list column."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    if pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
        # null lists count as empty; flatten() honours slicing and skips null lists' backing values
        lens = np.asarray(pc.list_value_length(col).fill_null(0).to_numpy(), dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
        return col.flatten(), offsets
    return col, None


def _domain(arrays: list[pa.Array], groups: dict[str, tuple[Any, ...]]) -> str:
    types = [a.type for a in arrays]
    if any(pa.types.is_temporal(t) for t in types):
        return "date"
    strings = [a for a in arrays if pa.types.is_string(a.type) or pa.types.is_large_string(a.type)]
    if not strings and all(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_null(t) for t in types):
        return "number"
    distinct: set[str] = {str(v) for members in groups.values() for v in members}
    for a in strings:
        distinct.update(x for x in pc.unique(a.drop_null()).to_pylist() if x not in groups)
    if all(_parse_number_label(s) is not None for s in distinct):
        return "number"
    if all(_parse_date_label(s) is not None for s in distinct) and any(
        _DATE_RE.match(s) and "-" in s for s in distinct
    ):
        return "date"
    return "category"


def _intervals(
    arr: pa.Array, domain: str, codebook: dict[str, int], groups: dict[str, tuple[Any, ...]], name: str
) -> tuple[np.ndarray, np.ndarray]:
    """Closed intervals [lo, hi] of every element of ``arr`` on the domain's axis (null -> everything)."""
    n = len(arr)
    lo = np.full(n, -_INF)
    hi = np.full(n, _INF)
    if n == 0:
        return lo, hi
    valid = ~np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    t = arr.type
    if pa.types.is_temporal(t):
        if pa.types.is_date32(t):
            v = np.asarray(arr.cast(pa.int32()).fill_null(0).to_numpy(), dtype=float)
        elif pa.types.is_date64(t):
            v = np.asarray(arr.cast(pa.int64()).fill_null(0).to_numpy(), dtype=float) / 86_400_000.0
            v = np.floor(v)
        elif pa.types.is_timestamp(t):
            v = np.floor(np.asarray(arr.cast(pa.timestamp("s")).cast(pa.int64()).fill_null(0).to_numpy()) / 86400.0)
        else:
            raise ValueError(f"column {name!r}: unsupported temporal type {t}")
        lo[valid], hi[valid] = v[valid], v[valid]
        return lo, hi
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
        if domain == "category":
            arr = arr.cast(pa.string())
        else:
            v = np.asarray(arr.cast(pa.float64()).fill_null(np.nan).to_numpy(), dtype=float)
            valid &= ~np.isnan(v)
            lo[valid], hi[valid] = v[valid], v[valid]
            return lo, hi
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        raise ValueError(f"column {name!r}: unsupported type {arr.type} for linking")
    uniq = pc.unique(arr.drop_null())
    labels = uniq.to_pylist()
    ulo = np.empty(len(labels))
    uhi = np.empty(len(labels))
    for k, s in enumerate(labels):
        if s in groups:
            members = groups[s]
            if domain == "category":
                raise ValueError(f"column {name!r}: groups of category labels are not supported")
            vals = [_parse_number_label(str(m)) if domain == "number" else _parse_date_label(str(m)) for m in members]
            if any(v is None for v in vals) or not vals:
                raise ValueError(f"column {name!r}: group {s!r} has a member that is not a {domain}")
            ulo[k] = min(v[0] for v in vals)  # type: ignore[index]
            uhi[k] = max(v[1] for v in vals)  # type: ignore[index]
            continue
        if domain == "number":
            iv = _parse_number_label(s)
        elif domain == "date":
            iv = _parse_date_label(s)
        else:
            iv = (-_INF, _INF) if s.strip() in _WILDCARDS else None
            if iv is None:
                code = codebook.setdefault(s.strip(), len(codebook))
                iv = (float(code), float(code))
        if iv is None:
            raise ValueError(f"column {name!r}: cannot read {s!r} as a {domain} value or interval")
        ulo[k], uhi[k] = iv
    idx = np.asarray(pc.index_in(arr, value_set=uniq).fill_null(0).to_numpy(), dtype=np.int64)
    if len(labels):
        lo[valid] = ulo[idx[valid]]
        hi[valid] = uhi[idx[valid]]
    return lo, hi


# --------------------------------------------------------------------------------------------- linking


@dataclass
class LinkageResult:
    """Per register person: candidates, whether their own row is among them, and the attack outcomes."""

    names: list[Any]
    candidates: np.ndarray  # number of compatible release rows
    true_in: np.ndarray  # own row among the candidates
    in_release: np.ndarray  # the person is in the release at all
    matched: np.ndarray  # release row index of the unique match, -1 otherwise
    seconds: float
    signatures: int

    @property
    def register_size(self) -> int:
        return len(self.candidates)

    @property
    def unique(self) -> np.ndarray:
        return self.candidates == 1

    @property
    def correct(self) -> int:
        return int((self.unique & self.true_in).sum())

    @property
    def wrong(self) -> int:
        return int((self.unique & ~self.true_in).sum())

    @property
    def ambiguous(self) -> int:
        return int((self.candidates > 1).sum())

    @property
    def no_match(self) -> int:
        return int((self.candidates == 0).sum())

    @property
    def guess_expected_correct(self) -> float:
        k = np.maximum(self.candidates, 1)
        return float((self.true_in / k).sum())

    def to_dict(self) -> dict[str, Any]:
        n_in = int(self.in_release.sum())
        claimed = self.correct + self.wrong
        return {
            "register": self.register_size,
            "in_release": n_in,
            "unique_match": claimed,
            "correct": self.correct,
            "wrong": self.wrong,
            "ambiguous": self.ambiguous,
            "no_match": self.no_match,
            "precision": (self.correct / claimed) if claimed else 0.0,
            "recall": (self.correct / n_in) if n_in else 0.0,
            "guess_expected_correct": self.guess_expected_correct,
            "median_candidates": float(np.median(self.candidates)) if self.register_size else 0.0,
            "signatures": self.signatures,
            "seconds": self.seconds,
        }


def _column(table: pa.Table, name: str, side: str) -> pa.ChunkedArray:
    if name not in table.column_names:
        raise ValueError(f"the {side} has no column {name!r}")
    return table.column(name)


def link(
    register: pa.Table,
    release: pa.Table,
    matches: list[Match],
    register_truth: str | np.ndarray | None = "true_eid",
    release_truth: str | np.ndarray | None = "eid",
    name_column: str | None = "name",
) -> LinkageResult:
    """Link every register person to the compatible rows of ``release`` and score the attacks.

    ``register_truth`` / ``release_truth`` give the true participant of each register person (null or
    negative: not a participant) and of each release row, as a column name or an array; the attacker never
    sees them. ``matches`` lists the attributes linked on.
    """
    t0 = time.perf_counter()
    if not matches:
        raise ValueError("no attributes to link on")
    n_reg, n_rel = register.num_rows, release.num_rows
    reg_truth = _truth(register, register_truth, "register")
    rel_truth = _truth(release, release_truth, "release")
    names = register.column(name_column).to_pylist() if name_column and name_column in register.column_names else []

    scalar: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []  # reg lo/hi, rel lo/hi
    listed: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []  # + offsets
    for m in matches:
        reg_arr, reg_off = _flat(_column(register, m.register, "register"))
        rel_arr, rel_off = _flat(_column(release, m.release, "release"))
        if reg_off is not None:
            raise ValueError(f"register column {m.register!r} is a list; give one value per person")
        domain = _domain([reg_arr, rel_arr], m.groups)
        codebook: dict[str, int] = {}
        rlo, rhi = _intervals(reg_arr, domain, codebook, {}, m.register)
        if m.tolerance:
            if m.tolerance < 0:
                raise ValueError(f"negative tolerance for {m.register!r}")
            rlo, rhi = rlo - m.tolerance, rhi + m.tolerance
        elo, ehi = _intervals(rel_arr, domain, codebook, m.groups, m.release)
        if rel_off is None:
            scalar.append((rlo, rhi, elo, ehi))
        else:
            listed.append((rlo, rhi, elo, ehi, rel_off))

    # Distinct release signatures over the scalar attributes (the histogram, not the rows).
    if scalar:
        sig_mat = np.stack([np.column_stack([s[2], s[3]]) for s in scalar], axis=1).reshape(n_rel, -1)
        sigs, sig_inv = np.unique(sig_mat, axis=0, return_inverse=True)
        sig_inv = sig_inv.reshape(-1)
    else:
        sigs = np.zeros((1, 0))
        sig_inv = np.zeros(n_rel, dtype=np.int64)
    n_sig = len(sigs)
    order_rows = np.argsort(sig_inv, kind="stable")
    sig_start = np.searchsorted(sig_inv[order_rows], np.arange(n_sig + 1))
    slo = sigs[:, 0::2]
    shi = sigs[:, 1::2]

    # Blocking index on the most selective scalar attribute: signatures sorted by lo, with the widest
    # finite cell width W, so the candidates of [a, b] are those with lo in [a - W, b] (+ infinite cells).
    block = _choose_block(scalar, slo, shi)
    if block is not None:
        j = block
        finite = np.isfinite(slo[:, j]) & np.isfinite(shi[:, j])
        fin_idx = np.flatnonzero(finite)
        inf_idx = np.flatnonzero(~finite)
        srt = fin_idx[np.argsort(slo[fin_idx, j], kind="stable")]
        sorted_lo = slo[srt, j]
        width = float((shi[fin_idx, j] - slo[fin_idx, j]).max()) if len(fin_idx) else 0.0
        a = scalar[j][0]
        b = scalar[j][1]
        starts = np.searchsorted(sorted_lo, a - width, side="left")
        ends = np.searchsorted(sorted_lo, b, side="right")
    all_sigs = np.arange(n_sig)

    candidates = np.zeros(n_reg, dtype=np.int64)
    true_in = np.zeros(n_reg, dtype=bool)
    matched = np.full(n_reg, -1, dtype=np.int64)
    for r in range(n_reg):
        if block is not None:
            cand = srt[starts[r] : ends[r]]
            if len(inf_idx):
                cand = np.concatenate([cand, inf_idx])
        else:
            cand = all_sigs
        if len(cand) and scalar:
            ok = np.ones(len(cand), dtype=bool)
            for k, (rlo, rhi, _, _) in enumerate(scalar):
                ok &= (slo[cand, k] <= rhi[r]) & (shi[cand, k] >= rlo[r])
            cand = cand[ok]
        if len(cand) == 0:
            continue
        if len(cand) == 1:
            rows = order_rows[sig_start[cand[0]] : sig_start[cand[0] + 1]]
        else:
            rows = np.concatenate([order_rows[sig_start[s] : sig_start[s + 1]] for s in cand])
        for rlo, rhi, elo, ehi, off in listed:
            if len(rows) == 0:
                break
            if not (np.isfinite(rlo[r]) or np.isfinite(rhi[r])):
                continue  # the attacker does not know this attribute
            rows = rows[_any_overlap(rows, off, elo, ehi, rlo[r], rhi[r])]
        k = len(rows)
        candidates[r] = k
        if k == 0:
            continue
        if reg_truth[r] >= 0:
            true_in[r] = bool((rel_truth[rows] == reg_truth[r]).any())
        if k == 1:
            matched[r] = rows[0]
    in_release = np.isin(reg_truth, rel_truth[rel_truth >= 0]) & (reg_truth >= 0)
    return LinkageResult(
        names=names,
        candidates=candidates,
        true_in=true_in,
        in_release=in_release,
        matched=matched,
        seconds=time.perf_counter() - t0,
        signatures=n_sig,
    )


def _any_overlap(
    rows: np.ndarray, off: np.ndarray, elo: np.ndarray, ehi: np.ndarray, lo: float, hi: float
) -> np.ndarray:
    """For each row, does some element of its list overlap [lo, hi]?"""
    starts = off[rows]
    lens = off[rows + 1] - starts
    total = int(lens.sum())
    if total == 0:
        return np.zeros(len(rows), dtype=bool)
    owner = np.repeat(np.arange(len(rows)), lens)
    pos = np.arange(total) - np.repeat(np.cumsum(lens) - lens, lens) + np.repeat(starts, lens)
    hit = (elo[pos] <= hi) & (ehi[pos] >= lo)
    return np.bincount(owner[hit], minlength=len(rows)) > 0


def _choose_block(scalar: list, slo: np.ndarray, shi: np.ndarray) -> int | None:
    """The scalar attribute whose sorted index leaves the fewest signatures to check, if any helps."""
    if not scalar or len(slo) < 64:
        return None
    best, best_cost = None, float(len(slo))
    for j, (rlo, rhi, _, _) in enumerate(scalar):
        finite = np.isfinite(slo[:, j]) & np.isfinite(shi[:, j])
        n_inf = int((~finite).sum())
        if not finite.any():
            continue
        s = np.sort(slo[finite, j])
        width = float((shi[finite, j] - slo[finite, j]).max())
        sample = np.arange(0, len(rlo), max(1, len(rlo) // 256))
        a = rlo[sample] - width
        b = rhi[sample]
        cost = float((np.searchsorted(s, b, side="right") - np.searchsorted(s, a, side="left")).mean()) + n_inf
        if cost < best_cost:
            best, best_cost = j, cost
    return best


def _truth(table: pa.Table, spec: str | np.ndarray | None, side: str) -> np.ndarray:
    n = table.num_rows
    if spec is None:
        return np.full(n, -1, dtype=np.int64)
    if isinstance(spec, str):
        col = _column(table, spec, side)
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks()
        if not (pa.types.is_integer(col.type) or pa.types.is_null(col.type)):
            raise ValueError(f"the {side}'s truth column {spec!r} must hold integer participant ids")
        return np.asarray(col.cast(pa.int64()).fill_null(-1).to_numpy(), dtype=np.int64)
    arr = np.asarray(spec, dtype=np.int64)
    if arr.shape != (n,):
        raise ValueError(f"the {side}'s truth has {arr.shape} entries, expected {n}")
    return arr
