"""``biowarden trace FILE``: name the applications whose releases a leaked file came from."""

from __future__ import annotations

from pathlib import Path

import typer

from biowarden.cli.common import console, emit_json, fail


def trace(
    file: Path = typer.Argument(..., help="the leaked file (CSV/TSV, Parquet, XLSX, JSON, notebook)"),
    epsilon: float = typer.Option(1e-6, "--epsilon", help="false-accusation bound per trace"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Trace a leaked file back to releases (exit 0 whether or not anyone is accused)."""
    import pyarrow.parquet as pq

    from biowarden.cli.release_cmd import open_store
    from biowarden.cohort import CohortError, load_cohort
    from biowarden.release import StoreCatalog
    from biowarden.trace.accuse import TraceError, trace_table
    from biowarden.trace.canary import SEX_COLUMN
    from biowarden.trace.embed import MarkingPolicy
    from biowarden.trace.protect import TraceOptions, TraceOptionsError, canary_pool_for_tracing
    from biowarden.trace.read import LeakReadError, read_leak

    if not file.is_file():
        fail(f"cannot read {file}: no such file")
    try:
        leak = read_leak(file)
    except (LeakReadError, OSError, ValueError) as exc:
        fail(f"cannot read {file}: {exc}")
    settings, db, keyring = open_store()
    try:
        parquet, dictionary = load_cohort(settings.home)
        options = TraceOptions.load(settings.home)
        catalog = StoreCatalog(db)
        released = sorted({c for r in catalog.releases() for c in r.fields})
        names = pq.read_schema(parquet).names
        # only columns that ever left can carry marks or link rows: read those (less memory at 500k); sex
        # too when canaries are on (their donors are drawn by sex, as in the releases)
        wanted = [c for c in released if c in names]
        if options.canaries and SEX_COLUMN in names and SEX_COLUMN not in wanted:
            wanted.append(SEX_COLUMN)
        master = pq.read_table(parquet, columns=["eid", *wanted])
    except (CohortError, OSError, TraceOptionsError) as exc:
        fail(str(exc))
    try:
        with console.status("tracing...") if not as_json else _Null():
            # read marks as the releases made them: the custodian's marked share and whether dates move
            policy = MarkingPolicy.from_dictionary(
                dictionary,
                master.schema.names,
                data=master,
                fraction=float(options.fraction),
                allow_dates=options.mark_dates,
            )
            verdict = trace_table(
                leak,
                master,
                dictionary,
                catalog,
                keyring,
                epsilon,
                policy=policy,
                canary_pool=canary_pool_for_tracing(options),
            )
    except (TraceError, ValueError) as exc:
        fail(str(exc))
    if as_json:
        emit_json(verdict.to_dict())
        return
    console.print(
        f"rows read {verdict.rows_read:,}, linked {verdict.rows_linked:,}, "
        f"candidates scored {verdict.candidates_scored}"
    )
    if not verdict.accused:
        console.print(
            f"nobody accused (no candidate beats the false-accusation bound {verdict.false_accusation_bound:g})"
        )
    for a in verdict.accused:
        console.print(
            f"[bold red]accused[/] {a.application} ({a.institution}): p = {a.p_value:.3g}, layers {', '.join(a.layers)}"
        )


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def register(app: typer.Typer) -> None:
    app.command("trace")(trace)
