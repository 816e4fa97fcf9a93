import pytest
from fastapi.testclient import TestClient

from biowarden.keys import KeyRing
from biowarden.web import create_app
from tests.registry.helpers import KEY, Clock, fast_hashing

fast_hashing()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def app(db, clock):
    return create_app(db, KeyRing(KEY), clock=clock)


@pytest.fixture
def client(app):
    with TestClient(app) as c:
        yield c


@pytest.fixture
def reg(app):
    return app.state.registry
