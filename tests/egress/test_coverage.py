"""egress.coverage.bitmap_of: the bitmap built through the portable format holds exactly the ids given."""

from __future__ import annotations

import numpy as np
import pytest
from pyroaring import BitMap

from biowarden.egress.coverage import bitmap_of, deserialise, serialise


def _cases() -> list[np.ndarray]:
    rng = np.random.default_rng(17)
    dense = np.sort(rng.choice(np.arange(1_000_000, 6_000_000), 500_000, replace=False))
    return [
        np.array([], dtype=np.int64),
        np.array([0]),
        np.array([0xFFFFFFFF, 0, 65535, 65536]),  # unsorted, both ends of the range, a container edge
        np.arange(4096),  # the largest array container
        np.arange(4097),  # the smallest bitset container
        np.arange(65536),  # a full container
        np.arange(70_000, 140_000, 7),  # several containers of each kind
        rng.integers(0, 2**32, 20_000, dtype=np.uint64),  # sparse over the whole range
        np.repeat(np.arange(5_000, 15_000), 3),  # repeats
        dense,  # a cohort's participants, sorted
        rng.permutation(dense),  # the same, shuffled
    ]


@pytest.mark.parametrize("case", range(len(_cases())))
def test_bitmap_of_equals_adding_the_ids_one_by_one(case):
    ids = _cases()[case]
    got = bitmap_of(ids)
    expected = BitMap(np.asarray(ids).astype(np.uint32))
    assert got == expected
    assert len(got) == len(np.unique(ids))
    assert np.array_equal(np.array(got.to_array(), dtype=np.int64), np.unique(np.asarray(ids, dtype=np.int64)))
    assert deserialise(serialise(got)) == expected  # the stored form round-trips
    got.add(123_456_789)  # an ordinary, mutable bitmap
    assert 123_456_789 in got


def test_bitmap_of_refuses_ids_outside_32_bits():
    with pytest.raises(ValueError, match="32 unsigned bits"):
        bitmap_of(np.array([1, -2]))
    with pytest.raises(ValueError, match="32 unsigned bits"):
        bitmap_of(np.array([2**32]))
