"""Continuous batching and the prompt-prefix cache on synthetic integer models: a batched
step's rows equal single steps bit for bit; concurrent generations give the text each gives
alone (greedy and seeded, joining mid-way, cancelled, stopped by a string); a prompt from a
cached prefix gives the logits of a cold run."""

import threading

import numpy as np
import pytest

import llm
from llm import omp, synthetic
from llm.batching import Batcher, StepCancelled, _Request
from llm.errors import ContextOverflowError
from llm.prefix import MIN_TOKENS, PrefixCache
from tests.conftest import fixture_file

VOCAB = fixture_file("models", "stories260K.gguf")
SHAPES = [("llama", "Q8_0"), ("qwen2", "Q4_K"), ("gemma3", "Q4_0")]


@pytest.fixture(scope="module", params=SHAPES, ids=lambda p: f"{p[0]}-{p[1]}")
def model(request, tmp_path_factory):
    arch, qtype = request.param
    path = tmp_path_factory.mktemp("batching") / f"{arch}-{qtype}.gguf"
    embd = "Q8_0" if qtype == "Q4_K" else qtype
    return llm.load(synthetic.write(path, VOCAB, arch=arch, qtype=qtype, embd_qtype=embd))


def _prompts(n, lengths, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(3, 500, size=length).tolist() for length in lengths[:n]]


def test_a_batched_step_equals_single_steps(model):
    net = model.net
    assert net.integer
    prompts = _prompts(4, [3, 9, 20, 6])  # caches at different positions (and past a window)
    alone = [net.new_cache(64) for _ in prompts]
    together = [net.new_cache(64) for _ in prompts]
    tokens = []
    for p, a, b in zip(prompts, alone, together, strict=True):
        tokens.append(int(np.argmax(net.forward(p, a))))
        net.forward(p, b)
    for _ in range(5):
        single = np.stack([net.forward([t], c) for t, c in zip(tokens, alone, strict=True)])
        batch = net.forward_batch(tokens, together)
        assert np.array_equal(single, batch)
        assert [c.length for c in alone] == [c.length for c in together]
        tokens = [int(np.argmax(row)) for row in single]
    with pytest.raises(ValueError, match="distinct"):
        net.forward_batch([1, 2], [together[0], together[0]])
    full = net.new_cache(4)
    net.forward([1, 2, 3, 4], full)
    with pytest.raises(ContextOverflowError):
        net.forward_batch([1, 2], [together[1], full])
    assert together[1].length == alone[1].length  # nothing was written


def _alone(model, prompt, **kw):
    return model.generate(prompt, **kw)


def _together(model, jobs, start_after=None):
    """Run model.generate(**job) for each job in its own thread at once (job i waits for job
    start_after[i] to have produced a piece first); returns the texts (or exceptions)."""
    out = [None] * len(jobs)
    started = [threading.Event() for _ in jobs]

    def run(i):
        if start_after and start_after.get(i) is not None:
            started[start_after[i]].wait(60)
        try:
            job = dict(jobs[i])
            cancel_after = job.pop("cancel_after", None)
            cancel = threading.Event()
            pieces = []
            for piece in model.generate(**job, stream=True, cancel=cancel):
                pieces.append(piece)
                started[i].set()
                if cancel_after is not None and len(pieces) >= cancel_after:
                    cancel.set()
            out[i] = "".join(pieces)
        except Exception as exc:  # noqa: BLE001
            out[i] = exc
        finally:
            started[i].set()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return out


def test_concurrent_generations_give_their_text_alone(model):
    prompts = _prompts(4, [5, 30, 12, 50], seed=1)
    jobs = [
        dict(prompt=prompts[0], max_tokens=24, temperature=0),
        dict(prompt=prompts[1], max_tokens=16, temperature=0.9, seed=7),
        dict(prompt=prompts[2], max_tokens=30, temperature=0.7, top_k=20, seed=3),
        dict(prompt=prompts[3], max_tokens=20, temperature=0, prefill_chunk=8),
    ]
    expected = [_alone(model, **job) for job in jobs]
    before = model.batcher.widest
    model.batcher.widest = 0
    got = _together(model, jobs, start_after={3: 0})  # the last joins once the first runs
    assert got == expected
    assert model.batcher.widest >= 2  # steps did take several streams at once
    model.batcher.widest = max(before, model.batcher.widest)


def test_cancel_stop_and_overflow_leave_the_others_alone(model):
    prompts = _prompts(3, [8, 8, 8], seed=2)
    plain = dict(prompt=prompts[0], max_tokens=20, temperature=0)
    text = _alone(model, **plain)
    stop = text[len(text) // 2 : len(text) // 2 + 3] if len(text) > 6 else None
    jobs = [
        plain,
        dict(prompt=prompts[1], max_tokens=40, temperature=0, cancel_after=3),
        dict(prompt=prompts[2], max_tokens=20, temperature=0, stop=[stop] if stop else ()),
        dict(prompt=prompts[0], max_tokens=model.n_ctx, temperature=0),
    ]
    expected_stop = _alone(model, **jobs[2])
    got = _together(model, jobs)
    assert got[0] == text
    assert isinstance(got[1], str)
    assert got[2] == expected_stop
    assert isinstance(got[3], ContextOverflowError)
    assert model.batcher.members == 0 and model.batcher.waiting == 0


def test_a_queued_request_leaves_when_stopped(model):
    batcher = Batcher(model.net)
    cache = model.net.new_cache(16)
    stop = threading.Event()
    errors = []

    def ask():
        try:
            batcher.forward([1, 2, 3], cache, stop.is_set)
        except StepCancelled as exc:
            errors.append(exc)

    with batcher.hold():
        t = threading.Thread(target=ask)
        t.start()
        while batcher.waiting == 0:
            pass
        stop.set()
        t.join(30)
    assert len(errors) == 1 and batcher.waiting == 0 and cache.length == 0


def test_a_cached_prefix_gives_the_logits_of_a_cold_run(model):
    net = model.net
    first, second = _prompts(2, [60, 45], seed=4)
    second = first[:40] + second[:5]  # 40 shared tokens, then its own
    prefixes = PrefixCache(64 << 20)
    cache = net.new_cache(128)
    net.forward(first, cache)
    prefixes.store(first, cache)
    warm = net.new_cache(128)
    assert prefixes.restore(second, warm) == 40
    logits = net.forward(second[40:], warm)
    cold = net.new_cache(128)
    assert np.array_equal(logits, net.forward(second, cold))
    assert np.array_equal(warm.k[:, :, :45], cold.k[:, :, :45])
    assert prefixes.restore(first, net.new_cache(128)) == len(first) - 1  # the last token runs
    assert prefixes.restore(second[:MIN_TOKENS], net.new_cache(128)) == 0  # too short to reuse
    assert prefixes.stats()["hits"] == 2


def test_generate_reuses_prefixes_within_the_budget(tmp_path):
    path = synthetic.write(tmp_path / "m.gguf", VOCAB, qtype="Q8_0")
    cached = llm.load(path)
    plain = llm.load(path, prefix_cache_bytes=0)
    system = _prompts(1, [48], seed=5)[0]
    for tail in ([7, 8, 9], [10, 11], [12, 13, 14, 15]):
        kw = dict(prompt=system + tail, max_tokens=12, temperature=0.8, seed=1)
        run = cached.generate(**kw, stream=True)
        assert "".join(run) == plain.generate(**kw)
    assert run.cached_tokens == len(system)
    stats = cached.prefix_cache.stats()
    assert stats["hits"] >= 2 and 0 < stats["bytes"] <= stats["budget"]
    assert plain.prefix_cache.stats()["entries"] == 0
    small = PrefixCache(stats["bytes"] // 3 + 1)  # room for one prompt of the three
    for tail in ([7, 8, 9], [10, 11], [12, 13, 14, 15]):
        c = cached.net.new_cache(64)
        cached.net.forward(system + tail, c)
        small.store(system + tail, c)
    assert small.stats()["entries"] == 1 and small.bytes <= small.budget
    with pytest.raises(ValueError, match="budget"):
        PrefixCache(-1)


def test_a_long_prompt_runs_over_several_steps_within_the_budget(tmp_path):
    path = synthetic.write(tmp_path / "m.gguf", VOCAB, qtype="Q4_0")
    whole = llm.load(path, prefix_cache_bytes=0)
    whole.batcher.budget = 0
    cut = llm.load(path, prefix_cache_bytes=0)
    cut.batcher.budget = 8
    prompt = _prompts(1, [37], seed=6)[0]
    kw = dict(prompt=prompt, max_tokens=10, temperature=0.8, seed=2)
    assert cut.generate(**kw) == whole.generate(**kw)
    assert cut.batcher.steps == 5 + 9 and whole.batcher.steps == 1 + 9  # 37 = 4 x 8 + 5


def test_every_pass_runs_on_the_one_stepping_thread(model, monkeypatch):
    names = set()
    net = model.net
    for name in ("forward", "forward_batch"):
        real = getattr(net, name)

        def recorded(*args, _real=real, **kwargs):
            names.add(threading.current_thread().name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(net, name, recorded)
    prompts = _prompts(3, [6, 20, 9], seed=4)
    expected = [_alone(model, prompt=p, max_tokens=8, temperature=0) for p in prompts]
    assert _together(model, [dict(prompt=p, max_tokens=8, temperature=0) for p in prompts]) == (
        expected
    )
    assert len(names) == 1 and names.pop().startswith("llm-step")


def test_a_released_team_starts_again(model):
    ids = _prompts(1, [7])[0]
    text = model.generate(ids, 6, temperature=0)
    assert omp.release() == (omp._function() is not None)  # False only without libgomp
    assert model.generate(ids, 6, temperature=0) == text
    done = {}
    t = threading.Thread(
        target=lambda: done.setdefault("text", model.generate(ids, 6, temperature=0))
    )
    t.start()
    t.join()
    assert done["text"] == text


def test_prompt_chunks_run_in_the_order_their_generations_came(model):
    batcher = Batcher(model.net)
    net = model.net
    later = _Request([5, 6, 7], net.new_cache(16), arrived=2.0)  # queued first, started later
    earlier = _Request([8, 9], net.new_cache(16), arrived=1.0)  # its second chunk
    step = _Request([4], net.new_cache(16))
    batcher._queue = [later, step, earlier]
    assert batcher._take() == ([step], earlier)
    assert batcher._queue == [later]
