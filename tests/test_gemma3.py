"""Gemma 3 270M (the real Q4_K_M file from PyPI) against llama.cpp's outputs on it
(tests/golden/gemma3-270m.json, made by tests/golden/make_gemma3.py): tokens, next-token
logits at every prompt position, and greedy continuations, each position run as a decode
step as llama.cpp ran it.

Bit-for-bit agreement is out of reach on this model: a float32 sum taken in another order
can move an activation across an 8-bit or float16 rounding step, and Gemma 3 carries such a
step through its layers into the logits. Measured: our own logits move by up to 2.7 when only
the RMSNorm sums change from float32 to float64, and llama.cpp's prefill and decode paths
differ by up to 0.25 on these prompts. So the logits are held within 0.75 of llama.cpp's
(their spread is about 4.5; ours stay within 0.5 today), the first position, where no
attention can amplify a difference, within 0.02, and greedy continuations equal token for
token on three prompts (on some CPUs one parts late, where our two best logits are within
NEAR_TIE); the fourth (\"Once upon a time\") meets a near-tie after a few tokens.
"""

import json
import os

import numpy as np
import pytest

import llm
from tests.conftest import ROOT

GOLDEN = json.loads((ROOT / "tests" / "golden" / "gemma3-270m.json").read_text("utf-8"))
CASES = GOLDEN["cases"]
GREEDY_EQUAL = ("The capital of France is", "def fibonacci(n):", "Question: What colour")
NEAR_TIE = 0.75  # logits this close may swap between sums taken in other orders (see above)


@pytest.fixture(scope="module")
def gemma(gemma3_270m):
    return llm.load(gemma3_270m, n_ctx=1024)


@pytest.fixture(scope="module")
def runs(gemma):
    """Per case: our logits at every prompt position (decode steps), our greedy tokens, and
    at each greedy step the lead of our pick over the runner-up."""
    out = []
    for case in CASES:
        cache = gemma.net.new_cache(256)
        logits = [gemma.net.forward([t], cache) for t in case["tokens"]]
        greedy, leads = [], []
        last = logits[-1]
        for _ in case["greedy"]:
            greedy.append(int(np.argmax(last)))
            second, first = np.partition(last, -2)[-2:]
            leads.append(float(first - second))
            last = gemma.net.forward([greedy[-1]], cache)
        out.append((np.stack(logits), greedy, leads))
    return out


def test_the_file_is_the_one_the_golden_outputs_came_from(gemma3_270m):
    from vdb import models

    assert models.KNOWN["gemma3-270m"].sha256 == GOLDEN["model_sha256"]


def test_architecture_read_from_the_file(gemma):
    cfg, net = gemma.config, gemma.net
    assert (cfg.architecture, cfg.n_layers, cfg.d_model, cfg.head_dim) == ("gemma3", 18, 640, 256)
    assert (cfg.n_heads, cfg.n_kv_heads, cfg.sliding_window) == (4, 1, 512)
    windows = [layer.window for layer in net.layers]
    assert windows == [0 if i % 6 == 5 else 512 for i in range(18)]  # every 6th is global
    assert {layer.rope for layer in net.layers} == {(10000.0, 1.0), (1e6, 1.0)}
    assert net.output is net.tok_embd or net.output.raw is net.tok_embd.raw  # tied


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["prompt"][:24])
def test_tokens_match_llama_cpp(gemma, case):
    assert gemma.tokenize(case["prompt"]) == case["tokens"]


@pytest.mark.parametrize("i", range(len(CASES)), ids=lambda i: CASES[i]["prompt"][:24])
def test_next_token_logits_match_llama_cpp(runs, i):
    case, (logits, _, _) = CASES[i], runs[i]
    for pos, (ids, values) in enumerate(zip(case["top_ids"], case["top_logits"], strict=True)):
        ours = logits[pos][ids]
        err = np.abs(ours - np.array(values, np.float32)).max()
        assert err < (0.02 if pos == 0 else 0.75), (pos, err)
        assert int(np.argmax(logits[pos])) in ids[:3], pos  # our pick is among llama.cpp's best 3


@pytest.mark.parametrize("i", range(len(CASES)), ids=lambda i: CASES[i]["prompt"][:24])
def test_greedy_continuation_matches_llama_cpp(gemma, runs, i):
    case, (_, greedy, leads) = CASES[i], runs[i]
    if case["prompt"].startswith(GREEDY_EQUAL):
        pairs = enumerate(zip(greedy, case["greedy"], strict=True))
        same = next((j for j, (a, b) in pairs if a != b), None)
        if same is None:
            assert gemma.detokenize(greedy) == case["greedy_text"]
        else:  # a CPU that sums in another order may part only at a near-tie, and late
            assert same >= 8 and leads[same] < NEAR_TIE, (same, leads[same])
    else:  # a near-tie: the same start
        assert greedy[:3] == case["greedy"][:3]


def test_generate_answers_from_a_paragraph(gemma):
    prompt = (
        "Context: The Eiffel Tower was completed in 1889 for the World's Fair in Paris.\n"
        "Question: When was the Eiffel Tower completed?\nAnswer:"
    )
    assert "1889" in gemma.generate(prompt, max_tokens=16, temperature=0)  # a digit per token


NOTES = {
    "zebra.md": "# Zebras\n\nZebras have black and white stripes. Each pattern is unique.\n",
    "code.md": "# Errors\n\nThe error code XK-4471 means the disk is full. Free some space.\n",
    "moon.txt": "The moon orbits the earth in about 27 days. It has no air.\n",
}


@pytest.fixture(scope="module")
def notes(tmp_path_factory):
    import vdb
    from vdb.ingest import ingest

    root = tmp_path_factory.mktemp("notes")
    for name, text in NOTES.items():
        (root / name).write_text(text)
    path = tmp_path_factory.mktemp("db") / "db"
    here = os.getcwd()
    os.chdir(root)  # files named as given: the same prompt in every run
    try:
        with vdb.open(path) as db:
            ingest(db, ["."], "notes")
    finally:
        os.chdir(here)
    return path


def test_ask_answers_from_the_sources_and_cites_them(gemma, notes):
    """A base model (no chat template) answers through the few-shot frame. A 270M model is
    no oracle: this question is answered and cited with every way of naming the files tried,
    where others (the moon's orbit) come out right or wrong with the files' names."""
    import vdb
    from vdb import rag

    assert gemma.chat_template is None
    with vdb.open(notes) as db:
        col = db.get_collection("notes")
        question = "What does error code XK-4471 mean?"
        answer = rag.ask(col, question, gemma, k=3, max_tokens=48, temperature=0)
    assert not answer.extractive and "disk" in answer.text.lower()
    top = answer.sources[0]
    assert top.file.endswith("code.md") and answer.cited and answer.cited[0] == top.number


def test_cli_ask_with_the_real_model(gemma3_270m, notes):
    from click.testing import CliRunner

    from vdb.cli.main import main as cli

    args = ["--data", str(notes), "ask", "What does error code XK-4471 mean?"]
    args += ["-c", "notes", "--model", str(gemma3_270m), "--temperature", "0", "--json"]
    out = CliRunner().invoke(cli, args)
    assert out.exit_code == 0, out.output
    answer = json.loads(out.output)
    assert not answer["extractive"] and answer["text"]
    numbers = {s["number"]: s for s in answer["sources"]}
    assert set(answer["cited"]) <= set(numbers)
    assert "disk" in answer["text"] and numbers[answer["cited"][0]]["file"].endswith("code.md")
