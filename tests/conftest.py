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
