"""Benchmark of leak tracing: rows needed to accuse, calibration, utility cost and speed.

Run: ``.venv/bin/python -m bench.bench_trace`` (a few minutes) or ``--full`` (more trials, more attacks,
the full 500,000-participant sizes). Sections (``--only rows,calibration,utility,speed``):

1. rows: the fewest leaked rows (20 marked columns each) at which all ``c`` colluders are accused at
   epsilon = 1e-6 in at least 99% of simulated leaks, for c = 1..5 and 100 / 1,000 / 10,000 candidate
   applications, under each attack; beside the closed-form Tardos (100 c^2 ln(n/eps)) and symmetric-Tardos
   (pi^2 c^2 ln(n/eps)) code lengths in rows, and the 1,500+ rows a commercial database watermark needs.
   Simulated at the code level (the symbols a leak carries after each attack, read non-blind) with the
   same exact-Chernoff p-value the tracer computes (evaluated on a fixed grid of the Chernoff parameter,
   which can only make it larger: conservative). Subsampling, stripping IDs, renaming, reordering and
   shuffling leave every linked cell's symbol intact, so they are the ``clean`` row.
2. calibration: 1,000,000 simulated innocent applications against one leak: the empirical rate of scores
   beyond the point where the bound says 1e-2 ... 1e-6, beside the bound.
3. utility: cells changed, largest change in units of recorded precision, change of means, variances,
   correlations and of the regression of systolic blood pressure on age, sex and BMI (synthetic cohort).
4. speed: marking a release batch by batch while writing Parquet vs writing it unmarked; tracing a
   1,000-row leak against 1,000 applications.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from biowarden.keys import KeyRing
from biowarden.trace import bounds, code

EPS = 1e-6
COLUMNS = 20
ROW_GRID = [
    1,
    2,
    3,
    4,
    5,
    6,
    8,
    10,
    12,
    15,
    20,
    25,
    30,
    40,
    50,
    60,
    80,
    100,
    120,
    150,
    200,
    250,
    300,
    400,
    500,
    600,
    800,
    1000,
    1200,
    1500,
    2000,
    2500,
    3000,
    4000,
]
APPS = (100, 1000, 10_000)
LAMBDAS = np.geomspace(0.003, 3.0, 28)
ATTACKS = {
    "clean": "subsample/strip IDs/rename/reorder/shuffle; colluders merge by majority",
    "interleave": "whole rows from a random colluder",
    "random": "each cell from a random colluder",
    "minority": "minority symbol where the copies differ",
    "average": "average of the copies (also union+dedupe): ties are erasures",
    "intersection": "cells where copies differ blanked",
    "noise": "majority, then +-1 unit uniform noise on every cell (1/3 symbol errors)",
    "round-half": "majority, then half of the marked columns rounded away (erasures)",
    "correlation": "majority, then Ji et al. row-wise attack on 14% of cells (7% symbol errors)",
}
QUICK_ATTACKS = ("clean", "interleave", "minority", "round-half", "correlation")  # --full adds the rest


def _biases(rng: np.random.Generator, shape) -> np.ndarray:
    r_t = np.arcsin(np.sqrt(code.BIAS_CUTOFF))
    return np.sin(r_t + (np.pi / 2 - 2 * r_t) * rng.random(shape)) ** 2


def _leak_symbols(x: np.ndarray, attack: str, rows: int, rng: np.random.Generator) -> np.ndarray:
    """x: (c, trials, cells) colluder symbols -> leaked symbols (trials, cells), -1 for erasures."""
    c, trials, n = x.shape
    ones = x.sum(axis=0)
    if attack == "interleave":
        who = rng.integers(0, c, (trials, rows))
        who = np.repeat(who, COLUMNS, axis=1)
        return np.take_along_axis(x, who[None], axis=0)[0].astype(np.int8)
    if attack == "random":
        who = rng.integers(0, c, (trials, n))
        return np.take_along_axis(x, who[None], axis=0)[0].astype(np.int8)
    if attack == "minority":
        y = np.where(2 * ones < c, 1, np.where(2 * ones > c, 0, rng.integers(0, 2, (trials, n))))
        y = np.where(ones == 0, 0, np.where(ones == c, 1, y))
        return y.astype(np.int8)
    if attack in ("average", "intersection"):
        if attack == "intersection":
            return np.where(ones == c, 1, np.where(ones == 0, 0, -1)).astype(np.int8)
        return np.where(2 * ones > c, 1, np.where(2 * ones < c, 0, -1)).astype(np.int8)
    # majority (ties at random), then the single-copy damage
    y = np.where(2 * ones > c, 1, np.where(2 * ones < c, 0, rng.integers(0, 2, (trials, n)))).astype(np.int8)
    if attack == "noise":
        flip = rng.random((trials, n)) < 1 / 3
        y = np.where(flip, 1 - y, y).astype(np.int8)
    elif attack == "correlation":
        flip = rng.random((trials, n)) < 0.07
        y = np.where(flip, 1 - y, y).astype(np.int8)
    elif attack == "round-half":
        erased_cols = np.zeros(n, dtype=bool)
        erased_cols.reshape(rows, COLUMNS)[:, : COLUMNS // 2] = True
        y = np.where(erased_cols, -1, y).astype(np.int8)
    return y


def _colluder_logp(c: int, attack: str, rows: int, trials: int, rng: np.random.Generator) -> np.ndarray:
    """Log p-value (exact Chernoff on a grid) of each colluder in each simulated leak: (trials, c)."""
    n = rows * COLUMNS
    p = _biases(rng, (trials, n))
    x = (rng.random((c, trials, n)) < p).astype(np.int8)
    y = _leak_symbols(x, attack, rows, rng)
    ok = y >= 0
    ratio = np.sqrt((1 - p) / p)
    up = np.where(y == 1, ratio, 1 / ratio)
    down = 1 / up
    q = np.where(y == 1, p, 1 - p)
    scores = np.where(x == y[None], up[None], -down[None])
    scores = np.where(ok[None], scores, 0.0).sum(axis=2).T  # (trials, c)
    log_q, log_1q = np.log(q), np.log1p(-q)
    best = np.zeros((trials, c))
    for lam in LAMBDAS:
        k = np.where(ok, np.logaddexp(log_q + lam * up, log_1q - lam * down), 0.0).sum(axis=1)
        best = np.minimum(best, k[:, None] - lam * scores)
    return best


def rows_needed(c: int, attack: str, trials: int, seed: int, max_rows: int = ROW_GRID[-1]) -> dict[int, str]:
    cache: dict[int, np.ndarray] = {}

    def power(idx: int, n_apps: int) -> float:
        rows = ROW_GRID[idx]
        if rows not in cache:
            cache[rows] = _colluder_logp(c, attack, rows, trials, np.random.default_rng(seed + rows))
        return float(np.mean(np.all(cache[rows] < np.log(EPS / n_apps), axis=1)))

    out: dict[int, str] = {}
    grid = [r for r in ROW_GRID if r <= max_rows]
    for idx in range(len(grid)):  # upwards: the cost is dominated by the last (largest) size
        for n_apps in APPS:
            if n_apps not in out and power(idx, n_apps) >= 0.99:
                out[n_apps] = str(ROW_GRID[idx])
        if len(out) == len(APPS):
            break
        cache.clear()
    for n_apps in APPS:
        out.setdefault(n_apps, f">{grid[-1]}")
    return out


def section_rows(full: bool) -> None:
    trials = 400 if full else 100
    attacks = list(ATTACKS) if full else list(QUICK_ATTACKS)
    print(
        f"\n== 1. Rows needed (20 marked columns/row) to accuse all c colluders, eps=1e-6, >=99% power "
        f"({trials} simulated leaks per point) =="
    )
    header = f"{'c':>2} {'attack':<13}" + "".join(f"{'n=' + str(n):>10}" for n in APPS)
    header += f"{'Tardos n=1e3':>14}{'sym. Tardos':>13}{'DB watermark':>14}"
    print(header)
    t0 = time.perf_counter()
    for c in range(1, 6):
        for attack in attacks:
            if c == 1 and attack in ("interleave", "random", "minority", "average", "intersection"):
                continue
            res = rows_needed(c, attack, trials, seed=1000 * c + len(attack), max_rows=4000 if full else 1500)
            tard = code.tardos_length(c, 1000, EPS) / COLUMNS
            sym = code.symmetric_tardos_length(c, 1000, EPS) / COLUMNS
            line = f"{c:>2} {attack:<13}" + "".join(f"{res[n]:>10}" for n in APPS)
            print(line + f"{tard:>14.0f}{sym:>13.0f}{'1,500+':>14}", flush=True)
    print(f"(rows section: {time.perf_counter() - t0:.0f} s)")
    for k, v in ATTACKS.items():
        print(f"  {k:<13} {v}")


def section_calibration(full: bool) -> None:
    n_innocent = 1_000_000 * (5 if full else 1)
    rng = np.random.default_rng(7)
    print(f"\n== 2. Calibration: {n_innocent:,} simulated innocent applications per leak ==")
    print(f"{'leak':<34}{'bound':>10}{'score>=':>10}{'empirical':>12}{'count':>8}{'Bennett':>12}")
    for label, c, attack, rows in (
        ("single leaker, 50 rows", 1, "clean", 50),
        ("3 colluders majority, 100 rows", 3, "clean", 100),
        ("3 colluders, noise, 100 rows", 3, "noise", 100),
    ):
        n = rows * COLUMNS
        p = _biases(rng, (1, n))
        x = (rng.random((c, 1, n)) < p).astype(np.int8)
        y = _leak_symbols(x, attack, rows, rng)[0]
        p = p[0]
        up, down = code.score_weights(p, y)
        q = code.agree_probability(p, y)
        targets = [1e-2, 1e-3, 1e-4, 1e-5, 1e-6]
        thr = {}
        for t in targets:
            lo, hi = 0.0, float(up.sum())
            for _ in range(50):
                mid = (lo + hi) / 2
                lo, hi = (lo, mid) if bounds.chernoff_logp(mid, up, down, q) < np.log(t) else (mid, hi)
            thr[t] = hi
        counts = dict.fromkeys(targets, 0)
        chunk = max(1, 40_000_000 // n)
        done = 0
        while done < n_innocent:
            m = min(chunk, n_innocent - done)
            s = np.where(rng.random((m, n)) < q, up, -down).sum(axis=1)
            for t in targets:
                counts[t] += int((s >= thr[t]).sum())
            done += m
        for t in targets:
            ben = float(np.exp(bounds.bennett_logp(thr[t], n, up.max())))
            print(f"{label:<34}{t:>10.0e}{thr[t]:>10.1f}{counts[t] / n_innocent:>12.2e}{counts[t]:>8}{ben:>12.2e}")
        label = ""
    print("An innocent is accused only when p * candidates < 1e-6. At the bound's 1e-6 point the 'count'")
    print(f"column counts innocents beyond it: the bound allows {n_innocent * 1e-6:g} in {n_innocent:,}.")


def section_utility(full: bool) -> None:
    from biowarden.cohort.synth import synthesise_table
    from biowarden.trace.embed import MarkingPolicy, mark_release

    n = 500_000 if full else 100_000
    table, d = synthesise_table(n, 2026)
    pol = MarkingPolicy.from_dictionary(d, table.schema.names, data=table)
    marked, rep = mark_release(table, pol, 17, KeyRing(b"\x07" * 32))
    print(f"\n== 3. Utility cost of the marks ({n:,} synthetic participants, {len(pol.columns)} marked columns) ==")
    print(
        f"cells marked {rep.cells_marked:,}; changed {rep.cells_changed:,} "
        f"({rep.cells_changed / max(rep.cells_marked, 1):.1%}); largest change {rep.max_change_units} unit of "
        f"recorded precision; BMI recomputed in {rep.derived_recomputed.get('21001-0.0', 0):,} rows"
    )

    def num(t, c):
        a = t.column(c).combine_chunks()
        v = np.asarray(a.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=float)
        return np.where(np.asarray(a.is_valid()), v, np.nan)

    cols = [*pol.columns, "21001-0.0"]
    dm, dv = [], []
    for c in cols:
        a, b = num(table, c), num(marked, c)
        ok = np.isfinite(a)
        se = np.nanstd(a) / np.sqrt(ok.sum())
        dm.append(abs(np.nanmean(b) - np.nanmean(a)) / se)
        dv.append(abs(np.nanvar(b) / np.nanvar(a) - 1))
    a = np.column_stack([num(table, c) for c in cols])
    b = np.column_stack([num(marked, c) for c in cols])
    ok = np.all(np.isfinite(a), axis=1)
    dc = np.abs(np.corrcoef(a[ok].T) - np.corrcoef(b[ok].T))
    print(f"{'statistic':<48}{'largest change':>18}")
    print(f"{'mean (in standard errors of the mean)':<48}{max(dm):>18.3f}")
    print(f"{'variance (relative)':<48}{max(dv):>18.2e}")
    print(f"{'correlation between marked columns (absolute)':<48}{dc.max():>18.2e}")

    def ols(t):
        y = num(t, "4080-0.0")
        xs = [num(t, "21022-0.0"), num(t, "31-0.0"), num(t, "21001-0.0")]
        ok = np.isfinite(y) & np.all([np.isfinite(v) for v in xs], axis=0)
        x = np.column_stack([np.ones(ok.sum())] + [v[ok] for v in xs])
        beta, res, *_ = np.linalg.lstsq(x, y[ok], rcond=None)
        sigma2 = float(res[0]) / (ok.sum() - x.shape[1])
        se = np.sqrt(np.diag(np.linalg.inv(x.T @ x)) * sigma2)
        return beta, se

    b0, se0 = ols(table)
    b1, _ = ols(marked)
    print(f"{'regression SBP ~ age + sex + BMI':<34}{'unmarked':>12}{'marked':>12}{'change/SE':>12}")
    for name, i in (("intercept", 0), ("age", 1), ("sex", 2), ("BMI", 3)):
        print(f"{name:<34}{b0[i]:>12.5f}{b1[i]:>12.5f}{abs(b1[i] - b0[i]) / se0[i]:>12.4f}")


def section_speed(full: bool) -> None:
    from biowarden.cohort.synth import synthesise_table
    from biowarden.trace import sim
    from biowarden.trace.accuse import trace_table
    from biowarden.trace.embed import MarkingPolicy, mark_batch, mark_release
    from biowarden.trace.releases import ReleaseRecord

    kr = KeyRing(b"\x09" * 32)
    n = 500_000 if full else 100_000
    table, d = synthesise_table(n, 7)
    pol = MarkingPolicy.from_dictionary(d, table.schema.names, data=table)
    # 100 fields: the cohort's scalar columns (measures, quasi-identifiers, genotypes) up to 100
    scalar = [f.name for f in table.schema if not pa.types.is_list(f.type)][:101]
    table = table.select(scalar)
    batches = table.to_batches(max_chunksize=65_536)
    with tempfile.TemporaryDirectory() as tmp:

        def write(mark: bool) -> tuple[float, float]:
            path = os.path.join(tmp, f"out-{mark}.parquet")
            t0, c0 = time.perf_counter(), time.process_time()
            with pq.ParquetWriter(path, table.schema) as w:
                for b in batches:
                    w.write_batch(mark_batch(b, pol, 3, kr)[0] if mark else b)
            return time.perf_counter() - t0, time.process_time() - c0

        write(False)
        write(True)
        runs: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
        for _ in range(5):  # interleaved, so a burst of load elsewhere hits both
            for mark in (False, True):
                runs[mark].append(write(mark))
    plain = min(w for w, _c in runs[False])
    marked = min(w for w, _c in runs[True])
    plain_cpu = min(c for _w, c in runs[False])
    marked_cpu = min(c for _w, c in runs[True])
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\n== 4. Speed (2-core machine, 1-min load average {load:.1f}; best of 5, interleaved) ==")
    print(f"{'task':<64}{'seconds':>10}{'CPU s':>10}")
    print(f"{f'write {n:,} x {len(scalar) - 1} fields to Parquet, unmarked':<64}{plain:>10.2f}{plain_cpu:>10.2f}")
    print(
        f"{f'mark ({len([c for c in scalar if c in pol.columns])} marked columns) + write, batch by batch':<64}"
        f"{marked:>10.2f}{marked_cpu:>10.2f}"
    )
    print(f"{'ratio (target <= 1.5)':<64}{marked / plain:>10.2f}{marked_cpu / plain_cpu:>10.2f}")

    # tracing a 1,000-row leak against 1,000 applications
    master = sim.toy_cohort(20_000, seed=1, extra_measures=13)
    policy = MarkingPolicy.from_dictionary(sim.dictionary(13), master.schema.names, schema=master.schema)
    rng = np.random.default_rng(3)
    all_eids = np.asarray(master.column("eid").to_numpy())
    records = []
    for a in range(1, 1001):
        e = np.sort(rng.choice(all_eids, 10_000, replace=False))
        records.append(
            ReleaseRecord(f"r{a}", f"APP-{a}", a, f"I{a % 50}", "2026-04-01", tuple(master.schema.names[1:]), eids=e)
        )
    leaker = 321
    rows = rng.choice(np.searchsorted(all_eids, records[leaker - 1].eids), 1000, replace=False)
    copy, _ = mark_release(master.take(pa.array(np.sort(rows))), policy, leaker, kr)
    eids = np.asarray(copy.column("eid").to_numpy())
    leak = copy.drop_columns(["eid"])
    mapping = {c: c for c in leak.schema.names}
    t0 = time.perf_counter()
    v = trace_table(leak, master, sim.dictionary(13), records, kr, mapping=mapping, linked_eids=eids, policy=policy)
    dt = time.perf_counter() - t0
    names = [a.application for a in v.accused]
    print(f"{'trace a 1,000-row leak (20 marked columns) against 1,000 applications':<64}{dt:>10.2f}")
    print(f"  accused {names} of {v.candidates_scored} candidates; {v.cells_read:,} cells read (target <= 2 s)")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="more trials, all attacks, 500,000-participant sizes")
    ap.add_argument("--only", default="rows,calibration,utility,speed", help="comma-separated sections")
    args = ap.parse_args(argv)
    only = set(args.only.split(","))
    print("biowarden trace benchmark" + (" (--full)" if args.full else ""))
    if "rows" in only:
        section_rows(args.full)
    if "calibration" in only:
        section_calibration(args.full)
    if "utility" in only:
        section_utility(args.full)
    if "speed" in only:
        section_speed(args.full)


if __name__ == "__main__":
    main()
