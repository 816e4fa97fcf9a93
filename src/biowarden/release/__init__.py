"""The release pipeline: the one way record-level data leaves (see ``pipeline``), and its catalog for trace.

Public API: ``create_release``, ``ReleaseManifest``, ``ReleaseDenied``, ``ReleaseError``, ``RiskThreshold``,
``StoreCatalog``, ``Downloads`` (single-use download links).
"""

from biowarden.release.catalog import StoreCatalog
from biowarden.release.downloads import Downloads
from biowarden.release.pipeline import (
    PSEUDONYM_COLUMN,
    ReleaseDenied,
    ReleaseError,
    ReleaseManifest,
    RiskThreshold,
    create_release,
)

__all__ = [
    "PSEUDONYM_COLUMN",
    "Downloads",
    "ReleaseDenied",
    "ReleaseError",
    "ReleaseManifest",
    "RiskThreshold",
    "StoreCatalog",
    "create_release",
]
