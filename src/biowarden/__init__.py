"""biowarden: the biobank data custodian's platform.

Layers (data flows one way): cli/web -> services (registry, policy, release, egress, monitor, trace service)
-> core (cohort, engine, privacy, trace kernels, ledger, keys). The core imports no web framework and no ORM.
"""

import os as _os

__version__ = "0.1.0"

# Arrow's memory pool is chosen when pyarrow is loaded: a process that loads biowarden first (the CLI, the
# web server) gets the system allocator everywhere, the C++ Parquet reader's and writer's own buffers
# included (see biowarden.engine, which makes it the Python-level default pool in any case). An operator's
# ARROW_DEFAULT_MEMORY_POOL is kept.
ARROW_POOL_CHOSEN = bool(_os.environ.get("ARROW_DEFAULT_MEMORY_POOL"))  # by the operator
_os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
