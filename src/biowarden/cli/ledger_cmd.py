"""``biowarden ledger``: verify the audit ledger, list its entries, sign a checkpoint, show the public key."""

from __future__ import annotations

import typer

from biowarden.cli.common import console, emit_json, err_console, fail

ledger_app = typer.Typer(help="The tamper-evident audit ledger.", no_args_is_help=True)


def _open_ledger():
    from biowarden.config import load_settings
    from biowarden.keys import KeyError_, KeyRing
    from biowarden.store import connect, migrate
    from biowarden.store.db import StoreError
    from biowarden.store.ledger_store import LedgerStore

    settings = load_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    try:
        migrate(settings.database_url)
    except StoreError as exc:
        fail(str(exc))
    try:
        keyring = KeyRing.from_home(settings.home)
    except KeyError_ as exc:
        fail(str(exc))
    return LedgerStore(connect(settings.database_url), keyring)


@ledger_app.command("verify")
def verify(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Recompute every entry, the Merkle tree, every checkpoint's root and signature, and consistency
    between checkpoints. Exit 0 when the ledger is intact, 1 when tampering is found."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    ledger = _open_ledger()
    total = ledger.size()
    if as_json or total < 100_000:
        report = ledger.verify()
    else:
        with Progress(
            TextColumn("verifying ledger"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err_console,
            transient=True,
            auto_refresh=False,  # no refresh thread: verification may fork worker processes
        ) as bar:
            task = bar.add_task("verify", total=total)

            def advance(n: int) -> None:
                bar.update(task, completed=n)
                bar.refresh()

            report = ledger.verify(progress=advance)
    ledger.db.dispose()
    if as_json:
        out = report.to_dict()
        out["origin"] = ledger.origin
        out["verifier_key"] = ledger.verifier_key()
        emit_json(out)
    else:
        if report.ok:
            console.print(
                f"[bold green]ledger intact[/]: {report.entries} entries, {report.checkpoints} signed "
                f"checkpoints (latest at {report.latest_checkpoint}), root "
                f"{report.root_hash.hex() if report.root_hash else '-'} ({report.seconds:.2f} s)"
            )
        else:
            console.print(f"[bold red]ledger TAMPERED[/]: {report.problem}")
            for p in report.problems[1:]:
                console.print(f"  also: {p}")
            console.print(f"checked {report.entries} entries before stopping; {report.checkpoints} checkpoints")
    raise typer.Exit(0 if report.ok else 1)


@ledger_app.command("show")
def show(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    kind: str | None = typer.Option(None, "--kind", help="Only entries of this kind (e.g. policy.decision)."),
    limit: int = typer.Option(50, "--limit", min=1, help="At most this many entries (the newest)."),
    start: int | None = typer.Option(None, "--start", min=0, help="Start at this index instead of the newest."),
) -> None:
    """List ledger entries, newest last."""
    from collections import deque

    ledger = _open_ledger()
    if start is not None:
        rows = []
        for e in ledger.entries(start=start, kind=kind):
            rows.append(e)
            if len(rows) >= limit:
                break
    else:
        size = ledger.size()
        # page backwards from the end so that a long log is not read whole for the newest few
        window = max(limit * 4, 1000)
        lo = max(0, size - window)
        rows = list(deque(ledger.entries(start=lo, kind=kind), maxlen=limit))
        while len(rows) < limit and lo > 0:
            lo = max(0, lo - window * 8)
            rows = list(deque(ledger.entries(start=lo, kind=kind), maxlen=limit))
    ledger.db.dispose()
    if as_json:
        emit_json({"entries": [e.to_dict() for e in rows], "count": len(rows)})
        return
    from rich.table import Table

    table = Table(title=f"ledger entries ({len(rows)})")
    for col in ("index", "at", "kind", "actor", "subject", "decision", "reason", "payload"):
        table.add_column(col, overflow="fold")
    for e in rows:
        payload = e.payload_json if len(e.payload_json) <= 80 else e.payload_json[:77] + "..."
        table.add_row(
            str(e.index),
            e.at.strftime("%Y-%m-%d %H:%M:%S"),
            e.kind,
            e.actor,
            e.subject,
            e.decision or "",
            e.reason or "",
            payload,
        )
    console.print(table)


@ledger_app.command("checkpoint")
def checkpoint(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Sign the current tree head now and print the checkpoint (a C2SP signed note)."""
    ledger = _open_ledger()
    cp = ledger.checkpoint()
    ledger.db.dispose()
    if as_json:
        emit_json(cp.to_dict())
    else:
        typer.echo(cp.note, nl=False)


@ledger_app.command("key")
def key() -> None:
    """Print the public note-verifier key auditors use to check checkpoints."""
    ledger = _open_ledger()
    ledger.db.dispose()
    typer.echo(ledger.verifier_key())


def register(app: typer.Typer) -> None:
    app.add_typer(ledger_app, name="ledger")
