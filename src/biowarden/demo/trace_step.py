"""Demo step: what tracing shows a regulator, and how little it needs.

Uses ``ctx.state["trace_verdict"]`` and ``ctx.state["leaked_copies"]`` from the release step.

1. The regulator's view of the listing sample's verdict: for each accused application, every layer's
   p-value (the rigorous per-case bound), how many marked cells were read, and two of the marks a
   regulator can re-derive with the custodian's keys.
2. How little it takes: 10 rows of one leaked copy with the IDs stripped, and 5 rows with the IDs kept
   (the pseudonym layer), each traced from a file like any leak.
"""

from __future__ import annotations

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from rich.table import Table

from biowarden.cohort import load_cohort
from biowarden.config import load_settings
from biowarden.demo import DemoContext
from biowarden.keys import KeyRing
from biowarden.trace import attacks
from biowarden.trace.accuse import trace_file


def _verdict_table(verdict: dict) -> Table:
    table = Table("application", "institution", "p-value", "layers (log10 p)", "marked cells read")
    for a in verdict["accused"]:
        layers = ", ".join(f"{k} {v['log10_p']:.1f}" for k, v in a["layers"].items())
        cells = a["layers"].get("fingerprint", {}).get("cells", 0)
        table.add_row(a["application"], a["institution"], f"{a['p_value']:.1e}", layers, str(cells))
    return table


def run(ctx: DemoContext) -> None:
    console = ctx.console
    verdict = ctx.state.get("trace_verdict")
    copies = ctx.state.get("leaked_copies") or []
    if not verdict or not copies:
        console.print("[yellow]no traced leak from the release step: nothing to show[/]")
        return
    console.print(
        f"listing sample: {verdict['rows_read']} rows read, {verdict['rows_linked']} linked, "
        f"{verdict['candidates_scored']} candidate applications; an innocent is accused with probability "
        f"at most {verdict['false_accusation_bound']:g}"
    )
    console.print(_verdict_table(verdict))
    for a in verdict["accused"][:3]:
        ex = a["evidence"].get("fingerprint_cells", {}).get("examples", [])[:2]
        for e in ex:
            console.print(
                f"  {a['application']}: leak row {e['leak_row']}, column {e['leak_column']!r} (field {e['field']}) "
                f"= {e['leaked_value']:g}; the two marked versions are {e['value_for_symbol']}, "
                f"this application's symbol is {e['application_symbol']}"
            )

    settings = load_settings(ctx.home)
    keyring = KeyRing.from_home(settings.home)
    parquet, dictionary = load_cohort(ctx.home)
    master = pq.read_table(parquet)
    from biowarden.release import PSEUDONYM_COLUMN, StoreCatalog
    from biowarden.store import connect

    db = connect(settings.database_url)
    catalog = StoreCatalog(db)
    out = ctx.home / "leak"
    out.mkdir(exist_ok=True)
    copy = pq.read_table(copies[0])
    small = attacks.strip_ids(attacks.subsample(copy, 10, seed=ctx.seed), [PSEUDONYM_COLUMN])
    ids_only = attacks.subsample(copy, 5, seed=ctx.seed + 1)
    cases = [("10 rows, IDs stripped", small, "ten_rows.csv"), ("5 rows, IDs kept", ids_only, "five_ids.csv")]
    table = Table("leak", "rows linked", "accused", "p-value", "strongest layer")
    for label, t, name in cases:
        path = out / name
        pacsv.write_csv(t, path)
        v = trace_file(path, master, dictionary, catalog, keyring)
        if v.accused:
            a = v.accused[0]
            layer = min(a.layers.items(), key=lambda kv: kv[1]["log10_p"])[0]
            table.add_row(label, str(v.rows_linked), f"{a.application} ({a.institution})", f"{a.p_value:.1e}", layer)
        else:
            table.add_row(label, str(v.rows_linked), "nobody", "-", "-")
    console.print(table)
    db.dispose()


__all__ = ["run"]
