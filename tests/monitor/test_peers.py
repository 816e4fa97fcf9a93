"""Who a researcher is compared with: their own history, their application's colleagues, or the platform.

A new account in a new application has no history of its own, so its export sizes are compared with the
whole platform's researchers. The platform mixes large genomics projects with small clinical ones, so a
large first export is a signal worth recording, but not evidence of misuse: it must not climb the
ladder to a suspension on its own (the demo's first months of traffic suspended four genomics researchers
that way). A size extreme even against the platform is still critical, and the pre-check holds it; once the
researcher has a history, a jump against it warns."""

from datetime import UTC, datetime, timedelta

import numpy as np
from pyroaring import BitMap

from biowarden.monitor.activity import Activity
from biowarden.monitor.detectors import INFO, WARN, Monitor, MonitorConfig
from biowarden.monitor.incidents import SUSPEND, IncidentBook

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
COHORT = 500_000


def _export(at: datetime, who: str, app: str, first: int, rows: int, fields: int) -> Activity:
    bm = BitMap(np.arange(first, first + rows, dtype=np.uint32))
    return Activity(
        at=at, researcher=who, application=app, institution=f"inst-{app}", rows=rows, fields=fields, participants=bm
    )


def _drive(monitor: Monitor, book: IncidentBook, act: Activity) -> tuple[list, list]:
    alerts = monitor.precheck(act)
    alerts += monitor.observe(act)
    return alerts, book.add(alerts, {act.researcher: monitor.risk(act.researcher, act.at)})


def _platform(monitor: Monitor, book: IncidentBook) -> None:
    """60 small clinical studies, one researcher each, a few hundred participants x 10 fields a pull."""
    rng = np.random.default_rng(5)
    for i in range(60):
        for k in range(3):
            rows = int(rng.integers(200, 600))
            _drive(monitor, book, _export(T0 + timedelta(hours=i, minutes=k), f"c{i}@x", f"C-{i}", 1000 * i, rows, 10))


def test_a_new_large_study_is_a_signal_against_the_platform_not_a_suspension():
    monitor, book = Monitor(MonitorConfig(cohort_size=COHORT)), IncidentBook()
    _platform(monitor, book)
    start = T0 + timedelta(days=3)
    sizes = []
    actions = []
    for k in range(4):  # four pulls in a day of a larger study: 5,000 participants x 30 fields
        alerts, acted = _drive(monitor, book, _export(start + timedelta(hours=2 * k), "g@x", "G-1", 100_000, 5_000, 30))
        sizes += [a for a in alerts if a.detector == "export_size"]
        actions += acted
    assert sizes, "the platform comparison must still record the unusual size"
    assert {a.severity for a in sizes} == {INFO} and all("platform" in a.detail for a in sizes)
    assert not [a for a in actions if a.kind == SUSPEND]
    assert ("researcher", "g@x") not in book.suspended


def test_a_jump_against_the_researchers_own_history_still_warns():
    monitor, book = Monitor(MonitorConfig(cohort_size=COHORT)), IncidentBook()
    _platform(monitor, book)
    start = T0 + timedelta(days=3)
    for k in range(6):  # an ordinary history of its own
        _drive(monitor, book, _export(start + timedelta(days=k), "r@x", "R-1", 200_000, 400, 10))
    alerts, _ = _drive(monitor, book, _export(start + timedelta(days=7), "r@x", "R-1", 200_000, 20_000, 60))
    sizes = [a for a in alerts if a.detector == "export_size"]
    assert sizes and sizes[0].severity in (WARN, "critical") and "own history" in sizes[0].detail


def test_a_size_extreme_even_against_the_platform_is_held_before_it_leaves():
    monitor, book = Monitor(MonitorConfig(cohort_size=COHORT)), IncidentBook()
    _platform(monitor, book)
    huge = _export(T0 + timedelta(days=3), "n@x", "N-1", 300_000, 40_000, 100)  # 4,000,000 cells, 8% of the cohort
    held = [a for a in monitor.precheck(huge) if a.block]
    assert held and held[0].detector == "export_size" and "platform" in held[0].detail
