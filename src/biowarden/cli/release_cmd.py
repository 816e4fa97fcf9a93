"""``biowarden release create|list``: record-level extracts through the release pipeline."""

from __future__ import annotations

from pathlib import Path

import typer

from biowarden.cli.common import console, emit_json, fail

release_app = typer.Typer(
    help="Record-level releases (risk-gated, pseudonymised, fingerprinted, ledgered).", no_args_is_help=True
)


def open_store():
    """(settings, db, keyring) of the home, migrated; a clear error if the store or key cannot be opened."""
    from biowarden.config import load_settings
    from biowarden.keys import KeyError_, KeyRing
    from biowarden.store import connect, migrate
    from biowarden.store.db import StoreError

    settings = load_settings()
    try:
        settings.home.mkdir(parents=True, exist_ok=True)
        migrate(settings.database_url)
        db = connect(settings.database_url)
        keyring = KeyRing.from_home(settings.home)
    except (StoreError, KeyError_, OSError) as exc:
        fail(str(exc))
    return settings, db, keyring


@release_app.command("create")
def create(
    application: str = typer.Argument(..., help="application id, e.g. A-0017"),
    fields: str | None = typer.Option(None, "--fields", help="F1,F2,... (field ids or columns); default: the scope"),
    out: Path = typer.Option(..., "--out", help="file to write (must not exist)"),
    fmt: str = typer.Option("parquet", "--format", help="parquet or csv"),
    researcher: str | None = typer.Option(None, "--researcher", help="researcher e-mail (default: the PI)"),
    participants: Path | None = typer.Option(
        None, "--participants", help="file of participant eids (one per line) to restrict the release to"
    ),
    k: int | None = typer.Option(
        None, "--k", help="smallest equivalence class (stricter than the custodian's risk.json only; default: it)"
    ),
    max_risk: float | None = typer.Option(
        None, "--max-risk", help="highest prosecutor risk (stricter than risk.json only; default: it)"
    ),
    engine: str = typer.Option("duckdb", "--engine", help="duckdb or spark"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Make one release for APPLICATION (exit 3 when policy, export limits or the risk gate refuse it)."""
    from biowarden.cohort import CohortError
    from biowarden.engine import EngineError
    from biowarden.release import ReleaseDenied, ReleaseError, RiskThreshold, create_release

    if fmt not in ("parquet", "csv"):
        fail(f"unknown format {fmt!r}: use parquet or csv")
    eids = None
    if participants is not None:
        try:
            eids = [int(x) for x in participants.read_text("utf-8").split() if x.strip()]
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            fail(f"cannot read participants from {participants}: {exc}")
    settings, db, keyring = open_store()
    try:
        threshold = None  # the custodian's (HOME/risk.json)
        if k is not None or max_risk is not None:
            floor = RiskThreshold.load(settings.home)
            threshold = RiskThreshold(
                k=floor.k if k is None else k,
                max_risk=floor.max_risk if max_risk is None else max_risk,
                suppression=floor.suppression,
            )
        with console.status(f"releasing {application}...") if not as_json else _null():
            m = create_release(
                db,
                keyring,
                settings.home,
                application_id=application,
                researcher=researcher,
                fields=fields.split(",") if fields else None,
                participants=eids,
                out_path=out,
                fmt=fmt,
                engine=engine,
                threshold=threshold,
            )
    except ReleaseDenied as d:
        if as_json:
            emit_json(d.to_dict())
        fail(
            f"denied: {d.reason}: {d.detail}"
            + (f"; suggestion: {d.suggestion}" if d.suggestion else "")
            + (f" (ledger entry {d.ledger_index})" if d.ledger_index is not None else ""),
            code=3,
        )
    except (ReleaseError, CohortError, EngineError, ValueError) as exc:
        fail(str(exc))
    if as_json:
        emit_json(m.to_dict())
        return
    console.print(f"[green]release {m.release_id}[/]: {m.rows:,} rows x {len(m.fields)} fields -> {out}")
    console.print(f"  sha256 {m.file_sha256}  ({m.file_bytes:,} bytes), ledger entry {m.ledger_index}")
    if m.levels:
        console.print(
            "  generalised: "
            + ", ".join(f"{q}@{lv}" for q, lv in m.levels.items())
            + f"; highest prosecutor risk {m.risk.get('prosecutor_highest', 0):.3f}"
        )


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@release_app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """Releases made so far."""
    from rich.table import Table

    from biowarden.release import StoreCatalog

    _settings, db, _keyring = open_store()
    rows = StoreCatalog(db).list()
    if as_json:
        emit_json({"releases": rows})
        return
    t = Table("release", "application", "institution", "researcher", "created", "rows", "fields", "sha256")
    for r in rows:
        t.add_row(
            r["release_id"],
            r["application"],
            r["institution"],
            r["researcher"],
            r["created_at"][:19],
            f"{r['rows']:,}",
            str(len(r["fields"])),
            r["file_sha256"][:16],
        )
    console.print(t)


def register(app: typer.Typer) -> None:
    app.add_typer(release_app, name="release")
