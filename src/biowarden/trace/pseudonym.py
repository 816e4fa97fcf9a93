"""Per-application pseudonymous participant IDs from disjoint, MAC-tagged namespaces.

A pseudonym is a 49-bit integer (at most 15 decimal digits, so it survives Excel, JSON and JavaScript
without losing a digit). It is the encryption, under a keyed permutation of the 49-bit domain, of

    application number (14 bits) | eid (23 bits) | tag (12 bits)

where the tag is a PRF of (application, eid) under its own key. Decrypting with the custodian's key gives
the application and the eid back at once, so an ID alone names its application; namespaces are disjoint
because the plaintexts differ; and a value made up by anyone without the key decrypts to a valid tag with
probability 2^-12 (so ``k`` valid IDs among ``n`` made-up values have probability
``P(Binomial(n, 2^-12) >= k)``, which :mod:`biowarden.trace.accuse` uses as the layer's p-value).
Unlike "application number + permuted eid", the application is not visible to the holder of the file.

The permutation is a 10-round balanced Feistel network on 50 bits (round function: the keyed PRF, purpose
``trace/v1/pseudonym/perm``, tweak = round number) restricted to the 49-bit domain by cycle walking.
Everything is vectorised over NumPy arrays.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from biowarden.keys import KeyRing

APP_BITS = 14
EID_BITS = 23
TAG_BITS = 12
DOMAIN_BITS = APP_BITS + EID_BITS + TAG_BITS  # 49
MAX_APPLICATION = (1 << APP_BITS) - 1
MAX_EID = (1 << EID_BITS) - 1
FORGERY_PROBABILITY = 2.0**-TAG_BITS
PURPOSE_PERM = "trace/v1/pseudonym/perm"
PURPOSE_TAG = "trace/v1/pseudonym/tag"

_HALF = 25
_HALF_MASK = np.uint64((1 << _HALF) - 1)
_DOMAIN = np.uint64(1 << DOMAIN_BITS)
_ROUNDS = 10


class PseudonymError(ValueError):
    """An eid or application number outside the pseudonym layout."""


def _feistel(keyring: KeyRing, x: np.ndarray, decrypt: bool) -> np.ndarray:
    prf = keyring.prf(PURPOSE_PERM)
    left = x >> np.uint64(_HALF)
    right = x & _HALF_MASK
    rounds = range(_ROUNDS - 1, -1, -1) if decrypt else range(_ROUNDS)
    for r in rounds:
        if decrypt:
            left, right = right ^ (prf.u64(left, r) & _HALF_MASK), left
        else:
            left, right = right, left ^ (prf.u64(right, r) & _HALF_MASK)
    return (left << np.uint64(_HALF)) | right


def _permute(keyring: KeyRing, x: np.ndarray, decrypt: bool) -> np.ndarray:
    """The keyed permutation of [0, 2^49): Feistel on 50 bits with cycle walking."""
    out = _feistel(keyring, x, decrypt)
    todo = np.flatnonzero(out >= _DOMAIN)
    while todo.size:
        out[todo] = _feistel(keyring, out[todo], decrypt)
        todo = todo[out[todo] >= _DOMAIN]
    return out


def _tags(keyring: KeyRing, app_eid: np.ndarray) -> np.ndarray:
    return keyring.prf(PURPOSE_TAG).u64(app_eid) & np.uint64((1 << TAG_BITS) - 1)


def pseudonymise(eids: np.ndarray | Iterable[int], application_no: int, keyring: KeyRing) -> np.ndarray:
    """The pseudonyms (int64) of ``eids`` for application number ``application_no``."""
    eids = np.asarray(eids, dtype=np.int64)
    if not 0 <= int(application_no) <= MAX_APPLICATION:
        raise PseudonymError(f"application number {application_no} is outside 0..{MAX_APPLICATION}")
    if eids.size and (eids.min() < 0 or eids.max() > MAX_EID):
        raise PseudonymError(f"participant ids must lie in 0..{MAX_EID} for pseudonymisation")
    app_eid = (np.uint64(application_no) << np.uint64(EID_BITS)) | eids.astype(np.uint64)
    plain = (app_eid << np.uint64(TAG_BITS)) | _tags(keyring, app_eid)
    return _permute(keyring, plain, decrypt=False).astype(np.int64)


def identify(
    pseudonyms: np.ndarray | Iterable[int],
    keyring: KeyRing,
    known_applications: Iterable[int] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Map pseudonyms back: ``(application_no, eid, valid)`` arrays (int64, int64, bool).

    ``valid`` is true where the value lies in the pseudonym domain, its tag verifies, and (when
    ``known_applications`` is given) its application is one of them; elsewhere application and eid are -1.
    """
    raw = np.asarray(pseudonyms)
    if raw.dtype.kind == "f":
        ok = np.isfinite(raw) & (raw >= 0) & (raw < float(1 << DOMAIN_BITS)) & (raw == np.floor(raw))
        vals = np.where(ok, raw, 0).astype(np.int64)
    else:
        vals = raw.astype(np.int64)
        ok = (vals >= 0) & (vals < (1 << DOMAIN_BITS))
    plain = _permute(keyring, np.where(ok, vals, 0).astype(np.uint64), decrypt=True)
    app_eid = plain >> np.uint64(TAG_BITS)
    tag = plain & np.uint64((1 << TAG_BITS) - 1)
    valid = ok & (tag == _tags(keyring, app_eid))
    app = (app_eid >> np.uint64(EID_BITS)).astype(np.int64)
    eid = (app_eid & np.uint64(MAX_EID)).astype(np.int64)
    if known_applications is not None:
        valid &= np.isin(app, np.fromiter(known_applications, dtype=np.int64))
    return np.where(valid, app, -1), np.where(valid, eid, -1), valid
