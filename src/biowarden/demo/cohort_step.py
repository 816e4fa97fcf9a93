"""Demo step: the cohort. Synthesise (or reuse) the UK-Biobank-like cohort and show how identifying it is."""

from __future__ import annotations

from rich.table import Table

from biowarden.demo import DemoContext


def run(ctx: DemoContext) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from biowarden.cohort.dictionary import read_dictionary
    from biowarden.cohort.fields import Role
    from biowarden.cohort.summary import sample_uniqueness
    from biowarden.cohort.synth import COHORT_FILE, DICTIONARY_FILE, GENERATOR_VERSION, read_manifest, synthesise

    out = ctx.home / "cohort"
    manifest = read_manifest(out)
    wanted = {"generator": GENERATOR_VERSION, "participants": ctx.participants, "seed": ctx.seed}
    reuse = (
        manifest is not None
        and all(manifest.get(k) == v for k, v in wanted.items())
        and (out / COHORT_FILE).is_file()
        and (out / DICTIONARY_FILE).is_file()
    )
    if reuse:
        ctx.console.print(
            f"Reusing the synthetic cohort in {out} ({ctx.participants:,} participants, seed {ctx.seed})."
        )
    else:
        with Progress(
            TextColumn("[bold]synthesising the cohort"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=ctx.console,
        ) as bar:
            task = bar.add_task("synth", total=ctx.participants)
            report = synthesise(
                ctx.participants, ctx.seed, out, progress=lambda done, _t: bar.update(task, completed=done)
            )
        ctx.console.print(
            f"Synthesised {report.participants:,} UK-Biobank-like participants in {report.seconds:.1f} s "
            f"({report.parquet_bytes / 1e6:.0f} MB of Parquet)."
        )
    dictionary = read_dictionary(out / DICTIONARY_FILE)
    ctx.state["cohort_dir"] = out
    ctx.state["dictionary"] = dictionary

    roles = Table(title="Fields by role", show_header=True)
    roles.add_column("role")
    roles.add_column("fields", justify="right")
    roles.add_column("columns", justify="right")
    roles.add_column("for example")
    roles.add_row("identifier", "1", "1", "eid (never released; pseudonymised per application)")
    for role in (Role.QUASI, Role.SENSITIVE, Role.MEASURE, Role.GENETIC):
        fields = dictionary.by_role(role)
        names = ", ".join(f.name for f in fields[:3]) + (", ..." if len(fields) > 3 else "")
        roles.add_row(role.value, str(len(fields)), str(len(dictionary.columns([role]))), names)
    ctx.console.print(roles)

    uniq = sample_uniqueness(out / COHORT_FILE, top=6)
    t = Table(title="Most identifying quasi-identifier combinations (raw sample uniqueness)", show_header=True)
    t.add_column("combination")
    t.add_column("unique participants", justify="right")
    t.add_column("share", justify="right")
    t.add_column("distinct combinations", justify="right")
    for u in uniq:
        t.add_row(u.label, f"{round(u.unique_share * u.participants):,}", f"{u.unique_share:.1%}", f"{u.classes:,}")
    ctx.console.print(t)
    ctx.state["cohort_uniqueness"] = uniq
    if uniq:
        worst = uniq[0]
        ctx.console.print(
            f"Released raw, [bold]{worst.unique_share:.0%}[/] of participants would be unique on {worst.label}: "
            "the kind of data listed for sale in April 2026. Every release is measured and generalised first."
        )
