import pytest

from tests.registry.helpers import Clock, fast_hashing, make_registry

fast_hashing()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def reg(db, clock):
    return make_registry(db, clock)
