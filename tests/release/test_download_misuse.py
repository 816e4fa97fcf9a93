"""Download-link misuse reaches the monitor: a refused use names the researcher and institution (never the
link nor its hash), a researcher probing unknown or another account's links raises ``denied_burst`` on a
replay of the ledger (sequential and batch alike), and a policy refusal of a download is counted once, as
its ``decision`` entry, while a platform fault (the kept file missing) is not counted at all."""

from __future__ import annotations

from datetime import timedelta

import pytest

from biowarden.monitor.activity import DENIED_KINDS, EXPORT_KIND, from_entries
from biowarden.monitor.detectors import Monitor, MonitorConfig
from biowarden.monitor.incidents import IncidentBook
from biowarden.monitor.replay import replay_batch, replay_checked
from biowarden.registry.auth import LOCAL_OPERATOR as OP
from biowarden.registry.errors import Denied
from biowarden.release.downloads import DOWNLOAD_KIND, DownloadError, Downloads, link_hash

ANN, EVE = "ann@northbridge.ac.uk", "eve@eastgate.ac.uk"
NORTH, EAST = "Northbridge Institute", "Eastgate University"


@pytest.fixture
def made(reg, kept_release):
    m, path = kept_release
    ann = reg.authenticate(reg.create_token(OP, username="ann", days=5).token)
    eve = reg.authenticate(reg.create_token(OP, username="eve", days=5).token)
    return m, ann, eve, path


def _downloads(reg):
    return [e for e in reg.audit.ledger.entries() if e.kind == DOWNLOAD_KIND]


def _refused(dl, who, link) -> str:
    with pytest.raises(DownloadError) as exc:
        dl.open(who, link)
    return exc.value.reason


def test_refusals_name_the_researcher_and_institution_and_no_link(reg, clock, made):
    m, ann, eve, _path = made
    dl = Downloads(reg, ttl=timedelta(minutes=5))
    link = dl.create_link(ann, m.release_id).link
    probe = "dl_" + "q" * 43
    assert _refused(dl, eve, probe) == "DENY_LINK_UNKNOWN"
    assert _refused(dl, eve, "not a link") == "DENY_LINK_UNKNOWN"
    assert _refused(dl, eve, link) == "DENY_LINK_NOT_YOURS"
    dl.open(ann, link)
    assert _refused(dl, ann, link) == "DENY_LINK_USED"
    late = dl.create_link(ann, m.release_id).link
    clock.advance(minutes=5)
    assert _refused(dl, ann, late) == "DENY_LINK_EXPIRED"
    denied = [e for e in _downloads(reg) if e.decision == "deny"]
    # as the registry names a data request's actor: the application's institution when the link names one,
    # else the researcher's own
    assert [
        (e.reason, e.payload["researcher"], e.payload["institution"], e.payload.get("application")) for e in denied
    ] == [
        ("DENY_LINK_UNKNOWN", EVE, EAST, None),
        ("DENY_LINK_UNKNOWN", EVE, EAST, None),
        ("DENY_LINK_NOT_YOURS", EVE, NORTH, "A-0017"),
        ("DENY_LINK_USED", ANN, NORTH, "A-0017"),
        ("DENY_LINK_EXPIRED", ANN, NORTH, "A-0017"),
    ]
    for e in denied:
        for secret in (link, late, probe):
            assert secret not in e.payload_json and link_hash(secret) not in e.payload_json
    acts = list(from_entries(denied))
    assert [(a.kind, a.researcher, a.institution) for a in acts] == [
        ("denied", EVE, EAST),
        ("denied", EVE, EAST),
        ("denied", EVE, NORTH),
        ("denied", ANN, NORTH),
        ("denied", ANN, NORTH),
    ]


def test_a_policy_refusal_counts_once_and_a_missing_file_not_at_all(reg, clock, made):
    m, _ann, _eve, path = made
    # the application expires (2027-05-01) while a link made the evening before is alive: the policy refuses
    # the use (ann's own denied request, not one a suspension imposes), ledgered as its decision and repeated
    # as the download's deny with the policy's reason
    clock.advance(days=364, hours=14, minutes=40)
    ann = reg.authenticate(reg.create_token(OP, username="ann", days=5).token)
    dl = Downloads(reg, ttl=timedelta(hours=1))
    link = dl.create_link(ann, m.release_id).link
    clock.advance(minutes=30)
    with pytest.raises(Denied) as exc:
        dl.open(ann, link)
    assert exc.value.reason == "DENY_APPLICATION_EXPIRED"
    clock.now -= timedelta(minutes=30)  # back before the expiry: the kept file is gone, a platform fault
    path.unlink()
    assert _refused(dl, ann, link) == "DENY_FILE_MISSING"
    denied = [e for e in _downloads(reg) if e.decision == "deny"]
    assert [e.reason for e in denied] == ["DENY_APPLICATION_EXPIRED", "DENY_FILE_MISSING"]
    assert denied[1].payload["researcher"] == ANN  # named, but not the researcher's doing
    assert [a for a in from_entries(denied) if a is not None] == []
    kinds = {EXPORT_KIND, *DENIED_KINDS}
    acts = [a for a in from_entries(e for e in reg.audit.ledger.entries() if e.kind in kinds) if a is not None]
    assert [(a.kind, a.researcher) for a in acts if a.kind == "denied"] == [("denied", ANN)]  # the decision, once


def test_probing_links_raises_denied_burst_on_replay(reg, clock, made):
    m, ann, eve, _path = made
    dl = Downloads(reg)
    link = dl.create_link(ann, m.release_id).link
    for k in range(3):
        assert _refused(dl, eve, f"dl_{k}" + "z" * 42) == "DENY_LINK_UNKNOWN"
        clock.advance(minutes=4)
    assert _refused(dl, eve, link) == "DENY_LINK_NOT_YOURS"
    kinds = {EXPORT_KIND, *DENIED_KINDS}
    config = MonitorConfig(cohort_size=3000)

    def run(replayer, entries):
        monitor, book = Monitor(config), IncidentBook(track=True)
        res = replayer(entries, monitor, book)
        return res, [(i.scope, i.target, i.alerts, i.action) for i in book.incidents]

    entries = [e for e in reg.audit.ledger.entries() if e.kind in kinds]
    res, _ = run(replay_checked, entries)
    assert [a.detector for a in res.alerts if a.detector == "denied_burst"] == []  # four: under the threshold
    assert _refused(dl, eve, link) == "DENY_LINK_NOT_YOURS"  # the fifth within the hour
    entries = [e for e in reg.audit.ledger.entries() if e.kind in kinds]
    seq, seq_incidents = run(replay_checked, entries)
    bat, bat_incidents = run(replay_batch, entries)
    burst = [(a.detector, a.scope, a.target) for a in seq.alerts if a.detector == "denied_burst"]
    assert burst == [("denied_burst", "researcher", EVE)]  # the link's owner is not blamed for the probing
    assert (bat.entries, bat.activities, bat.alerts, bat.actions) == (
        seq.entries,
        seq.activities,
        seq.alerts,
        seq.actions,
    )
    assert bat_incidents == seq_incidents and any(t == EVE for _s, t, _n, _a in seq_incidents)
