"""biowarden's figures on the Adult data equal ARX's (shared/DESIGN.md, section 6)."""

from __future__ import annotations

import pytest

from biowarden.privacy.anonymise import Criteria, anonymise
from biowarden.privacy.risk import UK_POPULATION, measure_risk
from tests.privacy.conftest import ADULT_QIS


def test_raw_risk_matches_arx(adult):
    r = measure_risk(adult, ADULT_QIS, population=UK_POPULATION)
    assert r.records == 30162
    assert round(r.prosecutor.average, 4) == 0.6004
    assert r.prosecutor.highest == 1.0
    assert round(r.prosecutor.records_at_risk * 100, 2) == 72.86
    assert round(r.sample_uniqueness, 4) == 0.4649
    pu = r.population_uniqueness
    assert pu is not None
    assert round(pu.pitman, 6) == 0.048014
    assert round(pu.zayatz, 6) == 0.216456
    assert pu.dankar_model == "pitman"
    assert pu.dankar == pu.pitman


def test_k5_one_percent_matches_arx(adult, adult_hierarchies):
    res = anonymise(adult, ADULT_QIS, adult_hierarchies, Criteria(k=5), suppression=0.01, metric="loss")
    assert res.found
    assert res.levels == [0, 3, 0, 1, 3, 1, 1, 2]
    assert res.suppressed == 273
    assert res.classes == 147
    # the search pruned: far fewer evaluations than the 6,480 nodes
    assert res.nodes_total == 6480
    assert res.nodes_evaluated < 1000


@pytest.mark.slow
def test_pruned_search_equals_brute_force_on_adult(adult, adult_hierarchies):
    crit = Criteria(k=5)
    fast = anonymise(adult, ADULT_QIS, adult_hierarchies, crit, suppression=0.01)
    brute = anonymise(adult, ADULT_QIS, adult_hierarchies, crit, suppression=0.01, exhaustive=True)
    assert fast.levels == brute.levels
    assert fast.utility == brute.utility
