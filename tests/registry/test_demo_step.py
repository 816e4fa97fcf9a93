from rich.console import Console

from biowarden.demo import DemoContext
from biowarden.demo.registry_step import LEAKERS, run


def test_registry_demo_step_runs_twice_and_the_ledger_verifies(home):
    ctx = DemoContext(home=home, participants=1000, seed=1, console=Console(width=120, record=True))
    run(ctx)
    first = ctx.state["registry"]["ledger"]["entries"]
    run(ctx)  # idempotent: nothing is registered twice
    state = ctx.state["registry"]
    assert state["ledger"]["ok"] and state["ledger"]["entries"] > first
    assert set(LEAKERS) <= set(state["institutions"]) and len(state["applications"]) == 5
    text = ctx.console.export_text()
    assert "DENY_SUSPENDED_APPLICATION" in text and "DENY_FIELD_OUT_OF_SCOPE" in text
