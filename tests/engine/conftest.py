"""Fixtures for the data-plane tests: a hand-made table with every awkward type, and the synthetic cohort."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.engine.util import edge_table


@pytest.fixture
def edge() -> pa.Table:
    return edge_table()


@pytest.fixture
def edge_path(tmp_path, edge):
    path = tmp_path / "edge.parquet"
    pq.write_table(edge, path, row_group_size=128)
    return path


@pytest.fixture(scope="session")
def cohort_path(tmp_path_factory):
    from biowarden.cohort.synth import synthesise_table

    table, _ = synthesise_table(600, seed=11)
    path = tmp_path_factory.mktemp("cohort") / "cohort.parquet"
    pq.write_table(table, path, row_group_size=256)
    return path
