"""The data plane: Ibis over DuckDB (default) and PySpark local mode, with Arrow-batch kernels.

Public API: ``open_engine``, ``Engine``, ``histogram``, ``map_batches``, ``scope``, ``read_columns``,
``scan_batches``, ``sort_by_key``, ``ScopeReport``,
``write_release``, ``source_schema``, ``EngineError``; ``prf_u64`` (the keyed PRF over many threads).
"""

from biowarden.engine.core import (
    ENGINES,
    Engine,
    ScopeReport,
    histogram,
    map_batches,
    open_engine,
    read_columns,
    scan_batches,
    scope,
    source_schema,
)
from biowarden.engine.errors import EngineError
from biowarden.engine.kernels import prf_u64
from biowarden.engine.shuffle import sort_by_key
from biowarden.engine.writer import write_release

__all__ = [
    "ENGINES",
    "Engine",
    "EngineError",
    "ScopeReport",
    "histogram",
    "map_batches",
    "open_engine",
    "prf_u64",
    "read_columns",
    "scan_batches",
    "scope",
    "sort_by_key",
    "source_schema",
    "write_release",
]
