"""The release pipeline end to end on SQLite and PostgreSQL: allow, determinism, denials, trace."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from sqlalchemy import func, select

from biowarden.monitor.activity import EXPORT_KIND
from biowarden.monitor.detectors import MonitorConfig
from biowarden.registry.auth import LOCAL_OPERATOR as OP
from biowarden.release import PSEUDONYM_COLUMN, ReleaseDenied, ReleaseError, StoreCatalog, create_release
from biowarden.store.ledger_tables import LedgerEntryRow
from biowarden.store.release_tables import ReleaseRow
from biowarden.trace.pseudonym import identify
from tests.registry.helpers import START


def _release(db, keyring, cohort_file, policy, tmp_path, app="A-0017", name="out.parquet", **kw):
    return create_release(
        db,
        keyring,
        tmp_path,
        application_id=app,
        out_path=tmp_path / name,
        cohort=cohort_file,
        egress_policy=policy,
        now=START,
        monitor_config=MonitorConfig(cohort_size=3000, bulk_share=0.5),
        **kw,
    )


def _ledger_kinds(db) -> list[str]:
    with db.session() as s:
        return list(s.scalars(select(LedgerEntryRow.kind).order_by(LedgerEntryRow.idx)))


def _releases(db) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(ReleaseRow)))


def test_release_end_to_end(db, reg, keyring, cohort_file, policy, tmp_path):
    with pq.ParquetFile(cohort_file[0]) as f:
        eids = f.read(columns=["eid"]).column("eid").to_numpy()
    participants = eids[::3]
    m = _release(db, keyring, cohort_file, policy, tmp_path, participants=participants)
    out = tmp_path / "out.parquet"
    assert out.exists() and hashlib.sha256(out.read_bytes()).hexdigest() == m.file_sha256
    t = pq.read_table(out)
    assert "eid" not in t.column_names and t.column_names[0] == PSEUDONYM_COLUMN
    assert t.num_rows == participants.size == m.rows
    # the pseudonyms decode to this application's number and to exactly the requested participants
    ids = identify(t.column(PSEUDONYM_COLUMN).to_numpy(), keyring)
    apps, decoded = (ids[0], ids[1]) if isinstance(ids, tuple) else (ids.application, ids.eid)
    assert set(np.asarray(apps).tolist()) == {m.application_no}
    assert np.array_equal(np.sort(np.asarray(decoded)), np.sort(participants))
    # QIs generalised to reach the threshold, measures marked
    assert set(m.quasi_identifiers) == {"31-0.0", "34-0.0", "54-0.0"}
    assert m.risk["smallest_class"] >= 5 or m.risk["suppressed"] > 0
    assert set(m.levels) == set(m.quasi_identifiers) and m.risk["prosecutor_highest"] <= 0.2 + 1e-9
    assert all(isinstance(v, str) for v in t.column("34-0.0").to_pylist())  # generalised QIs are labels
    assert m.marks["cells_marked"] > 0 and "50-0.0" in m.marks["marked_columns"]
    # the marks moved some measure values by one unit of their precision
    master = pq.read_table(cohort_file[0], columns=["eid", "50-0.0"])
    order = np.argsort(master.column("eid").to_numpy())
    heights = dict(zip(master.column("eid").to_numpy()[order], master.column("50-0.0").to_numpy()[order], strict=True))
    released = t.column("50-0.0").to_numpy()
    orig = np.array([heights[e] for e in np.asarray(decoded)])
    diff = np.abs(released - orig)
    assert np.nanmax(diff) > 0 and np.nanmax(diff) < 1.01
    kinds = _ledger_kinds(db)
    assert "release.create" in kinds and EXPORT_KIND in kinds
    assert _releases(db) == 1
    recs = StoreCatalog(db).releases()
    assert len(recs) == 1 and np.array_equal(recs[0].participants(), np.sort(participants))


def test_same_request_same_bytes(db, reg, keyring, cohort_file, policy, tmp_path):
    with pq.ParquetFile(cohort_file[0]) as f:
        eids = f.read(columns=["eid"]).column("eid").to_numpy()[:1000]
    a = _release(db, keyring, cohort_file, policy, tmp_path, name="a.parquet", participants=eids)
    b = _release(db, keyring, cohort_file, policy, tmp_path, name="b.parquet", participants=eids)
    assert a.file_sha256 == b.file_sha256
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    assert a.release_id != b.release_id


def _denied(db, keyring, cohort_file, policy, tmp_path, reason_prefix, **kw):
    before = _releases(db)
    created = _ledger_kinds(db).count("release.create")
    with pytest.raises(ReleaseDenied) as e:
        _release(db, keyring, cohort_file, policy, tmp_path, name="denied.parquet", **kw)
    assert e.value.reason.startswith(reason_prefix), e.value.reason
    assert not (tmp_path / "denied.parquet").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".denied")]
    assert _releases(db) == before
    assert _ledger_kinds(db).count("release.create") == created  # no ledger entry claims a release
    return e.value


def test_unapproved_application_denied(db, reg, keyring, cohort_file, policy, tmp_path):
    _denied(
        db,
        keyring,
        cohort_file,
        policy,
        tmp_path,
        "DENY_APPLICATION_NOT_APPROVED",
        app="A-0030",
        participants=np.arange(1000),
    )


def test_suspended_institution_denied(db, reg, keyring, cohort_file, policy, tmp_path):
    reg.suspend(OP, "institution", "Northbridge Institute", "investigation")
    _denied(db, keyring, cohort_file, policy, tmp_path, "DENY_SUSPENDED", participants=None)


def test_field_outside_scope_denied(db, reg, keyring, cohort_file, policy, tmp_path):
    with pq.ParquetFile(cohort_file[0]) as f:
        eids = f.read(columns=["eid"]).column("eid").to_numpy()[:500]
    _denied(db, keyring, cohort_file, policy, tmp_path, "DENY", fields=["31", "30700"], participants=eids)


def test_cap_exceeded_denied_with_suggestion(db, reg, keyring, cohort_file, policy, tmp_path):
    d = _denied(db, keyring, cohort_file, policy, tmp_path, "DENY_CAP_ROWS")
    assert d.suggestion and "2,500" in d.suggestion
    assert "release.denied" in _ledger_kinds(db)


def test_leak_merged_from_two_releases_is_traced(db, reg, keyring, cohort_file, policy, tmp_path):
    from biowarden.trace import attacks
    from biowarden.trace.accuse import trace_table

    with pq.ParquetFile(cohort_file[0]) as f:
        master = f.read()
    eids = master.column("eid").to_numpy()
    fields = ["50", "21002", "4080", "4079", "30690", "30740"]
    _release(db, keyring, cohort_file, policy, tmp_path, name="n.parquet", fields=fields, participants=eids[:1400])
    _release(
        db,
        keyring,
        cohort_file,
        policy,
        tmp_path,
        app="A-0020",
        name="e.parquet",
        fields=fields,
        participants=eids[1400:2800],
    )
    a = pq.read_table(tmp_path / "n.parquet")
    b = pq.read_table(tmp_path / "e.parquet")
    leak = attacks.strip_ids(pa_concat([a.slice(0, 150), b.slice(0, 150)]), [PSEUDONYM_COLUMN])
    verdict = trace_table(leak, master, cohort_file[1], StoreCatalog(db), keyring)
    accused = {x.application for x in verdict.accused}
    assert accused == {"A-0017", "A-0020"}, verdict.to_dict()["top_candidates"]


def pa_concat(tables):
    import pyarrow as pa

    return pa.concat_tables(tables)


def test_missing_folder_is_an_error(db, reg, keyring, cohort_file, policy, tmp_path):
    from biowarden.release import ReleaseError

    with pytest.raises(ReleaseError):
        create_release(
            db,
            keyring,
            tmp_path,
            application_id="A-0017",
            out_path=Path(tmp_path) / "no" / "x.parquet",
            cohort=cohort_file,
            egress_policy=policy,
            now=START,
        )


def test_bulk_export_blocked_by_monitor_precheck(db, reg, keyring, cohort_file, policy, tmp_path):
    with pq.ParquetFile(cohort_file[0]) as f:
        eids = f.read(columns=["eid"]).column("eid").to_numpy()[:1000]
    with pytest.raises(ReleaseDenied) as e:
        create_release(
            db,
            keyring,
            tmp_path,
            application_id="A-0017",
            out_path=tmp_path / "bulk.parquet",
            cohort=cohort_file,
            egress_policy=policy,
            now=START,
            participants=eids,
        )
    assert e.value.reason == "DENY_MONITOR_BULK_EXPORT"
    assert not (tmp_path / "bulk.parquet").exists() and _releases(db) == 0


def test_risk_gate_refuses_with_smallest_change(db, reg, keyring, cohort_file, policy, tmp_path):
    from biowarden.release import RiskThreshold

    with pq.ParquetFile(cohort_file[0]) as f:
        eids = f.read(columns=["eid"]).column("eid").to_numpy()[:40]
    d = _denied(
        db,
        keyring,
        cohort_file,
        policy,
        tmp_path,
        "DENY_RISK",
        participants=eids,
        fields=["31", "34", "50"],
        threshold=RiskThreshold(k=50, max_risk=None, suppression=0.0),
    )
    assert d.suggestion and "participants" in d.suggestion


def test_cumulative_risk_with_prior_holdings(db, reg, keyring, cohort_file, policy, tmp_path):
    with pq.ParquetFile(cohort_file[0]) as f:
        eids = f.read(columns=["eid"]).column("eid").to_numpy()[:600]
    first = _release(
        db, keyring, cohort_file, policy, tmp_path, name="first.parquet", participants=eids, fields=["31", "34", "50"]
    )
    assert first.risk["prior_releases"] == 0
    # the same participants again with another QI: measured together with what A-0017 already holds
    d = _denied(
        db,
        keyring,
        cohort_file,
        policy,
        tmp_path,
        "DENY_CUMULATIVE_RISK",
        participants=eids,
        fields=["54", "34", "4080"],
    )
    assert d.suggestion.startswith("leave out 54-0.0")
    # birth year alone would be released finer than before: joined with the sex already held, still too risky
    d = _denied(
        db, keyring, cohort_file, policy, tmp_path, "DENY_CUMULATIVE_RISK", participants=eids, fields=["34", "4080"]
    )
    assert "levels already released" in d.suggestion
    # measures only: no quasi-identifier to join, released
    second = _release(
        db, keyring, cohort_file, policy, tmp_path, name="second.parquet", participants=eids, fields=["4080", "4079"]
    )
    assert second.quasi_identifiers == [] and _releases(db) == 2


@pytest.mark.spark
@pytest.mark.slow
def test_duckdb_and_spark_give_the_same_file(db, reg, keyring, cohort_file, policy, tmp_path):
    from tests.conftest import java_available

    if not java_available():
        pytest.skip("no Java for Spark local mode")
    with pq.ParquetFile(cohort_file[0]) as f:
        eids = f.read(columns=["eid"]).column("eid").to_numpy()[:800]
    a = _release(db, keyring, cohort_file, policy, tmp_path, name="duck.parquet", participants=eids)
    b = _release(db, keyring, cohort_file, policy, tmp_path, name="spark.parquet", participants=eids, engine="spark")
    assert a.file_sha256 == b.file_sha256


def test_failed_transaction_leaves_no_file_and_no_record(db, reg, keyring, cohort_file, policy, tmp_path, monkeypatch):
    from biowarden.store.ledger_store import LedgerStore

    real = LedgerStore.append

    def failing(self, session, event):
        if event.kind == "egress.export":
            raise RuntimeError("store went away")
        return real(self, session, event)

    monkeypatch.setattr(LedgerStore, "append", failing)
    with pq.ParquetFile(cohort_file[0]) as f:
        eids = f.read(columns=["eid"]).column("eid").to_numpy()[:300]
    created = _ledger_kinds(db).count("release.create")
    with pytest.raises(RuntimeError):
        _release(db, keyring, cohort_file, policy, tmp_path, name="broken.parquet", participants=eids)
    assert not (tmp_path / "broken.parquet").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".broken")]
    assert _releases(db) == 0 and _ledger_kinds(db).count("release.create") == created


def test_failure_while_streaming_leaves_nothing(db, reg, keyring, cohort_file, policy, tmp_path, monkeypatch):
    """Marking that fails part-way (after the rows were spilled and a first bucket written): no file, no
    staging or spill files, no release record or entry."""
    import biowarden.trace.embed as embed

    real = embed.mark_batch
    calls = []

    def failing(batch, *a, **kw):
        calls.append(batch.num_rows)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real(batch, *a, **kw)

    monkeypatch.setattr(embed, "mark_batch", failing)
    monkeypatch.setattr("biowarden.engine.core.Engine.batches", _small_batches())
    monkeypatch.setattr("biowarden.engine.writer.ROW_GROUP_ROWS", 100)  # buckets (and row groups) of 100 rows
    with pq.ParquetFile(cohort_file[0]) as f:
        eids = f.read(columns=["eid"]).column("eid").to_numpy()[:600]
    before = list(tmp_path.iterdir())
    with pytest.raises(RuntimeError, match="disk full"):
        _release(db, keyring, cohort_file, policy, tmp_path, name="partial.parquet", participants=eids)
    assert len(calls) >= 2
    assert list(tmp_path.iterdir()) == before
    assert _releases(db) == 0 and "release.create" not in _ledger_kinds(db)


def _small_batches():
    """Engine.batches cut into 100-row batches, so the stream has several."""
    from biowarden.engine.core import Engine

    real = Engine.batches

    def batches(self, expr, schema, chunk_rows=1 << 16):
        for b in real(self, expr, schema, chunk_rows):
            for start in range(0, b.num_rows, 100):
                yield b.slice(start, 100)

    return batches


def test_the_custodians_threshold_comes_from_risk_json_and_a_release_cannot_weaken_it(
    db, reg, keyring, cohort_file, policy, tmp_path
):
    """HOME/risk.json sets the threshold every release is held to (the REST API passes none); a caller may ask
    for a stricter one, never a weaker one, and a refused request leaves no file and no ledger entry."""
    import json

    from biowarden.release.pipeline import RiskThreshold

    with pq.ParquetFile(cohort_file[0]) as f:
        eids = f.read(columns=["eid"]).column("eid").to_numpy()[:900]
    assert RiskThreshold.load(tmp_path) == RiskThreshold()  # no file: k 5, max_risk 0.2, suppression 0.02
    (tmp_path / "risk.json").write_text(json.dumps({"k": 11, "max_risk": 0.09}))
    floor = RiskThreshold.load(tmp_path)
    assert (floor.k, floor.max_risk, floor.suppression, floor.min_class) == (11, 0.09, 0.02, 12)
    assert not RiskThreshold(k=20, max_risk=0.2).weaker_than(floor)  # classes of 20 keep the risk under 0.09
    before = _ledger_kinds(db)
    weaker = (
        RiskThreshold(k=5, max_risk=0.2),  # the default: smaller classes
        RiskThreshold(k=11, max_risk=0.2),  # a risk of 0.2 lets classes of 11 through, the floor's needs 12
        RiskThreshold(k=12, max_risk=0.09, suppression=0.1),  # more records suppressed
    )
    for threshold in weaker:
        assert threshold.weaker_than(floor)
        with pytest.raises(ReleaseError, match="weaker than the custodian's"):
            _release(
                db, keyring, cohort_file, policy, tmp_path, name="weak.parquet", participants=eids, threshold=threshold
            )
    assert not (tmp_path / "weak.parquet").exists() and _ledger_kinds(db) == before
    # no threshold given: the custodian's; a stricter one is allowed; both are recorded in the manifest
    m = _release(db, keyring, cohort_file, policy, tmp_path, name="floor.parquet", participants=eids, fields=["31"])
    assert (m.risk["k"], m.risk["max_risk"], m.risk["suppression_limit"]) == (11, 0.09, 0.02)
    strict = RiskThreshold(k=30, max_risk=0.09)
    m2 = _release(
        db,
        keyring,
        cohort_file,
        policy,
        tmp_path,
        name="strict.parquet",
        participants=eids,
        fields=["31"],
        threshold=strict,
    )
    assert (m2.risk["k"], m2.risk["max_risk"]) == (30, 0.09)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not valid JSON"),
        ("[5]", "must hold an object"),
        ('{"k": 5, "l": 3}', "unknown setting"),
        ('{"k": "five"}', "k must be a whole number"),
        ('{"k": true}', "k must be a whole number"),
        ('{"max_risk": "high"}', "max_risk must be a number"),
        ('{"suppression": null}', "suppression must be a number"),
        ('{"k": 0}', "k must be at least 1"),
        ('{"max_risk": 1.5}', "max_risk must lie in"),
        ('{"k": null, "max_risk": null}', "needs k or max_risk"),
    ],
)
def test_a_bad_risk_json_is_a_clear_error(tmp_path, text, message):
    from biowarden.release.pipeline import RiskThreshold

    (tmp_path / "risk.json").write_text(text)
    with pytest.raises(ReleaseError, match=message):
        RiskThreshold.load(tmp_path)
