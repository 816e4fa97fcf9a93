"""The data plane: Ibis over DuckDB (default) and PySpark local mode, with Arrow-batch kernels.

Public API: ``open_engine``, ``Engine``, ``histogram``, ``map_batches``, ``scope``, ``ScopeReport``,
``write_release``, ``source_schema``, ``EngineError``; ``prf_u64`` (the keyed PRF over many threads).
"""

from biowarden.engine.core import (
    ENGINES,
    Engine,
    ScopeReport,
    histogram,
    map_batches,
    open_engine,
    scope,
    source_schema,
)
from biowarden.engine.errors import EngineError
from biowarden.engine.kernels import prf_u64
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
    "scope",
    "source_schema",
    "write_release",
]
