"""Tokenizers built from a GGUF vocabulary, as thin adapters over well-kept libraries.

`tokenizer.ggml.model` names the kind:
  bert   WordPiece (the `tokenizers` library). GGUF stores the vocabulary the way llama.cpp's
         converter writes it: a word-start piece carries a leading U+2581 ("▁the"), a
         continuation piece has no prefix ("ing" for "##ing"), and bracketed specials
         ("[CLS]") are kept as they are. from_gguf restores the original vocabulary.
  llama  SentencePiece (the `sentencepiece` library), from a model built from the GGUF
         tokens, scores and types, with byte fallback.
  gpt2   byte-level BPE (the `tokenizers` library) from the tokens and merges, split first by
         the regex of the pre-tokenizer `tokenizer.ggml.pre` names.
"""

import warnings

import numpy as np
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


# GGUF token types (the same numbers as SentencePiece's piece types)
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


class _GenerativeTokenizer:
    """What SentencePiece and BPE vocabularies share: special ids and the BOS/EOS policy."""

    def _specials(self, f: GGUFFile, add_bos_default: bool) -> None:
        self.tokens = list(f.get("tokenizer.ggml.tokens"))
        self.types = np.asarray(f.get("tokenizer.ggml.token_type", [NORMAL] * len(self.tokens)))
        self.bos_id = _token_id(f, "bos")
        self.eos_id = _token_id(f, "eos")
        self.add_bos = bool(f.get("tokenizer.ggml.add_bos_token", add_bos_default))
        self.add_eos = bool(f.get("tokenizer.ggml.add_eos_token", False))
        self.control = {i for i, t in enumerate(self.types) if t in (CONTROL, UNKNOWN, UNUSED)}
        # end of generation: EOS, end of turn / message, and the end-of-turn tokens chat
        # models use, when the vocabulary has them (as llama.cpp decides)
        ids = {_token_id(f, n) for n in ("eos", "eot", "eom")}
        index = {t: i for i, t in enumerate(self.tokens) if t in _END_TEXTS}
        self.end_ids = frozenset(i for i in ids | set(index.values()) if i is not None)

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    def encode(self, text: str, bos: bool | None = None, special: bool = False) -> list[int]:
        """Token ids of text, with BOS (and EOS) as the model wants them unless bos says
        otherwise. special=True also reads special tokens written in the text ("<|user|>")."""
        _check_texts([text])
        ids = self._encode(text, special)
        if (self.add_bos if bos is None else bos) and self.bos_id is not None:
            ids = [self.bos_id, *ids]
        if self.add_eos and self.eos_id is not None and bos is None:
            ids = [*ids, self.eos_id]
        return ids

    def count(self, text: str) -> int:
        return len(self.encode(text))

    def piece_bytes(self, token: int) -> bytes:
        """The bytes one token stands for when it follows other tokens (for streaming)."""
        return self._piece_bytes(int(token))


class SentencePieceTokenizer(_GenerativeTokenizer):
    def __init__(self, f: GGUFFile):
        from sentencepiece import SentencePieceProcessor
        from sentencepiece import sentencepiece_model_pb2 as sp_pb2

        self._specials(f, add_bos_default=True)
        scores = f.get("tokenizer.ggml.scores", np.zeros(len(self.tokens)))
        types = self.types.copy()
        unk = int(f.get("tokenizer.ggml.unknown_token_id", 0))
        types[types == UNKNOWN] = UNUSED  # SentencePiece wants exactly one unknown piece
        types[unk] = UNKNOWN
        model = sp_pb2.ModelProto()
        spec = model.trainer_spec
        spec.model_type = sp_pb2.TrainerSpec.BPE
        spec.vocab_size = len(self.tokens)
        spec.byte_fallback = bool((types == BYTE).any())
        spec.unk_id, spec.bos_id, spec.eos_id, spec.pad_id = unk, -1, -1, -1
        norm = model.normalizer_spec
        norm.name = "identity"
        norm.add_dummy_prefix = bool(f.get("tokenizer.ggml.add_space_prefix", True))
        norm.remove_extra_whitespaces = False
        norm.escape_whitespaces = True
        for token, score, kind in zip(self.tokens, scores, types, strict=True):
            piece = model.pieces.add()
            piece.piece, piece.score, piece.type = token, float(score), int(kind)
        self._sp = SentencePieceProcessor(model_proto=model.SerializeToString())
        norm.add_dummy_prefix = False  # for text that follows a special token
        self._sp_inner = SentencePieceProcessor(model_proto=model.SerializeToString())
        self._special_re = _special_pattern(self.tokens, self.types)
        self._index = {t: i for i, t in enumerate(self.tokens)}

    def _encode(self, text: str, special: bool) -> list[int]:
        if not special or self._special_re is None:
            return self._sp.encode(text)
        ids = []
        for i, (part, is_special) in enumerate(_split_specials(text, self._special_re)):
            if is_special:
                ids.append(self._index[part])
            elif part:
                ids += (self._sp if i == 0 else self._sp_inner).encode(part)
        return ids

    def decode(self, ids) -> str:
        return self._sp.decode([int(i) for i in ids if int(i) not in self.control])

    def _piece_bytes(self, token: int) -> bytes:
        if token in self.control:
            return b""
        piece = self.tokens[token]
        if self.types[token] == BYTE:
            return bytes([int(piece[3:5], 16)])
        return piece.replace(WORD_START, " ").encode("utf-8")


# Pre-tokenizer regexes by tokenizer.ggml.pre, as llama.cpp splits text before BPE.
BPE_SPLITS = {
    "llama-bpe": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    "qwen2": r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+"
    r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
}
GPT2_SPLITS = ("gpt-2", "default", None)


class BPETokenizer(_GenerativeTokenizer):
    def __init__(self, f: GGUFFile):
        from tokenizers import AddedToken, Regex

        self._specials(f, add_bos_default=False)
        pre = f.get("tokenizer.ggml.pre", None)
        if pre not in BPE_SPLITS and pre not in GPT2_SPLITS:
            raise UnsupportedModelError(
                f"{f.path.name}: BPE pre-tokenizer {pre!r} is not supported"
            )
        merges = [tuple(m.split(" ", 1)) for m in f.get("tokenizer.ggml.merges")]
        vocab = {t: i for i, t in enumerate(self.tokens)}
        tok = HFTokenizer(models.BPE(vocab, merges, ignore_merges=pre == "llama-bpe"))
        if pre in BPE_SPLITS:
            tok.pre_tokenizer = pre_tokenizers.Sequence(
                [
                    pre_tokenizers.Split(Regex(BPE_SPLITS[pre]), behavior="isolated"),
                    pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
                ]
            )
        else:
            tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        tok.decoder = decoders.ByteLevel()
        self._tok = tok
        self._plain = HFTokenizer.from_str(tok.to_str())  # without specials read from text
        specials = [
            t for t, k in zip(self.tokens, self.types, strict=True) if k in (CONTROL, USER_DEFINED)
        ]
        tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
        self._bytes = _byte_decoder()

    def _encode(self, text: str, special: bool) -> list[int]:
        return (self._tok if special else self._plain).encode(text, add_special_tokens=False).ids

    def decode(self, ids) -> str:
        return b"".join(self._piece_bytes(int(i)) for i in ids).decode("utf-8", errors="replace")

    def _piece_bytes(self, token: int) -> bytes:
        if token in self.control:
            return b""
        piece = self.tokens[token]
        if self.types[token] == USER_DEFINED:
            return piece.encode("utf-8")
        return bytes(self._bytes.get(ch, 0) for ch in piece)


def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level alphabet: printable stand-in character -> byte."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[chr(b)] = b
        else:
            chars[chr(256 + extra)] = b
            extra += 1
    return chars


def _special_pattern(tokens, types):
    import re

    specials = [t for t, k in zip(tokens, types, strict=True) if k in (CONTROL, USER_DEFINED) and t]
    if not specials:
        return None
    return re.compile("|".join(re.escape(t) for t in sorted(specials, key=len, reverse=True)))


def _split_specials(text: str, pattern):
    pos = 0
    for m in pattern.finditer(text):
        yield text[pos : m.start()], False
        yield m.group(0), True
        pos = m.end()
    yield text[pos:], False


_END_TEXTS = frozenset(
    (
        "<|eot_id|>",
        "<|im_end|>",
        "<|end|>",
        "<end_of_turn>",
        "<|endoftext|>",
        "<EOT>",
        "<|end_of_text|>",
        "<｜end▁of▁sentence｜>",
    )
)


def _token_id(f: GGUFFile, name: str) -> int | None:
    value = f.get(f"tokenizer.ggml.{name}_token_id", None)
    if value is None or int(value) >= len(f.get("tokenizer.ggml.tokens")):
        return None
    return int(value)


def load(f: GGUFFile):
    """The tokenizer a GGUF file's vocabulary describes."""
    kind = f.get("tokenizer.ggml.model", None)
    if kind == "bert":
        return WordPieceTokenizer.from_gguf(f)
    if kind == "llama":
        return SentencePieceTokenizer(f)
    if kind == "gpt2":
        return BPETokenizer(f)
    raise UnsupportedModelError(f"{f.path.name}: tokenizer {kind!r} is not supported")
