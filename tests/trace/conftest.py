"""Shared fixtures for the trace tests: a fixed key, a small cohort with 20 marked columns, releases."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from biowarden.keys import KeyRing
from biowarden.trace import sim
from biowarden.trace.accuse import trace_table

N_PARTICIPANTS = 2000
N_APPS = 60


@pytest.fixture(scope="session")
def keyring() -> KeyRing:
    return KeyRing(bytes.fromhex("5a" * 32))


@pytest.fixture(scope="session")
def dictionary():
    return sim.dictionary(extra_measures=13)


@pytest.fixture(scope="session")
def master(dictionary) -> pa.Table:
    return sim.toy_cohort(N_PARTICIPANTS, seed=7, extra_measures=13)


@pytest.fixture(scope="session")
def released(master, keyring, dictionary):
    """60 applications, each holding a marked copy of 1,600 of the 2,000 participants."""
    return sim.make_releases(master, range(1, N_APPS + 1), keyring, dictionary, participants=1600, seed=3)


def leak_of(table: pa.Table) -> tuple[pa.Table, np.ndarray]:
    """Strip the participant column; return the leak and the true eids (the linking ground truth)."""
    eids = np.asarray(table.column("eid").to_numpy(), dtype=np.int64)
    return table.drop_columns(["eid"]), eids


def run_trace(leak, eids, master, dictionary, records, keyring, **kw):
    mapping = kw.pop("mapping", None) or {c: c for c in leak.schema.names}
    return trace_table(leak, master, dictionary, records, keyring, mapping=mapping, linked_eids=eids, **kw)
