"""The llama forward pass and generation against llama.cpp's reference outputs for
stories260K, plus samplers, streaming and bad inputs."""

import json

import numpy as np
import pytest

import llm
from llm.errors import ContextOverflowError, PromptError, SamplerError, UnsupportedModelError
from llm.generate import Sampler, TextStream
from tests.conftest import shared_file


@pytest.fixture(scope="module")
def stories():
    return llm.load(shared_file("models", "stories260K.gguf"))


@pytest.fixture(scope="module")
def reference():
    path = shared_file("reference", "stories260K-llamacpp-greedy.json")
    return json.loads(path.read_text(encoding="utf-8"))["cases"]


def test_logits_and_greedy_tokens_match_llama_cpp(stories, reference):
    for case in reference:
        ids = stories.tokenize(case["prompt"])
        assert ids == case["prompt_tokens"]
        cache = stories.net.new_cache(512)
        logits = stories.net.forward(ids, cache)
        top = np.argsort(-logits)[:10]
        assert top.tolist() == [t for t, _ in case["next_token_top10"]]
        for token, value in case["next_token_top10"]:
            assert abs(float(logits[token]) - value) < 1e-3
        out, token = [], int(np.argmax(logits))
        for _ in case["greedy_tokens"]:
            out.append(token)
            token = int(np.argmax(stories.net.forward([token], cache)))
        assert out == case["greedy_tokens"], case["prompt"]


def test_generate_text_streaming_and_stops(stories, reference):
    case = reference[0]
    n = len(case["greedy_tokens"])
    text = stories.generate(case["prompt"], max_tokens=n, temperature=0)
    assert text == case["greedy_text"]
    pieces = list(stories.generate(case["prompt"], max_tokens=n, temperature=0, stream=True))
    assert len(pieces) > 10 and "".join(pieces) == text
    cut = stories.generate(case["prompt"], max_tokens=n, temperature=0, stop=["Lily"])
    assert cut == text[: text.index("Lily")]
    a = stories.generate("Once upon a time", max_tokens=20, seed=7, temperature=1.0)
    b = stories.generate("Once upon a time", max_tokens=20, seed=7, temperature=1.0)
    assert a == b
    # prefill of all the prompt at once and token-by-token agree
    ids = stories.tokenize("One day, a boy named Tom")
    whole = stories.net.forward(ids, stories.net.new_cache(64), all_logits=True)
    cache = stories.net.new_cache(64)
    steps = np.stack([stories.net.forward([t], cache) for t in ids])
    np.testing.assert_allclose(whole, steps, atol=1e-4)


def test_bad_inputs(stories, minilm):
    with pytest.raises(ContextOverflowError):
        stories.generate("Once upon a time", max_tokens=stories.n_ctx)
    with pytest.raises(PromptError, match="empty"):
        stories.generate([], max_tokens=4)
    with pytest.raises(PromptError):
        stories.net.forward([10_000], stories.net.new_cache(8))
    for bad in ({"temperature": -1}, {"top_p": 0}, {"top_k": -2}, {"min_p": 1.5}, {"seed": -1}):
        with pytest.raises(SamplerError):
            stories.generate("Hi", max_tokens=2, **bad)
    with pytest.raises(UnsupportedModelError, match="bert"):
        llm.load(minilm["f32"])


def test_streams_run_side_by_side(stories):
    a = stories.generate("Once upon a time", max_tokens=20, temperature=0, stream=True)
    first = next(a)
    b = stories.generate("Once upon a time", max_tokens=20, temperature=0)  # a is paused
    assert (first + "".join(a)) == b


def test_samplers_keep_to_their_sets():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal(200) * 3
    best = np.argsort(-logits)
    sampler = Sampler(top_k=5, top_p=1, min_p=0, temperature=2)
    picks = {sampler.pick(logits, [], rng) for _ in range(500)}
    assert picks <= set(best[:5].tolist()) and len(picks) > 1
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    nucleus = int(np.searchsorted(np.cumsum(probs[best]), 0.5)) + 1
    top_p = Sampler(top_k=0, top_p=0.5, min_p=0, temperature=1)
    assert {top_p.pick(logits, [], rng) for _ in range(500)} <= set(best[:nucleus].tolist())
    min_p = Sampler(top_k=0, top_p=1, min_p=0.2, temperature=1)
    allowed = set(np.flatnonzero(probs >= 0.2 * probs.max()).tolist())
    assert {min_p.pick(logits, [], rng) for _ in range(500)} <= allowed
    assert Sampler(temperature=0).pick(logits, [], rng) == best[0]
    penalized = Sampler(temperature=0, repeat_penalty=100.0)
    assert penalized.pick(logits, [int(best[0])], rng) != best[0]


def test_text_stream_is_utf8_safe_and_holds_back_stops():
    stream = TextStream(stop=("END",))
    data = "héllo 🦙 EN".encode()
    out = "".join(stream.push(data[i : i + 1]) for i in range(len(data)))
    assert out == "héllo 🦙 "  # "EN" is held back: it may start "END"
    assert stream.push(b"D and more") == "" and stream.stopped
    plain = TextStream()
    assert plain.push("🦙".encode()[:2]) == "" and plain.push("🦙".encode()[2:]) == "🦙"
