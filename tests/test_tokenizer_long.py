"""Long texts through the WordPiece tokenizer: a text cut to a prefix before tokenizing (when
only its first tokens are kept) and a text tokenized in pieces cut at spaces give the very
tokens of the whole text, while the tokenizer's work memory stays bounded."""

import random
import warnings

import pytest

import embed
from llm import tokenizer as wordpiece


@pytest.fixture(scope="module")
def tok(minilm):
    return embed.Embedder(minilm["q8_0"]).tokenizer


def _text(n_words: int, seed: int = 1) -> str:
    rng = random.Random(seed)
    words = ["The", "quick", "fox,", "jumps!", "Ünïcode", "naïve", "日本語", "x" * 150, "a.b-c"]
    words += ["\n", "\t", "  "]
    return " ".join(rng.choice(words) for _ in range(n_words))


def test_pieces_and_prefixes_give_the_whole_texts_tokens(tok, monkeypatch):
    monkeypatch.setattr(wordpiece, "PIECE_CHARS", 2000)  # many pieces in a short text
    text = _text(6000)
    whole = [tok.cls_id, *tok._tok.encode(text, add_special_tokens=False).ids, tok.sep_id]
    assert len(text) > 10 * wordpiece.PIECE_CHARS
    assert tok.count(text) == len(whole)
    assert tok.encode_batch([text, "short", text[:100]])[0] == whole
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", wordpiece.TruncationWarning)
        for keep in (3, 40, 256, 1000):
            ids = tok.encode_batch([text], max_tokens=keep)[0]
            assert ids == [*whole[: keep - 1], tok.sep_id], keep


def test_a_text_of_spaces_or_one_word_is_read_up_to_a_bound(tok):
    with pytest.warns(wordpiece.TruncationWarning, match="has over"):
        ids = tok.encode_batch(["word " * 2_000_000], max_tokens=8)[0]
    assert len(ids) == 8
    for text in (" " * 2_000_000 + "end", "y" * 2_000_000):
        ids = tok.encode_batch([text], max_tokens=8)[0]  # what the first 8,192 characters hold
        assert len(ids) <= 8
