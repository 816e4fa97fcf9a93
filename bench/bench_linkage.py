"""Linkage attacks on the synthetic cohort: raw vs generalised release, electoral roll vs news story.

Run: ``.venv/bin/python -m bench.bench_linkage [--participants N] [--register R]``. A register of people
drawn from the cohort (and a share of non-participants from a second synthetic population) is linked to
(a) the raw release, (b) a fixed generalisation (birth year in 5-year bands, month suppressed, Townsend
in 2-point intervals, coordinates dropped, operation dates to the month), (c) the k=5 / 1% optimum (ARX's
Loss) over sex, birth year and month, centre and Townsend with the operation dates coarsened to the month
outside the search (what the demo released before set-valued quasi-identifiers), and (d) the same optimum
with the operation dates as a set-valued quasi-identifier inside the search. Attacks: an electoral roll with
dates of birth and home 1 km cell; the 2026 newspaper attack (sex, birth year and month, or only the year,
or a 5-year band, plus one operation date reported within +-2 days, matched within +-3 days).
"""

from __future__ import annotations

import argparse
import time

import pyarrow as pa
from rich.console import Console
from rich.table import Table

from biowarden.cohort.synth import cohort_dictionary, iter_blocks
from biowarden.privacy.anonymise import Criteria, anonymise
from biowarden.privacy.data import as_strings
from biowarden.privacy.hierarchy import build_hierarchy, flat_hierarchy
from biowarden.privacy.linkage import birthdate_operation_matches, link, register_matches
from biowarden.privacy.register import coarsen_release, synthetic_register
from biowarden.privacy.setvalued import date_set_hierarchy

COLUMNS = ["eid", "31-0.0", "34-0.0", "52-0.0", "54-0.0", "189-0.0", "20074-0.0", "20075-0.0", "41282-0"]
ELECTORAL_ON = ["31-0.0", "34-0.0", "52-0.0", "20074-0.0", "20075-0.0"]
SCALAR_QIS = ["31-0.0", "34-0.0", "52-0.0", "54-0.0", "189-0.0"]
OPS = "41282-0"


def _load(participants: int, seed: int) -> pa.Table:
    return pa.concat_tables([b.select(COLUMNS) for b in iter_blocks(participants, seed, 50_000)]).combine_chunks()


def _optimum(cohort: pa.Table, qis: list[str], console: Console) -> pa.Table:
    """The k=5 / 1% optimum over ``qis`` applied, suppressed participants left out, coordinates dropped."""
    import pyarrow.compute as pc

    dictionary = cohort_dictionary()
    hier = {}
    for q in qis:
        if q == OPS:
            hier[q] = date_set_hierarchy(q, cohort.column(q))
        else:
            values = as_strings(pc.unique(cohort.column(q))).to_pylist()
            spec = dictionary.for_column(q).hierarchy
            hier[q] = build_hierarchy(q, spec, values) if spec else flat_hierarchy(q, values)
    res = anonymise(cohort, qis, hier, Criteria(k=5), suppression=0.01)
    console.print(
        f"k=5 / 1% over {', '.join(qis)}: levels {res.levels}, {res.suppressed:,} suppressed, "
        f"Loss {res.utility['loss']:.3f}, {res.nodes_evaluated} of {res.nodes_total} nodes in {res.seconds:.2f} s"
    )
    out = res.apply(cohort).filter(pa.array(~res.suppressed_records))
    return coarsen_release(
        out, year_band=None, suppress_month=False, townsend_step=None, operation_dates="keep" if OPS in qis else "month"
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="bench_linkage")
    ap.add_argument("--participants", type=int, default=500_000)
    ap.add_argument("--register", type=int, default=2_000)
    ap.add_argument("--seed", type=int, default=2026)
    args = ap.parse_args(argv)
    console = Console(width=150)
    t0 = time.perf_counter()
    cohort = _load(args.participants, args.seed)
    outsiders = _load(max(1_000, args.participants // 5), args.seed + 1)
    console.print(f"cohort {cohort.num_rows:,} + outsiders {outsiders.num_rows:,} in {time.perf_counter() - t0:.1f} s")
    releases = {
        "raw": cohort,
        "generalised": coarsen_release(cohort),
        "k=5, dates to month": _optimum(cohort, SCALAR_QIS, console),
        "k=5, dates a QI": _optimum(cohort, [*SCALAR_QIS, OPS], console),
    }

    attacks = [
        (
            "electoral roll + DoB + home 1 km",
            synthetic_register(cohort, args.register, 1, "electoral", outsiders=outsiders, outsider_share=0.2),
            register_matches(ELECTORAL_ON),
        ),
        (
            "news: birth year+month + operation date",
            synthetic_register(cohort, args.register, 2, "news", "month", 2, outsiders, 0.2),
            birthdate_operation_matches(3),
        ),
        (
            "news: birth year + operation date",
            synthetic_register(cohort, args.register, 2, "news", "year", 2, outsiders, 0.2),
            birthdate_operation_matches(3),
        ),
        (
            "news: 5-year age band + operation date",
            synthetic_register(cohort, args.register, 2, "news", "band", 2, outsiders, 0.2),
            birthdate_operation_matches(3),
        ),
    ]
    t = Table(title=f"linkage attacks: register of {args.register:,} (20% non-participants)")
    for c in (
        "attack",
        "release",
        "correct",
        "wrong",
        "ambiguous",
        "no match",
        "precision",
        "recall",
        "guess E[correct]",
        "median cands",
        "s",
    ):
        t.add_column(c, justify="left" if c in ("attack", "release") else "right")
    for name, register, matches in attacks:
        for rel_name, release in releases.items():
            ms = [m for m in matches if m.release in release.column_names]
            d = link(register, release, ms).to_dict()
            t.add_row(
                name,
                rel_name,
                str(d["correct"]),
                str(d["wrong"]),
                str(d["ambiguous"]),
                str(d["no_match"]),
                f"{d['precision']:.3f}",
                f"{d['recall']:.3f}",
                f"{d['guess_expected_correct']:.1f}",
                f"{d['median_candidates']:.0f}",
                f"{d['seconds']:.2f}",
            )
    console.print(t)
    console.print("[dim]recall = correct / register people in the release; timings on a shared 2-core machine[/]")


if __name__ == "__main__":
    main()
