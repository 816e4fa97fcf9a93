"""Linking leaked rows to the master cohort: biowarden's blocked KD-tree against plain nearest neighbours.

Run: ``.venv/bin/python -m bench.bench_trace_link [--participants 500000] [--rows 1000]``

The master is the synthetic cohort (``synthesise_table``). Each scenario takes leaked rows from it, drops
the IDs, moves every marked measure by one unit of its last digit half the time (as a fingerprint does),
then applies the scenario's attack. Methods:

- ``biowarden``: :class:`biowarden.trace.link.MasterIndex` (exact blocking on categorical columns, KD-tree
  on standardised measures, ratio test against the runner-up, retry without null columns);
- ``kdtree-nn``: one ``cKDTree`` over all mapped columns standardised, nearest neighbour always accepted;
- ``brute-nn``: the same nearest neighbour by exhaustive NumPy distances (the baseline a script would do).

Reported: index build time, query time for the leak, share of rows linked correctly and wrongly.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
from scipy.spatial import cKDTree

from biowarden.cohort.synth import synthesise_table
from biowarden.trace.link import MasterIndex, map_columns_detailed
from biowarden.trace.read import read_leak

COLUMNS = [
    "31-0.0", "34-0.0", "52-0.0", "54-0.0", "21000-0.0", "20116-0.0",
    "50-0.0", "21002-0.0", "21001-0.0", "4080-0.0", "4079-0.0", "102-0.0", "46-0.0", "47-0.0",
    "30690-0.0", "30760-0.0", "30780-0.0", "30870-0.0", "30740-0.0", "189-0.0",
]  # fmt: skip


def _marked(master: pa.Table, dictionary, rows: np.ndarray, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    sub = master.take(pa.array(rows))
    out = {}
    for c in COLUMNS:
        f = dictionary.for_column(c)
        col = sub.column(c)
        if str(f.role) == "measure" and f.precision is not None and not str(f.value_type).startswith("Categ"):
            v = col.to_numpy(zero_copy_only=False).astype(float)
            step = rng.choice([-1.0, 1.0], len(v)) * (rng.random(len(v)) < 0.5) * 10.0**-f.precision
            out[c] = pa.array(np.round(v + step, f.precision), mask=np.isnan(v))
        else:
            out[c] = col
    return pa.table(out)


def _round(t: pa.Table, name: str, decimals: int) -> pa.Table:
    v = t.column(name).to_numpy(zero_copy_only=False).astype(float)
    return t.set_column(t.column_names.index(name), name, pa.array(np.round(v, decimals), from_pandas=True))


def scenarios(master: pa.Table, dictionary, n_rows: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    rows = rng.choice(master.num_rows, n_rows, replace=False)
    truth = master.column("eid").take(pa.array(rows)).to_numpy()
    marked = _marked(master, dictionary, rows, seed)
    yield "marked copy, 20 columns", marked, truth
    t = marked.drop_columns(["52-0.0", "21000-0.0", "21001-0.0", "30870-0.0", "46-0.0"])
    for c in ("30690-0.0", "30760-0.0", "30740-0.0"):
        t = _round(t, c, 1)
    yield "rounded (3->1 dp, kg) + 5 dropped", _round(t, "21002-0.0", 0), truth
    t = marked
    for c, sd in (("50-0.0", 0.5), ("4080-0.0", 2.0), ("189-0.0", 0.2)):
        v = t.column(c).to_numpy(zero_copy_only=False).astype(float) + rng.normal(0, sd, n_rows)
        t = t.set_column(t.column_names.index(c), c, pa.array(v))
    yield "noise on 3 columns", t, truth
    half = n_rows // 2
    other = _marked(master, dictionary, rows[half:], seed + 7)
    merged = pa.concat_tables([marked.slice(0, half), other.cast(marked.schema)])
    yield "2 copies merged", merged, truth
    few = marked.select(["31-0.0", "34-0.0", "54-0.0", "50-0.0", "21002-0.0", "4080-0.0"])
    yield "6 columns only", few, truth
    coarse = _round(_round(marked.select(["31-0.0", "34-0.0", "50-0.0", "21002-0.0"]), "50-0.0", 0), "21002-0.0", 0)
    yield "4 columns, height+weight to units", coarse, truth
    # 30% of the rows are people who are not in the cohort: they must stay unlinked (truth -1)
    strangers, sdict = synthesise_table(max(n_rows, 1000), seed + 999)
    k = int(0.3 * n_rows)
    foreign = _marked(strangers, sdict, np.arange(k), seed + 3).cast(marked.schema)
    mixed = pa.concat_tables([marked.slice(0, n_rows - k), foreign])
    yield "30% rows from outside the cohort", mixed, np.concatenate([truth[: n_rows - k], np.full(k, -1)])


def _standardised(master: pa.Table, leak: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    ms, ls = [], []
    for c in leak.column_names:
        m = master.column(c).to_numpy(zero_copy_only=False).astype(float)
        v = leak.column(c).to_numpy(zero_copy_only=False).astype(float)
        mu, sd = np.nanmean(m), np.nanstd(m) or 1.0
        ms.append(np.nan_to_num((m - mu) / sd))
        ls.append(np.nan_to_num((v - mu) / sd))
    return np.column_stack(ms), np.column_stack(ls)


def _brute(mz: np.ndarray, lz: np.ndarray, chunk: int = 25) -> np.ndarray:
    out = np.empty(len(lz), dtype=np.int64)
    m2 = (mz**2).sum(axis=1)
    for i in range(0, len(lz), chunk):
        q = lz[i : i + chunk]
        d = m2[None, :] - 2.0 * (q @ mz.T)
        out[i : i + chunk] = d.argmin(axis=1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--participants", type=int, default=500_000)
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--no-brute", action="store_true", help="skip the exhaustive baseline")
    args = ap.parse_args()

    t0 = time.perf_counter()
    master, dictionary = synthesise_table(args.participants, 2026)
    print(f"master: {master.num_rows:,} participants x {master.num_columns} columns "
          f"(synthesised in {time.perf_counter() - t0:.1f} s)")  # fmt: skip
    eids = master.column("eid").to_numpy()
    idx = MasterIndex(master, dictionary)
    results = []
    for name, leak, truth in scenarios(master, dictionary, args.rows):
        mapping = {c: c for c in leak.column_names}
        t = time.perf_counter()
        idx.link(leak, mapping)  # first use of this column set: encodings + tree, then the query
        first = time.perf_counter() - t
        t = time.perf_counter()
        res = idx.link(leak, mapping)  # the index is built: the query alone
        query = time.perf_counter() - t
        build = max(first - query, 0.0)
        results.append((name, "biowarden", build, query, res.eids, truth))

        mz, lz = _standardised(master, leak)
        t = time.perf_counter()
        tree = cKDTree(mz)
        build = time.perf_counter() - t
        t = time.perf_counter()
        _, nn = tree.query(lz, k=1)
        query = time.perf_counter() - t
        results.append((name, "kdtree-nn", build, query, eids[nn], truth))
        if not args.no_brute:
            t = time.perf_counter()
            nn = _brute(mz, lz)
            results.append((name, "brute-nn", 0.0, time.perf_counter() - t, eids[nn], truth))
        del mz, tree

    # end to end: a headerless CSV with a pseudonym column, read, mapped by values, linked
    leak = next(iter(scenarios(master, dictionary, args.rows)))[1]
    truth = next(iter(scenarios(master, dictionary, args.rows)))[2]
    leak = leak.add_column(0, "pid", pa.array([f"P{i:08d}" for i in range(leak.num_rows)]))
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "leak.csv"
        pacsv.write_csv(leak, p, pacsv.WriteOptions(include_header=False, delimiter=";"))
        t = time.perf_counter()
        read = read_leak(p)
        t_read = time.perf_counter() - t
        t = time.perf_counter()
        cm = map_columns_detailed(read, idx)
        t_map = time.perf_counter() - t
        t = time.perf_counter()
        res = idx.link(read, cm.mapping)
        t_link = time.perf_counter() - t
    right = sum(1 for i, c in enumerate(COLUMNS) if cm.mapping.get(f"column_{i + 2}") == c)

    print(f"\nLinking {args.rows:,} leaked rows against {master.num_rows:,} participants "
          "(2 shared, contended cores; times in seconds)\n")  # fmt: skip
    head = f"{'scenario':36} {'method':10} {'build':>8} {'query':>8} {'correct':>8} {'wrong':>7}"
    print(head)
    print("-" * len(head))
    for name, method, build, query, got, truth_ in results:
        correct = float(np.mean(got == truth_))
        wrong = float(np.mean((got != truth_) & (got >= 0)))
        print(f"{name:36} {method:10} {build:8.3f} {query:8.3f} {correct:8.1%} {wrong:7.1%}")
    print(
        f"\nend to end (headerless ';' CSV + pseudonym column): read {t_read:.3f} s, map {t_map:.3f} s "
        f"({right}/{len(COLUMNS)} columns right, identifier-like: {cm.identifier_like}), "
        f"link {t_link:.3f} s, correct {np.mean(res.eids == truth):.1%}"
    )


if __name__ == "__main__":
    main()
