"""Exact cumulative coverage with compressed bitmaps: one roaring bitmap of eids per (scope, field).

Cells covered = the sum over fields of the bitmap sizes; distinct participants = the size of their union.
A 500,000-participant bitmap takes about 60 KiB when dense and far less when sparse.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from pyroaring import BitMap

_NO_RUN_COOKIE = 12346  # the portable roaring format's cookie for a bitmap without run containers
_ARRAY_MAX = 4096  # a container of at most this many values is a sorted array of them, else a 2^16-bit set


def bitmap_of(eids: np.ndarray) -> BitMap:
    """The participants (any integer array in the uint32 range; order and repeats do not matter) as a roaring
    bitmap. Built as the portable serialised format with NumPy (a header, then per 2^16 ids a sorted array
    or a bitset) and deserialised: about 3 ms for 500,000 ids, against 27 ms for ``BitMap(array)``, which
    adds them one by one."""
    arr = np.asarray(eids)
    if arr.size and (arr.min() < 0 or arr.max() > 0xFFFFFFFF):
        raise ValueError("participant ids must fit in 32 unsigned bits for coverage bitmaps")
    ids = arr.astype(np.uint32, copy=False).ravel()
    if ids.size > 1 and not bool((ids[1:] > ids[:-1]).all()):
        ids = np.unique(ids)
    if not ids.size:
        return BitMap()
    highs = ids >> np.uint32(16)
    starts = np.flatnonzero(np.concatenate(([True], highs[1:] != highs[:-1])))
    ends = np.append(starts[1:], ids.size)
    cards = ends - starts
    header = np.empty((starts.size, 2), dtype="<u2")
    header[:, 0] = highs[starts]
    header[:, 1] = cards - 1
    sizes = np.where(cards > _ARRAY_MAX, 8192, 2 * cards)
    first = 8 + 8 * starts.size  # cookie, count, descriptive header, offset header
    offsets = (first + np.concatenate(([0], np.cumsum(sizes)[:-1]))).astype("<u4")
    lows = (ids & np.uint32(0xFFFF)).astype("<u2")
    parts = [np.array([_NO_RUN_COOKIE, starts.size], dtype="<u4").tobytes(), header.tobytes(), offsets.tobytes()]
    for a, b, card in zip(starts.tolist(), ends.tolist(), cards.tolist(), strict=True):
        if card > _ARRAY_MAX:
            bits = np.zeros(1 << 16, dtype=bool)
            bits[lows[a:b]] = True
            parts.append(np.packbits(bits, bitorder="little").tobytes())
        else:
            parts.append(lows[a:b].tobytes())
    return BitMap.deserialize(b"".join(parts))


def serialise(bm: BitMap) -> bytes:
    bm.run_optimize()
    return bm.serialize()


def deserialise(data: bytes | None) -> BitMap:
    return BitMap.deserialize(data) if data else BitMap()


@dataclass(frozen=True)
class Coverage:
    participants: int  # distinct participants that have left
    cells: int  # participant x field cells that have left

    def share(self, cohort_size: int, cohort_fields: int) -> tuple[float, float]:
        return (self.participants / max(cohort_size, 1), self.cells / max(cohort_size * cohort_fields, 1))


def coverage_of(per_field: Mapping[str, BitMap]) -> Coverage:
    union = BitMap.union(*per_field.values()) if per_field else BitMap()
    return Coverage(participants=len(union), cells=sum(len(b) for b in per_field.values()))


def projected(per_field: Mapping[str, BitMap], new: BitMap, fields: Iterable[str]) -> dict[str, BitMap]:
    """The per-field bitmaps after ``new`` participants leave in ``fields`` (inputs are not modified)."""
    out = dict(per_field)
    for f in fields:
        out[f] = per_field.get(f, BitMap()) | new
    return out
