"""The incident book over the store: alerts, incidents, reviews, risk history and holds survive restarts."""

from datetime import UTC, datetime, timedelta

import pytest

from biowarden.monitor.detectors import CRITICAL, INFO, WARN, Alert
from biowarden.monitor.incidents import REINSTATE, SUSPEND, IncidentBook
from biowarden.store.monitor_store import MonitorStore

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def _warn(t, who="r@a", detector="denied_burst"):
    return Alert(t, detector, WARN, "researcher", who, "5 denied", related=(("application", "A-1"),))


def _steps():
    """(alerts, risk) batches that climb the ladder: notify, suspend, a signal, a critical elsewhere."""
    return [
        ([_warn(T0)], {"r@a": 1.0}),
        ([_warn(T0 + timedelta(minutes=60))], {"r@a": 1.9}),
        ([_warn(T0 + timedelta(hours=5))], {"r@a": 2.5}),
        ([Alert(T0 + timedelta(hours=6), "new_network", INFO, "researcher", "r@b", "new network")], {"r@b": 0.25}),
        ([Alert(T0 + timedelta(hours=7), "coordinated_disjoint_pulls", CRITICAL, "institution", "I", "disjoint")], {}),
    ]


def _state(book: IncidentBook):
    return (
        [(i.id, i.scope, i.target, i.opened_at, i.last_at, i.status, i.action, i.alerts) for i in book.incidents],
        book.suspended,
    )


def test_a_book_restored_after_every_step_behaves_as_one_that_never_stopped(db):
    store = MonitorStore()
    memory = IncidentBook()
    with db.session() as s:
        book = store.load_book(s)
    for alerts, risk in _steps():
        want = memory.add(alerts, risk)
        got = book.add(alerts, risk)
        assert got == want
        with db.session() as s:
            store.save(s, book.drain())
        with db.session() as s:  # a restart: everything comes back from the store
            book = store.load_book(s)
        assert _state(book) == _state(memory)
    # review after a restart: a false positive reinstates and no longer counts
    assert [a.kind for a in book.review(2, "false_positive", reviewer="c@x", at=T0 + timedelta(hours=8))] == [REINSTATE]
    memory.review(2, "false_positive")
    with db.session() as s:
        store.save(s, book.drain())
    with db.session() as s:
        book = store.load_book(s)
    assert ("researcher", "r@a") not in book.suspended and book.get(2).status == "false_positive"
    later = [_warn(T0 + timedelta(days=2))]
    got = book.add(later, {})
    assert got == memory.add(later, {}) and [a.kind for a in got] == [SUSPEND]  # the second real incident
    with db.session() as s:
        store.save(s, book.drain())
        assert store.holds(s) == sorted(book.suspended)
        detail = store.incident(s, 2)
        assert detail["status"] == "false_positive" and detail["reviews"][0]["reviewer"] == "c@x"
        history = store.risk_history(s, "researcher", "r@a")
        assert [p["risk"] for p in history] == [1.0, 1.9, 2.5]  # the last alert came without a risk figure
        listed = store.alerts(s, scope="researcher", target="r@a")
        assert len(listed) == 4 and listed[0]["at"] > listed[-1]["at"]
        assert listed[-1]["related"] == [["application", "A-1"]]
        assert [i["id"] for i in store.incidents(s, acted=True)] == [
            i.id for i in sorted(book.incidents, key=lambda i: (i.opened_at, i.id), reverse=True) if i.action
        ]


def test_a_stale_book_never_undoes_a_review_made_elsewhere(db):
    store = MonitorStore()
    book = IncidentBook(track=True)
    book.add([_warn(T0)], {})
    with db.session() as s:
        store.save(s, book.drain())
        reviewer = store.load_book(s)
    reviewer.review(1, "confirmed", reviewer="c@x", at=T0)
    with db.session() as s:
        store.save(s, reviewer.drain())
    book.add([_warn(T0 + timedelta(minutes=5))], {})  # the stale book still thinks incident 1 is open
    with db.session() as s:
        store.save(s, book.drain())
        assert store.incident(s, 1)["status"] == "confirmed"
        assert len(store.incident(s, 1)["alerts"]) == 2


def test_restore_refuses_gaps_in_incident_ids():
    book = IncidentBook(track=True)
    book.add([_warn(T0), _warn(T0 + timedelta(days=1))], {})
    with pytest.raises(ValueError, match="incident ids"):
        IncidentBook.restore([book.incidents[1]], set())


def test_a_false_positive_does_not_lift_a_hold_another_incident_still_justifies():
    book = IncidentBook()
    crit = lambda t: Alert(t, "export_size", CRITICAL, "researcher", "r@a", "huge")  # noqa: E731
    book.add([crit(T0)])
    book.add([crit(T0 + timedelta(days=1))])
    assert [i.action for i in book.incidents] == [SUSPEND, SUSPEND]
    assert book.review(1, "false_positive") == []  # incident 2 still holds r@a
    assert ("researcher", "r@a") in book.suspended
    assert [a.kind for a in book.review(2, "false_positive")] == [REINSTATE]
    assert ("researcher", "r@a") not in book.suspended
