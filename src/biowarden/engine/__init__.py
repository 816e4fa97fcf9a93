"""The data plane: Ibis over DuckDB (default) and PySpark local mode, with Arrow-batch kernels.

Public API: ``open_engine``, ``Engine``, ``histogram``, ``map_batches``, ``scope``, ``read_columns``,
``scan_batches``, ``sort_by_key``, ``ScopeReport``,
``write_release``, ``source_schema``, ``EngineError``; ``prf_u64`` (the keyed PRF over many threads).

Arrow's memory: Arrow's default pool on Linux (mimalloc) makes a fresh process pay heavily for its first
large allocations: reading the 100 columns of a 500,000-participant release took 1.37 s (0.69 s of it
system time) in a fresh process and 0.56 s the second time, against 0.89 s and 0.67 s with the system
allocator; over a whole release in a fresh process (as the CLI runs one) the system allocator was faster
and its peak resident set lower. So it is the process's default pool once the data plane is loaded, unless
the operator chose one (``ARROW_DEFAULT_MEMORY_POOL``). That default is Python's: the C++ Parquet reader and
writer keep their buffers in the pool chosen when pyarrow was loaded, which is the system allocator too
when biowarden was imported first (``biowarden/__init__.py``).
"""

import pyarrow as _pa

from biowarden import ARROW_POOL_CHOSEN as _ARROW_POOL_CHOSEN

if not _ARROW_POOL_CHOSEN:
    _pa.set_memory_pool(_pa.system_memory_pool())

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
