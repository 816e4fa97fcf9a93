"""A small cohort on disk and a registry with approved applications, for the release pipeline tests."""

from __future__ import annotations

from datetime import date

import pyarrow.parquet as pq
import pytest

from biowarden.cohort.synth import synthesise_table
from biowarden.egress.limits import EgressPolicy, ExportCaps
from biowarden.keys import KeyRing
from biowarden.registry.auth import LOCAL_OPERATOR as OP
from tests.registry.helpers import KEY, Clock, fast_hashing, make_registry

fast_hashing()

FIELDS_A = "31,34,54,50,21002,21001,4080,4079,30690,30740"


@pytest.fixture(scope="session")
def cohort_file(tmp_path_factory):
    table, dictionary = synthesise_table(3000, seed=7)
    path = tmp_path_factory.mktemp("cohort") / "cohort.parquet"
    pq.write_table(table, path)
    return path, dictionary


@pytest.fixture
def keyring():
    return KeyRing(KEY)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def reg(db, clock):
    r = make_registry(db, clock)
    for inst in ("Northbridge Institute", "Eastgate University", "Southfield College"):
        r.add_institution(OP, inst)
    people = [
        ("ann@northbridge.ac.uk", "Northbridge Institute", "A-0017"),
        ("eve@eastgate.ac.uk", "Eastgate University", "A-0020"),
        ("sam@southfield.ac.uk", "Southfield College", "A-0030"),
    ]
    for email, inst, app in people:
        r.add_researcher(OP, email, inst)
        r.add_application(OP, app, inst, FIELDS_A, pi=email, expires_on=date(2027, 5, 1))
        r.add_account(OP, email.split("@")[0], ["researcher"], researcher=email)
    r.approve_application(OP, "A-0017")
    r.approve_application(OP, "A-0020")
    return r


@pytest.fixture
def policy():
    return EgressPolicy(caps=ExportCaps(max_rows=2_500))


@pytest.fixture
def kept_release(db, reg, keyring, cohort_file, policy, tmp_path):
    """One release of A-0017 (a third of the cohort) kept on the platform, and the kept file's path: what
    the download tests hand out links to."""
    from biowarden.monitor.detectors import MonitorConfig
    from biowarden.release import create_release
    from tests.registry.helpers import START

    with pq.ParquetFile(cohort_file[0]) as f:
        eids = f.read(columns=["eid"]).column("eid").to_numpy()
    out = tmp_path / "kept.parquet"
    m = create_release(
        db,
        keyring,
        tmp_path,
        application_id="A-0017",
        out_path=out,
        cohort=cohort_file,
        egress_policy=policy,
        now=START,
        participants=eids[::3],
        monitor_config=MonitorConfig(cohort_size=3000, bulk_share=0.9),
    )
    return m, out
