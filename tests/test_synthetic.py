"""Every architecture and weight type against llama.cpp: small seeded synthetic models
(llm.synthetic) whose logits llama.cpp computed once (tests/golden/make_synthetic.py).

llama.cpp rounds the activations entering a quantized product to 8 bits (16 for F16/BF16
weights); we do too in the decode steps of the types with integer kernels (llm/i8dot.py), but
the two roundings fall independently, so quantized cases agree to a few per cent of the
logits' spread over two layers; float32 cases agree to 1e-3 of it. A wrong RoPE layout, a
dropped bias or sub-norm moves the logits by 0.37 or more of their spread (measured on these
files)."""

import numpy as np
import pytest

import llm
from llm import synthetic
from llm.errors import MalformedModelError
from tests.conftest import ROOT, fixture_file
from tests.golden import make_synthetic as cases

GOLDEN = np.load(ROOT / "tests" / "golden" / "synthetic.npz")
# (max |ours - llama.cpp| / std of llama.cpp's logits, min correlation) per weight type
TOLERANCE = {"F32": (2e-3, 0.999999), "F16": (1e-2, 0.99999), "BF16": (4e-2, 0.9999)}
QUANTIZED = (0.2, 0.999)
# The architectures added with the K-quant kernels, in the types of a Q4_K_M mix: every input
# rounded as llama.cpp rounds it, so only float32 summation order is left (measured at most
# 0.0032 of the spread in Q4_K and Q6_K, 0.04 in Q8_0 and Q5_0, where a rounding step flips)
MIX = {"Q4_K": (8e-3, 0.99999), "Q6_K": (8e-3, 0.99999), "Q8_0": (0.06, 0.9999)}
MIX["Q5_0"] = MIX["Q8_0"]
MIX_ARCHS = ("qwen3", "gemma3", "phi3")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    vocab = fixture_file("models", "stories260K.gguf")
    return lambda arch, q: cases.model_path(tmp_path_factory.getbasetemp(), arch, q, vocab)


@pytest.mark.parametrize("arch, qtype", cases.CASES)
def test_logits_match_llama_cpp(models, arch, qtype):
    path = models(arch, qtype)
    key = f"{arch}-{qtype}"
    assert cases.digest(path) == str(GOLDEN[key + "-sha256"]), (
        "the synthetic model differs from the one the golden logits were made from: "
        "run tests/golden/make_synthetic.py"
    )
    ours, ref = cases.our_logits(llm.load(path)), GOLDEN[key]
    max_err, min_corr = TOLERANCE.get(qtype, QUANTIZED)
    if arch in MIX_ARCHS and qtype in MIX:
        max_err, min_corr = MIX[qtype]
    err = np.abs(ours - ref).max() / ref.std()
    corr = min(np.corrcoef(a, b)[0, 1] for a, b in zip(ours, ref, strict=True))
    assert err < max_err and corr > min_corr, (err, corr)
    # llama.cpp's greedy pick is ours too, or within a near-tie of it (random weights make
    # flat logits, and the two engines round the activations independently)
    picked = ours[np.arange(len(ours)), ref.argmax(axis=1)]
    assert np.all(picked >= ours.max(axis=1) - 0.1 * ref.std()), ours.max(axis=1) - picked


def test_a_wrong_rope_layout_is_caught(models):
    model = llm.load(models("qwen2", "F32"))
    model.net.neox = False
    ours, ref = cases.our_logits(model), GOLDEN["qwen2-F32"]
    assert np.abs(ours - ref).max() / ref.std() > 0.3


def test_bitnet_sub_norms_and_scales_are_read(models):
    model = llm.load(models("bitnet", "TQ2_0"))
    layer = model.net.layers[0]
    assert layer.attn_sub_norm.shape == (256,) and layer.ffn_sub_norm.shape == (512,)
    assert all(layer.scale[name] is not None for name in layer.scale)
    assert model.net.output.raw is model.net.tok_embd.raw  # tied (and regrouped)


def _mapped_pages(a: np.ndarray) -> int:
    """How many of the array's pages this process has mapped (/proc/self/pagemap)."""
    page = 4096
    first, last = a.ctypes.data // page, (a.ctypes.data + a.nbytes - 1) // page
    with open("/proc/self/pagemap", "rb") as f:
        f.seek(first * 8)
        entries = np.frombuffer(f.read((last - first + 1) * 8), np.uint64)
    return int((entries >> np.uint64(63)).sum())


@pytest.mark.parametrize(
    "arch, qtype",
    [
        ("llama", "Q4_0"),
        ("qwen2", "Q4_0"),
        ("llama", "Q8_0"),
        ("llama", "TQ2_0"),
    ],
)
def test_integer_model_prefills_in_passes(models, arch, qtype, monkeypatch):
    """A model whose matrices are all regrouped (Q4_0, Q8_0, TQ2_0) runs long prompts in
    passes: the same logits as one pass (the integer products of a row do not depend on the
    others), and the file's pages of the regrouped matrices stay out of memory."""
    from llm import i8dot, llama

    if not i8dot.AVAILABLE:
        pytest.skip("no AVX2")
    model = llm.load(models(arch, qtype))
    net = model.net
    assert net.integer and net.layers[0].gate.packed is not None
    prompt = cases.PROMPT[:11]
    whole = net.forward(prompt, net.new_cache(32), all_logits=True)
    monkeypatch.setattr(llama, "PREFILL_ROWS", 4)
    cache = net.new_cache(32)
    passes = net.forward(prompt, cache, all_logits=True)
    assert cache.length == len(prompt) and passes.shape == whole.shape
    np.testing.assert_allclose(passes, whole, rtol=0, atol=1e-5 * whole.std())
    last = net.forward(prompt, net.new_cache(32))
    np.testing.assert_allclose(last, whole[-1], rtol=0, atol=1e-5 * whole.std())
    try:
        matrices = list(net._matrices())
        mapped = [_mapped_pages(t.raw) for t in matrices]
    except OSError:
        pytest.skip("no /proc/self/pagemap")
    pages = sum(-(-t.raw.nbytes // 4096) for t in matrices)
    # The pages shared with a neighbour stay; the kernel's fault-around may map back a few
    # more when a neighbouring tensor is read. Read in place, every page would be mapped.
    edges = 2 * len(mapped)
    assert sum(mapped) <= edges + (pages - edges) // 4, (sum(mapped), pages)


def _no_window(net):
    for layer in net.layers:
        layer.window = 0


def _one_rope_base(net):
    for layer in net.layers:
        layer.rope = net.layers[0].rope  # the windowed layers' base everywhere


def _no_qk_norm(net):
    for layer in net.layers:
        layer.q_norm = None


def _swap_gate_up(net):
    for layer in net.layers:
        layer.gate, layer.up = layer.up, layer.gate


MUTATIONS = {
    "gemma3 without its sliding window": ("gemma3", _no_window),
    "gemma3 with one RoPE base": ("gemma3", _one_rope_base),
    "gemma3 scaling q by 1/sqrt(d / heads)": (
        "gemma3",
        lambda net: setattr(net, "q_scale", np.float32(1 / np.sqrt(256 / 4))),
    ),
    "gemma3 without its embedding scale": ("gemma3", lambda net: setattr(net, "embed_scale", None)),
    "gemma3 with SwiGLU": ("gemma3", lambda net: setattr(net, "gelu", False)),
    "gemma3 without q/k norms": ("gemma3", _no_qk_norm),
    "qwen3 without q/k norms": ("qwen3", _no_qk_norm),
    "qwen3 with the llama RoPE layout": ("qwen3", lambda net: setattr(net, "neox", False)),
    "phi3 with the llama RoPE layout": ("phi3", lambda net: setattr(net, "neox", False)),
    "phi3 with gate and up swapped": ("phi3", _swap_gate_up),
}


@pytest.mark.parametrize("qtype, floor", [("F32", 0.01), ("Q4_K", 0.015)])
@pytest.mark.parametrize("mutation", MUTATIONS)
def test_a_wrong_architecture_detail_is_caught(models, mutation, qtype, floor):
    """Each detail of the new architectures matters: undo one and the logits leave llama.cpp's
    by more than the tolerance, in F32 (2e-3 of their spread; the smallest move measured is
    0.030, one RoPE base) and in Q4_K (8e-3; the smallest measured is 0.020, SwiGLU for
    GELU)."""
    arch, mutate = MUTATIONS[mutation]
    model = llm.load(models(arch, qtype))
    mutate(model.net)
    ours, ref = cases.our_logits(model), GOLDEN[f"{arch}-{qtype}"]
    assert np.abs(ours - ref).max() / ref.std() > floor


def test_rope_frequency_factors_divide_the_frequencies(tmp_path):
    """rope_freqs.weight (Llama 3.1-style files): factors of 1 change nothing; others move
    the logits; a wrong length is refused."""
    vocab = fixture_file("models", "stories260K.gguf")
    half = 256 // 4 // 2  # the tiny shape's rope dimensions / 2

    def logits(name, factors):
        path = synthetic.write(tmp_path / name, vocab, rope_factors=factors, seed=1)
        return cases.our_logits(llm.load(path))

    plain = logits("plain.gguf", None)
    np.testing.assert_array_equal(logits("ones.gguf", np.ones(half)), plain)
    factors = np.ones(half)
    factors[half // 2 :] = 8.0  # the low frequencies slowed, as Llama 3.1 does
    assert np.abs(logits("eight.gguf", factors) - plain).max() > 1e-3
    with pytest.raises(MalformedModelError, match="rope_freqs"):
        logits("short.gguf", np.ones(half - 1))


def test_what_the_engine_cannot_run_is_refused_by_name(tmp_path):
    """RoPE scaling other than linear, long-context Phi-3's factor tensors, and a gemma3 file
    without its sliding window: errors that name them, before any kernel runs."""
    from llm.errors import UnsupportedModelError

    vocab = fixture_file("models", "stories260K.gguf")
    yarn = synthetic.write(tmp_path / "yarn.gguf", vocab, metadata={"rope.scaling.type": "yarn"})
    with pytest.raises(UnsupportedModelError, match="RoPE scaling 'yarn'"):
        llm.load(yarn)
    linear = synthetic.write(
        tmp_path / "linear.gguf",
        vocab,
        metadata={"rope.scaling.type": "linear", "rope.scaling.factor": 4.0},
    )
    assert llm.load(linear).net.layers[0].rope == (10000.0, 0.25)
    long = synthetic.write(
        tmp_path / "long.gguf",
        vocab,
        arch="phi3",
        shape=dict(synthetic.SHAPES["tiny"], n_layers=1),
        extra_tensors={"rope_factors_long.weight": np.ones(32)},
    )
    with pytest.raises(UnsupportedModelError, match="rope_factors_long"):
        llm.load(long)
    no_window = synthetic.write(
        tmp_path / "gemma.gguf",
        vocab,
        arch="gemma3",
        shape=dict(synthetic.SHAPES["tiny"], head_size=128, n_layers=6),
    )
    with pytest.raises(MalformedModelError, match="sliding_window"):
        llm.load(no_window)
