"""Seeded mutants of GGUF files.

mutant(base, seed, index) picks one operator, weighted, and applies it to a copy of a
well-formed file: metadata values (hyper-parameters, special token ids, flags, strings, value
types), vocabulary arrays (tokens, scores, token types, merges), tensor infos (dimensions,
types, offsets, names), header counts, or raw bytes (bit flips, overwrites, truncation). The
same (base, seed, index) always gives the same bytes, so any mutant can be replayed alone.
"""

import copy
import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.fuzz import gguf_bytes as gb

INTS = (0, 1, 2, 3, 7, 8, 31, 32, 64, 255, 256, 4096, 65535, 2**31 - 1, 2**31, 2**32 - 1)
INTS += (2**23, 2**24, 2**32, 2**62, 2**63 - 1, 2**64 - 1, -1)
FLOATS = (0.0, -0.0, 1.0, -1.0, math.nan, math.inf, -math.inf, 1e-45, 1e38, 1e300, -1e300)
SPECIALS = ("bos", "eos", "unknown", "seperator", "padding", "cls", "mask", "eot", "eom")
HYPER = (
    "context_length",
    "embedding_length",
    "block_count",
    "feed_forward_length",
    "attention.head_count",
    "attention.head_count_kv",
    "rope.dimension_count",
    "rope.freq_base",
    "attention.layer_norm_rms_epsilon",
    "attention.layer_norm_epsilon",
    "attention.key_length",
    "attention.causal",
    "pooling_type",
    "vocab_size",
)
STRINGS = (b"", b"llama", b"qwen2", b"bitnet", b"bert", b"gpt2", b"phi3", b"none", b"x" * 5000)
STRINGS += (b"\xff\xfe", b"gpt-2", b"llama-bpe", b"qwen2", b"default", b"<0x21>", b"\xe2\x96\x81")
TEMPLATES = (
    b"{{ 1/0 }}",
    b"{% for",
    b"{{ messages[99].content }}",
    b"{{ raise_exception('no') }}",
    b"{% for i in range(10**9) %}x{% endfor %}",
    b"{{ messages.append(1) }}",
    b"{{ ''.__class__.__mro__ }}",
    b"{% for m in messages %}{{ m['role'] + 1 }}{% endfor %}",
)
TOKEN_TEXTS = ("", "<0x21>", "<0xZZ>", "<0x0A>", "\u2581the", "[CLS]", "<s>", "a" * 300, "\x00")


@dataclass
class Base:
    """A well-formed file to mutate and the workload that exercises it (llm, vocab, bert)."""

    name: str
    kind: str
    raw: bytes
    doc: gb.Doc

    @classmethod
    def load(cls, path, kind: str, name: str | None = None) -> "Base":
        raw = Path(path).read_bytes()
        return cls(name or Path(path).stem, kind, raw, gb.parse(raw))


def mutant(base: Base, seed: int, index: int) -> tuple[str, bytes]:
    """(what was changed, the mutant's bytes)."""
    rng = np.random.default_rng([seed, index, sum(base.name.encode())])
    ops = [op for op in OPERATORS if op[2](base)]
    weights = np.array([w for _, w, _, _ in ops], dtype=np.float64)
    name, _, _, fn = ops[rng.choice(len(ops), p=weights / weights.sum())]
    what, data = fn(base, rng)
    return f"{name}: {what}"[:300], data


def _int(rng, value=None) -> int:
    if value is not None and rng.random() < 0.5:
        v = int(value)
        return int(rng.choice([v - 1, v + 1, 2 * v, v // 2, 8 * v, 1000 * v, -v, v + 2]))
    return int(rng.choice(INTS))


def _float(rng, value=None) -> float:
    if value is not None and rng.random() < 0.3:
        return float(value) * float(rng.choice([-1.0, 0.5, 2.0, 1e6, 1e-6]))
    return float(rng.choice(FLOATS))


def _scalar(vtype: int, value):
    """value as vtype can hold it (integers wrap, float32 overflows to infinity)."""
    if vtype == gb.FLOAT32:
        with np.errstate(over="ignore"):
            return float(np.float32(value))
    return gb.pack_scalar(vtype, value)


def _doc(base: Base) -> gb.Doc:
    return copy.deepcopy(base.doc)


def _pick(rng, items):
    return items[int(rng.integers(len(items)))]


# ------------------------------------------------------------------------ metadata values


def meta_scalar(base, rng):
    doc = _doc(base)
    kvs = [kv for kv in doc.kvs if kv.vtype in gb.SCALAR]
    kv = _pick(rng, kvs)
    old = kv.value
    if kv.vtype == gb.BOOL:
        kv.value = not old
    elif kv.vtype in (gb.FLOAT32, gb.FLOAT64):
        kv.value = _scalar(kv.vtype, _float(rng, old))
    else:
        kv.value = _scalar(kv.vtype, _int(rng, old))
    return f"{kv.key.decode()} {old!r} -> {kv.value!r}", gb.dump(doc)


def hyper(base, rng):
    """An architecture key set (or added) to an awkward value."""
    doc = _doc(base)
    arch = (doc.kv("general.architecture").value or b"llama").decode(errors="replace")
    key = f"{arch}.{_pick(rng, HYPER)}"
    kv = doc.kv(key)
    if kv is None:
        kv = gb.KV(key.encode(), gb.UINT32, 0)
        doc.kvs.append(kv)
    old = kv.value
    if kv.vtype in (gb.FLOAT32, gb.FLOAT64):
        kv.value = _scalar(kv.vtype, _float(rng, old))
    elif kv.vtype == gb.BOOL:
        kv.value = not old
    elif kv.vtype in gb.INTEGER:
        kv.value = _scalar(kv.vtype, _int(rng, old))
    return f"{key} {old!r} -> {kv.value!r}", gb.dump(doc)


def special_id(base, rng):
    doc = _doc(base)
    key = f"tokenizer.ggml.{_pick(rng, SPECIALS)}_token_id"
    n = len((doc.kv("tokenizer.ggml.tokens") or gb.KV(b"", 0, [])).value)
    kv = doc.kv(key)
    if kv is None:
        kv = gb.KV(key.encode(), int(rng.choice([gb.UINT32, gb.INT32, gb.UINT64])), 0)
        doc.kvs.append(kv)
    value = int(rng.choice([n, n - 1, n + 1, 2**32 - 1, 0, 2**31, -1])) if n else _int(rng)
    old, kv.value = kv.value, _scalar(kv.vtype, value)
    return f"{key} {old!r} -> {kv.value!r}", gb.dump(doc)


def meta_string(base, rng):
    doc = _doc(base)
    kv = _pick(rng, [kv for kv in doc.kvs if kv.vtype == gb.STRING])
    if kv.key == b"tokenizer.chat_template" and rng.random() < 0.5:
        kv.value = _pick(rng, TEMPLATES)
    elif rng.random() < 0.2:
        kv.value = bytes(rng.integers(0, 256, int(rng.integers(1, 40)), dtype=np.uint8))
    else:
        kv.value = _pick(rng, STRINGS)
    return f"{kv.key.decode()} -> {kv.value[:40]!r}", gb.dump(doc)


def meta_type(base, rng):
    """The value type of a metadata pair changed in place (what follows is then misread)."""
    kv = _pick(rng, base.doc.kvs)
    vtype = int(rng.choice([*range(13), 13, 255, 2**32 - 1]))
    data = bytearray(base.raw)
    data[kv.at : kv.at + 4] = struct.pack("<I", vtype)
    return f"{kv.key.decode()} type {kv.vtype} -> {vtype}", bytes(data)


def meta_drop(base, rng):
    doc = _doc(base)
    kv = doc.kvs.pop(int(rng.integers(len(doc.kvs))))
    return f"dropped {kv.key.decode()}", gb.dump(doc)


def meta_dup(base, rng):
    doc = _doc(base)
    kv = copy.deepcopy(_pick(rng, doc.kvs))
    doc.kvs.insert(int(rng.integers(len(doc.kvs) + 1)), kv)
    return f"duplicated {kv.key.decode()}", gb.dump(doc)


def meta_add(base, rng):
    """A key most files lack: the alignment, a chat template, a string where a number goes."""
    doc = _doc(base)
    choice = int(rng.integers(3))
    if choice == 0:
        kv = gb.KV(b"general.alignment", gb.UINT32, _scalar(gb.UINT32, _int(rng, 32)))
    elif choice == 1:
        kv = gb.KV(b"tokenizer.chat_template", gb.STRING, _pick(rng, TEMPLATES))
    else:
        key = _pick(rng, [kv.key for kv in doc.kvs]) + b".x" if rng.random() < 0.3 else None
        arch = doc.kv("general.architecture").value
        key = key or arch + b"." + _pick(rng, HYPER).encode()
        kv = gb.KV(key, gb.STRING, b"12")
    doc.kvs = [k for k in doc.kvs if k.key != kv.key] + [kv]
    return f"{kv.key.decode()} = {kv.value!r}"[:120], gb.dump(doc)


# ------------------------------------------------------------------------- vocabulary arrays


def _has(key):
    return lambda base: base.doc.kv(key) is not None


def tokens(base, rng):
    doc = _doc(base)
    toks = doc.kv("tokenizer.ggml.tokens").value
    n = len(toks)
    i, j = int(rng.integers(n)), int(rng.integers(n))
    op = int(rng.integers(5))
    if op == 0:
        toks[i] = toks[j]
        what = f"token {i} := token {j}"
    elif op == 1:
        toks[i] = _pick(rng, TOKEN_TEXTS).encode()
        what = f"token {i} := {toks[i][:20]!r}"
    elif op == 2:
        k = int(rng.choice([1, 2, n // 2, n - 1, n]))
        del toks[n - k :]
        what = f"dropped the last {k} tokens"
    elif op == 3:
        toks += [b"extra%d" % m for m in range(int(rng.choice([1, 7, 300])))]
        what = "appended tokens"
    else:
        toks[i] = bytes(rng.integers(0, 256, 6, dtype=np.uint8))
        what = f"token {i} := random bytes"
    return what, gb.dump(doc)


def numeric_array(base, rng):
    doc = _doc(base)
    kvs = [kv for kv in doc.kvs if kv.vtype == gb.ARRAY and kv.etype != gb.STRING]
    kv = _pick(rng, kvs)
    arr = np.asarray(kv.value)
    op = int(rng.integers(4))
    if op == 0:
        i = int(rng.integers(len(arr)))
        value = _float(rng) if arr.dtype.kind == "f" else _int(rng)
        with np.errstate(all="ignore"):
            arr = arr.copy()
            if arr.dtype.kind == "f":
                arr[i] = value
            else:
                arr[i] = gb.pack_scalar(_etype_of(arr), value)
        what = f"{kv.key.decode()}[{i}] := {value!r}"
    elif op == 1:
        arr = arr[: int(rng.integers(len(arr)))]
        what = f"{kv.key.decode()} cut to {len(arr)}"
    elif op == 2:
        arr = np.concatenate([arr, arr[: int(rng.choice([1, 5, 100]))]])
        what = f"{kv.key.decode()} extended to {len(arr)}"
    else:
        kv.etype = int(rng.choice([gb.UINT8, gb.INT32, gb.FLOAT32, gb.FLOAT64, gb.INT64]))
        what = f"{kv.key.decode()} stored as type {kv.etype}"
    kv.value = arr
    return what, gb.dump(doc)


def _etype_of(arr) -> int:
    for etype, dtype in gb.DTYPE.items():
        if dtype == arr.dtype.newbyteorder("<"):
            return etype
    return gb.INT32


def merges(base, rng):
    doc = _doc(base)
    m = doc.kv("tokenizer.ggml.merges").value
    i = int(rng.integers(len(m)))
    new = _pick(rng, [b"abc", b"a b c", b"zz qq", b"", b" ", m[int(rng.integers(len(m)))]])
    m[i] = new
    return f"merge {i} := {new!r}", gb.dump(doc)


# ------------------------------------------------------------------------------ tensor infos


def _tensors(base) -> bool:
    return bool(base.doc.tensors)


def tensor_dims(base, rng):
    doc = _doc(base)
    t = _pick(rng, doc.tensors)
    old = list(t.dims)
    if rng.random() < 0.2:
        if len(t.dims) > 1 and rng.random() < 0.5:
            t.dims.pop()
        else:
            t.dims.append(int(rng.choice([1, 2, 2**40])))
    else:
        j = int(rng.integers(len(t.dims)))
        t.dims[j] = _int(rng, t.dims[j]) % 2**64
    return f"{t.name.decode()} dims {old} -> {t.dims}", gb.dump(doc)


def tensor_type(base, rng):
    doc = _doc(base)
    t = _pick(rng, doc.tensors)
    old, t.ttype = t.ttype, int(rng.choice([*range(42), 2**31]))
    return f"{t.name.decode()} type {old} -> {t.ttype}", gb.dump(doc)


def tensor_offset(base, rng):
    doc = _doc(base)
    t = _pick(rng, doc.tensors)
    other = _pick(rng, doc.tensors).offset
    a = doc.alignment
    choices = [0, other, t.offset + 1, t.offset + a, t.offset - a, len(doc.data), 2**63, 2**64 - a]
    old, t.offset = t.offset, int(rng.choice(choices)) % 2**64
    return f"{t.name.decode()} offset {old} -> {t.offset}", gb.dump(doc)


def tensor_name(base, rng):
    doc = _doc(base)
    i = int(rng.integers(len(doc.tensors)))
    t = doc.tensors[i]
    op = int(rng.integers(4))
    if op == 0:
        new = _pick(rng, doc.tensors).name
        what = f"{t.name.decode()} renamed {new.decode()}"
        t.name = new
    elif op == 1:
        what = f"dropped {t.name.decode()}"
        del doc.tensors[i]
    elif op == 2:
        doc.tensors.append(copy.deepcopy(t))
        what = f"duplicated {t.name.decode()}"
    else:
        new = _pick(rng, [b"", b"blk.99.attn_q.weight", b"x" * 300, b"\xff"])
        what = f"{t.name.decode()} renamed {new[:20]!r}"
        t.name = new
    return what, gb.dump(doc)


# ------------------------------------------------------------------------------- raw bytes


def header_counts(base, rng):
    doc = _doc(base)
    if rng.random() < 0.3:
        doc.version = int(rng.choice([0, 1, 4, 2**32 - 1]))
        return f"version {doc.version}", gb.dump(doc)
    nt, nk = len(doc.tensors), len(doc.kvs)
    doc.counts = (_int(rng, nt) % 2**64, nk) if rng.random() < 0.5 else (nt, _int(rng, nk) % 2**64)
    return f"counts {doc.counts}", gb.dump(doc)


def bit_flips(base, rng, header_only=True):
    data = bytearray(base.raw)
    end = base.doc.header_end if header_only else len(data)
    flips = int(rng.integers(1, 9))
    for _ in range(flips):
        pos = int(rng.integers(4, end))
        data[pos] ^= 1 << int(rng.integers(8))
    return f"{flips} bits flipped in the first {end} bytes", bytes(data)


def overwrite(base, rng):
    data = bytearray(base.raw)
    n = int(rng.integers(1, 65))
    pos = int(rng.integers(4, max(5, base.doc.header_end - n)))
    data[pos : pos + n] = bytes(rng.integers(0, 256, n, dtype=np.uint8))
    return f"{n} random bytes at {pos}", bytes(data)


def truncate(base, rng):
    end = base.doc.header_end if rng.random() < 0.7 else len(base.raw)
    cut = int(rng.integers(4, end))
    return f"cut at {cut} of {len(base.raw)}", base.raw[:cut]


def _always(base) -> bool:
    return True


OPERATORS = [  # (name, weight, applies to the base, function)
    ("meta-scalar", 5, _always, meta_scalar),
    ("hyper", 6, _always, hyper),
    ("special-id", 4, _always, special_id),
    ("meta-string", 2, _always, meta_string),
    ("meta-type", 2, _always, meta_type),
    ("meta-drop", 2, _always, meta_drop),
    ("meta-dup", 1, _always, meta_dup),
    ("meta-add", 2, _always, meta_add),
    ("tokens", 4, _has("tokenizer.ggml.tokens"), tokens),
    ("numeric-array", 3, _has("tokenizer.ggml.token_type"), numeric_array),
    ("merges", 2, _has("tokenizer.ggml.merges"), merges),
    ("tensor-dims", 5, _tensors, tensor_dims),
    ("tensor-type", 4, _tensors, tensor_type),
    ("tensor-offset", 2, _tensors, tensor_offset),
    ("tensor-name", 2, _tensors, tensor_name),
    ("header-counts", 1, _always, header_counts),
    ("bit-flips", 3, _always, bit_flips),
    ("bit-flips-anywhere", 1, _always, lambda b, r: bit_flips(b, r, header_only=False)),
    ("overwrite", 1, _always, overwrite),
    ("truncate", 2, _always, truncate),
]
