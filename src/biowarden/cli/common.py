"""Helpers shared by the command modules: consoles, JSON output, clear errors with exit codes."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True)


def emit_json(payload: Any) -> None:
    """Write machine-readable output with stable keys to stdout."""
    sys.stdout.write(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def fail(message: str, code: int = 2) -> NoReturn:
    """A clear error naming the problem, and a non-zero exit; never a traceback. The message is one line
    (``soft_wrap``: the terminal wraps it, Rich inserts no newline), so a path or id in it stays whole when
    the output is piped, logged or searched."""
    err_console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(code)
