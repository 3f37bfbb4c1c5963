"""`vdb serve` prepares every embedder it needs before it listens (the default model, agent
memory's Q8_0 copy, each collection's), so the first Remember on a fresh server converts
nothing; a model it did not prepare is refused rather than converted inside a request; and
every line on its stderr is a formatted log line (no library output of its own)."""

import re

import pytest

import vdb
from embed.models import resolve
from llm.errors import ModelNotFoundError
from tests.rpc import ServerProcess

LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [\w.]+ (DEBUG|INFO|WARNING|ERROR) ")


def _cache(home):
    return {p.name: p.stat().st_mtime_ns for p in (home / "models").glob("*.gguf")}


def test_models_are_prepared_before_serving(tmp_path):
    with vdb.open(tmp_path / "db") as db:  # converted into the tests' model cache
        db.create_collection("docs", embedder="all-MiniLM-L6-v2:f16")
    home = tmp_path / "fresh-home"  # the server's cache starts empty
    server = ServerProcess(tmp_path / "db", env={"VDB_HOME": str(home)})
    try:
        ready = _cache(home)  # as the server said it was listening, before any request
        assert set(ready) == {f"all-MiniLM-L6-v2.{t}.gguf" for t in ("f32", "q8_0", "f16")}
        with vdb.connect(server.address) as db:
            tea = db.memory("a").remember("Alice likes green tea")
            assert db.memory("a").recall("what does Alice drink?")[0].memory.id == tea.id
            db.get_collection("docs").upsert(["d"], documents=["a document"])
        assert _cache(home) == ready  # nothing converted since
        assert server.terminate() == 0
    finally:
        server.close()
    log = server.stderr()
    assert "gguf_writer" not in log and "prepared model all-MiniLM-L6-v2:q8_0" in log
    for line in log.splitlines():
        assert LINE.match(line) or line.startswith("vdb: "), line


def test_a_model_not_prepared_is_refused_not_converted(tmp_path):
    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    for name in ("f32", "q8_0"):  # what a server over an empty database prepares
        path = resolve(f"all-MiniLM-L6-v2:{name}")
        for file in path.parent.glob(f"{path.name}*"):  # with its checksum record
            (home / "models" / file.name).write_bytes(file.read_bytes())
    server = ServerProcess(tmp_path / "db", env={"VDB_HOME": str(home)})
    try:
        with vdb.connect(server.address) as db:
            with pytest.raises(ModelNotFoundError, match="not prepared"):
                db.embed(["x"], model="all-MiniLM-L6-v2:f16")
            with pytest.raises(ModelNotFoundError, match="not prepared"):
                db.create_collection("c", embedder="all-MiniLM-L6-v2:f16")
            assert db.embed(["x"]).shape == (1, 384)
        assert not (home / "models" / "all-MiniLM-L6-v2.f16.gguf").exists()
    finally:
        server.close()
