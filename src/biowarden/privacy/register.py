"""Synthetic attacker registers, and a simple coarsening of a release, for linkage-attack simulations.

``synthetic_register`` samples people from a cohort table (keeping their true ``eid`` as ground truth),
gives them synthetic names, and projects what an attacker would know about them:

* ``"electoral"``: an electoral roll joined with dates of birth (social media, a people-search site):
  sex, birth year and month, and the home's 1 km grid cell (from the address);
* ``"news"``: the 2026 newspaper attack: sex, an approximate birth date (year and month, or only the
  year, or a 5-year band around it) and the date of one operation the story reports (optionally off by
  a few days).

Non-participants (people in the register who are not in the cohort, as in any real register) come from
a second table (e.g. a synthetic cohort with another seed) with ``true_eid = -1``.

``coarsen_release`` is a fixed, simple generalisation (birth year to bands, month suppressed, Townsend
to intervals, coordinates dropped, operation dates to months) used to show how an attack fares against
a generalised release when the optimal anonymiser is not at hand; it is not a privacy guarantee.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["coarsen_release", "synthetic_names", "synthetic_register"]

_FIRST_F = [
    "Margaret",
    "Susan",
    "Patricia",
    "Christine",
    "Linda",
    "Elizabeth",
    "Janet",
    "Carol",
    "Mary",
    "Ann",
    "Jennifer",
    "Barbara",
    "Gillian",
    "Helen",
    "Karen",
    "Sandra",
    "Pauline",
    "Julie",
    "Valerie",
    "Jean",
    "Angela",
    "Alison",
    "Lesley",
    "Deborah",
    "Sarah",
    "Catherine",
    "Joan",
    "Jacqueline",
    "Maureen",
    "Diane",
    "Anne",
    "Hilary",
    "Wendy",
    "Lynne",
    "Elaine",
    "Frances",
    "Rosemary",
    "Sheila",
    "Brenda",
    "Judith",
]
_FIRST_M = [
    "David",
    "John",
    "Michael",
    "Peter",
    "Robert",
    "Stephen",
    "Paul",
    "Richard",
    "Ian",
    "Christopher",
    "Andrew",
    "Anthony",
    "Alan",
    "Brian",
    "Keith",
    "Graham",
    "Martin",
    "Kevin",
    "Philip",
    "Mark",
    "Colin",
    "Roger",
    "Geoffrey",
    "Trevor",
    "Nigel",
    "Malcolm",
    "Barry",
    "Derek",
    "Kenneth",
    "Neil",
    "Simon",
    "Gary",
    "Terence",
    "Raymond",
    "Dennis",
    "Gordon",
    "Stuart",
    "Timothy",
    "Patrick",
    "Clive",
]
_SURNAMES = [
    "Smith",
    "Jones",
    "Williams",
    "Taylor",
    "Brown",
    "Davies",
    "Evans",
    "Wilson",
    "Thomas",
    "Johnson",
    "Roberts",
    "Robinson",
    "Thompson",
    "Wright",
    "Walker",
    "White",
    "Edwards",
    "Hughes",
    "Green",
    "Hall",
    "Lewis",
    "Harris",
    "Clarke",
    "Patel",
    "Jackson",
    "Wood",
    "Turner",
    "Martin",
    "Cooper",
    "Hill",
    "Ward",
    "Morris",
    "Moore",
    "Clark",
    "Lee",
    "King",
    "Baker",
    "Harrison",
    "Morgan",
    "Allen",
    "James",
    "Scott",
    "Phillips",
    "Watson",
    "Davis",
    "Parker",
    "Price",
    "Bennett",
    "Young",
    "Griffiths",
    "Mitchell",
    "Kelly",
    "Cook",
    "Carter",
    "Richardson",
    "Bailey",
    "Collins",
    "Bell",
    "Shaw",
    "Murphy",
    "Miller",
    "Cox",
    "Richards",
    "Khan",
    "Marshall",
    "Anderson",
    "Simpson",
    "Ellis",
    "Adams",
    "Singh",
    "Begum",
    "Wilkinson",
    "Foster",
    "Chapman",
    "Powell",
    "Webb",
    "Rogers",
    "Gray",
    "Mason",
    "Ali",
    "Hunt",
    "Hussain",
    "Campbell",
    "Matthews",
    "Owen",
    "Palmer",
    "Holmes",
    "Mills",
    "Barnes",
    "Knight",
    "Lloyd",
    "Butler",
    "Russell",
    "Barker",
    "Fisher",
    "Stevens",
    "Jenkins",
    "Murray",
    "Dixon",
    "Harvey",
    "Graham",
    "Pearson",
    "Ahmed",
    "Fletcher",
]


def synthetic_names(sex: np.ndarray, rng: np.random.Generator) -> list[str]:
    """A plausible British name per person (1 = male, as UK Biobank's coding 9)."""
    n = len(sex)
    f = rng.integers(0, len(_FIRST_F), n)
    m = rng.integers(0, len(_FIRST_M), n)
    s = rng.integers(0, len(_SURNAMES), n)
    return [f"{(_FIRST_M[m[i]] if sex[i] == 1 else _FIRST_F[f[i]])} {_SURNAMES[s[i]]}" for i in range(n)]


def _require(table: pa.Table, cols: list[str], what: str) -> None:
    missing = [c for c in cols if c not in table.column_names]
    if missing:
        raise ValueError(f"{what} needs column(s) {', '.join(missing)}")


def _operation_dates(table: pa.Table, column: str) -> tuple[np.ndarray, np.ndarray]:
    col = table.column(column).combine_chunks()
    lens = np.asarray(pc.list_value_length(col).fill_null(0).to_numpy(), dtype=np.int64)
    flat = col.flatten()
    if not pa.types.is_date32(flat.type):
        flat = flat.cast(pa.date32())
    days = np.asarray(flat.cast(pa.int32()).fill_null(-(10**6)).to_numpy(), dtype=np.int64)
    return lens, days


def synthetic_register(
    cohort: pa.Table,
    size: int,
    seed: int = 0,
    knowledge: Literal["electoral", "news"] = "electoral",
    birth: Literal["month", "year", "band"] = "month",
    operation_noise_days: int = 0,
    outsiders: pa.Table | None = None,
    outsider_share: float = 0.0,
) -> pa.Table:
    """Sample ``size`` people (a share ``outsider_share`` of them from ``outsiders``) and project knowledge.

    Returns columns ``name``, ``true_eid`` (-1 for outsiders) and the known quasi-identifiers named as in
    the cohort (``31-0.0``, ``34-0.0``, ``52-0.0``, ``20074-0.0``, ``20075-0.0``) plus, for ``news``,
    ``operation_date``. With ``birth="year"`` the month is unknown (null); with ``"band"`` the birth year is
    a 5-year band string around the true year (``"1948-1952"``) and the month unknown.
    """
    if size < 1:
        raise ValueError("register size must be positive")
    if not 0.0 <= outsider_share < 1.0:
        raise ValueError("outsider_share must be in [0, 1)")
    if knowledge not in ("electoral", "news"):
        raise ValueError(f"unknown register knowledge {knowledge!r} (electoral or news)")
    if birth not in ("month", "year", "band"):
        raise ValueError(f"unknown birth precision {birth!r} (month, year or band)")
    rng = np.random.default_rng(seed)
    n_out = round(size * outsider_share) if outsiders is not None else 0
    parts = [(cohort, size - n_out, False)]
    if n_out:
        parts.append((outsiders, n_out, True))
    pieces = []
    for table, count, outside in parts:
        base = ["eid", "31-0.0", "34-0.0", "52-0.0"]
        if knowledge == "electoral":
            _require(table, [*base, "20074-0.0", "20075-0.0"], "an electoral register")
        else:
            _require(table, [*base, "41282-0"], "a news register")
        eligible = np.arange(table.num_rows)
        if knowledge == "news":
            lens, days = _operation_dates(table, "41282-0")
            eligible = np.flatnonzero(lens > 0)
        if len(eligible) < count:
            raise ValueError(f"only {len(eligible)} eligible people to draw {count} from")
        pick = np.sort(rng.choice(eligible, size=count, replace=False))
        sub = table.take(pa.array(pick))
        sex = np.asarray(sub.column("31-0.0").to_numpy(), dtype=np.int64)
        cols: dict[str, pa.Array] = {
            "name": pa.array(synthetic_names(sex, rng)),
            "true_eid": pa.array(np.full(count, -1) if outside else sub.column("eid").to_numpy(), pa.int64()),
            "31-0.0": pa.array(sex, pa.int32()),
        }
        year = np.asarray(sub.column("34-0.0").to_numpy(), dtype=np.int64)
        if birth == "band":
            lo = year - rng.integers(0, 5, count)
            cols["34-0.0"] = pa.array([f"{a}-{a + 4}" for a in lo])
        else:
            cols["34-0.0"] = pa.array(year, pa.int32())
        month = sub.column("52-0.0").combine_chunks().cast(pa.int32())
        cols["52-0.0"] = month if birth == "month" else pa.nulls(count, pa.int32())
        if knowledge == "electoral":
            cols["20074-0.0"] = sub.column("20074-0.0").combine_chunks()
            cols["20075-0.0"] = sub.column("20075-0.0").combine_chunks()
        else:
            starts = np.concatenate([[0], np.cumsum(lens)])[pick]
            which = starts + (rng.random(count) * lens[pick]).astype(np.int64)
            op = days[which]
            if operation_noise_days:
                op = op + rng.integers(-operation_noise_days, operation_noise_days + 1, count)
            cols["operation_date"] = pa.array(op.astype(np.int32), pa.int32()).cast(pa.date32())
        pieces.append(pa.table(cols))
    out = pa.concat_tables(pieces, promote_options="permissive") if len(pieces) > 1 else pieces[0]
    shuffle = rng.permutation(out.num_rows)
    return out.take(pa.array(shuffle))


def _band_labels(values: np.ndarray, width: int, valid: np.ndarray) -> pa.Array:
    lo = (values // width) * width
    return pa.array([f"{a}-{a + width - 1}" if ok else None for a, ok in zip(lo, valid, strict=True)])


def coarsen_release(
    release: pa.Table,
    year_band: int | None = 5,
    suppress_month: bool = True,
    townsend_step: float | None = 2.0,
    drop: tuple[str, ...] = ("20074-0.0", "20075-0.0", "53-0.0", "21022-0.0"),
    operation_dates: Literal["keep", "month", "year", "drop"] = "month",
) -> pa.Table:
    """A fixed generalisation of a cohort-like release (see the module docstring)."""
    t = release
    for c in drop:
        if c in t.column_names:
            t = t.drop_columns([c])
    if year_band and "34-0.0" in t.column_names:
        col = t.column("34-0.0").combine_chunks()
        valid = ~np.asarray(col.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        vals = np.asarray(col.cast(pa.int64()).fill_null(0).to_numpy(), dtype=np.int64)
        t = t.set_column(t.column_names.index("34-0.0"), "34-0.0", _band_labels(vals, year_band, valid))
    if suppress_month and "52-0.0" in t.column_names:
        t = t.set_column(t.column_names.index("52-0.0"), "52-0.0", pa.array(["*"] * t.num_rows))
    if townsend_step and "189-0.0" in t.column_names:
        col = t.column("189-0.0").combine_chunks()
        v = np.asarray(col.cast(pa.float64()).fill_null(np.nan).to_numpy(), dtype=float)
        lo = np.floor(v / townsend_step) * townsend_step
        labels = [None if np.isnan(a) else f"[{a:g}, {a + townsend_step:g}[" for a in lo]
        t = t.set_column(t.column_names.index("189-0.0"), "189-0.0", pa.array(labels))
    if "41282-0" in t.column_names and operation_dates != "keep":
        i = t.column_names.index("41282-0")
        if operation_dates == "drop":
            t = t.drop_columns(["41282-0"])
        else:
            col = t.column("41282-0").combine_chunks()
            lens = np.asarray(pc.list_value_length(col).fill_null(0).to_numpy(), dtype=np.int64)
            flat = col.flatten().cast(pa.date32())
            fmt = "%Y-%m" if operation_dates == "month" else "%Y"
            labels = pc.strftime(flat.cast(pa.timestamp("s")), format=fmt)
            offsets = pa.array(np.concatenate([[0], np.cumsum(lens)]).astype(np.int32))
            t = t.set_column(i, "41282-0", pa.ListArray.from_arrays(offsets, labels))
    return t
