"""``biowarden risk`` and ``biowarden anonymise``: re-identification risk and optimal anonymisation."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import typer

from biowarden.cli.common import console, emit_json, fail


def _qis(table: Any, qi: str | None, dictionary: Path | None) -> tuple[list[str], Any]:
    dic = None
    if dictionary is not None:
        from biowarden.cohort.dictionary import DictionaryError, read_dictionary

        try:
            dic = read_dictionary(dictionary)
        except (DictionaryError, OSError) as e:
            fail(f"cannot read dictionary {dictionary}: {e}")
    if qi:
        qis = [q.strip() for q in qi.split(",") if q.strip()]
    elif dic is not None:
        qis = [c for c in dic.quasi_columns(scalar_only=True) if c in table.column_names]
        if not qis:
            fail("the dictionary names no quasi-identifier column present in the data")
    else:
        fail("name the quasi-identifiers with --qi a,b,c or give a --dictionary")
    missing = [q for q in qis if q not in table.column_names]
    if missing:
        fail(f"unknown column(s): {', '.join(missing)} (the data has {', '.join(table.column_names)})")
    return qis, dic


class _Columns:
    """The column names of a file whose rows are not read."""

    def __init__(self, names: list[str]) -> None:
        self.column_names = names


def _read(data: Path) -> Any:
    from biowarden.privacy.data import DataError, read_table

    try:
        return read_table(data)
    except DataError as e:
        fail(str(e))


def _risk_tables(report: Any, title: str = "Re-identification risk") -> None:
    from rich.table import Table

    t = Table(title=title, show_header=True, header_style="bold")
    t.add_column("measure")
    t.add_column("value", justify="right")
    t.add_row("records", f"{report.records:,}")
    t.add_row("equivalence classes", f"{report.classes:,}")
    t.add_row("smallest class", f"{report.smallest_class:,}")
    t.add_row("sample uniqueness", f"{report.sample_uniqueness:.2%}")
    p = report.prosecutor
    t.add_row("prosecutor risk: highest", f"{p.highest:.4f}")
    t.add_row("prosecutor risk: average", f"{p.average:.4f}")
    t.add_row(f"records with risk > {p.threshold:g}", f"{p.records_at_risk:.2%}")
    t.add_row(
        "journalist risk: highest / average", f"{report.journalist.highest:.4f} / {report.journalist.average:.4f}"
    )
    t.add_row("marketer risk", f"{report.marketer:.4f}")
    t.add_row("k-map (estimated)", f"{report.k_map:,}")
    pu = report.population_uniqueness
    if pu is not None:
        t.add_row("population", f"{report.population:,.0f} (sampling fraction {pu.sampling_fraction:.6f})")
        for name in ("pitman", "zayatz", "snb"):
            v = getattr(pu, name)
            t.add_row(f"population uniqueness: {name}", "n/a" if v != v else f"{v:.6f}")
        t.add_row(f"population uniqueness: Dankar ({pu.dankar_model})", f"{pu.dankar:.6f}")
    console.print(t)
    console.print("[bold]Records by prosecutor risk[/]")
    width = 40
    for band, share in report.risk_histogram:
        bar = "█" * round(share * width)
        console.print(f"  {band:>14} {bar:<{width}} {share:7.2%}")


def risk(
    data: Path = typer.Argument(..., help="Parquet or delimited text (delimiter detected)"),
    dictionary: Path | None = typer.Option(None, "--dictionary", help="data dictionary TSV (QIs by role)"),
    qi: str | None = typer.Option(None, "--qi", help="quasi-identifier columns, comma-separated"),
    population: float | None = typer.Option(None, "--population", help="population size (e.g. 63705000)"),
    threshold: float = typer.Option(0.2, "--threshold", help="risk threshold for 'records at risk'"),
    sensitive: str | None = typer.Option(None, "--sensitive", help="sensitive column for l-diversity/t-closeness"),
    explain_n: int = typer.Option(0, "--explain", help="explain this many sample-unique records"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Measure the re-identification risk of DATA over its quasi-identifiers.

    A Parquet file is summarised by the engine (only the QI columns are read, grouped in DuckDB); with
    --sensitive, or for delimited text, the table is read and summarised in memory.
    """
    from biowarden.privacy.data import DataError, engine_histogram, histogram_from_table, is_parquet
    from biowarden.privacy.diversity import SensitiveData, measure_diversity
    from biowarden.privacy.explain import explain
    from biowarden.privacy.risk import measure_risk

    if not 0 < threshold <= 1:
        fail("--threshold must be in (0, 1]")
    if not data.is_file():
        fail(f"data file {data} does not exist")
    table = None
    if sensitive is None and is_parquet(data):
        import pyarrow.parquet as pq

        try:
            names = pq.read_schema(data).names
        except Exception as e:  # pyarrow raises several types for corrupt files
            fail(f"cannot read Parquet file {data}: {e}")
        qis, _ = _qis(_Columns(names), qi, dictionary)
        try:
            hist = engine_histogram(data, qis)
        except DataError as e:
            fail(str(e))
    else:
        table = _read(data)
        qis, _ = _qis(table, qi, dictionary)
        hist = histogram_from_table(table, qis)
    if population is not None and population < hist.n:
        fail(f"--population {population:,.0f} is smaller than the data ({hist.n:,} records)")
    report = measure_risk(hist, population=population, threshold=threshold)
    payload = report.to_dict()
    div = None
    if sensitive is not None and table is not None:
        if sensitive not in table.column_names:
            fail(f"unknown sensitive column {sensitive!r}")
        sens = SensitiveData.from_column(table.column(sensitive), hist.row_class, hist.num_classes, sensitive)
        import numpy as np

        div = measure_diversity(sens, np.arange(hist.num_classes), hist.num_classes)
        payload["diversity"] = div.to_dict()
    expl = explain(hist, limit=explain_n, max_size=min(len(qis), 4)) if explain_n > 0 else []
    payload["explanations"] = [e.to_dict() for e in expl]
    if as_json:
        emit_json(payload)
        return
    _risk_tables(report)
    if div is not None:
        console.print(
            f"[bold]{sensitive}[/]: distinct l = {div.distinct_l}, entropy l = {div.entropy_l:.2f}, "
            f"t (equal) = {div.t_equal:.3f}, t (ordered) = {div.t_ordered:.3f}"
        )
    for e in expl:
        sets = "; ".join("{" + ", ".join(s) + "}" for s in e.minimal_unique_sets) or "(none up to 4 QIs)"
        console.print(f"unique record {e.values}: made unique by {sets}")


def _hierarchies(table: Any, qis: list[str], folder: Path | None, dic: Any) -> dict:
    from biowarden.privacy.data import as_strings
    from biowarden.privacy.hierarchy import HierarchyError, build_hierarchy, load_hierarchies

    out = {}
    try:
        files = load_hierarchies(folder, qis, required=False) if folder is not None else {}
        for q in qis:
            if q in files:
                out[q] = files[q]
                continue
            spec = None
            if dic is not None and q in dic:
                spec = dic.for_column(q).hierarchy
            if spec is None:
                where = f" in {folder}" if folder is not None else ""
                fail(f"no hierarchy for quasi-identifier {q!r} (no file{where}, no dictionary spec)")
            import pyarrow.compute as pc

            values = pc.unique(as_strings(table.column(q))).to_pylist()
            out[q] = build_hierarchy(q, spec, values, folder)
    except HierarchyError as e:
        fail(str(e))
    return out


def _write_atomic(table: Any, out: Path) -> None:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=out.suffix, dir=out.parent)
    os.close(fd)
    try:
        if out.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            pq.write_table(table, tmp)
        else:
            import pyarrow.csv as pcsv

            delim = "\t" if out.suffix.lower() in (".tsv", ".tab") else ","
            pcsv.write_csv(table, tmp, write_options=pcsv.WriteOptions(delimiter=delim))
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def anonymise_cmd(
    data: Path = typer.Argument(..., help="Parquet or delimited text (delimiter detected)"),
    out: Path = typer.Option(..., "--out", help="where to write the anonymised data (.parquet, .csv, .tsv)"),
    dictionary: Path | None = typer.Option(None, "--dictionary", help="data dictionary TSV"),
    hierarchies: Path | None = typer.Option(None, "--hierarchies", help="folder of ARX-layout hierarchy CSVs"),
    qi: str | None = typer.Option(None, "--qi", help="quasi-identifier columns, comma-separated"),
    k: int | None = typer.Option(None, "--k", help="k-anonymity"),
    max_risk: float | None = typer.Option(None, "--max-risk", help="highest prosecutor risk"),
    max_average_risk: float | None = typer.Option(None, "--max-average-risk", help="average prosecutor risk"),
    max_uniqueness: float | None = typer.Option(None, "--max-uniqueness", help="population uniqueness (Dankar)"),
    k_map: int | None = typer.Option(None, "--k-map", help="k-map (needs --population)"),
    l_value: float | None = typer.Option(None, "--l", help="l-diversity (needs --sensitive)"),
    l_variant: str = typer.Option("distinct", "--l-variant", help="distinct | entropy | recursive"),
    c_value: float = typer.Option(2.0, "--c", help="c for recursive (c,l)-diversity"),
    t_value: float | None = typer.Option(None, "--t", help="t-closeness (needs --sensitive)"),
    t_distance: str = typer.Option("equal", "--t-distance", help="equal | ordered"),
    sensitive: str | None = typer.Option(None, "--sensitive", help="sensitive column"),
    population: float | None = typer.Option(None, "--population", help="population size"),
    suppression: float = typer.Option(0.0, "--suppression", help="record suppression limit, a fraction"),
    metric: str = typer.Option("loss", "--metric", help="loss | precision | discernibility | aecs"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Generalise DATA until it meets the privacy criteria, with the least information loss."""
    from biowarden.privacy.anonymise import METRICS, Criteria, anonymise
    from biowarden.privacy.data import DataError, histogram_from_table
    from biowarden.privacy.diversity import SensitiveData
    from biowarden.privacy.hierarchy import HierarchyError
    from biowarden.privacy.risk import measure_risk

    if metric not in METRICS:
        fail(f"unknown --metric {metric!r} ({', '.join(METRICS)})")
    if not 0 <= suppression <= 1:
        fail("--suppression must be a fraction in [0, 1]")
    try:
        criteria = Criteria(
            k=k,
            l=l_value,
            l_variant=l_variant,
            c=c_value,
            t=t_value,
            t_distance=t_distance,
            sensitive=sensitive,
            k_map=k_map,
            max_average_risk=max_average_risk,
            max_population_uniqueness=max_uniqueness,
            max_highest_risk=max_risk,
            population=population,
        )
    except ValueError as e:
        fail(str(e))
    table = _read(data)
    qis, dic = _qis(table, qi, dictionary)
    if sensitive is not None and sensitive not in table.column_names:
        fail(f"unknown sensitive column {sensitive!r}")
    hier = _hierarchies(table, qis, hierarchies, dic)
    from rich.progress import Progress

    try:
        hist = histogram_from_table(table, qis)
        sens = None
        if sensitive is not None:
            sens = SensitiveData.from_column(table.column(sensitive), hist.row_class, hist.num_classes, sensitive)
        with Progress(console=console, transient=True, disable=as_json) as bar:
            task = bar.add_task("searching the lattice", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            res = anonymise(hist, qis, hier, criteria, suppression, metric, sensitive=sens, progress=progress)
        if not res.found:
            fail("no transformation meets the criteria within the suppression limit; allow more suppression")
        released = apply_release(table, res, hist)
        before = measure_risk(hist, population=population)
        after = measure_risk(released, qis, population=population)
        _write_atomic(released, out)
    except (DataError, HierarchyError, ValueError) as e:
        fail(str(e))
    payload = res.to_dict()
    payload["out"] = str(out)
    payload["risk_before"] = before.to_dict()
    payload["risk_after"] = after.to_dict()
    if as_json:
        emit_json(payload)
        return
    from rich.table import Table

    t = Table(title=f"Optimal transformation ({criteria.describe()}, suppression <= {suppression:.1%})")
    t.add_column("quasi-identifier")
    t.add_column("level", justify="right")
    t.add_column("of", justify="right")
    for q, lv in zip(res.qis, res.levels, strict=True):
        t.add_row(q, str(lv), str(hier[q].height - 1))
    console.print(t)
    console.print(
        f"suppressed {res.suppressed:,} of {res.records:,} records; {res.classes:,} equivalence classes; "
        f"{res.nodes_evaluated:,} of {res.nodes_total:,} transformations evaluated in {res.seconds:.3f} s"
    )
    console.print("utility: " + ", ".join(f"{k_}={v:.6g}" for k_, v in res.utility.items()))
    _risk_tables(after, "Risk of the anonymised data")
    console.print(f"wrote {out}")


def apply_release(table: Any, res: Any, hist: Any) -> Any:
    from biowarden.privacy.anonymise import apply_transformation

    suppress = res.suppressed_rows[hist.row_class] if res.suppressed_rows is not None else None
    return apply_transformation(table, res.hierarchies, res.levels, qis=res.qis, suppress=suppress)


def register(app: typer.Typer) -> None:
    app.command("risk")(risk)
    app.command("anonymise")(anonymise_cmd)
