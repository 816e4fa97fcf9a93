import hashlib
import threading
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import sqlalchemy as sa
from pyroaring import BitMap

from biowarden.egress.limits import (
    CoverageLimit,
    EgressPolicy,
    EgressPolicyError,
    ExportCaps,
    ExportRequest,
    Quota,
)
from biowarden.egress.service import EgressControl
from biowarden.store.egress_tables import EgressBitmap, EgressCoverage, EgressUsage

T0 = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)
COHORT = 10_000
FIELDS = tuple(f"{f}-0.0" for f in (50, 21002, 4080, 4079, 102, 30690, 30760, 30780, 30870, 30740, 30750, 30710))


def request(eids, fields=FIELDS[:4], at=T0, researcher="r@x", application="A-1", institution="Inst", **kw):
    eids = np.asarray(eids, dtype=np.int64)
    return ExportRequest(
        researcher=researcher,
        application=application,
        institution=institution,
        participants=eids,
        fields=tuple(fields),
        bytes=len(eids) * len(fields) * 8,
        at=at,
        **kw,
    )


def loose(**kw) -> EgressPolicy:
    base = dict(
        caps=ExportCaps(max_rows=5_000, max_cells=50_000, max_bytes=10**9),
        quotas=(),
        coverage=(CoverageLimit("application", 1.0, 1.0),),
        whole_cohort_share=0.5,
        whole_cohort_fields=10,
    )
    base.update(kw)
    return EgressPolicy(**base)


def usage_rows(db) -> int:
    with db.session() as s:
        return s.scalar(sa.select(sa.func.count()).select_from(EgressUsage))


def test_caps_deny_with_the_smallest_change(db):
    ctl = EgressControl(loose(), COHORT, len(FIELDS))
    with db.session() as s:
        d = ctl.check(s, request(np.arange(6_000)))
    assert not d.allow and d.reason == "DENY_CAP_ROWS" and "5,000" in d.suggestion
    with db.session() as s:
        d = ctl.check(s, request(np.arange(4_500), fields=FIELDS[:12]))
    assert d.reason == "DENY_CAP_CELLS" and "4,166 participants" in d.suggestion
    assert usage_rows(db) == 0  # a denial records nothing


def test_whole_cohort_pull_needs_a_single_use_committee_exception(db):
    policy = loose(caps=ExportCaps(max_rows=COHORT, max_cells=10**8, max_bytes=10**10))
    ctl = EgressControl(policy, COHORT, len(FIELDS))
    everyone = np.arange(COHORT)
    with db.session() as s:
        d = ctl.check(s, request(everyone, fields=FIELDS))
    assert d.reason == "DENY_WHOLE_COHORT"
    with db.session() as s:
        exc = EgressControl.grant_exception(s, "A-1", "GWAS of the whole cohort, DAC minute 12", "dac@biobank", T0)
    with db.session() as s:
        d = ctl.check(s, request(everyone, fields=FIELDS, exception_id=exc))
    assert d.allow and d.reason == "ALLOW_EXCEPTION"
    with db.session() as s:  # used once: the same exception does not open a second pull
        d = ctl.check(s, request(everyone, fields=FIELDS, exception_id=exc, at=T0 + timedelta(hours=1)))
    assert d.reason == "DENY_WHOLE_COHORT"
    with db.session() as s:  # an exception of another application opens nothing
        d = ctl.check(s, request(everyone, fields=FIELDS, application="A-2", exception_id=exc))
    assert d.reason == "DENY_WHOLE_COHORT"


def test_rolling_window_quota(db):
    policy = loose(quotas=(Quota("researcher", 3600, max_exports=3),))
    ctl = EgressControl(policy, COHORT, len(FIELDS))
    for i in range(3):
        with db.session() as s:
            assert ctl.check(s, request([i], at=T0 + timedelta(minutes=i))).allow
    with db.session() as s:
        d = ctl.check(s, request([9], at=T0 + timedelta(minutes=30)))
    assert d.reason == "DENY_QUOTA_EXPORTS"
    with db.session() as s:  # another researcher has a quota of their own
        assert ctl.check(s, request([9], researcher="other@x", at=T0 + timedelta(minutes=30))).allow
    with db.session() as s:  # the first export has left the window
        assert ctl.check(s, request([9], at=T0 + timedelta(minutes=61))).allow


def test_salami_slices_add_up_to_the_coverage_limit(db):
    policy = loose(coverage=(CoverageLimit("institution", max_participant_share=0.25, max_cell_share=1.0),))
    ctl = EgressControl(policy, COHORT, len(FIELDS))
    slices = np.array_split(np.arange(COHORT), 20)  # 500 participants each, disjoint
    allowed = 0
    for i, part in enumerate(slices):
        with db.session() as s:  # different applications and researchers, one institution
            d = ctl.check(s, request(part, application=f"A-{i}", researcher=f"r{i}@x", at=T0 + timedelta(days=i)))
        if not d.allow:
            assert d.reason == "DENY_COVERAGE_PARTICIPANTS"
            break
        allowed += 1
    assert allowed == 5  # 5 x 500 = 25% of the cohort
    with db.session() as s:  # participants the institution already holds add no participant coverage
        d = ctl.check(s, request(slices[0], fields=FIELDS[4:6], application="A-0", researcher="r0@x"))
    assert d.allow and d.usage["coverage.institution"]["participants"] == 2_500


def test_cell_coverage_counts_each_participant_field_once(db):
    ctl = EgressControl(loose(), COHORT, len(FIELDS))
    with db.session() as s:
        ctl.check(s, request(np.arange(100), fields=FIELDS[:2]))
    with db.session() as s:
        d = ctl.check(s, request(np.arange(50, 150), fields=FIELDS[1:3]))
    # field 0: 100, field 1: 150, field 2: 100
    assert d.usage["coverage.application"]["cells"] == 350
    assert d.usage["coverage.application"]["participants"] == 150


@pytest.mark.parametrize("threads", [100])
def test_racing_requests_cannot_overspend_a_quota(db, threads):
    policy = loose(quotas=(Quota("application", 86_400, max_rows=500),))
    ctl = EgressControl(policy, COHORT, len(FIELDS))
    results: list[bool] = []
    lock = threading.Lock()
    barrier = threading.Barrier(threads)

    def worker(i: int) -> None:
        barrier.wait()
        with db.session() as s:
            d = ctl.check(s, request(np.arange(i * 10, i * 10 + 10), researcher=f"r{i}@x"))
        with lock:
            results.append(d.allow)

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len(results) == threads
    assert sum(results) == 50
    with db.session() as s:
        assert s.scalar(sa.select(sa.func.sum(EgressUsage.rows))) == 500


def test_policy_errors_name_the_setting(tmp_path):
    with pytest.raises(EgressPolicyError, match="quota scope 'planet'"):
        EgressPolicy(quotas=(Quota("planet", 10, max_rows=1),))
    with pytest.raises(EgressPolicyError, match="unknown egress policy settings: colour"):
        EgressPolicy.from_dict({"colour": "red"})
    with pytest.raises(EgressPolicyError, match="max_cell_share"):
        EgressPolicy(coverage=(CoverageLimit("application", 0.5, 1.5),))
    bad = tmp_path / "egress.json"
    bad.write_text("{nope")
    with pytest.raises(EgressPolicyError, match=r"egress\.json is not valid JSON"):
        EgressPolicy.load(bad)
    p = EgressPolicy()
    assert EgressPolicy.from_dict(p.to_dict()) == p


def test_naive_times_are_refused(db):
    ctl = EgressControl(loose(), COHORT, len(FIELDS))
    with db.session() as s, pytest.raises(ValueError, match="timezone-aware"):
        ctl.check(s, request([1], at=datetime(2026, 4, 1)))


def stored_bitmaps(db, kind: str, scope: str) -> dict[str, bytes]:
    with db.session() as s:
        return dict(
            s.execute(
                sa.select(EgressBitmap.digest, EgressBitmap.bitmap).where(
                    EgressBitmap.scope_kind == kind, EgressBitmap.scope_id == scope
                )
            ).all()
        )


def coverage_of_scope(db, kind: str, scope: str) -> dict[str, BitMap]:
    blobs = stored_bitmaps(db, kind, scope)
    with db.session() as s:
        rows = s.execute(
            sa.select(EgressCoverage.field, EgressCoverage.bitmap_digest, EgressCoverage.participants).where(
                EgressCoverage.scope_kind == kind, EgressCoverage.scope_id == scope
            )
        ).all()
    out = {}
    for f, digest, participants in rows:
        assert hashlib.sha256(blobs[digest]).hexdigest() == digest
        out[f] = BitMap.deserialize(blobs[digest])
        assert len(out[f]) == participants
    return out


def test_fields_that_share_participants_share_one_stored_bitmap(db):
    ctl = EgressControl(loose(), COHORT, len(FIELDS))
    with db.session() as s:
        assert ctl.check(s, request(np.arange(100), fields=FIELDS[:4])).allow
    for kind, scope in (("institution", "Inst"), ("application", "A-1")):
        assert len(stored_bitmaps(db, kind, scope)) == 1  # four fields, one bitmap
        assert coverage_of_scope(db, kind, scope) == {f: BitMap(range(100)) for f in FIELDS[:4]}
    # a second export on two of the fields (and a new one): those fields now differ from the others
    with db.session() as s:
        d = ctl.check(s, request(np.arange(50, 150), fields=(*FIELDS[2:4], FIELDS[6])))
    assert d.allow and d.usage["coverage.application"]["cells"] == 4 * 100 + 2 * 50 + 100
    expected = {
        **{f: BitMap(range(100)) for f in FIELDS[:2]},
        **{f: BitMap(range(150)) for f in FIELDS[2:4]},
        FIELDS[6]: BitMap(range(50, 150)),
    }
    assert coverage_of_scope(db, "application", "A-1") == expected
    assert len(stored_bitmaps(db, "application", "A-1")) == 3
    # the first two fields catch up: the bitmap no field names any longer is removed
    with db.session() as s:
        assert ctl.check(s, request(np.arange(100, 150), fields=FIELDS[:2])).allow
    expected.update({f: BitMap(range(150)) for f in FIELDS[:2]})
    assert coverage_of_scope(db, "application", "A-1") == expected
    assert len(stored_bitmaps(db, "application", "A-1")) == 2
    with db.session() as s:  # participants already held add no cells
        d = ctl.check(s, request(np.arange(150), fields=FIELDS[:4]))
    assert d.usage["coverage.application"]["cells"] == 4 * 150 + 100


def test_a_denied_export_stores_no_bitmap(db):
    policy = loose(coverage=(CoverageLimit("application", max_participant_share=0.01, max_cell_share=1.0),))
    ctl = EgressControl(policy, COHORT, len(FIELDS))
    with db.session() as s:
        d = ctl.check(s, request(np.arange(500), fields=FIELDS[:4]))
    assert not d.allow and d.reason == "DENY_COVERAGE_PARTICIPANTS"
    assert stored_bitmaps(db, "application", "A-1") == {}


def test_migration_moves_each_scopes_bitmaps_out_of_the_coverage_rows(tmp_path):
    from alembic import command

    from biowarden.egress.coverage import serialise
    from biowarden.store import connect
    from biowarden.store.db import alembic_config, migrate

    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(url), "egress_0001")
    a, b = serialise(BitMap(range(10))), serialise(BitMap(range(5, 20)))
    engine = sa.create_engine(url)
    with engine.begin() as c:
        c.execute(
            sa.text("insert into egress_coverage values (:k, :i, :f, :b, :p)"),
            [
                {"k": "application", "i": "A-1", "f": "x", "b": a, "p": 10},
                {"k": "application", "i": "A-1", "f": "y", "b": a, "p": 10},
                {"k": "application", "i": "A-1", "f": "z", "b": b, "p": 15},
                {"k": "institution", "i": "Inst", "f": "x", "b": a, "p": 10},
            ],
        )
        c.execute(
            sa.text("insert into egress_scopes values (:k, :i, :p, :c, :u)"),
            [
                {"k": "application", "i": "A-1", "p": 20, "c": 35, "u": serialise(BitMap(range(20)))},
                {"k": "institution", "i": "Inst", "p": 10, "c": 10, "u": a},
            ],
        )
    engine.dispose()
    migrate(url)
    db = connect(url)
    try:
        assert coverage_of_scope(db, "application", "A-1") == {
            "x": BitMap(range(10)),
            "y": BitMap(range(10)),
            "z": BitMap(range(5, 20)),
        }
        assert len(stored_bitmaps(db, "application", "A-1")) == 2
        assert coverage_of_scope(db, "institution", "Inst") == {"x": BitMap(range(10))}
        # the store keeps working on the moved rows
        ctl = EgressControl(loose(), COHORT, len(FIELDS))
        with db.session() as s:
            d = ctl.check(s, request(np.arange(20), fields=("x", "z"), institution="Inst"))
        assert d.allow and d.usage["coverage.application"]["cells"] == 35 + 10 + 5
    finally:
        db.dispose()
    command.downgrade(alembic_config(url), "egress_0001")
    engine = sa.create_engine(url)
    with engine.begin() as c:
        query = "select field, bitmap from egress_coverage where scope_kind = 'application'"
        back = dict(c.execute(sa.text(query)).all())
    engine.dispose()
    assert {f: BitMap.deserialize(v) for f, v in back.items()} == {
        "x": BitMap(range(20)),
        "y": BitMap(range(10)),
        "z": BitMap(range(20)),
    }
