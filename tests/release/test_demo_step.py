"""The release demo step on a small cohort: releases made, leakers' bulk pulls refused, leak traced."""

from __future__ import annotations

from rich.console import Console

from biowarden.demo import DemoContext
from biowarden.demo.cohort_step import run as cohort_run
from biowarden.demo.release_step import LEAKERS
from biowarden.demo.release_step import run as release_run
from tests.registry.helpers import fast_hashing

fast_hashing()


def test_release_step(home, tmp_path, monkeypatch):
    # the demo's own --home, not the environment, says where its state lives
    monkeypatch.delenv("BIOWARDEN_HOME")
    monkeypatch.chdir(tmp_path)
    ctx = DemoContext(home=home, participants=5000, seed=11, console=Console(record=True, width=160))
    cohort_run(ctx)
    release_run(ctx)
    assert len(ctx.state["leaked_copies"]) == 3
    assert len(ctx.state["releases"]) == 5  # one study sample per application; every bulk attempt refused
    text = ctx.console.export_text()
    assert text.count("refused") == 6
    accused = {a["institution"] for a in ctx.state["trace_verdict"]["accused"]}
    assert accused == set(LEAKERS)
    assert not (tmp_path / ".biowarden").exists()
