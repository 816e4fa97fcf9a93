"""The registry: institutions, researchers, applications, scopes, suspensions, accounts and tokens.

``Registry(db, keyring)`` is the Python API; every method takes the caller's ``Identity`` (the CLI uses
``LOCAL_OPERATOR``), decides through ``biowarden.policy.decide`` and ledgers the decision and the change in
one transaction (``registry.audit.Audit`` is the one place that writes the ledger).
"""

from biowarden.registry.auth import LOCAL_OPERATOR, Authenticator, Identity
from biowarden.registry.errors import Conflict, Denied, Invalid, NotFound, RegistryError, Unauthenticated
from biowarden.registry.service import Registry

__all__ = [
    "LOCAL_OPERATOR",
    "Authenticator",
    "Conflict",
    "Denied",
    "Identity",
    "Invalid",
    "NotFound",
    "Registry",
    "RegistryError",
    "Unauthenticated",
]
