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

The vocabulary is checked before either library sees it (VocabularyError names the key and
the value): the tokens are a non-empty array of strings; scores and token types, when given,
have one entry per token (finite scores, types 0-6); byte tokens read <0xHH>; merges are
pairs; flags are booleans. A special token id outside the vocabulary (converters write
2^32-1 for "none") is ignored, as llama.cpp ignores it: the role takes its default, or none.
Whatever sentencepiece or tokenizers still refuse becomes a VocabularyError too.
"""

import re
import warnings

import numpy as np
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, normalizers, pre_tokenizers

from llm.errors import TokenizerError, UnsupportedModelError, VocabularyError
from llm.gguf_file import GGUFFile, show

WORD_START = "\u2581"
CHARS_PER_TOKEN = 16  # characters of a long text tokenized first, per token kept (see _prefix)
MAX_CHARS_PER_TOKEN = 1024  # ... and at most this many
BATCH_TEXTS = 64  # texts the tokenizers library encodes at once
PIECE_CHARS = 1 << 16  # characters of a long text encoded at once (see _pieces)


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
        tokens = vocabulary_tokens(f)
        _token_types(f, len(tokens))
        vocab = [_original_piece(t) for t in tokens]
        cls_id = _first(_token_id(f, "cls"), _token_id(f, "bos"))
        sep_id = _first(_token_id(f, "seperator"), _token_id(f, "eos"))
        if cls_id is None or sep_id is None:
            raise UnsupportedModelError(f"{f.path.name}: the vocabulary names no CLS or SEP token")
        unk_id = _first(_token_id(f, "unknown"), 100 if len(tokens) > 100 else None)
        if unk_id is None:
            raise VocabularyError(
                f"{f.path.name}: tokenizer.ggml.unknown_token_id = "
                f"{show(f.get('tokenizer.ggml.unknown_token_id', None))} names no token of the "
                f"{len(tokens)}"
            )
        pad_id = _first(_token_id(f, "padding"), 0)
        return _library(
            f,
            "tokenizers",
            lambda: cls(vocab, cls_id=cls_id, sep_id=sep_id, unk_id=unk_id, pad_id=pad_id),
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
        shortened = set()
        if max_tokens is not None:  # only a prefix of a long text can matter: tokenize that
            texts = list(texts)
            for i, text in enumerate(texts):
                prefix = self._prefix(text, max_tokens)
                if len(prefix) < len(text):
                    texts[i] = prefix
                    shortened.add(i)
        ids = []
        for start in range(0, len(texts), BATCH_TEXTS):  # the library's work memory stays small
            part = texts[start : start + BATCH_TEXTS]
            short = [t if len(t) <= PIECE_CHARS else "" for t in part]
            for text, e in zip(
                part, self._tok.encode_batch(short, add_special_tokens=False), strict=True
            ):
                ids.append(e.ids if len(text) <= PIECE_CHARS else self._encode_long(text))
        if special:
            ids = [[self.cls_id, *x, self.sep_id] for x in ids]
        if max_tokens is not None:
            cut = [i for i, x in enumerate(ids) if len(x) > max_tokens]
            if cut:
                more = "over " if cut[0] in shortened else ""
                warnings.warn(
                    f"{len(cut)} text(s) longer than {max_tokens} tokens were truncated "
                    f"(the first, text {cut[0]}, has {more}{len(ids[cut[0]])})",
                    TruncationWarning,
                    stacklevel=3,
                )
                for i in cut:
                    x = ids[i]
                    ids[i] = x[: max_tokens - 1] + [self.sep_id] if special else x[:max_tokens]
        return ids

    def _prefix(self, text: str, max_tokens: int) -> str:
        """text, or a prefix of it ending at a space that already holds more than max_tokens
        tokens: the pre-tokenizer splits at spaces, so the prefix's tokens are the text's first
        tokens, and truncation keeps the same ones. (Tokenizing a long text whole takes memory
        and time in proportion to its length: gigabytes for tens of megabytes.) A text whose
        first max_tokens * MAX_CHARS_PER_TOKEN characters hold no more tokens than that, all
        spaces or one endless word, is read up to there."""
        n, most = max_tokens * CHARS_PER_TOKEN, max_tokens * MAX_CHARS_PER_TOKEN
        while n < len(text):
            space = max(text.rfind(c, 0, n) for c in " \n\t")
            if space > 0:
                prefix = text[:space]
                if len(self._tok.encode(prefix, add_special_tokens=False).ids) > max_tokens:
                    return prefix
            if n >= most:
                return text[:most]
            n *= 4
        return text

    def _encode_long(self, text: str) -> list[int]:
        return [
            i
            for piece in _pieces(text)
            for i in self._tok.encode(piece, add_special_tokens=False).ids
        ]

    def count(self, text: str) -> int:
        """Tokens the model sees for text, specials included (before any truncation)."""
        _check_texts([text])
        return 2 + sum(
            len(self._tok.encode(piece, add_special_tokens=False).ids) for piece in _pieces(text)
        )

    def decode(self, ids) -> str:
        specials = {self.cls_id, self.sep_id, self.pad_id}
        return self._tok.decode([int(i) for i in ids if int(i) not in specials])


def _pieces(text: str):
    """A long text in pieces of about PIECE_CHARS characters cut at spaces, where the
    pre-tokenizer splits anyway: their tokens, one piece after the other, are the text's (a
    word longer than a piece, which has no wordpieces anyway, is the exception). Tokenizing
    tens of megabytes at once takes gigabytes."""
    start = 0
    while len(text) - start > PIECE_CHARS:
        stop = start + PIECE_CHARS
        space = max(text.rfind(c, start, stop) for c in " \n\t")
        stop = space if space > start else stop
        yield text[start:stop]
        start = stop
    yield text[start:]


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


# GGUF token types (the same numbers as SentencePiece's piece types; 0 is llama.cpp's
# "undefined", read as normal)
UNDEFINED, NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 0, 1, 2, 3, 4, 5, 6
BYTE_PIECE = re.compile(r"<0x[0-9A-Fa-f]{2}>")


def vocabulary_tokens(f: GGUFFile) -> list[str]:
    """tokenizer.ggml.tokens, a non-empty array of strings."""
    tokens = f.get("tokenizer.ggml.tokens")
    if not isinstance(tokens, list) or not tokens:
        _bad(f, "tokenizer.ggml.tokens", tokens, "is not a non-empty array of strings")
    return tokens


def _token_types(f: GGUFFile, n: int) -> np.ndarray:
    """tokenizer.ggml.token_type as int32 (all NORMAL when absent); byte tokens read <0xHH>."""
    key = "tokenizer.ggml.token_type"
    types = f.get(key, None)
    if types is None:
        return np.full(n, NORMAL, np.int32)
    _check_array(f, key, types, n, "iu")
    bad = np.flatnonzero((types < UNDEFINED) | (types > BYTE))
    if bad.size:
        _bad(f, f"{key}[{bad[0]}]", int(types[bad[0]]), "is not a token type (0 to 6)")
    types = types.astype(np.int32)
    tokens = f.get("tokenizer.ggml.tokens")
    for i in np.flatnonzero(types == BYTE):
        if not BYTE_PIECE.fullmatch(tokens[i]):
            _bad(f, f"tokenizer.ggml.tokens[{i}]", tokens[i], "is a byte token not written <0xHH>")
    return types


def _scores(f: GGUFFile, n: int) -> np.ndarray:
    key = "tokenizer.ggml.scores"
    scores = f.get(key, None)
    if scores is None:
        return np.zeros(n, np.float32)
    _check_array(f, key, scores, n, "fiu")
    if not np.isfinite(scores).all():
        i = int(np.flatnonzero(~np.isfinite(scores))[0])
        _bad(f, f"{key}[{i}]", float(scores[i]), "is not finite")
    return scores


def _merges(f: GGUFFile) -> list[tuple[str, str]]:
    key = "tokenizer.ggml.merges"
    merges = f.get(key)
    if not isinstance(merges, list):
        _bad(f, key, merges, "is not an array of strings")
    pairs = [tuple(m.split(" ", 1)) for m in merges]
    for i, pair in enumerate(pairs):
        if len(pair) != 2 or not all(pair):
            _bad(f, f"{key}[{i}]", merges[i], "is not two pieces separated by a space")
    return pairs


def _check_array(f: GGUFFile, key: str, value, n: int, kinds: str) -> None:
    if not isinstance(value, np.ndarray) or value.dtype.kind not in kinds or len(value) != n:
        _bad(f, key, value, f"is not an array of {n} numbers, one per token")


def _flag(f: GGUFFile, key: str, default: bool) -> bool:
    value = f.get(key, default)
    if type(value) is not bool:
        _bad(f, key, value, "is not a boolean")
    return value


def _bad(f: GGUFFile, key: str, value, problem: str):
    raise VocabularyError(f"{f.path.name}: {key} = {show(value)} {problem}")


def _first(*ids):
    """The first of ids that is not None."""
    return next((i for i in ids if i is not None), None)


def _library(f: GGUFFile, library: str, build):
    """build(), with any error sentencepiece or tokenizers raise (a RuntimeError, a bare
    Exception, a Rust panic) as a VocabularyError."""
    try:
        return build()
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: B036 - tokenizers' Rust panics are BaseExceptions
        raise VocabularyError(
            f"{f.path.name}: {library} refused the vocabulary: {type(exc).__name__}: "
            f"{show(str(exc), 200)}"
        ) from None


class _GenerativeTokenizer:
    """What SentencePiece and BPE vocabularies share: special ids and the BOS/EOS policy."""

    def _specials(self, f: GGUFFile, add_bos_default: bool) -> None:
        self.tokens = vocabulary_tokens(f)
        self.types = _token_types(f, len(self.tokens))
        self.bos_id = _token_id(f, "bos")
        self.eos_id = _token_id(f, "eos")
        self.add_bos = _flag(f, "tokenizer.ggml.add_bos_token", add_bos_default)
        self.add_eos = _flag(f, "tokenizer.ggml.add_eos_token", False)
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
        scores = _scores(f, len(self.tokens))
        types = self.types.copy()
        types[types == UNDEFINED] = NORMAL
        unk = _first(_token_id(f, "unknown"), 0)
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
        norm.add_dummy_prefix = _flag(f, "tokenizer.ggml.add_space_prefix", True)
        norm.remove_extra_whitespaces = False
        norm.escape_whitespaces = True
        for token, score, kind in zip(self.tokens, scores, types, strict=True):
            piece = model.pieces.add()
            piece.piece, piece.score, piece.type = token, float(score), int(kind)
        self._sp = _library(
            f,
            "sentencepiece",
            lambda: SentencePieceProcessor(model_proto=model.SerializeToString()),
        )
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
        self._specials(f, add_bos_default=False)
        pre = f.get("tokenizer.ggml.pre", None)
        if pre not in BPE_SPLITS and pre not in GPT2_SPLITS:
            raise UnsupportedModelError(
                f"{f.path.name}: BPE pre-tokenizer {show(pre)} is not supported"
            )
        merges = _merges(f)
        specials = [
            t for t, k in zip(self.tokens, self.types, strict=True) if k in (CONTROL, USER_DEFINED)
        ]
        self._tok, self._plain = _library(
            f, "tokenizers", lambda: _bpe(self.tokens, merges, pre, specials)
        )
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


def _bpe(tokens, merges, pre, specials):
    """(tokenizer reading special tokens in text, tokenizer that does not)."""
    from tokenizers import AddedToken, Regex

    vocab = {t: i for i, t in enumerate(tokens)}
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
    plain = HFTokenizer.from_str(tok.to_str())
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    return tok, plain


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
    """tokenizer.ggml.{name}_token_id, or None when it is absent or outside the vocabulary."""
    key = f"tokenizer.ggml.{name}_token_id"
    value = f.get(key, None)
    if value is None:
        return None
    if type(value) is not int:
        _bad(f, key, value, "is not an integer")
    return value if 0 <= value < len(vocabulary_tokens(f)) else None


GENERATIVE = ("llama", "gpt2")  # the tokenizers of generation models
EMBEDDING = ("bert",)


def load(f: GGUFFile, kinds: tuple[str, ...] | None = None):
    """The tokenizer a GGUF file's vocabulary describes; kinds: the tokenizer.ggml.model
    values the caller can use (UnsupportedModelError for any other)."""
    kind = f.get("tokenizer.ggml.model", None)
    if kinds is not None and kind not in kinds:
        raise UnsupportedModelError(
            f"{f.path.name}: tokenizer {show(kind)} does not fit this {f.architecture} model "
            f"(expected: {', '.join(kinds)})"
        )
    if kind == "bert":
        return WordPieceTokenizer.from_gguf(f)
    if kind == "llama":
        return SentencePieceTokenizer(f)
    if kind == "gpt2":
        return BPETokenizer(f)
    raise UnsupportedModelError(f"{f.path.name}: tokenizer {show(kind)} is not supported")
