"""The demo: replays the April 2026 incident end to end on a synthetic cohort.

Each capability adds one step module here and one entry to ``STEPS``; a step gets the shared
``DemoContext`` and prints its part of the story. Steps run in order and share state through the context.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.rule import Rule


@dataclass
class DemoContext:
    home: Path
    participants: int
    seed: int
    console: Console
    state: dict[str, Any] = field(default_factory=dict)


# (title, module, function): each function takes the DemoContext.
STEPS: list[tuple[str, str, str]] = [
    ("The cohort", "biowarden.demo.cohort_step", "run"),
    ("The registry: institutions, researchers, applications", "biowarden.demo.registry_step", "run"),
    ("Re-identification: linkage attacks and the Rocher likelihood", "biowarden.demo.attack_step", "run"),
    ("Releases, the incident's pulls refused, the leak traced", "biowarden.demo.release_step", "run"),
    ("Tracing: the regulator's view", "biowarden.demo.trace_step", "run"),
    ("Monitoring: the incident's pulls caught and suspended", "biowarden.demo.monitor_step", "run"),
]


def run(ctx: DemoContext, steps: list[tuple[str, str, str]] | None = None) -> None:
    for title, module, func in steps or STEPS:
        ctx.console.print(Rule(f"[bold]{title}"))
        started = time.perf_counter()
        step: Callable[[DemoContext], None] = getattr(importlib.import_module(module), func)
        step(ctx)
        ctx.console.print(f"[dim]({title}: {time.perf_counter() - started:.1f} s)[/]")
