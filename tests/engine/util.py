"""Helpers for the data-plane tests."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pyarrow as pa


def edge_table(n: int = 400, seed: int = 5) -> pa.Table:
    """int8/int32/int64, floats with decimals (and NaN, nulls), date, string, list<string>, list<date>;
    rows stored out of eid order."""
    rng = np.random.default_rng(seed)
    eid = rng.permutation(np.arange(1_000_000, 1_000_000 + n)).astype(np.int64)
    height = np.round(rng.normal(170, 10, n), 1)
    chol = np.round(rng.normal(5.5, 1.1, n), 3)
    chol[rng.random(n) < 0.05] = np.nan
    days = rng.integers(0, 1500, n)
    codes = ["I10", "E11", "C50", "J45", "K21"]
    diag, dates = [], []
    for i in range(n):
        if i % 13 == 0:
            diag.append(None)
            dates.append(None)
            continue
        k = int(rng.integers(0, 4))
        diag.append([codes[int(j)] for j in rng.integers(0, 5, k)])
        dates.append([dt.date(1990, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 9000, k)])
    return pa.table(
        {
            "eid": eid,
            "31-0.0": pa.array(rng.integers(0, 2, n), pa.int8()),
            "34-0.0": pa.array(rng.integers(1940, 1970, n), pa.int32()),
            "50-0.0": pa.array(height, pa.float64()),
            "30690-0.0": pa.array(chol, pa.float32()),
            "189-0.0": pa.array(
                [None if i % 29 == 0 else round(float(x), 2) for i, x in enumerate(rng.normal(-1, 3, n))], pa.float64()
            ),
            "53-0.0": pa.array([dt.date(2006, 3, 1) + dt.timedelta(days=int(d)) for d in days], pa.date32()),
            "54-0.0": pa.array(
                [None if i % 17 == 0 else f"centre-{int(c)}" for i, c in enumerate(rng.integers(0, 6, n))], pa.string()
            ),
            "41270-0": pa.array(diag, pa.list_(pa.string())),
            "41280-0": pa.array(dates, pa.list_(pa.date32())),
        }
    )


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def assert_same_table(a: pa.Table, b: pa.Table) -> None:
    """Identical schemas and values (NaN equals NaN; Table.equals would say it does not)."""
    assert a.schema.equals(b.schema), f"{a.schema}\n!=\n{b.schema}"
    assert a.num_rows == b.num_rows
    for name in a.column_names:
        x, y = a.column(name).to_pylist(), b.column(name).to_pylist()
        bad = [i for i, (u, v) in enumerate(zip(x, y, strict=True)) if not _same(u, v)]
        assert not bad, f"column {name!r} differs at rows {bad[:5]}: {x[bad[0]]!r} != {y[bad[0]]!r}"


class KeyedRound:
    """A row-wise kernel as the release pipeline would write one: a keyed pseudonym of the eid (the PRF)
    and a measurement rounded to whole units. Picklable (holds the key bytes, builds the PRF lazily)."""

    def __init__(self, key: bytes, column: str) -> None:
        self.key = key
        self.column = column

    def __call__(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        import pyarrow.compute as pc

        from biowarden.keys import Prf, label_u64

        prf = Prf(self.key)
        eid = batch.column("eid").to_numpy()
        pseudonym = prf.u64(eid, tweak=label_u64("test/pseudonym")).view(np.int64)
        return pa.RecordBatch.from_arrays(
            [batch.column("eid"), pa.array(pseudonym), pc.round(batch.column(self.column), 0)],
            names=["eid", "pid", "rounded"],
        )

    @staticmethod
    def schema(value_type: pa.DataType) -> pa.Schema:
        return pa.schema([("eid", pa.int64()), ("pid", pa.int64()), ("rounded", value_type)])
