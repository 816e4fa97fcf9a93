from __future__ import annotations

import os
from pathlib import Path

import pytest


def _find_adult() -> Path:
    """shared/data/adult beside the checkout (or above it, for worktrees), or $BIOWARDEN_ADULT."""
    if os.environ.get("BIOWARDEN_ADULT"):
        return Path(os.environ["BIOWARDEN_ADULT"])
    here = Path(__file__).resolve()
    for parent in here.parents[2:]:
        candidate = parent / "shared" / "data" / "adult"
        if (candidate / "adult.csv").is_file():
            return candidate
    return here.parents[3] / "shared" / "data" / "adult"


ADULT = _find_adult()
ADULT_QIS = ["sex", "age", "race", "marital-status", "education", "native-country", "workclass", "occupation"]


def _adult_dir() -> Path:
    if (ADULT / "adult.csv").is_file():
        return ADULT
    pytest.skip("shared/data/adult is not beside the repository")


@pytest.fixture(scope="session")
def adult_dir() -> Path:
    return _adult_dir()


@pytest.fixture(scope="session")
def adult(adult_dir):
    from biowarden.privacy.data import read_table

    return read_table(adult_dir / "adult.csv")


@pytest.fixture(scope="session")
def adult_hierarchies(adult_dir):
    from biowarden.privacy.hierarchy import load_hierarchies

    return load_hierarchies(adult_dir, ADULT_QIS)
