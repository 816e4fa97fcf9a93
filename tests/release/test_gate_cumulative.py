"""The risk gate's cumulative check with lists of dates: operation dates an application already holds (released
as a set-valued quasi-identifier, generalised) join its cumulative risk as the scalar quasi-identifiers do."""

from __future__ import annotations

import json
from datetime import date

import pyarrow.parquet as pq
import pytest

from biowarden.monitor.detectors import MonitorConfig
from biowarden.registry.auth import LOCAL_OPERATOR as OP
from biowarden.release import ReleaseDenied, RiskThreshold, create_release
from biowarden.release.pipeline import _prior_holdings
from tests.registry.helpers import START

OPS = "41282-0"
APP = "A-0041"


def _release(db, keyring, cohort_file, policy, tmp_path, name, fields, eids, **kw):
    return create_release(
        db,
        keyring,
        tmp_path,
        application_id=APP,
        out_path=tmp_path / name,
        cohort=cohort_file,
        egress_policy=policy,
        now=START,
        monitor_config=MonitorConfig(cohort_size=3000, bulk_share=0.9),
        participants=eids,
        fields=fields,
        **kw,
    )


@pytest.fixture
def dated(reg):
    reg.add_application(
        OP, APP, "Northbridge Institute", "31,34,41282", pi="ann@northbridge.ac.uk", expires_on=date(2027, 5, 1)
    )
    reg.approve_application(OP, APP)
    return APP


def test_held_operation_dates_join_the_cumulative_risk(db, reg, dated, keyring, cohort_file, policy, tmp_path):
    with pq.ParquetFile(cohort_file[0]) as f:
        eids = f.read(columns=["eid"]).column("eid").to_numpy()[:1500]
    # operation dates alone, under a looser threshold the custodian configured: five-year bands (level 4 of 6)
    (tmp_path / "risk.json").write_text(json.dumps({"k": 3, "max_risk": None, "suppression": 0.1}))
    loose = RiskThreshold(k=3, max_risk=None, suppression=0.1)
    first = _release(db, keyring, cohort_file, policy, tmp_path, "dates.parquet", ["41282"], eids, threshold=loose)
    assert first.quasi_identifiers == [OPS] and first.levels == {OPS: 4}
    (tmp_path / "risk.json").unlink()  # the default threshold again for what follows
    # what the application holds: every participant's operation dates in those bands
    held = _prior_holdings(db, APP, "Northbridge Institute", cohort_file[0], cohort_file[1])
    assert len(held) == 1 and held[0].column_names == ["eid", OPS]
    bands = {e for v in held[0].column(OPS).to_pylist() if v for e in v}
    assert bands and all(len(b) == 9 and b[4] == "-" for b in bands)  # "2005-2009"
    # sex and birth year of the same participants pass the gate alone, but not joined with the held dates
    with pytest.raises(ReleaseDenied) as denied:
        _release(db, keyring, cohort_file, policy, tmp_path, "people.parquet", ["31", "34"], eids)
    assert denied.value.reason == "DENY_CUMULATIVE_RISK" and OPS in denied.value.detail
    assert denied.value.suggestion.startswith("leave out 31-0.0, 34-0.0")
    alone = _release(db, keyring, cohort_file, policy, tmp_path, "alone.parquet", ["31", "34"], eids, cumulative=False)
    assert alone.risk["prosecutor_highest"] <= 0.2 and alone.risk["prior_releases"] == 0
