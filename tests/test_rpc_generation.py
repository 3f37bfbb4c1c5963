"""The Generation service through a real server on 127.0.0.1 port 0 with stories260K: the
same text as the embedded model, concurrent streams, cancellation, limits, bad input, and replacing
the model while streams run."""

import shutil
import threading
import time

import grpc
import pytest
from click.testing import CliRunner

import llm
import vdb
from llm.errors import ContextOverflowError, NotGGUFError, PromptError, SamplerError
from tests.conftest import fixture_file
from tests.rpc import serving
from vdb.cli.main import main as cli
from vdb.rpc._gen import generation_pb2 as gpb
from vdb.rpc._gen import generation_pb2_grpc as ggrpc

Code = grpc.StatusCode
PROMPT = "Once upon a time"


@pytest.fixture(scope="module")
def stories():
    return llm.load(fixture_file("models", "stories260K.gguf"))


@pytest.fixture
def models(tmp_path):
    """A model directory holding stories260K twice (a.gguf, b.gguf) and a file that is not
    GGUF."""
    root = tmp_path / "models"
    root.mkdir()
    for name in ("a.gguf", "b.gguf"):
        shutil.copy(fixture_file("models", "stories260K.gguf"), root / name)
    (root / "junk.gguf").write_bytes(b"not a model at all" * 10)
    return root


@pytest.fixture
def served(tmp_path, models):
    with serving(tmp_path / "db", model=str(models / "a.gguf")) as (server, address):
        yield server, address


@pytest.fixture
def model(served):
    with vdb.connect_model(served[1]) as m:
        yield m


def _until(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.01)


def test_generate_and_chat_match_the_embedded_model(model, stories):
    for settings in (
        {"temperature": 0},
        {"temperature": 1.0, "seed": 7, "top_k": 0, "min_p": 0.0},
        {"temperature": 0.9, "seed": 3, "logit_bias": {1: float("-inf")}, "repeat_penalty": 1.3},
        {"mirostat": 2, "seed": 11},
    ):
        local = stories.generate(PROMPT, 40, stop=["."], **settings)
        assert model.generate(PROMPT, 40, stop=["."], **settings) == local, settings
    ids = stories.tokenize(PROMPT)
    assert model.tokenize(PROMPT) == ids
    assert model.tokenize(PROMPT, bos=False) == stories.tokenize(PROMPT, bos=False)
    assert model.generate(ids, 20, temperature=0) == stories.generate(ids, 20, temperature=0)
    messages = [{"role": "user", "content": "Tell me about a cat."}]
    assert model.chat(messages, 30, temperature=0) == stories.chat(messages, 30, temperature=0)


def test_streams_report_why_they_finished(model, stories):
    run = model.generate(PROMPT, 24, temperature=0, stream=True)
    pieces = list(run)
    assert len(pieces) > 5 and "".join(pieces) == stories.generate(PROMPT, 24, temperature=0)
    assert (run.finish_reason, run.completion_tokens, run.model) == ("length", 24, "a.gguf")
    assert run.prompt_tokens == len(stories.tokenize(PROMPT))
    run = model.generate(PROMPT, 200, temperature=0, stop="Lily", stream=True)
    assert "Lily" not in "".join(run) and run.finish_reason == "stop"
    info = model.info()
    assert info["loaded"] and info["name"] == "a.gguf" and info["architecture"] == "llama"
    assert info["vocab_size"] == 512 and info["active_streams"] == 0


def test_concurrent_streams_each_get_their_own_text(model, stories):
    prompts = [PROMPT, "One day", "The little dog", "Lily and Ben"]
    expected = [stories.generate(p, 60, temperature=0) for p in prompts]
    results = [None] * len(prompts)

    def run(i):
        with vdb.connect_model(model.address) as m:
            results[i] = m.generate(prompts[i], 60, temperature=0)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == expected
    info = model.info()
    assert info["batched_tokens"] >= 4 * 59 and 0 < info["batched_steps"] <= info["batched_tokens"]
    assert info["queued_streams"] == 0
    # a model with float matrices keeps no prefixes: their products would not repeat exactly
    assert info["prefix_cache"] == {"bytes": 0, "budget": 0, "entries": 0, "hits": 0}


def test_cancel_stops_the_generation_and_frees_the_stream(served, model):
    server, _ = served
    run = model.generate(PROMPT, 400, temperature=0, stream=True)
    next(run)
    run.close()
    assert run.finish_reason == "cancelled"
    _until(lambda: server.models.active == 0)
    # a stream cancelled while it waits for its step leaves the queue
    with server.models.model.batcher.hold():
        run = model.generate(PROMPT, 50, temperature=0, stream=True)
        waiter = threading.Thread(target=lambda: next(run, None))
        waiter.start()
        _until(lambda: server.models.queued == 1)
        run.close()
        waiter.join()
        _until(lambda: server.models.queued == 0 and server.models.active == 0)
    assert model.generate(PROMPT, 5, temperature=0)


def test_stream_limit(tmp_path, models):
    with serving(tmp_path / "db", model=str(models / "a.gguf"), max_generations=1) as (s, addr):
        with vdb.connect_model(addr) as m:
            with s.models.model.batcher.hold():
                first = m.generate(PROMPT, 10, temperature=0, stream=True)
                holder = threading.Thread(target=lambda: list(first))
                holder.start()
                _until(lambda: s.models.active == 1)
                with pytest.raises(vdb.ResourceExhaustedError):
                    m.generate(PROMPT, 10)
            holder.join()
            assert first.finish_reason == "length"


def test_bad_requests_get_their_status_and_the_server_keeps_serving(served, model, stories):
    # the client raises what the embedded model raises, before sending
    for kwargs, exc in (
        ({"top_p": 0}, SamplerError),
        ({"mirostat": 5}, SamplerError),
        ({"no_such": 1}, SamplerError),
        ({"stop": [""]}, SamplerError),
        ({"max_tokens": -1}, SamplerError),
    ):
        for m in (model, stories):
            with pytest.raises(exc):
                m.generate(PROMPT, **({"max_tokens": 4} | kwargs))
    assert model.generate("", 6, temperature=0) == stories.generate("", 6, temperature=0)
    for m in (model, stories):
        with pytest.raises(PromptError):
            m.generate([], 4)
        with pytest.raises(PromptError):
            m.generate([1, 100_000], 4)
        with pytest.raises(ContextOverflowError):
            m.generate(PROMPT, 100_000)
        with pytest.raises(SamplerError):
            m.generate(PROMPT, 4, logit_bias={100_000: 1.0})
        with pytest.raises(ValueError):
            m.chat([{"role": "user"}], 4)
    stub = ggrpc.GenerationStub(grpc.insecure_channel(served[1]))

    def code(request, method=stub.Generate):
        try:
            list(method(request, timeout=30))
        except grpc.RpcError as exc:
            return exc.code()
        return Code.OK

    bad = (
        gpb.GenerateRequest(prompt="x", prompt_ids=[1]),
        gpb.GenerateRequest(prompt="x", sampler=gpb.SamplerSettings(top_p=2)),
        gpb.GenerateRequest(prompt="x", sampler=gpb.SamplerSettings(temperature=float("nan"))),
        gpb.GenerateRequest(prompt_ids=[70_000]),
        gpb.GenerateRequest(prompt="x", max_tokens=100_000),
    )
    for request in bad:
        assert code(request) == Code.INVALID_ARGUMENT, request
    assert code(gpb.ChatRequest(), stub.Chat) == Code.INVALID_ARGUMENT
    assert code(gpb.GenerateRequest(prompt="x", max_tokens=3)) == Code.OK
    assert model.info()["active_streams"] == 0


def test_without_a_model(server):
    with vdb.connect_model(server[1]) as m:
        assert m.info()["loaded"] is False
        with pytest.raises(vdb.ModelNotLoadedError):
            m.generate(PROMPT, 4)
        with pytest.raises(vdb.ModelNotLoadedError):
            m.tokenize(PROMPT)
        with pytest.raises(vdb.InvalidArgumentError, match="model directory"):
            m.swap("a.gguf")


def test_swap_replaces_the_model_or_keeps_the_old_one(served, model, stories):
    server, _ = served
    for name, exc in (
        ("missing.gguf", FileNotFoundError),
        ("junk.gguf", NotGGUFError),
        ("../a.gguf", vdb.InvalidArgumentError),
        ("", vdb.InvalidArgumentError),
        ("notes.txt", vdb.InvalidArgumentError),
        ("x" * 300 + ".gguf", vdb.InvalidArgumentError),
    ):
        with pytest.raises(exc):
            model.swap(name)
        assert model.info()["name"] == "a.gguf" and model.info()["swaps"] == 0
        assert model.generate(PROMPT, 8, temperature=0) == stories.generate(
            PROMPT, 8, temperature=0
        )
    for bad in (-1, float("inf"), 1e9):
        with pytest.raises(vdb.InvalidArgumentError, match="drain_timeout"):
            model.swap("b.gguf", drain_timeout=bad)
    info = model.swap("b.gguf")
    assert (info["name"], info["swaps"], info["loaded"]) == ("b.gguf", 1, True)
    run = model.generate(PROMPT, 8, temperature=0, stream=True)
    assert "".join(run) == stories.generate(PROMPT, 8, temperature=0) and run.model == "b.gguf"


def test_swap_drains_in_flight_streams(served, model, stories):
    server, address = served
    host = server.models
    swapped = {}
    with vdb.connect_model(address) as admin:
        with host.model.batcher.hold():  # the stream is admitted but waits for its step
            run = model.generate(PROMPT, 12, temperature=0, stream=True)
            reader = threading.Thread(target=lambda: swapped.setdefault("text", "".join(run)))
            reader.start()
            _until(lambda: host.active == 1)
            swapper = threading.Thread(
                target=lambda: swapped.setdefault("info", admin.swap("b.gguf", 60))
            )
            swapper.start()
            _until(lambda: host._swapping)
            assert host.name == "a.gguf"  # waits for the stream
        reader.join()
        swapper.join()
    assert swapped["text"] == stories.generate(PROMPT, 12, temperature=0)
    assert run.model == "a.gguf" and swapped["info"]["name"] == "b.gguf"


def test_swap_aborts_streams_that_outlive_the_drain_timeout(served, model):
    server, address = served
    host = server.models
    errors = []

    def read(run):
        try:
            list(run)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    with vdb.connect_model(address) as admin:
        with host.model.batcher.hold():
            run = model.generate(PROMPT, 12, temperature=0, stream=True)
            reader = threading.Thread(target=read, args=(run,))
            reader.start()
            _until(lambda: host.active == 1)
            assert admin.swap("b.gguf", drain_timeout=0)["name"] == "b.gguf"
        reader.join()
    assert len(errors) == 1 and isinstance(errors[0], vdb.AbortedError)
    assert model.generate(PROMPT, 4, temperature=0)


def test_swap_needs_an_admin_key(tmp_path, models):
    options = {"api_keys": ("rw",), "read_only_keys": ("ro",), "admin_keys": ("adm",)}
    with serving(tmp_path / "db", model=str(models / "a.gguf"), **options) as (_, addr):
        with vdb.connect_model(addr, api_key="ro") as m:
            assert m.generate(PROMPT, 4, temperature=0)  # reading keys may generate
            with pytest.raises(vdb.ReadOnlyError):
                m.swap("b.gguf")
        with vdb.connect_model(addr, api_key="rw") as m:
            with pytest.raises(vdb.PermissionDeniedError, match="admin"):
                m.swap("b.gguf")
        with vdb.connect_model(addr) as m:
            with pytest.raises(vdb.AuthenticationError):
                m.generate(PROMPT, 4)
        with vdb.connect_model(addr, api_key="adm") as m:
            assert m.swap("b.gguf")["name"] == "b.gguf"
        with vdb.connect(addr, api_key="adm") as db:  # an admin key may also write
            db.create_collection("c", 2)


def test_cli_against_the_server(served, stories):
    _, address = served
    runner = CliRunner()
    out = runner.invoke(
        cli, ["--server", address, "llm", "generate", PROMPT, "-n", "16", "-t", "0"]
    )
    assert out.exit_code == 0, out.output
    assert out.output.strip() == stories.generate(PROMPT, 16, temperature=0).strip()
    out = runner.invoke(cli, ["--server", address, "llm", "swap", "b.gguf"])
    assert out.exit_code == 0 and '"name": "b.gguf"' in out.output
    out = runner.invoke(cli, ["--server", address, "llm", "swap", "junk.gguf"])
    assert out.exit_code == 1 and "NotGGUFError" in out.output
    out = runner.invoke(cli, ["--server", address, "llm", "generate", "m.gguf", PROMPT])
    assert out.exit_code == 2 and "not both" in out.output
    out = runner.invoke(cli, ["llm", "generate", PROMPT])
    assert out.exit_code == 2 and "required" in out.output


def test_vdb_serve_with_a_model(tmp_path, models, stories):
    from tests.rpc import ServerProcess

    server = ServerProcess(tmp_path / "db", "--model", str(models / "a.gguf"))
    try:
        with vdb.connect_model(server.address) as m:
            run = m.generate(PROMPT, 300, temperature=0, stream=True)
            first = next(run)
            assert server.terminate() == 0  # SIGTERM lets the stream finish, then exits
            rest = "".join(run)
        assert first + rest == stories.generate(PROMPT, 300, temperature=0)
        assert run.finish_reason == "length"
    finally:
        server.close()
    with pytest.raises(RuntimeError, match="NotGGUFError"):
        ServerProcess(tmp_path / "db", "--model", str(models / "junk.gguf"))
