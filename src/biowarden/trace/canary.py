"""Canary participants: plausible synthetic rows, assigned to applications by a code (off by default).

A cohort has a fixed pool of ``pool_size`` canaries with reserved master eids
(``CANARY_EID_BASE + k``, inside the pseudonym layout). Each canary is built from two real participants
chosen by the PRF: its quasi-identifiers from one ("donor A") and every other column from another of the
same sex ("donor B"), so its measurements keep their real correlations (BMI matches height and weight)
while the person as a whole does not exist. Canary ``k`` goes into application ``a``'s releases when
``PRF_a(k) < q`` (``q = 1/2``): every canary appears in about half of all copies, so comparing two copies
does not single canaries out, and an innocent application's canary set is independent of a leak it did not
produce: among ``m`` canaries found in a leak, the number it received is ``Binomial(m, q)``, which gives the
canary layer's p-value. Canaries are certain for bulk dumps and weak for small samples.

The policy is disclosed to governance; canary rows are never counted in any statistic the platform reports.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from biowarden.cohort.fields import PARTICIPANT_COLUMN
from biowarden.keys import KeyRing

CANARY_EID_BASE = 8_300_000
POOL_SIZE = 16
MAX_POOL_SIZE = 1024  # reserved eids CANARY_EID_BASE .. CANARY_EID_BASE + 1023 (below the pseudonyms' 2^23)
ASSIGN_PROBABILITY = 0.5
PURPOSE_ASSIGN = "trace/v1/canary/assign/"
PURPOSE_DONOR = "trace/v1/canary/donor"
SEX_COLUMN = "31-0.0"


def pool(pool_size: int = POOL_SIZE) -> np.ndarray:
    """The reserved master eids of the canary pool."""
    return CANARY_EID_BASE + np.arange(pool_size, dtype=np.int64)


def is_canary(eids: np.ndarray, pool_size: int = POOL_SIZE) -> np.ndarray:
    e = np.asarray(eids, dtype=np.int64)
    return (e >= CANARY_EID_BASE) & (e < CANARY_EID_BASE + pool_size)


def assignment(keyring: KeyRing, application_no: int, eids: np.ndarray) -> np.ndarray:
    """Whether each canary (by eid) belongs to application ``application_no``'s releases."""
    u = keyring.prf(f"{PURPOSE_ASSIGN}{int(application_no)}").uniform(np.asarray(eids, dtype=np.int64))
    return u < ASSIGN_PROBABILITY


def assigned(keyring: KeyRing, application_no: int, pool_size: int = POOL_SIZE) -> np.ndarray:
    """The canary eids application ``application_no`` receives."""
    p = pool(pool_size)
    return p[assignment(keyring, application_no, p)]


def canary_rows(
    master: pa.Table,
    eids: np.ndarray,
    keyring: KeyRing,
    quasi_columns: list[str] | tuple[str, ...] = (),
    eid_column: str = PARTICIPANT_COLUMN,
) -> pa.Table:
    """The canary rows for ``eids`` (columns as in ``master``), deterministic given the keys and master."""
    eids = np.asarray(eids, dtype=np.int64)
    if master.num_rows < 2:
        raise ValueError("canaries need a master table with at least two participants")
    order = pc.sort_indices(master, sort_keys=[(eid_column, "ascending")])
    m = master.take(order)
    n = m.num_rows
    prf = keyring.prf(PURPOSE_DONOR)
    a_idx = prf.below(eids, n, tweak=0)
    b_idx = prf.below(eids, n, tweak=1)
    if SEX_COLUMN in m.schema.names:
        sex = np.asarray(m.column(SEX_COLUMN).to_numpy(zero_copy_only=False))
        for i in range(eids.size):
            same = np.flatnonzero(sex == sex[a_idx[i]])
            if same.size:
                b_idx[i] = same[int(prf.below(eids[i : i + 1], same.size, tweak=2)[0])]
    qi = set(quasi_columns)
    cols = []
    for name in m.schema.names:
        if name == eid_column:
            cols.append(pa.array(eids, type=m.schema.field(name).type))
        else:
            cols.append(m.column(name).take(pa.array(a_idx if name in qi else b_idx)))
    return pa.Table.from_arrays(cols, schema=m.schema)


def add_canaries(
    release: pa.Table,
    master: pa.Table,
    application_no: int,
    keyring: KeyRing,
    quasi_columns: list[str] | tuple[str, ...] = (),
    pool_size: int = POOL_SIZE,
    eid_column: str = PARTICIPANT_COLUMN,
) -> tuple[pa.Table, np.ndarray]:
    """Append the application's canaries to a release (before marking); returns (table, canary eids)."""
    eids = assigned(keyring, application_no, pool_size)
    if eids.size == 0:
        return release, eids
    rows = canary_rows(master, eids, keyring, quasi_columns, eid_column).select(release.schema.names)
    rows = rows.cast(release.schema)
    return pa.concat_tables([release, rows]), eids
