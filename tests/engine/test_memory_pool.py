"""Arrow's memory pool in a biowarden process: the system allocator, unless the operator chose one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _backend(code: str, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    environ.update(env, PYTHONPATH=SRC)
    out = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_biowarden_first_gives_the_system_allocator_to_arrow_and_its_parquet_code():
    # the pool the C++ code uses (chosen when pyarrow loads) and the Python-level default
    code = "import biowarden, pyarrow as pa, biowarden.engine; print(pa.default_memory_pool().backend_name)"
    assert _backend(code) == ["system"]


def test_pyarrow_first_still_gets_the_system_pool_as_its_python_default():
    code = "import pyarrow as pa, biowarden.engine; print(pa.default_memory_pool().backend_name)"
    assert _backend(code) == ["system"]


def test_the_operators_choice_is_kept():
    code = "import biowarden, pyarrow as pa, biowarden.engine; print(pa.default_memory_pool().backend_name)"
    assert _backend(code, ARROW_DEFAULT_MEMORY_POOL="mimalloc") == ["mimalloc"]
