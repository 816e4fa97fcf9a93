"""The detectors' state as bytes, so that a scan of the ledger resumes where the last one stopped.

A scan keeps, beside the ledger index it has read to, the ``Monitor`` it had then (every actor's history
window, hour profile, networks, application coverage bitmaps, the coordinated-pull windows...). The next
scan loads it and reads only the entries after that index; the detectors' state after an ordinary scan is
then exactly the state a full replay of the ledger would build (the tests check this), so the same alerts
are filed either way.

The bytes are trusted only when
- their HMAC-SHA256, under a key derived from the custodian's master key (purpose ``monitor/snapshot``),
  verifies: a row edited in the store is refused, not run;
- their fingerprint matches: the format, the monitor's code (the source of every module of
  ``biowarden.monitor``, where the state's classes live) and the detectors' configuration (the cohort size
  among it). State written by other code or another configuration is not reused: the scan rebuilds it
  from the ledger (once, after an upgrade).
Unpickling is further restricted to plain containers, dates, bitmaps and the classes (never functions) of
``biowarden.monitor`` (defence in depth behind the MAC).
Anything refused means a rebuild from the ledger, never a wrong state.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import io
import pickle
from pathlib import Path

from biowarden.monitor import detectors
from biowarden.monitor.detectors import Monitor, MonitorConfig

FORMAT = b"biowarden.monitor.snapshot/2"
_PACKAGE = "biowarden.monitor."
PURPOSE = "monitor/snapshot"

_ALLOWED = {
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "list"),
    ("builtins", "dict"),
    ("builtins", "tuple"),
    ("builtins", "bytearray"),
    ("collections", "deque"),
    ("collections", "defaultdict"),
    ("collections", "OrderedDict"),
    ("copyreg", "_reconstructor"),
    ("copyreg", "__newobj__"),
    ("builtins", "object"),
    ("datetime", "datetime"),
    ("datetime", "timedelta"),
    ("datetime", "timezone"),
    ("datetime", "date"),
    ("pyroaring", "BitMap"),
}


class SnapshotError(ValueError):
    """The bytes are not a snapshot this code may load (bad MAC, other code or configuration, corrupt)."""


def fingerprint(config: MonitorConfig) -> str:
    """What the state depends on: the format, the detectors' code and their configuration."""
    h = hashlib.sha256(FORMAT)
    package = Path(detectors.__file__ or "").parent
    for path in sorted(package.glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    h.update(repr(config).encode())
    return h.hexdigest()


def mac(key: bytes, index: int, print_: str, blob: bytes) -> str:
    msg = b"%d\0%s\0" % (index, print_.encode()) + blob
    return hmac.new(key, msg, hashlib.sha256).hexdigest()


# Caches that only save work (the detectors' results do not depend on them) are kept empty, as (class in
# ``monitor.detectors``, attribute): the digests of an application's last participant sets, which let
# re-pulls skip decoding, are keyed by this process's own string hash, which another process does not share.
# A class or attribute that is no longer there is kept whole, so a change to the detectors costs size, never
# correctness.
CACHES = (("_Application", "seen"),)


class _Pickler(pickle.Pickler):
    def __init__(self, file) -> None:
        super().__init__(file, protocol=4)
        self._caches: dict[type, list[str]] = {}
        for name, attr in CACHES:
            cls = getattr(detectors, name, None)
            if isinstance(cls, type):
                self._caches.setdefault(cls, []).append(attr)

    def reducer_override(self, obj):
        attrs = self._caches.get(type(obj))
        if attrs is None:
            return NotImplemented
        empty = {a: type(v)() for a in attrs if isinstance(v := getattr(obj, a, None), list | dict | set) and v}
        if not empty:
            return NotImplemented
        clone = copy.copy(obj)  # (with or without slots) the same record with its caches emptied
        for a, v in empty.items():
            setattr(clone, a, v)
        return clone.__reduce_ex__(4)


def dump(monitor: Monitor) -> bytes:
    """The monitor's state, caches left empty (a pickle: zlib would save a quarter of its size for 2-3x the
    time, the bitmaps being compact already). Raises ``SnapshotError`` when it holds something that is
    not plain state (the scan then keeps no snapshot and rebuilds next time)."""
    buf = io.BytesIO()
    try:
        _Pickler(buf).dump(monitor)
        raw = buf.getvalue()
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise SnapshotError(f"the detectors' state cannot be kept: {exc}") from None
    return raw


class _Restricted(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        if module.startswith(_PACKAGE) and "." not in name:
            found = super().find_class(module, name)
            if isinstance(found, type):
                return found
        raise SnapshotError(f"a snapshot may not hold {module}.{name}")


def load(blob: bytes, key: bytes, index: int, print_: str, tag: str, config: MonitorConfig) -> Monitor:
    """The monitor kept at ``index``; ``SnapshotError`` if the MAC fails, the fingerprint is not this code's
    and configuration's, or the bytes do not hold a monitor."""
    if print_ != fingerprint(config):
        raise SnapshotError("the snapshot was made by other detector code or configuration")
    if not hmac.compare_digest(tag, mac(key, index, print_, blob)):
        raise SnapshotError("the snapshot's MAC does not verify")
    try:
        monitor = _Restricted(io.BytesIO(blob)).load()
    except SnapshotError:
        raise
    except Exception as exc:  # corrupt bytes of any kind: refused, the scan rebuilds
        raise SnapshotError(f"the snapshot cannot be read: {exc.__class__.__name__}") from None
    if not isinstance(monitor, Monitor) or monitor.config != config:
        raise SnapshotError("the snapshot does not hold the detectors' state for this configuration")
    return monitor
