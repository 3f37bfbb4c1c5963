import numpy as np
import pytest

import vdb


@pytest.fixture
def db(tmp_path):
    database = vdb.open(tmp_path / "db")
    yield database
    database.close()


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def server(tmp_path):
    """(Server, address) over a fresh database, with default options."""
    from tests.rpc import serving

    with serving(tmp_path / "served") as served:
        yield served


@pytest.fixture
def remote(server):
    """A RemoteDatabase connected to the `server` fixture."""
    with vdb.connect(server[1]) as client:
        yield client
