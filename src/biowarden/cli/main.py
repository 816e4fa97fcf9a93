"""Entry point of the ``biowarden`` command.

Each area keeps its commands in its own module (``cli/<area>.py``) and registers them in
``_register`` below. Heavy imports (DuckDB, PySpark, FastAPI) happen inside command functions, so that
``biowarden --help`` stays fast.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="biowarden",
    help="biowarden: the biobank data custodian's platform.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# (module, attribute, sub-command name or None to add the module's commands at top level)
_REGISTRY: list[tuple[str, str, str | None]] = [
    ("biowarden.cli.demo_cmd", "register", None),
    ("biowarden.cli.cohort_cmd", "register", "cohort"),
    ("biowarden.cli.privacy_cmd", "register", None),
    ("biowarden.cli.ledger_cmd", "register", "ledger"),
    ("biowarden.cli.registry_cmd", "register", None),
    ("biowarden.cli.release_cmd", "register", "release"),
    ("biowarden.cli.trace_cmd", "register", None),
    ("biowarden.cli.monitor_cmd", "register", "monitor"),
]


def _register() -> None:
    for module, attr, _name in _REGISTRY:
        getattr(importlib.import_module(module), attr)(app)


_register()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
