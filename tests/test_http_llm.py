"""Any OpenAI-compatible server as rag's generator: rag.ask(..., llm=OpenAICompatible(url)) and
`vdb ask --llm-url` against a real `vdb serve --http-port 0` with stories260K, giving the
answers a local model gives from the same prompt."""

import json
import sys

import pytest
from click.testing import CliRunner

import llm
import vdb
from tests.conftest import fixture_file
from tests.helpers.http_client import HANDBOOK
from tests.rpc import ServerProcess
from vdb import errors, rag
from vdb.cli.main import main
from vdb.database import DEFAULT_EMBEDDER
from vdb.openai_compatible import OpenAICompatible

pytest.importorskip("openai")
pytest.importorskip("uvicorn")

KEY = "k"
QUESTION = "How long are backups kept?"
DOCS = HANDBOOK[:4]


@pytest.fixture(scope="module")
def docs_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("docs")
    with vdb.open(path) as db:
        col = db.create_collection("docs", embedder=DEFAULT_EMBEDDER, text=True)
        col.upsert(list(range(len(DOCS))), documents=DOCS, payloads=[{"file": "handbook.md"}] * 4)
    return path


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    model = fixture_file("models", "stories260K.gguf")
    server = ServerProcess(
        tmp_path_factory.mktemp("gw"), "--http-port", "0", "--model", str(model), "--api-key", KEY
    )
    try:
        yield f"http://{server.http_address}/v1"
    finally:
        server.terminate()
        server.close()


@pytest.fixture(scope="module")
def stories():
    return llm.load(fixture_file("models", "stories260K.gguf"))


def test_rag_ask_with_an_openai_server_answers_as_the_local_model(docs_path, url, stories):
    remote = OpenAICompatible(url, api_key=KEY, chat=False)
    assert remote.model == "stories260K.gguf" and remote.n_ctx == stories.n_ctx
    settings = dict(k=3, max_tokens=20, temperature=0)
    with vdb.open(docs_path, read_only=True) as db:
        col = db.get_collection("docs")
        pieces = []
        answer = rag.ask(col, QUESTION, llm=remote, on_piece=pieces.append, **settings)
        local = rag.ask(col, QUESTION, stories, **settings)
        assert isinstance(answer, rag.Answer) and not answer.extractive
        assert answer.text == local.text and "".join(pieces) == answer.text
        assert len(pieces) > 1
        assert answer.sources == local.sources and answer.cited == local.cited
        chat = OpenAICompatible(url, api_key=KEY)
        answer = rag.ask(col, QUESTION, llm=chat, **settings)
        sources = rag.as_sources(rag.search(col, QUESTION, k=3))
        used, messages = rag.prompt_messages(chat, QUESTION, sources, 20)
        assert answer.text == stories.chat(messages, 20, temperature=0).lstrip()
        assert answer.sources == used
        with pytest.raises(errors.InvalidArgumentError, match="not both"):
            rag.ask(col, QUESTION, stories, llm=chat)


def test_vdb_ask_llm_url(docs_path, url, stories):
    args = ["--data", str(docs_path), "ask", QUESTION, "-c", "docs", "-k", "3", "-n", "20"]
    remote = ["--llm-url", url, "--llm-key", KEY, "--llm-completions", "--temperature", "0"]
    result = CliRunner().invoke(main, [*args, *remote, "--json"])
    assert result.exit_code == 0, result.output
    got = json.loads(result.output)
    with vdb.open(docs_path, read_only=True) as db:
        local = rag.ask(
            db.get_collection("docs"), QUESTION, stories, k=3, max_tokens=20, temperature=0
        )
    assert got["text"] == local.text and not got["extractive"]
    assert [s["id"] for s in got["sources"]] == [s.id for s in local.sources]
    result = CliRunner().invoke(main, [*args, *remote])
    assert result.exit_code == 0 and local.text in result.output
    assert "Sources" in result.output
    result = CliRunner().invoke(main, [*args, "--llm-url", url, "--llm-key", "wrong"])
    assert result.exit_code != 0 and "AuthenticationError" in result.output
    result = CliRunner().invoke(main, [*args, "--llm-model", "x"])
    assert result.exit_code != 0 and "need --llm-url" in result.output


def test_errors_of_the_remote_generator(url, monkeypatch):
    with pytest.raises(errors.AuthenticationError, match="LLM server"):
        OpenAICompatible(url, api_key="wrong")
    with pytest.raises(errors.InvalidArgumentError):
        OpenAICompatible("ftp://example.org/v1")
    with pytest.raises(errors.UnavailableError):
        OpenAICompatible("http://127.0.0.1:1/v1", timeout=5)
    monkeypatch.setitem(sys.modules, "openai", None)
    with pytest.raises(ImportError, match=r"vdb\[http\]"):
        OpenAICompatible(url, api_key=KEY)
