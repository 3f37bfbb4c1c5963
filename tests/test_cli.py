"""The `vdb` command line, driven through click's runner on a real database directory."""

import json
import os
from pathlib import Path

import numpy as np
from click.testing import CliRunner

import vdb
from tests.conftest import ROOT, fixture_file
from vdb.cli.main import main


def run(tmp_path, *args, ok=True):
    result = CliRunner().invoke(main, ["--data", str(tmp_path / "db"), *args])
    assert (result.exit_code == 0) == ok, result.output
    return result


def test_collection_commands(tmp_path):
    run(tmp_path, "collection", "create", "docs", "--dim", "3", "--metric", "l2")
    out = run(tmp_path, "collection", "list", "--json").output
    assert json.loads(out)[0]["name"] == "docs"
    info = json.loads(run(tmp_path, "collection", "info", "docs", "--json").output)
    assert info["dim"] == 3 and info["metric"] == "l2" and info["count"] == 0
    err = run(tmp_path, "collection", "create", "docs", "--dim", "3", ok=False)
    assert "already exists" in err.output
    run(tmp_path, "collection", "drop", "docs", "--yes")
    assert json.loads(run(tmp_path, "collection", "list", "--json").output) == []


def test_import_jsonl_and_search(tmp_path):
    lines = [
        {"id": i, "vector": [i, 1.0, 0.5], "payload": {"even": i % 2 == 0}, "document": f"d{i}"}
        for i in range(1, 30)
    ]
    src = tmp_path / "points.jsonl"
    src.write_text("\n".join(json.dumps(x) for x in lines))
    out = run(
        tmp_path, "import", "pts", str(src), "--create", "--metric", "l2", "-b", "7", "--json"
    ).output
    assert json.loads(out) == {"collection": "pts", "imported": 29, "count": 29}
    hits = json.loads(
        run(
            tmp_path,
            "search",
            "pts",
            "--vector",
            "[4, 1, 0.5]",
            "-k",
            "3",
            "--filter",
            '{"even": true}',
            "--json",
        ).output
    )
    assert [h["id"] for h in hits] == [4, 2, 6]
    assert hits[0]["score"] == 0 and hits[0]["document"] == "d4"
    table = run(tmp_path, "search", "pts", "--vector", "[4, 1, 0.5]", "-k", "2").output
    assert "distance" in table.splitlines()[0] and "\t4\t" in table


def test_import_npy_with_ids_and_search_by_row(tmp_path):
    X = np.random.default_rng(0).standard_normal((20, 4)).astype(np.float32)
    np.save(tmp_path / "v.npy", X)
    (tmp_path / "ids.txt").write_text("\n".join(f"id{i}" for i in range(20)))
    run(tmp_path, "collection", "create", "v", "--dim", "4")
    run(tmp_path, "import", "v", str(tmp_path / "v.npy"), "--ids", str(tmp_path / "ids.txt"))
    hits = json.loads(
        run(
            tmp_path,
            "search",
            "v",
            "--file",
            str(tmp_path / "v.npy"),
            "--row",
            "5",
            "-k",
            "1",
            "--json",
        ).output
    )
    assert hits[0]["id"] == "id5"


def test_bad_import_writes_nothing(tmp_path):
    src = tmp_path / "bad.jsonl"
    good = [json.dumps({"id": i, "vector": [1, 2]}) for i in range(5)]
    src.write_text("\n".join(good + ['{"id": 9, "vector": [1, "x"]}']))
    run(tmp_path, "collection", "create", "c", "--dim", "2")
    err = run(tmp_path, "import", "c", str(src), ok=False)
    assert "numeric" in err.output
    src.write_text("\n".join(good + ['{"id": 9, "vector": [NaN, 1]}']))
    err = run(tmp_path, "import", "c", str(src), "-b", "2", ok=False)
    assert "InvalidVectorError" in err.output and "9" in err.output
    info = json.loads(run(tmp_path, "collection", "info", "c", "--json").output)
    assert info["count"] == 0
    err = run(
        tmp_path, "search", "c", "--vector", "[1, 2]", "--filter", '{"a": {"$gt": []}}', ok=False
    )
    assert "FilterError" in err.output
    err = run(tmp_path, "search", "nope", "--vector", "[1, 2]", ok=False)
    assert "CollectionNotFoundError" in err.output


def test_create_with_hnsw_options_and_search_with_ef(tmp_path):
    out = run(
        tmp_path,
        "collection",
        "create",
        "h",
        "--dim",
        "2",
        "--index",
        "hnsw",
        "-M",
        "8",
        "--ef-search",
        "32",
        "--json",
    ).output
    index = json.loads(out)["index"]
    assert index["kind"] == "hnsw" and index["hnsw"]["M"] == 8 and index["hnsw"]["ef_search"] == 32
    src = tmp_path / "p.jsonl"
    src.write_text("\n".join(json.dumps({"id": i, "vector": [i, 1]}) for i in range(1, 50)))
    run(tmp_path, "import", "h", str(src))
    hits = json.loads(
        run(tmp_path, "search", "h", "--vector", "[3, 1]", "-k", "2", "--ef", "50", "--json").output
    )
    assert len(hits) == 2
    assert "ef" in run(tmp_path, "search", "h", "--vector", "[3, 1]", "--ef", "0", ok=False).output


def test_help_everywhere_and_demo(tmp_path):
    for args in (
        ["--help"],
        ["collection", "--help"],
        ["collection", "create", "--help"],
        ["import", "--help"],
        ["search", "--help"],
        ["demo", "--help"],
        ["ingest", "--help"],
        ["ask", "--help"],
    ):
        assert "Usage" in run(tmp_path, *args).output
    out = run(tmp_path, "demo", "--keep", str(tmp_path / "demo")).output
    assert "5 files, " in out and "(extractive): If an ingestion is killed, running it" in out
    assert "source: server.md > Running vdb as a server > Security" in out
    ask = ["--question", "What is vdb?"]
    again = run(tmp_path, "demo", "--keep", str(tmp_path / "demo"), *ask).output
    assert "5 files unchanged" in again and "Q: What is vdb?" in again
    assert f"The database stays in {tmp_path / 'demo'}." in again
    model = str(fixture_file("models", "stories260K.gguf"))
    written = run(tmp_path, "demo", "--keep", str(tmp_path / "demo"), *ask, "--model", model).output
    assert "A (generated): " in written and "(extractive)" not in written


def test_demo_removes_its_database_unless_kept(tmp_path, monkeypatch):
    """Without --keep the throwaway database is gone when `vdb demo` ends (a subprocess
    with its own TMPDIR, left empty); with a bare --keep it stays where it says."""
    import re
    import subprocess
    import sys
    import tempfile

    from tests.conftest import ROOT

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "vdb", "demo", "--question", "What is vdb?"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "TMPDIR": str(tmp)},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    used = re.search(r"^database: (.+)$", result.stdout, re.M).group(1)
    assert used.startswith(str(tmp)) and "Q: What is vdb?" in result.stdout
    assert not os.path.exists(used) and list(tmp.iterdir()) == []
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    docs = tmp_path / "docs"  # a one-chunk documentation: this run checks only --keep
    docs.mkdir()
    (docs / "vdb.md").write_text("# vdb\n\nvdb is a vector database.\n")
    monkeypatch.setattr("vdb.cli.demo.DOCS", docs)
    out = run(tmp_path, "demo", "--keep", "--question", "What is vdb?").output
    kept = re.search(r"^The database stays in (.+)\.$", out, re.M).group(1)
    assert kept.startswith(str(tmp)) and (Path(kept) / "data.mdb").exists()


def test_ingest_exit_codes_and_plain_progress_without_a_terminal(tmp_path):
    """`vdb ingest` with stdout and stderr to pipes: plain progress lines on stderr (the
    first report and the closing line at least), exit 3 when a file failed, 0 when none
    did; --json alone prints no progress."""
    import re
    import subprocess
    import sys

    from tests.conftest import ROOT

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.md").write_text("# Tea\n\nGreen tea is steamed.\n\n## Black\n\nIt is oxidized.\n")
    (corpus / "b.txt").write_text("Coffee beans are roasted. " * 40)
    (corpus / "bad.txt").write_bytes("caf\xe9".encode("latin-1"))
    ingest = [sys.executable, "-m", "vdb", "--data", str(tmp_path / "db"), "ingest", str(corpus)]

    def vdb_ingest(*args):
        return subprocess.run(
            [*ingest, "-c", "docs", *args], capture_output=True, text=True, cwd=ROOT, timeout=600
        )

    failed = vdb_ingest()
    assert failed.returncode == 3, failed.stderr
    summary = re.match(
        r"3 files \(0 unchanged, 1 failed\): (\d+) chunks, (\d+) embedded", failed.stdout
    )
    n = int(summary.group(2))
    assert n == int(summary.group(1)) >= 3
    lines = [line for line in failed.stderr.splitlines() if line.startswith("ingest: ")]
    assert len(lines) >= 2
    assert re.fullmatch(
        r"ingest: +\d+% \d+ of (~?\d+|\?) chunks embedded, \d of 3 files read.*", lines[0]
    )
    assert re.fullmatch(
        rf"ingest: 100% {n} of {n} chunks embedded, 3 of 3 files read, [\d.]+ chunks/s, "
        r"done in \d+s",
        lines[-1],
    )
    assert f"skipped {corpus / 'bad.txt'}: " in failed.stderr
    (corpus / "bad.txt").unlink()
    clean = vdb_ingest("--json")
    assert clean.returncode == 0, clean.stderr
    assert json.loads(clean.stdout)["unchanged_files"] == 2 and "ingest: " not in clean.stderr
    usage = run(tmp_path, "ingest", str(corpus), "-c", "docs", "--progress", "often", ok=False)
    assert usage.exit_code == 2 and "ingest --help" in usage.output
    help_text = run(tmp_path, "ingest", "--help").output
    assert "Exit status:" in help_text and "3  some files could not be read" in help_text


def test_ingest_progress_counts_chunks():
    """The expected chunks extrapolate the files read so far by size; the plain line says
    which figures are estimates."""
    from vdb.cli.progress import line
    from vdb.ingest import IngestReport

    report = IngestReport(files=4, bytes=400, planned_files=1, planned_bytes=100, to_embed=10)
    report.embedded = 5
    assert report.expected_embeds == 40
    assert line(report, rate=2.5) == (
        "ingest:  12% 5 of ~40 chunks embedded, 1 of 4 files read, 2.5 chunks/s, ETA 14s"
    )
    assert line(report, rate=2.5, waited=4.0).endswith("ETA 10s")  # counts down after a batch
    report.planned_files, report.planned_bytes, report.to_embed = 4, 400, 32
    assert report.expected_embeds == 32
    assert "5 of 32 chunks" in line(report, rate=0.0)
    report.embedded = 32
    assert line(report, rate=4.0, took=75) == (
        "ingest: 100% 32 of 32 chunks embedded, 4 of 4 files read, 4.0 chunks/s, done in 1m15s"
    )


def test_commands_against_a_server(tmp_path):
    """`vdb serve` in a subprocess, and the same commands through --server with an API key."""
    from tests.rpc import ServerProcess

    server = ServerProcess(tmp_path / "served", "--api-key", "sekret", "--read-only-key", "ro")
    try:
        remote = ["--server", server.address, "--api-key", "sekret"]

        def cli(*args, ok=True, key=remote):
            result = CliRunner().invoke(main, [*key, *args])
            assert (result.exit_code == 0) == ok, result.output
            return result.output

        cli("collection", "create", "docs", "--dim", "2", "--metric", "l2")
        src = tmp_path / "p.jsonl"
        src.write_text("\n".join(json.dumps({"id": i, "vector": [i, 0]}) for i in range(50)))
        assert json.loads(cli("import", "docs", str(src), "-b", "8", "--json"))["count"] == 50
        hits = json.loads(cli("search", "docs", "--vector", "[3.2, 0]", "-k", "2", "--json"))
        assert [h["id"] for h in hits] == [3, 4]
        ro = ["--server", server.address, "--api-key", "ro"]
        assert json.loads(cli("collection", "info", "docs", "--json", key=ro))["count"] == 50
        assert "ReadOnlyError" in cli("collection", "drop", "docs", "--yes", key=ro, ok=False)
        no_key = ["--server", server.address]
        assert "AuthenticationError" in cli("collection", "list", key=no_key, ok=False)
        assert server.terminate() == 0
    finally:
        server.close()
    with vdb.open(tmp_path / "served") as db:
        assert db.get_collection("docs").count() == 50


def test_serve_rejects_bad_options(tmp_path):
    result = CliRunner().invoke(main, ["--data", str(tmp_path), "serve", "--max-message-size", "x"])
    assert result.exit_code != 0 and "not a size" in result.output
    result = CliRunner().invoke(
        main, ["--data", str(tmp_path), "serve", "--tls-key", __file__, "--port", "0"]
    )
    assert result.exit_code != 0 and "both a certificate and a key" in result.output


def test_serve_on_a_busy_port_says_so_in_one_line(tmp_path):
    """The port is checked before gRPC binds it: stderr holds the clean message only (no
    gRPC core log line before it), and no model is prepared first."""
    import socket
    import subprocess
    import sys

    from tests.conftest import ROOT

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "vdb", "--data", str(tmp_path / "db"), "serve"]
            + ["--port", str(port)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
        )
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == f"Error: cannot listen on 127.0.0.1:{port}: Address already in use\n"


def _cli():
    """cli(*args, ok=True): run `vdb args` in process, check its exit code, give its output."""
    runner = CliRunner()

    def cli(*args, ok=True):
        result = runner.invoke(main, list(args))
        assert (result.exit_code == 0) == ok, result.output
        return result.output

    return cli


def test_model_and_embed_commands(tmp_path, minilm_dir, monkeypatch):
    monkeypatch.setenv("VDB_HOME", str(tmp_path / "home"))
    cli = _cli()

    assert "wrote" in cli("model", "convert", str(minilm_dir), "--type", "q8_0", "--name", "mini")
    listed = json.loads(cli("model", "list", "--json"))["models"]
    assert [(m["name"], m["type"]) for m in listed] == [("mini", "q8_0")]
    info = json.loads(cli("model", "info", "mini:q8_0", "--json"))
    assert info["dim"] == 384 and info["tensor_types"]["Q8_0"] > 0
    rows = json.loads(cli("embed", "first text", "second", "--embedder", "mini:q8_0"))
    assert [r["text"] for r in rows] == ["first text", "second"] and len(rows[0]["vector"]) == 384
    src = tmp_path / "lines.txt"
    src.write_text("one\n\ntwo\nthree\n")
    cli("embed", "--file", str(src), "--out", str(tmp_path / "v.npy"), "--embedder", "mini:q8_0")
    vectors = np.load(tmp_path / "v.npy")
    assert vectors.shape == (3, 384)
    one = json.loads(cli("embed", "one", "--embedder", "mini:q8_0"))[0]["vector"]
    np.testing.assert_allclose(vectors[0], one, atol=1e-6)
    assert "ModelNotFoundError" in cli("embed", "x", "--embedder", "nope", ok=False)
    # --model, the option's former name, still works (hidden)
    assert json.loads(cli("embed", "one", "--model", "mini:q8_0"))[0]["vector"] == one
    assert "once" in cli("embed", "x", "--model", "a", "--embedder", "b", ok=False)
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    assert "not UTF-8" in cli("embed", "--file", str(tmp_path / "latin1.txt"), ok=False)
    cli("embed", "one", "--out", str(tmp_path / "w"), "--embedder", "mini:q8_0")
    assert (tmp_path / "w.npy").exists()
    assert "removed" in cli("model", "remove", "mini", "--yes")
    assert json.loads(cli("model", "list", "--json"))["models"] == []


def test_text_collection_commands(tmp_path, minilm, monkeypatch):
    monkeypatch.setenv("VDB_HOME", str(tmp_path / "home"))
    (tmp_path / "home" / "models").mkdir(parents=True)
    (tmp_path / "home" / "models" / "mini.q8_0.gguf").write_bytes(minilm["q8_0"].read_bytes())
    run(tmp_path, "collection", "create", "notes", "--embedder", "mini:q8_0")
    with vdb.open(tmp_path / "db") as db:
        db.get_collection("notes").upsert(
            ["cat", "rain"], documents=["A cat sleeps on the sofa.", "Rain is coming tomorrow."]
        )
    hits = json.loads(
        run(tmp_path, "search", "notes", "--text", "weather", "-k", "1", "--json").output
    )
    assert hits[0]["id"] == "rain"
    assert "exactly one of" in run(tmp_path, "search", "notes", ok=False).output
    info = json.loads(run(tmp_path, "collection", "info", "notes", "--json").output)
    assert info["dim"] == 384 and info["embedder"] == "mini:q8_0"


def test_generation_models_by_name(tmp_path, monkeypatch):
    """`vdb model pull` from a local HTTP server, then the model by its name: list, info,
    path, `vdb llm generate|info|bench NAME`, clear errors for unknown names, remove."""
    from tests.conftest import fixture_file
    from tests.helpers.http_files import FileServer

    monkeypatch.setenv("VDB_HOME", str(tmp_path / "home"))
    cli = _cli()

    data = fixture_file("models", "stories260K.gguf").read_bytes()
    with FileServer() as server:
        server.files["/stories260K.gguf"] = data
        out = cli("model", "pull", server.url("/stories260K.gguf"), "--name", "stories", "-q")
    assert out.startswith("stories: ") and "use it as --model stories" in out
    listed = json.loads(cli("model", "list", "--json"))
    assert [(m["spec"], m["kind"], m["architecture"]) for m in listed["models"]] == [
        ("stories", "generation", "llama")
    ]
    assert listed["known"]["gemma3-270m"]["pulled"] is False
    table = cli("model", "list")
    assert "stories\tgeneration (llama)\t1.2 MB" in table and "known, not pulled: gemma3" in table
    path = cli("model", "path", "stories").strip()
    assert path.endswith("stories.gguf") and open(path, "rb").read() == data
    info = json.loads(cli("model", "info", "stories", "--json"))
    assert (info["kind"], info["architecture"], info["layers"]) == ("generation", "llama", 5)
    assert (info["heads"], info["kv_heads"], info["vocab_size"]) == (8, 4, 512)
    assert set(info["tensor_types"]) == {"F32"} and info["source"].startswith("http://")
    out = cli("llm", "generate", "stories", "Once upon a time", "-n", "12", "-t", "0")
    assert out.startswith(", there was a little girl named Lily")
    assert json.loads(cli("llm", "info", "stories", "--json"))["architecture"] == "llama"
    missing = cli("llm", "generate", "nope", "x", ok=False)
    assert "ModelNotFoundError" in missing and "cached: stories" in missing
    assert "vdb model pull gemma3-270m" in cli("llm", "bench", "gemma3-270m", ok=False)
    assert "ModelSourceError" in cli("model", "pull", "no-such-model", ok=False)
    assert "removed" in cli("model", "remove", "stories", "--yes")
    assert "ModelNotFoundError" in cli("model", "path", "stories", ok=False)


def test_llm_commands():
    from tests.conftest import fixture_file

    model = str(fixture_file("models", "stories260K.gguf"))
    runner = CliRunner()
    out = runner.invoke(main, ["llm", "generate", model, "Once upon a time", "-n", "12", "-t", "0"])
    assert out.exit_code == 0 and out.output.startswith(", there was a little girl named Lily")
    info = json.loads(runner.invoke(main, ["llm", "info", model, "--json"]).output)
    assert info["architecture"] == "llama" and info["tensors"]["F32"]["count"] > 10
    bad = runner.invoke(main, ["llm", "generate", model, "x", "--top-p", "0"])
    assert bad.exit_code != 0 and "SamplerError" in bad.output


def test_llm_chat_and_bench():
    from tests.conftest import fixture_file

    model = str(fixture_file("models", "stories260K.gguf"))
    runner = CliRunner()
    talk = runner.invoke(
        main,
        ["llm", "chat", model, "-n", "8", "--seed", "1", "--mirostat", "2"],
        input="Tell a story\n/reset\nAnother\n\n",
    )
    assert talk.exit_code == 0, talk.output
    assert len([line for line in talk.output.splitlines() if line.strip()]) == 2
    bench = runner.invoke(
        main, ["llm", "bench", model, "--prompt-tokens", "16", "--gen-tokens", "4", "--json"]
    )
    figures = json.loads(bench.output)
    assert figures["prompt_tokens"] == 16 and figures["gen_tokens"] == 4
    assert figures["prompt_tps"] > 0 and figures["itl_p99_ms"] >= figures["itl_p50_ms"]
    args = ["llm", "bench", model, "--prompt-tokens", "16", "--gen-tokens", "5", "--parallel", "3"]
    parallel = json.loads(runner.invoke(main, [*args, "--json"]).output)
    assert parallel["streams"] == 3 and len(parallel["ttft_ms"]) == 3
    assert parallel["aggregate_tps"] > 0 and 1 <= parallel["widest"] <= 3
    assert "aggregate" in runner.invoke(main, args).output
    tiny = runner.invoke(
        main, ["llm", "bench", model, "--prompt-tokens", "1", "--gen-tokens", "1", "--json"]
    )  # a context of 2 positions: the warm-up generation fits in it too
    assert tiny.exit_code == 0 and json.loads(tiny.output)["gen_tokens"] == 1
    too_long = runner.invoke(
        main, ["llm", "bench", model, "--prompt-tokens", "5000", "--gen-tokens", "4"]
    )
    assert too_long.exit_code != 0 and "ContextOverflowError" in too_long.output
    bias = runner.invoke(main, ["llm", "generate", model, "x", "--logit-bias", "oops"])
    assert bias.exit_code != 0 and "ID=BIAS" in bias.output


def test_every_command_module_imports_on_its_own():
    """No import cycle through the command tree: each module first in a fresh interpreter."""
    import subprocess
    import sys

    names = sorted(p.stem for p in (ROOT / "vdb" / "cli").glob("*.py") if p.stem != "__init__")
    code = "import importlib, sys; importlib.import_module('vdb.cli.' + sys.argv[1])"
    for name in names:
        done = subprocess.run([sys.executable, "-c", code, name], capture_output=True, text=True)
        assert done.returncode == 0, (name, done.stderr[-500:])
