"""Demo step: the attacks. Link synthetic registers to the raw cohort and to a generalised release.

Shows what the April 2026 leak enabled: an electoral roll with dates of birth and addresses, and the
newspaper's approximate birth date plus the date of one operation, re-identify participants in the raw
data; the same attacks against a generalised release mostly end in ambiguity. Also the Rocher et al.
likelihood of correct re-identification of the raw birth-and-centre quasi-identifiers in the UK population.

First the raw risk of the cohort's quasi-identifiers (sex, birth year and month, centre, Townsend index and
the list of operation dates, one set-valued quasi-identifier) in the UK population, and the optimal k=5
anonymisation of them (at most 1% of participants suppressed, ARX's Loss; every operation date generalised
with the rest: day, month, quarter, year or the whole list hidden), with what it costs in utility and what
risk is left; that release (home coordinates, assessment date and age dropped) is what the attacks meet.

Uses ``ctx.state["cohort_dir"]`` (from the cohort step). If an earlier step left a generalised release in
``ctx.state["anonymised_release"]`` (an Arrow table with an ``eid`` column of true participant ids), it is
attacked instead; if no anonymisation is found, a fixed coarsening (``privacy.register.coarsen_release``)
stands in for it.
"""

from __future__ import annotations

from rich.table import Table

from biowarden.demo import DemoContext

_COLUMNS = ["eid", "31-0.0", "34-0.0", "52-0.0", "54-0.0", "189-0.0", "20074-0.0", "20075-0.0", "41282-0"]
_UK_POPULATION = 67_000_000


_QIS = ["31-0.0", "34-0.0", "52-0.0", "54-0.0", "189-0.0", "41282-0"]  # the last: operation dates (a list)


def _anonymise(ctx: DemoContext, cohort):
    """Raw risk of the QIs, the optimal k=5 / 1% anonymisation and its cost; returns the release or None."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from biowarden.cohort.synth import cohort_dictionary
    from biowarden.privacy.anonymise import Criteria, anonymise
    from biowarden.privacy.data import as_strings
    from biowarden.privacy.hierarchy import build_hierarchy, flat_hierarchy
    from biowarden.privacy.register import coarsen_release
    from biowarden.privacy.risk import measure_risk
    from biowarden.privacy.setvalued import date_set_hierarchy, is_date_set

    dictionary = cohort_dictionary()
    hier = {}
    for q in _QIS:
        if is_date_set(cohort.schema.field(q).type):
            hier[q] = date_set_hierarchy(q, cohort.column(q))
            continue
        values = as_strings(pc.unique(cohort.column(q))).to_pylist()
        spec = dictionary.for_column(q).hierarchy
        hier[q] = build_hierarchy(q, spec, values) if spec else flat_hierarchy(q, values)
    raw = measure_risk(cohort, _QIS, population=_UK_POPULATION)
    res = anonymise(cohort, _QIS, hier, Criteria(k=5), suppression=0.01)
    if not res.found:
        ctx.console.print("[yellow]No k=5 anonymisation within 1% suppression; a fixed coarsening is used.[/]")
        return None
    release = res.apply(cohort).filter(pa.array(~res.suppressed_records))
    after = measure_risk(release, _QIS, population=_UK_POPULATION)
    t = Table(
        title="Raw risk of sex, birth year and month, centre, Townsend index and operation dates, "
        "and the k=5 / 1% optimum"
    )
    for c in ("measure", "raw cohort", "anonymised release"):
        t.add_column(c, justify="left" if c == "measure" else "right")
    rp, ap = raw.population_uniqueness, after.population_uniqueness
    t.add_row("equivalence classes", f"{raw.classes:,}", f"{after.classes:,}")
    t.add_row("sample uniqueness", f"{raw.sample_uniqueness:.2%}", f"{after.sample_uniqueness:.2%}")
    t.add_row("prosecutor risk: highest", f"{raw.prosecutor.highest:.3f}", f"{after.prosecutor.highest:.3f}")
    t.add_row("prosecutor risk: average", f"{raw.prosecutor.average:.3f}", f"{after.prosecutor.average:.3f}")
    t.add_row(
        "records with risk > 0.2", f"{raw.prosecutor.records_at_risk:.2%}", f"{after.prosecutor.records_at_risk:.2%}"
    )
    t.add_row(
        f"population uniqueness ({rp.dankar_model} / {ap.dankar_model}, UK)", f"{rp.dankar:.4%}", f"{ap.dankar:.4%}"
    )
    levels = ", ".join(f"{hier[q].labels[lv][0] if lv else 'raw'}" for q, lv in res.transformation.items())
    t.add_row("generalisation (an example label per QI)", "-", levels)
    t.add_row("participants suppressed", "-", f"{res.suppressed:,} ({res.suppressed / res.records:.2%})")
    t.add_row("utility cost: Loss (0 = raw, 1 = all suppressed)", "0", f"{res.utility['loss']:.3f}")
    t.add_row("utility cost: precision", "0", f"{res.utility['precision']:.3f}")
    t.add_row("search", "-", f"{res.nodes_evaluated} of {res.nodes_total} nodes in {res.seconds:.2f} s")
    ctx.console.print(t)
    ctx.state["anonymisation"] = res.to_dict()
    ctx.state["raw_risk"] = raw.to_dict()
    return coarsen_release(release, year_band=None, suppress_month=False, townsend_step=None, operation_dates="keep")


def run(ctx: DemoContext) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from biowarden.cohort.synth import COHORT_FILE, iter_blocks
    from biowarden.privacy.copula import combo_histogram, fit_copula, kappa_from_p, rectangle_probabilities
    from biowarden.privacy.linkage import birthdate_operation_matches, link, register_matches
    from biowarden.privacy.register import coarsen_release, synthetic_register

    cohort_dir = ctx.state.get("cohort_dir")
    if cohort_dir is None:
        ctx.console.print("[yellow]No cohort from an earlier step; skipping the attacks.[/]")
        return
    cohort = pq.read_table(cohort_dir / COHORT_FILE, columns=_COLUMNS)
    n_out = max(1_000, cohort.num_rows // 10)
    outsiders = pa.concat_tables([b.select(_COLUMNS) for b in iter_blocks(n_out, ctx.seed + 1)])
    generalised = ctx.state.get("anonymised_release")
    label = "anonymised release"
    if generalised is None:
        generalised = _anonymise(ctx, cohort)
        label = "the k=5 / 1% optimum above (operation dates included), coordinates, assessment date and age dropped"
    if generalised is None:
        generalised = coarsen_release(cohort)
        label = "generalised release (5-year birth bands, no month, Townsend bands, operation months)"
    size = min(2_000, max(50, cohort.num_rows // 50))
    attacks = [
        (
            "Electoral roll + date of birth + address",
            synthetic_register(cohort, size, ctx.seed, "electoral", outsiders=outsiders, outsider_share=0.2),
            register_matches(["31-0.0", "34-0.0", "52-0.0", "20074-0.0", "20075-0.0"]),
        ),
        (
            "News story: birth month + one operation date",
            synthetic_register(cohort, size, ctx.seed + 1, "news", "month", 2, outsiders, 0.2),
            birthdate_operation_matches(3),
        ),
    ]
    t = Table(title=f"Linkage attacks: registers of {size:,} people (1 in 5 not in the cohort)")
    for c in ("attack", "release", "re-identified", "wrongly", "ambiguous", "precision", "recall"):
        t.add_column(c, justify="left" if c in ("attack", "release") else "right")
    results = {}
    for name, register, matches in attacks:
        for rel_name, release in (("raw", cohort), ("generalised", generalised)):
            usable = [m for m in matches if m.release in release.column_names]
            if not usable:
                continue
            d = link(register, release, usable).to_dict()
            results[(name, rel_name)] = d
            t.add_row(
                name,
                rel_name,
                f"{d['correct']:,}",
                f"{d['wrong']:,}",
                f"{d['ambiguous']:,}",
                f"{d['precision']:.1%}",
                f"{d['recall']:.1%}",
            )
    ctx.console.print(t)
    ctx.console.print(f"[dim]generalised = {label}[/]")
    ctx.state["attack_results"] = results

    # Rocher et al.: the copula is fitted on every record, then scored on a random 20,000 of them.
    qis = ["31-0.0", "34-0.0", "52-0.0", "54-0.0", "189-0.0"]
    model = fit_copula(cohort.select(qis), qis)
    rng = np.random.default_rng(ctx.seed)
    pick = np.sort(rng.choice(cohort.num_rows, size=min(20_000, cohort.num_rows), replace=False))
    codes = model.encode(cohort.select(qis).take(pa.array(pick)))
    combos, _, inverse = combo_histogram(codes)
    p = rectangle_probabilities(model, combos)[inverse]
    rocher = {}
    for who, population in (("participant known to be in the cohort", cohort.num_rows), ("UK", _UK_POPULATION)):
        kappa = kappa_from_p(p, population)
        rocher[who] = {"mean_kappa": float(kappa.mean()), "share_above_0.5": float((kappa > 0.5).mean())}
        ctx.console.print(
            f"Rocher et al. likelihood of correct re-identification from sex, birth year and month, centre and "
            f"Townsend index, population {population:,} ({who}): mean [bold]{kappa.mean():.1%}[/], "
            f"{(kappa > 0.5).mean():.1%} of participants above 50%."
        )
    ctx.state["rocher"] = rocher
