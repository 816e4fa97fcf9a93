"""``biowarden demo``: the incident replay."""

from __future__ import annotations

from pathlib import Path

import typer

from biowarden.cli.common import console


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        participants: int = typer.Option(500_000, "--participants", min=1000, help="Cohort size."),
        seed: int = typer.Option(2026, "--seed", help="Seed of the synthetic cohort."),
        serve: bool = typer.Option(True, "--serve/--no-serve", help="Serve the dashboard at the end."),
        port: int = typer.Option(8000, "--port", min=1, max=65535, help="Port of the dashboard."),
        home: Path | None = typer.Option(None, "--home", help="State folder (default BIOWARDEN_HOME)."),
    ) -> None:
        """Synthesise a cohort and replay the April 2026 incident end to end."""
        from biowarden.cli.common import fail
        from biowarden.config import load_settings
        from biowarden.demo import DemoContext, DemoError, run

        settings = load_settings(home)
        settings.home.mkdir(parents=True, exist_ok=True)
        ctx = DemoContext(home=settings.home, participants=participants, seed=seed, console=console)
        try:
            run(ctx)
        except DemoError as exc:
            fail(str(exc))
        if serve:
            import uvicorn

            from biowarden.web import create_app

            console.print(
                f"Serving the custodian dashboard and API on http://127.0.0.1:{port} "
                f"(OpenAPI at /docs; home {settings.home}). Ctrl-C stops it."
            )
            uvicorn.run(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
