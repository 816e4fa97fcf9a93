"""biowarden: the biobank data custodian's platform.

Layers (data flows one way): cli/web -> services (registry, policy, release, egress, monitor, trace service)
-> core (cohort, engine, privacy, trace kernels, ledger, keys). The core imports no web framework and no ORM.
"""

__version__ = "0.1.0"
