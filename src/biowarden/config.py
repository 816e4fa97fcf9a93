"""Configuration from the environment.

- ``BIOWARDEN_HOME``: the state folder (default ``./.biowarden``).
- ``BIOWARDEN_DATABASE_URL``: the control-plane store (default SQLite in the home).
- ``BIOWARDEN_MASTER_KEY``: the custodian's master key (hex, 64 digits); otherwise ``HOME/master.key``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names it (never its secret value)."""


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str

    @property
    def master_key_path(self) -> Path:
        return self.home / "master.key"

    @property
    def cohort_dir(self) -> Path:
        return self.home / "cohort"


def load_settings(home: str | os.PathLike[str] | None = None) -> Settings:
    root = Path(home or os.environ.get("BIOWARDEN_HOME") or ".biowarden").resolve()
    url = os.environ.get("BIOWARDEN_DATABASE_URL") or f"sqlite:///{root / 'biowarden.db'}"
    return Settings(home=root, database_url=url)
