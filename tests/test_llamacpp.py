"""Our embeddings against llama.cpp's on the same GGUF file (skipped without llama-cpp-python,
which is never a dependency: pip install llama-cpp-python to run it)."""

import json
import warnings

import numpy as np
import pytest

import embed
from tests.conftest import ROOT, fixture_file, needs_peer

pytestmark = needs_peer("llama_cpp", "llama-cpp-python")
GOLDEN = json.loads((ROOT / "tests" / "golden" / "minilm.json").read_text(encoding="utf-8"))


# Q8_0: llama.cpp also quantizes the activations to 8 bits (we keep them in float32), so the
# two differ by more than either differs from the float32 model.
@pytest.mark.parametrize("qtype, floor", [("f32", 0.9999), ("q8_0", 0.995)])
def test_same_vectors_as_llama_cpp(minilm, qtype, floor):
    import llama_cpp

    ours = embed.Embedder(minilm[qtype])
    model = llama_cpp.Llama(
        model_path=str(minilm[qtype]),
        embedding=True,
        n_ctx=256,
        n_batch=256,
        n_ubatch=256,
        verbose=False,
    )
    texts = [t for t, ids in zip(GOLDEN["texts"], GOLDEN["ids"], strict=True) if len(ids) < 256]
    texts = [t for t in texts if t.strip()]  # llama.cpp refuses empty input
    # llama.cpp's WordPiece splits Hangul and Devanagari combining marks differently from the
    # original tokenizer (which ours follows, see test_tokenizer): compare where ids agree.
    same = [
        t for t in texts if model.tokenize(t.encode(), add_bos=True) == ours.tokenizer.encode(t)
    ]
    assert len(texts) - len(same) <= 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mine = ours.embed(same)
    theirs = np.array(model.embed(same), dtype=np.float32)
    theirs /= np.linalg.norm(theirs, axis=1, keepdims=True)
    cosines = (mine * theirs).sum(axis=1)
    assert cosines.min() >= floor, (cosines.min(), same[int(cosines.argmin())])


@pytest.mark.parametrize("arch", ["llama", "qwen2", "bitnet", "qwen3", "gemma3", "phi3"])
def test_synthetic_golden_logits_are_llama_cpps(tmp_path, arch):
    """The stored golden logits (tests/golden/make_synthetic.py) against a live llama.cpp."""
    from tests.golden import make_synthetic as cases

    golden = np.load(ROOT / "tests" / "golden" / "synthetic.npz")
    vocab = fixture_file("models", "stories260K.gguf")
    for case_arch, qtype in cases.CASES:
        if case_arch != arch:
            continue
        live = cases.llama_cpp_logits(cases.model_path(tmp_path, arch, qtype, vocab))
        ref = golden[f"{arch}-{qtype}"]
        assert np.abs(live - ref).max() / ref.std() < 0.02, qtype


def test_gemma3_golden_outputs_are_llama_cpps(gemma3_270m):
    """tests/golden/gemma3-270m.json (tests/golden/make_gemma3.py) against a live llama.cpp:
    the same tokens, top logits and greedy continuation, position by position."""
    import numpy as np

    from bench.common import llama_cpp_model

    golden = json.loads((ROOT / "tests" / "golden" / "gemma3-270m.json").read_text("utf-8"))
    model = llama_cpp_model(gemma3_270m, n_ctx=256, logits_all=True, n_threads=2)
    for case in golden["cases"]:
        model.reset()
        assert model.tokenize(case["prompt"].encode(), add_bos=True) == case["tokens"]
        for token, ids, values in zip(
            case["tokens"], case["top_ids"], case["top_logits"], strict=True
        ):
            model.eval([token])
            logits = np.array(model.scores[model.n_tokens - 1], dtype=np.float32)
            np.testing.assert_allclose(logits[ids], values, atol=1e-3)
        greedy = []
        for _ in case["greedy"]:
            greedy.append(int(np.argmax(model.scores[model.n_tokens - 1])))
            model.eval([greedy[-1]])
        assert greedy == case["greedy"]
