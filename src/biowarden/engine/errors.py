"""The data plane's one error type: a clear message naming what is wrong (file, column, engine)."""

from __future__ import annotations


class EngineError(ValueError):
    """Bad input to the data plane: unknown columns, a missing or unreadable file, an unknown engine."""
