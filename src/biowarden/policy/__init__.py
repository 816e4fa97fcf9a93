"""Deny-by-default decisions: (principal, action, resource, context) -> allow or deny with a reason code.

No web framework and no ORM here: the registry service builds the plain dataclasses below from the store
inside the request's transaction and writes every decision to the ledger.
"""

from biowarden.policy.engine import ACTIONS, ActionSpec, decide, in_scope
from biowarden.policy.model import (
    ALL_ROLES,
    ANONYMOUS,
    STAFF_ROLES,
    ApplicationInfo,
    Context,
    Decision,
    Principal,
    Reason,
    Resource,
    Role,
    SuspensionInfo,
)

__all__ = [
    "ACTIONS",
    "ALL_ROLES",
    "ANONYMOUS",
    "STAFF_ROLES",
    "ActionSpec",
    "ApplicationInfo",
    "Context",
    "Decision",
    "Principal",
    "Reason",
    "Resource",
    "Role",
    "SuspensionInfo",
    "decide",
    "in_scope",
]
