from __future__ import annotations

import numpy as np
import pytest

from biowarden.keys import KeyRing
from biowarden.trace import pseudonym


def test_round_trip_names_application_and_eid(keyring):
    eids = np.arange(1_000_000, 1_005_000, dtype=np.int64)
    for app in (0, 1, 17, pseudonym.MAX_APPLICATION):
        ps = pseudonym.pseudonymise(eids, app, keyring)
        assert ps.min() >= 0 and ps.max() < 10**15  # 15 digits: survives Excel and JSON
        assert np.unique(ps).size == eids.size
        a, e, ok = pseudonym.identify(ps, keyring, [app])
        assert ok.all() and (a == app).all() and (e == eids).all()


def test_namespaces_are_disjoint_and_look_unrelated(keyring):
    eids = np.arange(1_000_000, 1_002_000, dtype=np.int64)
    p1 = pseudonym.pseudonymise(eids, 1, keyring)
    p2 = pseudonym.pseudonymise(eids, 2, keyring)
    assert np.intersect1d(p1, p2).size == 0
    assert abs(np.corrcoef(p1.astype(float), p2.astype(float))[0, 1]) < 0.1


def test_forged_and_altered_ids_are_rejected(keyring):
    rng = np.random.default_rng(0)
    forged = rng.integers(0, 1 << pseudonym.DOMAIN_BITS, 400_000)
    _a, _e, ok = pseudonym.identify(forged, keyring)
    rate = ok.mean()
    assert rate < 3 * pseudonym.FORGERY_PROBABILITY  # ~2^-12 per made-up value
    real = pseudonym.pseudonymise(np.arange(1_000_000, 1_001_000), 5, keyring)
    _a, _e, ok = pseudonym.identify(real + 1, keyring)
    assert ok.sum() <= 3
    _a, _e, ok = pseudonym.identify(real, keyring, known_applications=[6])
    assert not ok.any()  # an unknown application is not accepted
    _a, _e, ok = pseudonym.identify(real, KeyRing(b"\x01" * 32))
    assert ok.sum() <= 3  # another custodian's key does not verify them


def test_non_integers_and_out_of_range_values_are_invalid(keyring):
    a, e, ok = pseudonym.identify(np.array([-1.0, 0.5, np.nan, 2.0**60]), keyring)
    assert not ok.any() and (a == -1).all() and (e == -1).all()


def test_layout_limits_are_checked(keyring):
    with pytest.raises(pseudonym.PseudonymError):
        pseudonym.pseudonymise(np.array([pseudonym.MAX_EID + 1]), 1, keyring)
    with pytest.raises(pseudonym.PseudonymError):
        pseudonym.pseudonymise(np.array([5]), pseudonym.MAX_APPLICATION + 1, keyring)


def test_deterministic_with_fixed_keys(keyring):
    k2 = KeyRing(bytes.fromhex("5a" * 32))
    e = np.array([1_234_567, 2_345_678])
    assert (pseudonym.pseudonymise(e, 9, keyring) == pseudonym.pseudonymise(e, 9, k2)).all()
