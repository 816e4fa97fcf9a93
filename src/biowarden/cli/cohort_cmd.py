"""``biowarden cohort ...``: synthesise, import and show the platform's cohort."""

from __future__ import annotations

from pathlib import Path

import typer

from biowarden.cli.common import console, emit_json, err_console, fail

cohort_app = typer.Typer(
    help="The cohort: synthesise a UK-Biobank-like cohort, import one, show it.", no_args_is_help=True
)


def _summary(parquet: Path, dictionary) -> dict[str, object]:
    import pyarrow.parquet as pq

    from biowarden.cohort.fields import Role

    meta = pq.read_metadata(parquet)
    return {
        "parquet": str(parquet),
        "participants": meta.num_rows,
        "columns": meta.num_columns,
        "parquet_bytes": parquet.stat().st_size,
        "fields": len(dictionary),
        "fields_by_role": {r.value: len(dictionary.by_role(r)) for r in Role},
        "quasi_columns": dictionary.quasi_columns(),
    }


@cohort_app.command("synth")
def synth(
    participants: int = typer.Option(500_000, "--participants", "-n", help="Number of participants."),
    seed: int = typer.Option(2026, "--seed", help="Seed (same seed, same cohort)."),
    out: Path = typer.Option(..., "--out", help="Folder for cohort.parquet and dictionary.tsv."),
    json_out: bool = typer.Option(False, "--json", help="Machine-readable report."),
) -> None:
    """Synthesise a UK-Biobank-like cohort into OUT/cohort.parquet and OUT/dictionary.tsv."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from biowarden.cohort.synth import EID_MAX, EID_MIN, synthesise

    if participants < 1 or participants > EID_MAX - EID_MIN + 1:
        fail(f"--participants must be between 1 and {EID_MAX - EID_MIN + 1:,}, not {participants}")
    if seed < 0:
        fail(f"--seed must be non-negative, not {seed}")
    if out.exists() and not out.is_dir():
        fail(f"--out {out} exists and is not a folder")
    with Progress(
        TextColumn("[bold]synthesising"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=json_out,
    ) as bar:
        task = bar.add_task("synth", total=participants)
        try:
            report = synthesise(participants, seed, out, progress=lambda done, _t: bar.update(task, completed=done))
        except OSError as exc:
            fail(f"cannot write the cohort to {out}: {exc}")
    if json_out:
        emit_json(report.to_json())
        return
    console.print(
        f"[green]wrote[/] {report.parquet} ({report.participants:,} participants, {report.columns} columns, "
        f"{report.parquet_bytes / 1e6:.1f} MB) and {report.dictionary} in {report.seconds:.1f} s"
    )


@cohort_app.command("import")
def import_(
    directory: Path = typer.Argument(..., help="Folder with cohort.parquet and dictionary.tsv."),
    json_out: bool = typer.Option(False, "--json", help="Machine-readable report."),
) -> None:
    """Validate DIR's cohort.parquet against its dictionary.tsv and make it the platform's cohort."""
    from biowarden.cohort.store import CohortError, install_cohort
    from biowarden.config import load_settings

    settings = load_settings()
    try:
        check = install_cohort(directory, settings.home)
    except CohortError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot install the cohort into {settings.home / 'cohort'}: {exc}")
    payload = _summary(check.parquet, check.dictionary)
    payload["installed"] = str(check.parquet.parent)
    payload["unused_fields"] = list(check.unused_fields)
    if json_out:
        emit_json(payload)
        return
    console.print(
        f"[green]installed[/] {check.participants:,} participants x {check.columns} columns "
        f"as the platform's cohort in {check.parquet.parent}"
    )


@cohort_app.command("show")
def show(json_out: bool = typer.Option(False, "--json", help="Machine-readable summary.")) -> None:
    """Summarise the platform's cohort."""
    from rich.table import Table

    from biowarden.cohort.store import CohortError, load_cohort
    from biowarden.cohort.synth import read_manifest
    from biowarden.config import load_settings

    try:
        parquet, dictionary = load_cohort(load_settings().home)
    except CohortError as exc:
        fail(str(exc))
    payload = _summary(parquet, dictionary)
    payload["manifest"] = read_manifest(parquet.parent)
    if json_out:
        emit_json(payload)
        return
    t = Table(title=f"cohort: {parquet}", show_header=True)
    t.add_column("role")
    t.add_column("fields", justify="right")
    t.add_column("example columns")
    for role, count in payload["fields_by_role"].items():  # type: ignore[union-attr]
        cols = dictionary.columns([role])
        if role == "identifier":
            cols = ["eid (participant column)", *cols]
        t.add_row(role, str(count), ", ".join(cols[:5]) + (" ..." if len(cols) > 5 else ""))
    console.print(t)
    console.print(f"{payload['participants']:,} participants, {payload['columns']} columns")


def register(app: typer.Typer) -> None:
    app.add_typer(cohort_app, name="cohort")
