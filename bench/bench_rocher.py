"""Rocher et al. (2019) re-identification likelihood: 500,000 records, 8 QIs; calibration vs known truth.

Run: ``.venv/bin/python -m bench.bench_rocher [--participants N] [--seed S]``. Prints (1) time and memory
of the copula fit and per-record estimate on the synthetic cohort's quasi-identifiers, with the
distribution of the likelihood of correct re-identification in the UK population; (2) calibration: a
population whose truth is known (the synthetic cohort generator itself, and a population drawn from a
known copula) is sampled, the estimator is fitted on the sample, and its per-record uniqueness and
correctness are compared with each sampled record's true population count; the population uniqueness
estimators of ``privacy.population`` (Pitman, Zayatz, SNB, Dankar's choice) are shown side by side.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import pyarrow as pa
from rich.console import Console
from rich.table import Table

from biowarden.cohort.synth import iter_blocks
from biowarden.privacy.copula import (
    CopulaModel,
    calibration_table,
    combo_histogram,
    encode_columns,
    kappa_from_p,
    rectangle_probabilities,
    rocher_report,
)

UK_POPULATION = 67_000_000
QIS_8 = ["31-0.0", "34-0.0", "52-0.0", "53-0.0", "54-0.0", "21022-0.0", "189-0.0", "21000-0.0"]
QIS_4 = ["31-0.0", "34-0.0", "52-0.0", "54-0.0"]
QIS_6 = ["31-0.0", "34-0.0", "52-0.0", "54-0.0", "21000-0.0", "20116-0.0"]


def _cohort(participants: int, seed: int, columns: list[str]) -> pa.Table:
    parts = [b.select(columns) for b in iter_blocks(participants, seed, chunk_rows=50_000)]
    return pa.concat_tables(parts).combine_chunks()


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _peers(sample_codes: np.ndarray, population: int) -> dict[str, float]:
    try:
        from biowarden.privacy.population import ClassSizes, population_uniqueness
    except ImportError:  # the other estimators are optional here
        return {}
    _, counts, _ = combo_histogram(sample_codes)
    pu = population_uniqueness(ClassSizes.from_counts(counts), population)
    return {"Pitman": pu.pitman, "Zayatz": pu.zayatz, "SNB": pu.snb, f"Dankar ({pu.dankar_model})": pu.dankar}


def _calibrate(console: Console, title: str, pop_codes: np.ndarray, fraction: float, seed: int) -> None:
    n = int(len(pop_codes) * fraction)
    cal = calibration_table(pop_codes, n, seed=seed)
    rng = np.random.default_rng(seed)
    sample = pop_codes[rng.choice(len(pop_codes), size=n, replace=False)]  # same draw as calibration_table
    peers = _peers(sample, len(pop_codes))
    t = Table(title=f"{title}: population {cal.population:,}, sample {cal.sample:,} ({fraction:.0%})")
    t.add_column("estimator")
    t.add_column("population uniqueness", justify="right")
    t.add_column("mean correctness (kappa)", justify="right")
    t.add_row("truth", f"{cal.true_uniqueness:.4f}", f"{cal.true_correctness:.4f}")
    t.add_row("Gaussian copula (Rocher)", f"{cal.estimated_uniqueness:.4f}", f"{cal.estimated_correctness:.4f}")
    for k, v in peers.items():
        t.add_row(k, f"{v:.4f}", "-")
    console.print(t)
    console.print(
        f"per-record mean absolute error: uniqueness {cal.mae_uniqueness:.4f}, "
        f"correctness {cal.mae_correctness:.4f}   ({cal.seconds:.1f} s)"
    )
    d = Table(title="calibration by decile of estimated uniqueness")
    for c in ("decile", "records", "est. unique", "true unique", "est. kappa", "true 1/F"):
        d.add_column(c, justify="right")
    for r in cal.deciles:
        d.add_row(
            str(r["decile"]),
            str(r["records"]),
            f"{r['estimated_uniqueness']:.3f}",
            f"{r['true_uniqueness']:.3f}",
            f"{r['estimated_kappa']:.3f}",
            f"{r['true_correctness']:.3f}",
        )
    console.print(d)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="bench_rocher")
    ap.add_argument("--participants", type=int, default=500_000)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--points", type=int, default=64)
    args = ap.parse_args(argv)
    console = Console(width=150)

    t0 = time.perf_counter()
    cohort = _cohort(args.participants, args.seed, sorted(set(QIS_8 + QIS_6)))
    console.print(f"synthetic cohort: {cohort.num_rows:,} records in {time.perf_counter() - t0:.1f} s")
    rss0 = _rss_mb()
    rep = rocher_report(cohort.select(QIS_8), QIS_8, population=UK_POPULATION, points=args.points)
    d = rep.to_dict()
    t = Table(title=f"Rocher estimate, {rep.records:,} records, 8 QIs, UK population {UK_POPULATION:,}")
    t.add_column("measure")
    t.add_column("value", justify="right")
    t.add_row("distinct QI combinations", f"{rep.distinct_combinations:,}")
    t.add_row("fit (marginals + 28 pairwise correlations)", f"{rep.seconds_fit:.2f} s")
    t.add_row(
        f"p(x) for every combination (16 of {args.points} QMC points where they settle kappa to 0.01)",
        f"{rep.seconds_estimate:.2f} s",
    )
    # what the adaptive points cost in accuracy: all points everywhere, on a sample of the combinations
    codes, _ = encode_columns(cohort.select(QIS_8), QIS_8)
    combos, _, _ = combo_histogram(codes)
    pick = np.random.default_rng(0).choice(len(combos), size=min(50_000, len(combos)), replace=False)
    t_full = time.perf_counter()
    full = rectangle_probabilities(rep.model, combos[pick], points=args.points)
    t_full = time.perf_counter() - t_full
    dk = kappa_from_p(rep.combo_p[pick], UK_POPULATION) - kappa_from_p(full, UK_POPULATION)
    t.add_row(
        f"all {args.points} points on {len(pick):,} combinations (s; scaled to all)",
        f"{t_full:.2f} ({t_full * len(combos) / len(pick):.1f})",
    )
    t.add_row(
        "adaptive vs all points: max / mean |kappa difference|", f"{np.abs(dk).max():.4f} / {np.abs(dk).mean():.6f}"
    )
    t.add_row("peak RSS (process, before -> after)", f"{rss0:.0f} -> {_rss_mb():.0f} MB")
    t.add_row("mean likelihood of correct re-identification", f"{d['mean_kappa']:.4f}")
    t.add_row("mean population uniqueness", f"{d['mean_uniqueness']:.4f}")
    for k, v in d["quantiles"].items():
        t.add_row(f"kappa {k}", f"{v:.4f}")
    for k, v in d["share_above"].items():
        t.add_row(f"share of records with kappa > {k}", f"{v:.2%}")
    console.print(t)

    # Calibration 1: the cohort generator is the population (model misspecified: the honest case).
    for qis in (QIS_4, QIS_6):
        codes, _ = encode_columns(cohort, qis)
        _calibrate(console, f"synthetic cohort as population, QIs {','.join(qis)}", codes, 0.1, seed=1)
    # Calibration 2: a population drawn from a known Gaussian copula (the model's own family).
    codes, values = encode_columns(cohort, QIS_6)
    margs = [np.bincount(codes[:, j], minlength=len(values[j])) / len(codes) for j in range(codes.shape[1])]
    rng = np.random.default_rng(7)
    a = rng.normal(size=(len(QIS_6), len(QIS_6))) * 0.5
    c = a @ a.T + np.eye(len(QIS_6))
    s = np.sqrt(np.diag(c))
    known = CopulaModel(qis=QIS_6, marginals=margs, corr=c / np.outer(s, s))
    pop = known.sample(args.participants, seed=3)
    _calibrate(console, "known Gaussian copula population, 6 QIs", pop, 0.1, seed=2)
    console.print("[dim]timings on a shared 2-core machine; memory is the process's peak RSS[/]")


if __name__ == "__main__":
    main()
