"""Tokenizers built from a GGUF vocabulary, as thin adapters over the `tokenizers` library.

`tokenizer.ggml.model` names the kind: `bert` is WordPiece. GGUF stores a WordPiece vocabulary
the way llama.cpp's converter writes it: a word-start piece carries a leading U+2581 ("▁the"),
a continuation piece has no prefix ("ing" for "##ing"), and bracketed specials ("[CLS]") are
kept as they are. from_gguf restores the original vocabulary from that.
"""

import warnings

from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, normalizers, pre_tokenizers

from llm.errors import TokenizerError, UnsupportedModelError
from llm.gguf_file import GGUFFile

WORD_START = "\u2581"


class TruncationWarning(UserWarning):
    """A text was longer than the model's context and was cut to fit."""


class WordPieceTokenizer:
    """BERT's WordPiece with the model's special tokens: [CLS] text [SEP].

    Example:
        >>> tok = WordPieceTokenizer.from_gguf(GGUFFile("model.gguf"))  # doctest: +SKIP
        >>> tok.encode("Hello world")  # doctest: +SKIP
        [101, 7592, 2088, 102]
    """

    def __init__(self, vocab: list[str], cls_id: int, sep_id: int, unk_id: int, pad_id: int = 0):
        self.vocab = vocab
        self.cls_id, self.sep_id, self.unk_id, self.pad_id = cls_id, sep_id, unk_id, pad_id
        index = {}
        for i, token in enumerate(vocab):
            index.setdefault(token, i)
        # An uncased vocabulary has no upper-case pieces: then text is lower-cased and accents
        # stripped, as the original tokenizer did.
        self.lowercase = not any(t.lower() != t for t in vocab if not _special(t))
        tok = HFTokenizer(models.WordPiece(index, unk_token=vocab[unk_id]))
        tok.normalizer = normalizers.BertNormalizer(
            clean_text=True, handle_chinese_chars=True, lowercase=self.lowercase
        )
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        self._tok = tok

    @classmethod
    def from_gguf(cls, f: GGUFFile) -> "WordPieceTokenizer":
        tokens = f.get("tokenizer.ggml.tokens")
        vocab = [_original_piece(t) for t in tokens]
        cls_id = f.get("tokenizer.ggml.cls_token_id", f.get("tokenizer.ggml.bos_token_id", None))
        sep_id = f.get(
            "tokenizer.ggml.seperator_token_id", f.get("tokenizer.ggml.eos_token_id", None)
        )
        if cls_id is None or sep_id is None:
            raise UnsupportedModelError(f"{f.path.name}: the vocabulary names no CLS or SEP token")
        return cls(
            vocab,
            cls_id=int(cls_id),
            sep_id=int(sep_id),
            unk_id=int(f.get("tokenizer.ggml.unknown_token_id", 100)),
            pad_id=int(f.get("tokenizer.ggml.padding_token_id", 0)),
        )

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, text: str, special: bool = True) -> list[int]:
        return self.encode_batch([text], special)[0]

    def encode_batch(
        self, texts: list[str], special: bool = True, max_tokens: int | None = None
    ) -> list[list[int]]:
        """Token ids per text; with special=True wrapped in [CLS] ... [SEP]. With max_tokens,
        longer texts are cut to that many ids (specials included) with a TruncationWarning."""
        _check_texts(texts)
        ids = [e.ids for e in self._tok.encode_batch(texts, add_special_tokens=False)]
        if special:
            ids = [[self.cls_id, *x, self.sep_id] for x in ids]
        if max_tokens is not None:
            cut = [i for i, x in enumerate(ids) if len(x) > max_tokens]
            if cut:
                warnings.warn(
                    f"{len(cut)} text(s) longer than {max_tokens} tokens were truncated "
                    f"(the first, text {cut[0]}, has {len(ids[cut[0]])})",
                    TruncationWarning,
                    stacklevel=3,
                )
                for i in cut:
                    x = ids[i]
                    ids[i] = x[: max_tokens - 1] + [self.sep_id] if special else x[:max_tokens]
        return ids

    def count(self, text: str) -> int:
        """Tokens the model sees for text, specials included (before any truncation)."""
        return len(self.encode(text))

    def decode(self, ids) -> str:
        specials = {self.cls_id, self.sep_id, self.pad_id}
        return self._tok.decode([int(i) for i in ids if int(i) not in specials])


def _special(token: str) -> bool:
    return token.startswith("[") and token.endswith("]")


def _original_piece(token: str) -> str:
    if token.startswith(WORD_START):
        return token[1:]
    if _special(token):
        return token
    return "##" + token


def _check_texts(texts) -> None:
    if isinstance(texts, str) or not isinstance(texts, list | tuple):
        raise TokenizerError(f"texts must be a list of strings, got {type(texts).__name__}")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TokenizerError(f"text {i} is a {type(text).__name__}, not a str")


def load(f: GGUFFile):
    """The tokenizer a GGUF file's vocabulary describes."""
    kind = f.get("tokenizer.ggml.model", None)
    if kind == "bert":
        return WordPieceTokenizer.from_gguf(f)
    raise UnsupportedModelError(f"{f.path.name}: tokenizer {kind!r} is not supported")
