"""Chat templates (the model's own, rendered with jinja2, or the plain fallback), chat(),
end-of-turn tokens and cancellation."""

import functools
import threading

import pytest

import llm
from llm import chat, synthetic
from llm.errors import PromptError
from llm.gguf_file import GGUFFile
from tests.conftest import fixture_file

MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello."},
    {"role": "user", "content": "Why?"},
]


@functools.cache
def template(name):
    """The chat template of a vocabulary file of tests/fixtures/models/vocab/."""
    return GGUFFile(fixture_file("models", "vocab", name)).get("tokenizer.chat_template")


def test_templates_from_gguf_files_render():
    qwen = chat.render(template("qwen2-cases.gguf"), MESSAGES)
    assert qwen == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nWhy?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    no_system = chat.render(template("qwen2-cases.gguf"), MESSAGES[1:2])
    assert no_system.startswith("<|im_start|>system\nYou are a helpful assistant<|im_end|>")
    phi = chat.render(template("ggml-vocab-phi-3.gguf"), MESSAGES[1:], bos_token="<s>")
    assert phi == (
        "<s><|user|>\nHi<|end|>\n<|assistant|>\nHello.<|end|>\n<|user|>\nWhy?<|end|>\n"
        "<|assistant|>\n"
    )
    assert chat.render(None, MESSAGES) == (
        "System: Be brief.\n\nUser: Hi\n\nAssistant: Hello.\n\nUser: Why?\n\nAssistant:"
    )


def test_bad_messages_and_templates():
    for bad in (
        "Hi",
        [],
        [{"role": "user"}],
        [{"role": "wizard", "content": "x"}],
        [{"role": "user", "content": 3}],
        [("user", "Hi")],
        None,
    ):
        with pytest.raises(PromptError):
            chat.render(None, bad)
    with pytest.raises(PromptError, match="does not parse"):
        chat.render("{% for m in messages %}", MESSAGES)
    with pytest.raises(PromptError, match="no system"):
        chat.render("{{ raise_exception('no system') }}", MESSAGES)
    with pytest.raises(PromptError):  # the sandbox refuses attribute games
        chat.render("{{ messages.__class__.__mro__ }}{{ ''.__class__.__subclasses__() }}", MESSAGES)


@pytest.fixture(scope="module")
def phi_model(tmp_path_factory):
    """A small synthetic llama model with phi-3's vocabulary and chat template."""
    vocab = fixture_file("models", "vocab", "ggml-vocab-phi-3.gguf")
    path = tmp_path_factory.mktemp("phi") / "phi.gguf"
    return llm.load(synthetic.write(path, vocab, qtype="Q8_0", embd_qtype="Q8_0"))


def test_chat_uses_the_models_template_and_special_tokens(phi_model):
    tok = phi_model.tokenizer
    text = phi_model.chat_prompt(MESSAGES[1:2])
    assert text == "<s><|user|>\nHi<|end|>\n<|assistant|>\n"
    ids = tok.encode(text, bos=False, special=True)
    assert ids.count(tok.bos_id) == 1 and ids[0] == tok.bos_id
    end = tok.tokens.index("<|end|>")
    assert end in ids and end in tok.end_ids
    # the reply stops at the end-of-turn token: force it first
    assert phi_model.chat(MESSAGES[1:2], max_tokens=5, logit_bias={end: 1e4}) == ""
    reply = phi_model.chat(MESSAGES[1:2], max_tokens=6, temperature=0)
    assert isinstance(reply, str)


@pytest.fixture(scope="module")
def stories():
    return llm.load(fixture_file("models", "stories260K.gguf"))


def test_plain_fallback_and_cancellation(stories):
    assert stories.chat_template is None
    reply = stories.chat([{"role": "user", "content": "Tell a story."}], max_tokens=40, seed=1)
    assert "\nUser:" not in reply
    cut = stories.chat([{"role": "user", "content": "Tell a story."}], 40, stop="a", seed=1)
    assert "a" not in cut
    cancel = threading.Event()
    stream = stories.generate("Once upon a time", max_tokens=60, stream=True, cancel=cancel)
    first = next(stream)
    cancel.set()
    assert first and list(stream) == []  # nothing after the token in flight
    closed = stories.generate("Once upon a time", max_tokens=60, stream=True)
    next(closed)
    closed.close()  # stopping a stream stops the generation
    with pytest.raises(StopIteration):
        next(closed)
