"""Ingestion on a real local Ray cluster (one per session, 2 CPUs): the same chunk ids,
payloads and vectors as the local executor into a directory and into a server; a dead actor,
a killed run and a restarted server all end with every chunk once. Marked `ray` (run with
`pytest -m ray` after `pip install -e '.[ray]'`), but for the test of Ray's absence."""

import json
import sys
import textwrap
import threading

import numpy as np
import pytest
from click.testing import CliRunner

import vdb
from tests.conftest import ROOT
from tests.helpers.kill import kill_when_counted
from vdb.cli.main import main as cli
from vdb.ingest import ingest, ray_ingest

SENTENCES = (
    "The committee met in the spring to review the budget of the northern districts.",
    "Its report, published two years later, recommended a new railway line.",
    "Engineers surveyed the valley and proposed three routes along the river.",
    "Farmers objected to the western route, which crossed their grazing land.",
    "The line opened in 1887 and carried grain, timber and passengers.",
)


@pytest.fixture(scope="session")
def ray_cluster():
    ray = pytest.importorskip("ray", reason="optional extra vdb[ray] is not installed")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    from vdb.ingest_ray import quiet

    quiet(ray)
    yield ray
    ray.shutdown()


@pytest.fixture
def paragraphs(tmp_path):
    """A folder of SQuAD-like paragraph files of varied lengths (one long enough for several
    chunks), and the shipped docs (markdown with headings)."""
    root = tmp_path / "paras"
    root.mkdir()
    for i in range(24):
        n = 1 + (i * 7) % 11
        text = " ".join(SENTENCES[(i + j) % 5] for j in range(n))
        (root / f"p{i:02d}.txt").write_text(f"Paragraph {i}. {text}\n")
    (root / "long.txt").write_text(" ".join(SENTENCES * 12) + "\n")
    for doc in (ROOT / "vdb" / "docs").glob("*.md"):
        (root / doc.name).write_text(doc.read_text())
    return root


def records(col) -> dict:
    """id -> (payload, document, vector bytes) of every point."""
    out = {}
    for r in col.scroll(limit=10_000, with_vectors=True)[0]:
        out[r.id] = (r.payload, r.document, np.asarray(r.vector, dtype="<f4").tobytes())
    return out


def counts(report) -> tuple:
    return (report.files, report.unchanged_files, report.chunks, report.embedded, report.deleted)


OPTIONS = {"chunk_tokens": 64, "batch_size": 8}


@pytest.mark.ray
def test_ray_ingest_is_the_local_executor(tmp_path, paragraphs, ray_cluster, server):
    with vdb.open(tmp_path / "local") as db, vdb.open(tmp_path / "ray") as rdb:
        want = ingest(db, [paragraphs], "docs", **OPTIONS)
        seen = []

        def progress(report, done, total):
            seen.append((report.embedded, done, total))

        got = ray_ingest(rdb, [paragraphs], "docs", progress=progress, **OPTIONS)
        assert counts(got) == counts(want) and want.embedded > 3 * OPTIONS["batch_size"]
        assert seen[-1] == (want.embedded, want.files, want.files)
        expected = records(db.get_collection("docs"))
        assert records(rdb.get_collection("docs")) == expected
        with vdb.connect(server[1]) as remote:
            served = ray_ingest(remote, [paragraphs], "docs", actors=1, **OPTIONS)
            assert counts(served) == counts(want)
            assert records(remote.get_collection("docs")) == expected
        # a changed file: its new chunk embedded, its old one deleted, by either executor
        long = paragraphs / "long.txt"
        long.write_text(long.read_text().replace("grazing land", "orchards"))
        want = ingest(db, [paragraphs], "docs", **OPTIONS)
        got = ray_ingest(rdb, [paragraphs], "docs", **OPTIONS)
        assert counts(got) == counts(want) and got.deleted >= 1
        assert got.unchanged_files == got.files - 1
        assert records(rdb.get_collection("docs")) == records(db.get_collection("docs"))
    out = CliRunner().invoke(
        cli,
        ["--data", str(tmp_path / "ray"), "ingest", str(paragraphs), "-c", "docs", "--ray"]
        + ["--chunk-tokens", "64", "--json"],
    )
    assert out.exit_code == 0, out.output
    summary = json.loads(out.output)
    assert summary["unchanged_files"] == summary["files"] and summary["embedded"] == 0


@pytest.mark.ray
def test_a_dead_actor_is_restarted_and_its_batch_embedded(tmp_path, paragraphs, ray_cluster):
    from tests.helpers.ray_faults import DyingEmbed

    marker = tmp_path / "died"
    dying = type("DyingOnce", (DyingEmbed,), {"marker": str(marker)})
    with vdb.open(tmp_path / "local") as db, vdb.open(tmp_path / "ray") as rdb:
        want = ingest(db, [paragraphs], "docs", **OPTIONS)
        got = ray_ingest(rdb, [paragraphs], "docs", embed_class=dying, **OPTIONS)
        assert marker.exists()  # an actor died on its first batch
        assert counts(got) == counts(want)
        assert records(rdb.get_collection("docs")) == records(db.get_collection("docs"))


KILLED_RUN = textwrap.dedent(
    """
    import sys
    import ray
    import vdb
    from vdb.ingest import ray_ingest

    ray.init(address=sys.argv[3], log_to_driver=False)

    def progress(report, done, total):
        print(report.embedded, flush=True)

    with vdb.open(sys.argv[1]) as db:
        ray_ingest(db, [sys.argv[2]], "docs", batch_size=4, progress=progress)
    print("done", flush=True)
    """
)


def notes(root, n: int = 120):
    root.mkdir()
    for i in range(n):
        (root / f"note{i:03d}.md").write_text(f"# Note {i}\n\nThis is note number {i}.\n")
    return root


def complete(col, n: int) -> None:
    """Every note's one chunk is there, once."""
    assert col.count() == n
    files = [r.payload["file"] for r in col.scroll(limit=10_000)[0]]
    assert len(set(files)) == n


@pytest.mark.ray
def test_a_killed_ray_run_completes_on_the_next_run(tmp_path, ray_cluster):
    root = notes(tmp_path / "many")
    address = ray_cluster.get_runtime_context().gcs_address
    kill_when_counted(KILLED_RUN, [str(tmp_path / "db"), str(root), address], 20)
    with vdb.open(tmp_path / "db") as db:
        partial = db.get_collection("docs").count()
        assert 20 <= partial < 120
        report = ray_ingest(db, [root], "docs", batch_size=4)
        assert report.embedded == 120 - partial
        complete(db.get_collection("docs"), 120)
        assert ingest(db, [root], "docs").unchanged_files == 120  # finished by either


@pytest.mark.ray
def test_a_server_restarted_during_the_job_gets_every_batch(tmp_path, ray_cluster):
    from tests.rpc import ServerProcess

    root = notes(tmp_path / "many")
    served = [ServerProcess(tmp_path / "served")]
    port = served[0].address.rsplit(":", 1)[1]
    restarted = threading.Event()
    restarts = []

    def restart():
        served.append(ServerProcess(tmp_path / "served", "--port", port))
        restarted.set()

    def progress(report, done, total):
        if report.embedded >= 8 and not restarts:
            served[0].kill()  # acknowledged batches are durable; the stream breaks
            restarts.append(threading.Timer(1.0, restart))
            restarts[0].start()

    try:
        with vdb.connect(served[0].address, timeout=60) as remote:
            report = ray_ingest(remote, [root], "docs", batch_size=4, progress=progress)
            assert restarted.is_set() and report.embedded == 120
            complete(remote.get_collection("docs"), 120)
    finally:
        for t in restarts:
            t.join()
        for s in served:
            s.close()


def test_without_ray_the_error_names_the_extra(tmp_path, paragraphs, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with (
        vdb.open(tmp_path / "db") as db,
        pytest.raises(ImportError, match=r"pip install 'vdb\[ray\]'"),
    ):
        ray_ingest(db, [paragraphs], "docs")
    out = CliRunner().invoke(
        cli, ["--data", str(tmp_path / "db"), "ingest", str(paragraphs), "-c", "docs", "--ray"]
    )
    assert out.exit_code == 1 and "pip install 'vdb[ray]'" in out.output
