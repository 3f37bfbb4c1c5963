"""The OpenAI-compatible HTTP API through a real server on 127.0.0.1 port 0 with stories260K
and the default embedder, driven by the official openai client."""

import base64
import http.client
import json
import time

import numpy as np
import pytest

import llm
from tests.conftest import fixture_file
from tests.helpers.http_client import request
from tests.rpc import serving
from vdb import embedding
from vdb.database import DEFAULT_EMBEDDER

openai = pytest.importorskip("openai")

PROMPT = "Once upon a time"
KEY, READ_ONLY = "sekrit", "reader"


@pytest.fixture(scope="module")
def stories():
    return llm.load(fixture_file("models", "stories260K.gguf"))


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    path = tmp_path_factory.mktemp("db")
    model = fixture_file("models", "stories260K.gguf")
    options = dict(
        http_port=0,
        api_keys=(KEY,),
        read_only_keys=(READ_ONLY,),
        model=str(model),
        max_generations=2,
        workers=4,
    )
    with serving(path, **options) as (server, _):
        yield server


@pytest.fixture(scope="module")
def base(served):
    return f"http://127.0.0.1:{served.http_port}"


@pytest.fixture(scope="module")
def client(base):
    return openai.OpenAI(base_url=f"{base}/v1", api_key=KEY, max_retries=0, timeout=60)


def raw(base, path, data=None, key=KEY, method=None):
    """(status, body) of one request."""
    return request(base, path, data, key, method)


def too_large(port, size):
    """(status, body) of a request announcing a body of size bytes (sending only its start)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest("POST", "/v1/completions")
        conn.putheader("Authorization", f"Bearer {KEY}")
        conn.putheader("Content-Length", str(size))
        conn.endheaders(b"{")
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def error_of(payload: bytes) -> dict:
    error = json.loads(payload)["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    return error


def test_health_needs_no_key_and_models_list(base, client, served):
    status, payload = raw(base, "/healthz", key=None)
    assert status == 200 and json.loads(payload)["status"] == "ok"
    ids = [m.id for m in client.models.list().data]
    assert ids == [served.models.name, DEFAULT_EMBEDDER]


def test_completion_matches_the_embedded_model(client, stories):
    for settings in ({"temperature": 0}, {"temperature": 1.0, "seed": 7, "top_p": 0.9}):
        out = client.completions.create(model="", prompt=PROMPT, max_tokens=24, **settings)
        local = stories.generate(PROMPT, 24, **settings)
        assert out.choices[0].text == local, settings
        assert out.choices[0].finish_reason == "length"
        assert out.usage.completion_tokens == 24
        assert out.usage.prompt_tokens == len(stories.tokenize(PROMPT))
        assert out.usage.total_tokens == out.usage.prompt_tokens + 24


def test_stop_strings_end_with_stop(client, stories):
    out = client.completions.create(
        model="", prompt=PROMPT, max_tokens=200, temperature=0, stop=["Lily"]
    )
    assert out.choices[0].text == stories.generate(PROMPT, 200, stop=["Lily"], temperature=0)
    assert "Lily" not in out.choices[0].text and out.choices[0].finish_reason == "stop"


def test_chat_streaming_and_not(client, stories):
    messages = [{"role": "user", "content": "Tell me about a cat."}]
    local = stories.chat(messages, 30, temperature=0)
    out = client.chat.completions.create(model="", messages=messages, max_tokens=30, temperature=0)
    assert out.choices[0].message.content == local
    assert out.choices[0].message.role == "assistant"
    chunks = list(
        client.chat.completions.create(
            model="",
            messages=messages,
            max_tokens=30,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == local and len(chunks) > 5
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0


def test_completion_stream_ends_with_done(base, stories):
    data = {"prompt": PROMPT, "max_tokens": 12, "temperature": 0, "stream": True}
    status, payload = raw(base, "/v1/completions", data)
    events = [e for e in payload.decode().split("\n\n") if e]
    assert status == 200 and events[-1] == "data: [DONE]"
    parts = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert "".join(p["choices"][0]["text"] for p in parts) == stories.generate(
        PROMPT, 12, temperature=0
    )
    assert parts[-1]["choices"][0]["finish_reason"] == "length"


def test_embeddings_equal_the_embedder(client):
    embedder = embedding.load(DEFAULT_EMBEDDER)
    texts = ["a cat on a mat", "the stock market fell"]
    expected = embedder.embed(texts)
    out = client.embeddings.create(model=DEFAULT_EMBEDDER, input=texts, encoding_format="float")
    got = np.array([d.embedding for d in out.data], dtype=np.float32)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    one = client.embeddings.create(model=DEFAULT_EMBEDDER, input=texts[0])
    np.testing.assert_allclose(one.data[0].embedding, expected[0], atol=1e-6)
    raw64 = client.embeddings.with_raw_response.create(
        model=DEFAULT_EMBEDDER, input=texts, encoding_format="base64"
    )
    first = json.loads(raw64.text)["data"][0]["embedding"]
    vec = np.frombuffer(base64.b64decode(first), dtype=np.float32)
    np.testing.assert_array_equal(vec, expected[0])


def test_auth(base):
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{base}/v1", api_key="wrong", max_retries=0).models.list()
    for key in (None, "wrong"):
        status, payload = raw(base, "/v1/models", key=key)
        assert status == 401 and error_of(payload)
    reader = openai.OpenAI(base_url=f"{base}/v1", api_key=READ_ONLY, max_retries=0)
    assert reader.models.list().data


def test_bad_requests_get_400_and_the_server_keeps_serving(base, client, served):
    cases = [
        b"{not json",
        b"[1, 2]",
        {"prompt": 5},
        {"prompt": PROMPT, "max_tokens": "many"},
        {"prompt": PROMPT, "temperature": "hot"},
        {"prompt": PROMPT, "stop": [1]},
        {"prompt": PROMPT, "max_tokens": 0},
        {"prompt": PROMPT, "stream": "yes"},
    ]
    for case in cases:
        status, payload = raw(base, "/v1/completions", case)
        assert status == 400, (case, payload)
        assert error_of(payload)["type"] == "invalid_request_error"
    for case in ({"messages": "hi"}, {"messages": [{"role": "user"}]}, {}):
        status, payload = raw(base, "/v1/chat/completions", case)
        assert status == 400 and error_of(payload)
    for case in ({"input": 3}, {"input": ["a", None]}, {"input": "a", "encoding_format": "x"}):
        status, payload = raw(base, "/v1/embeddings", case)
        assert status == 400 and error_of(payload)
    status, payload = raw(base, "/v1/nothing", {})
    assert status == 404 and error_of(payload)
    status, payload = raw(base, "/v1/completions", {"model": "nope.gguf", "prompt": "x"})
    assert status == 404 and error_of(payload)["code"] == "model_not_found"
    status, payload = raw(base, "/v1/embeddings", {"model": "no-such-model", "input": "x"})
    assert status == 404 and error_of(payload)
    status, payload = too_large(served.http_port, 65 << 20)
    assert status == 413 and error_of(payload)
    assert client.completions.create(model="", prompt=PROMPT, max_tokens=3).choices[0].text


def metric(base, name) -> float:
    status, payload = raw(base, "/metrics")
    assert status == 200
    for line in payload.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} missing")


class _Slow:
    """A model whose streams take 20 ms a step, so that a stream outlives its reader."""

    def __init__(self, model):
        self.model = model

    def __getattr__(self, name):
        return getattr(self.model, name)

    def generate(self, *args, **kwargs):
        run = self.model.generate(*args, **kwargs)
        step = run.step

        def slow():
            time.sleep(0.02)
            return step()

        run.step = slow
        return run


def test_disconnect_frees_the_stream_and_metrics(base, client, served, monkeypatch):
    monkeypatch.setattr(served.models, "model", _Slow(served.models.model))
    stream = client.completions.create(
        model="", prompt=PROMPT, max_tokens=2000, temperature=0, stream=True
    )
    next(iter(stream))
    assert served.models.active == 1
    stream.close()
    assert _idle(served)
    assert metric(base, "vdb_generation_streams_active") == 0
    assert metric(base, "vdb_http_streams_running") == 0
    text = raw(base, "/metrics")[1].decode()
    assert 'vdb_http_requests_total{route="/v1/completions",status="200"}' in text
    assert "vdb_http_request_seconds_bucket" in text and "vdb_collections 0.0" in text
    assert "vdb_query_cache_hit_ratio " in text


def test_full_streams_get_429_and_no_model_503(base, client, served, monkeypatch, tmp_path):
    monkeypatch.setattr(served.models, "model", _Slow(served.models.model))
    streams = [
        client.completions.create(
            model="", prompt=PROMPT, max_tokens=2000, temperature=0, stream=True
        )
        for _ in range(served.options.max_generations)
    ]
    try:
        for stream in streams:
            next(iter(stream))
        status, payload = raw(base, "/v1/completions", {"prompt": PROMPT, "max_tokens": 2})
        assert status == 429 and error_of(payload)["code"] == "rate_limit_exceeded"
    finally:
        for stream in streams:
            stream.close()
    with serving(tmp_path / "bare", http_port=0) as (bare, _):
        url = f"http://127.0.0.1:{bare.http_port}"
        status, payload = raw(
            url, "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}
        )
        assert status == 503 and error_of(payload)["type"] == "server_error"
        assert raw(url, "/healthz")[0] == 200


def test_disconnect_cancels_a_completion_not_streamed(base, served, monkeypatch):
    monkeypatch.setattr(served.models, "model", _Slow(served.models.model))
    conn = http.client.HTTPConnection("127.0.0.1", served.http_port, timeout=30)
    body = json.dumps({"prompt": PROMPT, "max_tokens": 2000, "temperature": 0}).encode()
    conn.request(
        "POST",
        "/v1/completions",
        body,
        {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
    )
    deadline = time.monotonic() + 30
    while not served.models.active and time.monotonic() < deadline:
        time.sleep(0.01)
    assert served.models.active == 1
    conn.sock.shutdown(2)
    conn.close()
    assert _idle(served)
    assert metric(base, "vdb_http_streams_running") == 0


def _idle(served, timeout=30.0) -> bool:
    """Whether the server's generation streams all end within timeout seconds."""
    deadline = time.monotonic() + timeout
    while served.models.active and time.monotonic() < deadline:
        time.sleep(0.05)
    return served.models.active == 0
