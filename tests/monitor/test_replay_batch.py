"""The batch replay (fast path for events no check can fire on) against the sequential replay: the same
alerts, actions, incidents, risk history, suspensions and detector state, event for event."""

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import numpy as np
import pytest
from pyroaring import BitMap

from biowarden.ledger.canonical import canonical_text
from biowarden.monitor import activity as activity_module
from biowarden.monitor.activity import (
    DENIED_KIND,
    DOWNLOAD_KIND,
    EXPORT_KIND,
    LINK_MISUSE_REASONS,
    Activity,
    decode_participants,
    encode_participants,
    export_fields,
    from_text,
)
from biowarden.monitor.detectors import Monitor, MonitorConfig, _robust
from biowarden.monitor.incidents import IncidentBook
from biowarden.monitor.replay import replay, replay_batch, replay_checked
from biowarden.monitor.simulate import ATTACKS, START, SimConfig, attack, ordinary_traffic

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def _entry(act: Activity, **extra) -> SimpleNamespace:
    return SimpleNamespace(
        kind=EXPORT_KIND, at=act.at, decision=None, payload_json=canonical_text({**act.payload(), **extra})
    )


def _denied(at: datetime, who: str, app: str = "A-0", inst: str = "I-0", decision: str = "deny", **extra):
    payload = {"researcher": who, "application": app, "institution": inst, **extra}
    return SimpleNamespace(kind=DENIED_KIND, at=at, decision=decision, payload_json=canonical_text(payload))


# a download's ledger reasons: link misuse (the researcher's denied request), a policy refusal (read as its
# ``decision`` entry, not again here), platform faults, a refusal a suspension imposes, and an allowed use
DOWNLOAD_REASONS = (
    *sorted(LINK_MISUSE_REASONS),
    "DENY_FIELD_OUT_OF_SCOPE",
    "DENY_APPLICATION_EXPIRED",
    "DENY_FILE_MISSING",
    "DENY_FILE_CHANGED",
    "DENY_SUSPENDED_RESEARCHER",
    "ALLOW",
)


def _download(at: datetime, who: str, app: str, inst: str, reason: str) -> SimpleNamespace:
    payload = {"researcher": who, "application": app, "institution": inst, "release_id": "R-1", "link_id": 3}
    decision = "allow" if reason == "ALLOW" else "deny"
    return SimpleNamespace(
        kind=DOWNLOAD_KIND, at=at, decision=decision, reason=reason, payload_json=canonical_text(payload)
    )


def _state(m: Monitor) -> dict:
    """Everything the detectors keep, as plain values."""
    return {
        "researchers": {
            k: (
                r.last_at,
                list(r.log_cells.values),
                list(r.log_cells.order),
                list(r.hours),
                r.n_hours,
                set(r.networks),
                set(r.clients),
                list(r.recent),
                list(r.denied),
                r.risk,
                r.risk_at,
            )
            for k, r in m.researchers.items()
        },
        "applications": {
            k: (
                list(a.coverage),
                a.exports,
                a.ewma,
                list(a.log_cells.values),
                list(a.seen),
                a.institution,
                a.one_institution,
            )
            for k, a in m.applications.items()
        },
        "institutions": {
            k: ([(at, list(bm)) for at, bm in i.recent], list(i.coverage)) for k, i in m.institutions.items()
        },
        "pulling": sorted(m._pulling),
        "peers": (list(m._peer_log_cells), m._peer_seen, m._peer_stats),
    }


def _both(entries: list, config: MonitorConfig):
    results = []
    for run in (replay_checked, replay_batch):
        monitor, book = Monitor(config), IncidentBook(track=True)
        res = run(entries, monitor, book) if run is replay_checked else run(entries, monitor, book, batch=7)
        changes = book.drain()
        incidents = [
            (i.id, i.scope, i.target, i.opened_at, i.last_at, i.alerts, i.status, i.action) for i in book.incidents
        ]
        results.append((res, changes.risk, incidents, set(book.suspended), _state(monitor)))
    return results


def _assert_same(entries: list, config: MonitorConfig) -> tuple:
    (seq, risk_s, inc_s, susp_s, state_s), (bat, risk_b, inc_b, susp_b, state_b) = _both(entries, config)
    assert (bat.entries, bat.activities) == (seq.entries, seq.activities)
    assert bat.alerts == seq.alerts
    assert bat.actions == seq.actions
    assert risk_b == risk_s
    assert inc_b == inc_s
    assert susp_b == susp_s
    assert state_b == state_s
    return seq, bat


def test_batch_replay_equals_sequential_on_the_simulator_traffic():
    cfg = SimConfig(cohort_size=50_000, applications=80, institutions=15, months=2, seed=6)
    acts, _ = ordinary_traffic(cfg)
    rng = np.random.default_rng(3)
    for k, name in enumerate(ATTACKS):
        acts += attack(name, cfg, START + timedelta(days=15 + 8 * k, hours=11), rng)
    acts.sort(key=lambda a: a.at)
    entries = [_entry(a) for a in acts]
    # denied requests, one researcher in a burst of them; a non-deny decision and an event the monitor ignores
    who = acts[100].researcher
    for j in range(7):
        entries.insert(200 + j, _denied(entries[199].at + timedelta(minutes=j), who))
    entries.insert(50, _denied(entries[49].at, who, decision="allow"))
    other = SimpleNamespace(kind="registry.institution.add", at=entries[59].at, decision=None, payload_json="{}")
    entries.insert(60, other)
    seq, bat = _assert_same(entries, MonitorConfig(cohort_size=cfg.cohort_size))
    detectors = {a.detector for a in seq.alerts}
    assert {"bulk_export", "steady_coverage_growth", "coordinated_disjoint_pulls", "expired_application"} <= detectors
    assert "denied_burst" in detectors and len(seq.actions) > 5
    assert bat.settled > 0.7 * bat.activities  # most events take the fast path


def _random_traffic(seed: int) -> tuple[list, MonitorConfig]:
    """Small worlds where every check fires now and then: night hours, new networks and clients, dormant
    accounts, bursts, expiries, bulk and growing pulls, applications moving institution, odd payload layouts."""
    rng = np.random.default_rng(seed)
    links = np.random.default_rng(seed + 1000)  # its own stream: the rest of the traffic is as before
    cohort = 4000
    config = MonitorConfig(cohort_size=cohort, burst_count=6, denied_count=3, min_history=3)
    n_res, n_apps, n_inst = 12, 6, 4
    pops = [rng.choice(cohort, int(rng.integers(20, 300)), replace=False) for _ in range(n_apps)]
    expiry = [T0 + timedelta(days=int(rng.integers(5, 60))) for _ in range(n_apps)]
    t = T0
    entries = []
    burst, r = 0, 0
    for _ in range(1500):
        u = rng.random()
        if burst:  # a researcher's run of requests a minute apart
            burst -= 1
            t += timedelta(minutes=1)
        else:
            t += timedelta(minutes=float(rng.choice([3, 600, 24 * 60 * 100]) if u < 0.01 else rng.exponential(40)))
            r = int(rng.integers(0, n_res))
            burst = 8 if rng.random() < 0.02 else 0
        at = t.replace(hour=int(rng.integers(0, 24))) if rng.random() < 0.05 else t
        app = r % n_apps
        inst = f"I-{app % n_inst}" if rng.random() > 0.03 else f"I-{int(rng.integers(0, n_inst))}"
        who = f"r{r}@x.ac.uk"
        if rng.random() < 0.12:
            extra = {"detail": "fields outside scope"} if rng.random() < 0.1 else {}
            if links.random() < 0.4:  # a download refused (or allowed): only link misuse is read
                entries.append(_download(at, who, f"A-{app}", inst, str(links.choice(DOWNLOAD_REASONS))))
            else:
                entries.append(_denied(at, who, f"A-{app}", inst, **extra))
            continue
        v = rng.random()
        if v < 0.5:
            eids = pops[app]
        elif v < 0.8:
            eids = rng.choice(pops[app], max(1, len(pops[app]) // 2), replace=False)
        elif v < 0.97:
            eids = rng.choice(cohort, int(rng.integers(5, 120)), replace=False)  # new participants
        else:
            eids = rng.choice(cohort, int(rng.integers(200, 800)), replace=False)  # bulk
        act = Activity(
            at=at,
            researcher=who,
            application=f"A-{app}",
            institution=inst,
            rows=len(eids),
            fields=int(rng.choice([5, 12, 40])),
            participants=BitMap(np.asarray(eids, dtype=np.uint32)) if rng.random() > 0.03 else None,
            network=f"10.{int(rng.choice([0, 0, 0, 0, 1, 2]))}.0.0/24",
            client=str(rng.choice(["rstudio", "rstudio", "rstudio", "jupyter"])),
            app_expires=expiry[app] if rng.random() > 0.1 else None,
        )
        extra = {"release_id": f"R-{int(rng.integers(0, 99))}"} if rng.random() < 0.1 else {}
        if rng.random() < 0.03:
            extra["note"] = 'quoted "text"'  # a layout the pattern does not read: parsed as JSON
        entries.append(_entry(act, **extra))
    return entries, config


@pytest.mark.parametrize("seed", range(6))
def test_batch_replay_equals_sequential_on_randomised_traffic(seed):
    entries, config = _random_traffic(seed)
    seq, bat = _assert_same(entries, config)
    assert len({a.detector for a in seq.alerts}) >= 6 and bat.settled > 0
    assert "request_burst" in {a.detector for a in seq.alerts}


@pytest.mark.parametrize("seed", range(6, 10))
def test_batch_replay_without_precheck_equals_replay(seed):
    """The service's scan path (observe only, as ``replay``), and learning without a book (nothing filed)."""
    entries, config = _random_traffic(seed)
    m1, b1, m2, b2 = Monitor(config), IncidentBook(track=True), Monitor(config), IncidentBook(track=True)
    seq = replay(entries, m1, b1)
    bat = replay_batch(entries, m2, b2, batch=11, precheck=False)
    assert (bat.entries, bat.activities, bat.alerts, bat.actions) == (
        seq.entries,
        seq.activities,
        seq.alerts,
        seq.actions,
    )
    assert b2.drain().risk == b1.drain().risk and b2.suspended == b1.suspended
    assert [(i.id, i.target, i.alerts, i.action) for i in b2.incidents] == [
        (i.id, i.target, i.alerts, i.action) for i in b1.incidents
    ]
    assert _state(m2) == _state(m1)
    m3 = Monitor(config)
    learned = replay_batch(entries, m3, None, precheck=False)
    assert learned.alerts == seq.alerts and learned.actions == [] and _state(m3) == _state(m1)
    assert len({a.detector for a in seq.alerts}) >= 5 and bat.settled > 0


def _fields_of(act: Activity | None) -> tuple | None:
    if act is None:
        return None
    return (
        act.at,
        act.researcher,
        act.application,
        act.institution,
        act.rows,
        act.fields,
        act.network,
        act.client,
        act.app_expires,
        act.encoded,
    )


@pytest.mark.parametrize("expires", [True, False])
@pytest.mark.parametrize("release", [True, False])
def test_export_fields_reads_the_platform_layouts_as_from_text(expires, release):
    eids = np.array([3, 17, 40_000, 70_001], dtype=np.uint32)
    act = Activity(
        at=T0,
        researcher="ann@x.ac.uk",
        application="A-7",
        institution="Institute 007",
        rows=4,
        fields=12,
        participants=BitMap(eids),
        network="10.0.0.0/24",
        client="rstudio",
        app_expires=T0 + timedelta(days=30) if expires else None,
    )
    extra = {"release_id": "R-1"} if release else {}
    text = canonical_text({**act.payload(), **extra})
    got = export_fields(T0, text)
    assert got is not None and got == _fields_of(from_text(EXPORT_KIND, T0, text))
    assert decode_participants(got[9]) == BitMap(eids)


@pytest.mark.parametrize(
    "change",
    [
        lambda p: {**p, "note": 'a "quoted" word'},  # an escape: the split would misread it
        lambda p: {**p, "extra": "member"},  # an unknown member
        lambda p: {k: v for k, v in p.items() if k != "participants"},  # no participants
        lambda p: {**p, "rows": -4},  # a negative count
        lambda p: {**p, "rows": "4"},  # a count as a string
        lambda p: {**p, "fields": 1.5},  # not an integer
        lambda p: {**p, "researcher": 7},  # not a string
    ],
)
def test_export_fields_refuses_any_other_layout(change):
    act = Activity(T0, "ann@x.ac.uk", "A-7", "I-1", rows=4, fields=12, participants=BitMap([1, 2, 3, 4]))
    text = canonical_text(change(act.payload()))
    assert export_fields(T0, text) is None


@pytest.mark.parametrize("seed", [0, 1])
def test_export_fields_on_damaged_texts_reads_only_what_from_text_reads_alike(seed):
    """Texts with characters inserted or removed (around the structure, in values, numbers with a leading
    zero, escapes): whatever ``export_fields`` accepts, ``from_text`` reads to the same fields; and a text's
    answer does not depend on which texts were read before it (the parts kept in ``_HEADS``/``_TAILS``)."""
    rng = np.random.default_rng(seed)
    act = Activity(T0, "ann@x.ac.uk", "A-7", "I 1", rows=4, fields=12, participants=BitMap([1, 2, 3, 70_000]))
    act.network, act.client, act.app_expires = "10.0.0.0/24", "rstudio", T0 + timedelta(days=9)
    payload = act.payload()
    bases = [
        canonical_text(payload),
        canonical_text({**payload, "release_id": "R-1"}),
        canonical_text({k: v for k, v in payload.items() if k != "app_expires"}),
    ]
    texts = []
    for _ in range(6000):
        text = bases[int(rng.integers(0, len(bases)))]
        for _ in range(int(rng.integers(1, 3))):
            k = int(rng.integers(0, len(text)))
            if rng.random() < 0.5:
                text = text[:k] + '":,{}0a-\\ '[int(rng.integers(0, 10))] + text[k:]
            else:
                text = text[:k] + text[k + 1 :]
        texts.append(text)

    def read(text: str):
        try:
            return export_fields(T0, text)
        except ValueError:  # a damaged expiry date, as ``from_text`` would
            return ValueError

    warm = [read(t) for t in texts]
    accepted = 0
    for text, got in zip(texts, warm, strict=True):
        activity_module._HEADS.clear()
        activity_module._TAILS.clear()
        assert read(text) == got
        if got is None or got is ValueError:
            continue
        accepted += 1
        assert got == _fields_of(from_text(EXPORT_KIND, T0, text))
    assert 500 < accepted < len(texts)


@pytest.mark.parametrize("digest", ["keyed", "sha"])
def test_a_set_the_application_exported_before_is_not_decoded_again(monkeypatch, digest):
    """Ten distinct sets re-pulled in turn: each text is decoded once, whether it is among the last few
    (compared as text) or older (by digest, either kind), and both replays agree with the activities decoded
    up front."""
    import biowarden.monitor.detectors as detectors

    monkeypatch.setattr(detectors, "_digest", detectors.digest_for(None if digest == "keyed" else "1"))
    decoded: list[str] = []

    def counting(text: str) -> BitMap:
        decoded.append(text)
        return decode_participants(text)

    monkeypatch.setattr(detectors, "decode_participants", counting)
    rng = np.random.default_rng(5)
    pop = rng.choice(10_000, 400, replace=False).astype(np.uint32)
    sets = [pop] + [rng.choice(pop, 200, replace=False) for _ in range(9)]
    order = list(range(10)) * 4
    acts = [
        Activity(
            T0 + timedelta(hours=i),
            f"r{i % 3}@x.ac.uk",
            "A-1",
            "I-1",
            rows=len(sets[k]),
            fields=10,
            participants=BitMap(sets[k]),
            network="10.0.0.0/24",
            client="rstudio",
        )
        for i, k in enumerate(order)
    ]
    entries = [_entry(a) for a in acts]
    config = MonitorConfig(cohort_size=10_000, min_history=3)
    for run in (replay_checked, replay_batch):
        decoded.clear()
        monitor = Monitor(config)
        run(entries, monitor, IncidentBook())
        assert len(decoded) == 10 and len(set(decoded)) == 10, run.__name__
        app = monitor.applications["A-1"]
        assert list(app.seen) == [detectors._digest(encode_participants(BitMap(sets[k]))) for k in order[-10:]]
    seq, _bat = _assert_same(entries, config)
    direct = Monitor(config)
    assert [a for act in acts for a in direct.observe(act)] == seq.alerts
    assert direct.applications["A-1"].seen == {}  # handed decoded participants: no texts to remember


@pytest.mark.parametrize("digest", ["keyed", "sha"])
def test_an_application_keeps_its_last_sets_by_digest_most_recent_last(monkeypatch, digest):
    """The last ``SEEN_SETS`` texts recalled or decoded are known by digest; recalling one makes it the most
    recent, remembering one beyond the limit forgets the oldest."""
    import biowarden.monitor.detectors as detectors

    monkeypatch.setattr(detectors, "_digest", detectors.digest_for(None if digest == "keyed" else "1"))
    monkeypatch.setattr(detectors, "SEEN_SETS", 3)
    keys = [detectors._digest(encode_participants(np.arange(k, 3000 + k, 7, dtype=np.uint32))) for k in range(4)]
    app = detectors._Application()
    for k in keys[:3]:
        app.remember(k)
    assert list(app.seen) == keys[:3]
    assert app.recall(keys[0]) and list(app.seen) == [keys[1], keys[2], keys[0]]
    assert app.recall(keys[0]) and list(app.seen) == [keys[1], keys[2], keys[0]]  # again at once: no change
    assert not app.recall(keys[3]) and list(app.seen) == [keys[1], keys[2], keys[0]]
    app.remember(keys[3])
    assert list(app.seen) == [keys[2], keys[0], keys[3]]  # the oldest forgotten
    app.remember(keys[2])
    assert list(app.seen) == [keys[0], keys[3], keys[2]]  # noted again: the most recent


@pytest.mark.parametrize("seed", [None, "", "random", "0", "42"])
def test_participant_texts_are_digested_by_the_keyed_hash_only_while_its_key_is_random(seed):
    """A fixed PYTHONHASHSEED makes string hashes computable by anyone who knows it (so sets could be picked
    to collide): then the digest is SHA-256, else the string's own hash under the process's random key."""
    import hashlib

    import biowarden.monitor.detectors as detectors

    text = encode_participants(np.arange(0, 9000, 3, dtype=np.uint32))
    digest = detectors.digest_for(seed)
    if seed in (None, "", "random"):
        assert digest(text) == hash(text)
    else:
        assert digest(text) == hashlib.sha256(text.encode()).digest()[:16]
    assert digest(text) == digest("".join(text)) != digest(text[:-2] + ("A=" if text[-2:] != "A=" else "B="))


@pytest.mark.parametrize("seed", range(4))
def test_window_folds_to_the_same_window_and_bounds_its_median_from_below(seed):
    """``_Window`` buffers appends: read at any point it equals a window kept by appending one by one, and
    ``median_floor`` (when it gives one) is never above the true median of the window with what is pending."""
    from collections import deque

    from biowarden.monitor.detectors import _median, _Window

    rng = np.random.default_rng(seed)
    size = int(rng.integers(5, 60))
    window, plain = _Window(size), deque(maxlen=size)
    floors = 0
    for _ in range(600):
        x = float(rng.choice([rng.normal(7, 1), rng.normal(12, 3), 5.0]))  # ties and outliers as well
        window.append(x)
        plain.append(x)
        assert len(window) == len(plain)
        floor = window.median_floor()
        if floor is not None:
            floors += 1
            assert floor <= _median(sorted(plain))
        if rng.random() < 0.05:  # a read folds the pending values in
            assert list(window.values) == list(plain) and window.order == sorted(plain)
            assert window.robust() == _robust(list(plain))
    assert list(window.values) == list(plain) and window.order == sorted(plain)
    assert floors > 100


def test_link_misuse_downloads_raise_denied_burst_alike_in_both_replays():
    """Refused downloads: link misuse counts as the researcher's denied requests (five within the hour raise
    ``denied_burst``), policy refusals, platform faults, imposed refusals and allowed uses do not."""
    config = MonitorConfig(cohort_size=1000)
    who = "probe@x.ac.uk"
    ignored = [r for r in DOWNLOAD_REASONS if r not in LINK_MISUSE_REASONS]
    entries = [_download(T0 + timedelta(minutes=k), who, "A-1", "I-1", r) for k, r in enumerate(ignored * 2)]
    seq, _bat = _assert_same(entries, config)
    assert seq.activities == 0 and seq.alerts == []
    misuse = sorted(LINK_MISUSE_REASONS)
    entries += [_download(T0 + timedelta(minutes=20 + k), who, "A-1", "I-1", misuse[k % 4]) for k in range(5)]
    seq, _bat = _assert_same(entries, config)
    assert seq.activities == 5
    assert [(a.detector, a.scope, a.target) for a in seq.alerts] == [("denied_burst", "researcher", who)]


@pytest.mark.parametrize("seed", range(3))
def test_peers_learned_in_a_run_equal_peers_learned_one_at_a_time(seed):
    """The fast path adds its exports' log cells to the platform's peers when it stops: the same list, count
    and forgotten statistics as learning them one at a time (append; past 4,000 drop the oldest 2,000; the
    statistics are forgotten at every 500th)."""
    rng = np.random.default_rng(seed)
    run = Monitor(MonitorConfig(cohort_size=1000))
    peers: list[float] = []
    seen, forgot = 0, False
    for size in rng.integers(0, 2600, 40):
        xs = rng.normal(5, 2, int(size)).tolist()
        run._peer_stats, forgot = (1.0, 1.0), False
        for x in xs:
            peers.append(x)
            if len(peers) > 4000:
                del peers[:2000]
            seen += 1
            forgot = forgot or seen % 500 == 0
        run._add_peers(xs)
        assert run._peer_log_cells == peers and run._peer_seen == seen
        assert run._peer_stats == (None if forgot else (1.0, 1.0))
    assert seen > 40_000 and 2000 < len(peers) <= 4000
