"""The release's monitor pre-check knows the researcher's history: an export far larger than everything
they took before is blocked, which a monitor without history would let through."""

from __future__ import annotations

from datetime import timedelta

import pyarrow.parquet as pq
import pytest
from sqlalchemy import select

from biowarden.monitor.detectors import MonitorConfig
from biowarden.release import ReleaseDenied, create_release
from biowarden.release.pipeline import monitor_with_history
from biowarden.store.ledger_tables import LedgerEntryRow
from tests.registry.helpers import START

SMALL = ["50", "21002", "4080"]
BIG = ["50", "21002", "4080", "4079", "21001", "30690", "30740"]
CONFIG = MonitorConfig(cohort_size=3000, bulk_share=0.9)


def _release(db, keyring, cohort_file, policy, tmp_path, name, fields, participants, at):
    return create_release(
        db,
        keyring,
        tmp_path,
        application_id="A-0017",
        out_path=tmp_path / name,
        cohort=cohort_file,
        egress_policy=policy,
        now=at,
        monitor_config=CONFIG,
        fields=fields,
        participants=participants,
    )


@pytest.fixture
def eids(cohort_file):
    with pq.ParquetFile(cohort_file[0]) as f:
        return f.read(columns=["eid"]).column("eid").to_numpy()


def test_export_far_above_own_history_is_blocked(db, reg, keyring, cohort_file, policy, tmp_path, eids):
    for i in range(6):  # six small pulls of 50 participants x 3 measures
        at = START + timedelta(hours=2 * i)
        _release(db, keyring, cohort_file, policy, tmp_path, f"small{i}.parquet", SMALL, eids[50 * i : 50 * i + 50], at)
    big_at = START + timedelta(hours=13)
    with pytest.raises(ReleaseDenied) as exc:
        _release(db, keyring, cohort_file, policy, tmp_path, "big.parquet", BIG, eids[:1400], big_at)
    assert exc.value.reason == "DENY_MONITOR_EXPORT_SIZE" and "own history" in exc.value.detail
    assert not (tmp_path / "big.parquet").exists()
    with db.session() as s:
        kinds = list(s.scalars(select(LedgerEntryRow.kind).where(LedgerEntryRow.kind.like("release.%"))))
    assert kinds.count("release.create") == 6 and kinds[-1] == "release.denied"
    # the monitor's view: the researcher's six exports, nothing from after the request
    m = monitor_with_history(db, CONFIG, "ann@northbridge.ac.uk", "A-0017", big_at)
    assert len(m.researchers["ann@northbridge.ac.uk"].log_cells) == 6
    assert len(monitor_with_history(db, CONFIG, "ann@northbridge.ac.uk", "A-0017", START).researchers) == 0


def test_the_same_export_passes_without_history(db, reg, keyring, cohort_file, policy, tmp_path, eids):
    m = _release(db, keyring, cohort_file, policy, tmp_path, "big.parquet", BIG, eids[:1400], START)
    assert m.rows == 1400


def test_colleagues_history_counts_for_a_new_researcher(db, reg, keyring, cohort_file, policy, tmp_path, eids):
    """A researcher with no exports of their own is compared with their application's researchers."""
    from biowarden.registry.auth import LOCAL_OPERATOR as OP

    reg.add_researcher(OP, "bob@northbridge.ac.uk", "Northbridge Institute")
    reg.add_member(OP, "A-0017", "bob@northbridge.ac.uk")
    reg.add_account(OP, "bob", ["researcher"], researcher="bob@northbridge.ac.uk")
    for i in range(6):
        at = START + timedelta(hours=2 * i)
        _release(db, keyring, cohort_file, policy, tmp_path, f"small{i}.parquet", SMALL, eids[50 * i : 50 * i + 50], at)
    with pytest.raises(ReleaseDenied) as exc:
        create_release(
            db,
            keyring,
            tmp_path,
            application_id="A-0017",
            researcher="bob@northbridge.ac.uk",
            out_path=tmp_path / "bob.parquet",
            cohort=cohort_file,
            egress_policy=policy,
            now=START + timedelta(hours=13),
            monitor_config=CONFIG,
            fields=BIG,
            participants=eids[:1400],
        )
    assert exc.value.reason == "DENY_MONITOR_EXPORT_SIZE" and "application's researchers" in exc.value.detail


def test_platform_peers_only_when_the_researcher_and_application_are_new(db):
    """With no history of their own or their application's, a researcher is compared with the platform's
    researchers (a stricter bar); their own history, once there, replaces the platform's."""
    from biowarden.monitor.activity import Activity
    from biowarden.store.egress_tables import EgressUsage

    with db.session() as s:
        for i in range(60):
            s.add(
                EgressUsage(
                    at=START - timedelta(hours=i + 1),
                    researcher=f"peer{i % 7}@elsewhere.ac.uk",
                    application=f"A-09{i % 5:02d}",
                    institution="Elsewhere",
                    rows=40 + i,
                    cells=(40 + i) * 3,
                    bytes=1000,
                )
            )
    huge = Activity(
        at=START, researcher="new@northbridge.ac.uk", application="A-0777", institution="N", rows=3000, fields=100
    )
    m = monitor_with_history(db, CONFIG, "new@northbridge.ac.uk", "A-0777", START)
    assert len(m.researchers) == 7  # the platform's researchers were learnt
    blocked = [a for a in m.precheck(huge) if a.block]
    assert blocked and "platform's researchers" in blocked[0].detail
    # a researcher with history of their own is judged on it, and the platform is not read
    m2 = monitor_with_history(db, CONFIG, "peer1@elsewhere.ac.uk", "A-0901", START)
    assert set(m2.researchers) <= {f"peer{i}@elsewhere.ac.uk" for i in range(7)}
    assert len(m2.researchers["peer1@elsewhere.ac.uk"].log_cells) >= 5
    assert sum(len(r.log_cells) for r in m2.researchers.values()) < 60
