"""Token selection and the generation loop: samplers, stop strings, UTF-8-safe streaming.

Sampler chain, in order (llama.cpp's):
  1. logit bias          logits[t] += bias[t] (-inf bans a token)
  2. penalties           over the last repeat_last_n tokens: repetition (divide positive
                         logits by repeat_penalty, multiply negative ones), then frequency
                         (- count * frequency_penalty) and presence (- presence_penalty once)
  greedy (temperature 0): the highest logit; otherwise
  3. top-k               the k highest logits (0: all)
  4. tail-free (tfs_z)   cut where the normalized second derivative of the sorted
                         probabilities has accumulated tfs_z (1: off)
  5. typical (typical_p) keep the tokens whose surprise is closest to the entropy, up to
                         typical_p of the mass (1: off)
  6. top-p               the smallest head of the sorted tokens holding top_p of the mass
  7. min-p               tokens with at least min_p times the best token's probability
  8. temperature         divide the logits, then draw from a seeded generator.
Mirostat (mode 1 or 2) replaces steps 3-7: after the penalties and the temperature it keeps
the tokens whose surprise (-log2 p) is below a running target mu, draws, and moves mu by eta
times the difference between the drawn token's surprise and tau (v1 estimates a top-k from
the distribution's Zipf exponent instead of cutting at mu, as its paper does).
"""

import codecs
import math
from dataclasses import dataclass, field

import numpy as np

from llm.errors import SamplerError


@dataclass(frozen=True)
class Sampler:
    temperature: float = 0.8
    top_k: int = 40  # 0: all tokens
    top_p: float = 0.95
    min_p: float = 0.05
    typical_p: float = 1.0  # 1: off
    tfs_z: float = 1.0  # 1: off
    repeat_penalty: float = 1.0  # 1: off
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    repeat_last_n: int = 64  # tokens the penalties look back over
    mirostat: int = 0  # 0: off, 1 or 2
    mirostat_tau: float = 5.0  # target surprise, bits
    mirostat_eta: float = 0.1  # learning rate
    logit_bias: dict = field(default_factory=dict)  # token id -> added to its logit
    seed: int | None = None

    def __post_init__(self):
        def is_int(v):
            return isinstance(v, int) and not isinstance(v, bool)

        def finite(v):
            return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)

        checks = (
            ("temperature", finite(self.temperature) and self.temperature >= 0),
            ("top_k", is_int(self.top_k) and self.top_k >= 0),
            ("top_p", finite(self.top_p) and 0 < self.top_p <= 1),
            ("min_p", finite(self.min_p) and 0 <= self.min_p < 1),
            ("typical_p", finite(self.typical_p) and 0 < self.typical_p <= 1),
            ("tfs_z", finite(self.tfs_z) and 0 < self.tfs_z <= 1),
            ("repeat_penalty", finite(self.repeat_penalty) and self.repeat_penalty > 0),
            ("frequency_penalty", finite(self.frequency_penalty)),
            ("presence_penalty", finite(self.presence_penalty)),
            ("repeat_last_n", is_int(self.repeat_last_n) and self.repeat_last_n >= 0),
            ("mirostat", self.mirostat in (0, 1, 2) and is_int(self.mirostat)),
            ("mirostat_tau", finite(self.mirostat_tau) and self.mirostat_tau > 0),
            ("mirostat_eta", finite(self.mirostat_eta) and self.mirostat_eta > 0),
            (
                "logit_bias",
                isinstance(self.logit_bias, dict)
                and all(
                    is_int(k) and k >= 0 and isinstance(v, int | float) and not math.isnan(v)
                    for k, v in self.logit_bias.items()
                ),
            ),
            ("seed", self.seed is None or (is_int(self.seed) and self.seed >= 0)),
        )
        for name, ok in checks:
            if not ok:
                raise SamplerError(f"{name}={getattr(self, name)!r} is out of range")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0 or (self.top_k == 1 and not self.mirostat)

    def start(self, vocab_size: int | None = None) -> "Sampling":
        """The state of one generation: the seeded generator and mirostat's running mu."""
        if vocab_size is not None:
            bad = [t for t in self.logit_bias if t >= vocab_size]
            if bad:
                raise SamplerError(
                    f"logit_bias names token {bad[0]}, beyond the vocabulary of {vocab_size}"
                )
        return Sampling(self)

    def pick(self, logits: np.ndarray, history: list[int], rng: np.random.Generator) -> int:
        """One token from logits without mirostat state (see start() for a whole run)."""
        return Sampling(self, rng).pick(logits, history)


class Sampling:
    def __init__(self, settings: Sampler, rng: np.random.Generator | None = None):
        self.settings = settings
        self.rng = rng if rng is not None else np.random.default_rng(settings.seed)
        self.mu = 2.0 * settings.mirostat_tau
        self.surprises: list[float] = []  # of each mirostat draw, bits

    def pick(self, logits: np.ndarray, history: list[int]) -> int:
        s = self.settings
        logits = _penalize(logits.astype(np.float64), history, s)
        if s.greedy:
            return int(np.argmax(logits))
        if s.mirostat:
            return self._mirostat(logits / s.temperature)
        order = _top(logits, s.top_k)
        order = order[np.isfinite(logits[order])]
        if len(order) == 0:
            raise SamplerError("the logit bias bans every token")
        cand = logits[order]
        if s.tfs_z < 1:
            order, cand = _tail_free(order, cand, s.tfs_z)
        if s.typical_p < 1:
            order, cand = _typical(order, cand, s.typical_p)
        probs = _softmax(cand)
        if s.top_p < 1:
            keep = int(np.searchsorted(np.cumsum(probs), s.top_p)) + 1
            order, cand, probs = order[:keep], cand[:keep], probs[:keep]
        if s.min_p > 0:
            keep = probs >= s.min_p * probs.max()
            order, cand = order[keep], cand[keep]
        return int(order[self.rng.choice(len(order), p=_softmax(cand / s.temperature))])

    def _mirostat(self, logits: np.ndarray) -> int:
        s = self.settings
        order = np.argsort(-logits, kind="stable")
        probs = _softmax(logits[order])
        if s.mirostat == 1:
            k = _mirostat_v1_k(probs, self.mu, len(probs))
            order, probs = order[:k], probs[:k]
        else:
            with np.errstate(divide="ignore"):
                keep = max(1, int(np.count_nonzero(-np.log2(probs) <= self.mu)))
            order, probs = order[:keep], probs[:keep]
        probs = probs / probs.sum()
        i = int(self.rng.choice(len(order), p=probs))
        surprise = -math.log2(probs[i])
        self.surprises.append(surprise)
        self.mu -= s.mirostat_eta * (surprise - s.mirostat_tau)
        return int(order[i])


def _penalize(logits: np.ndarray, history: list[int], s: Sampler) -> np.ndarray:
    for token, bias in s.logit_bias.items():
        if token < len(logits):
            logits[token] += bias
    if not (history and s.repeat_last_n):
        return logits
    if s.repeat_penalty == 1 and not s.frequency_penalty and not s.presence_penalty:
        return logits
    tokens, counts = np.unique(np.asarray(history[-s.repeat_last_n :]), return_counts=True)
    vals = logits[tokens]
    vals = np.where(vals > 0, vals / s.repeat_penalty, vals * s.repeat_penalty)
    logits[tokens] = vals - counts * s.frequency_penalty - s.presence_penalty
    return logits


def _top(logits: np.ndarray, k: int) -> np.ndarray:
    """Token ids of the k highest logits (all for k 0), highest first."""
    if 0 < k < len(logits):
        head = np.argpartition(-logits, k - 1)[:k]
        return head[np.argsort(-logits[head], kind="stable")]
    return np.argsort(-logits, kind="stable")


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def _tail_free(order, cand, z):
    """Tail-free sampling: cut the sorted tail where the absolute second derivative of the
    probabilities, normalized, has summed past z."""
    if len(cand) <= 2:
        return order, cand
    probs = _softmax(cand)
    d2 = np.abs(np.diff(probs, n=2))
    total = d2.sum()
    if total <= 0:
        return order, cand
    cum = np.cumsum(d2 / total)
    over = np.flatnonzero(cum > z)
    keep = max(1, int(over[0]) if len(over) else len(cand))
    return order[:keep], cand[:keep]


def _typical(order, cand, p):
    """Locally typical sampling: tokens by |surprise - entropy|, the smallest set holding p."""
    probs = _softmax(cand)
    with np.errstate(divide="ignore"):
        logp = np.log(probs)
    entropy = -np.sum(probs * np.where(probs > 0, logp, 0.0))
    closeness = np.argsort(np.abs(-logp - entropy), kind="stable")
    keep = int(np.searchsorted(np.cumsum(probs[closeness]), p)) + 1
    chosen = np.sort(closeness[:keep])  # back to descending-logit order
    return order[chosen], cand[chosen]


def _mirostat_v1_k(probs: np.ndarray, mu: float, n_vocab: int, m: int = 100) -> int:
    """Mirostat v1's top-k: the Zipf exponent s estimated from the m most likely tokens, then
    k = (eps 2^mu / (1 - N^-eps))^(1/s) with eps = s - 1."""
    top = probs[: min(m, len(probs))]
    i = np.arange(len(top) - 1)
    t = np.log((i + 2) / (i + 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        b = np.log(top[:-1] / top[1:])
    ok = np.isfinite(b)
    s_hat = float(np.sum(t[ok] * b[ok]) / np.sum(t[ok] ** 2)) if ok.any() else 1.0
    eps = s_hat - 1
    if abs(eps) < 1e-9 or s_hat <= 0:
        return len(probs)
    k = ((eps * 2.0**mu) / (1 - n_vocab ** (-eps))) ** (1 / s_hat)
    return int(min(max(k, 1), len(probs)))


def sampler(settings: dict) -> Sampler:
    """A Sampler from keyword settings; SamplerError for an unknown or out-of-range one."""
    try:
        return Sampler(**settings)
    except TypeError as exc:
        raise SamplerError(f"unknown sampler setting: {exc}") from None


def check_stop(stop) -> tuple[str, ...]:
    """Stop strings: one string or a list of non-empty ones."""
    stop = (stop,) if isinstance(stop, str) else stop
    if not (isinstance(stop, tuple | list) and all(isinstance(s, str) and s for s in stop)):
        raise SamplerError(f"stop must be a string or a list of non-empty strings, got {stop!r}")
    return tuple(stop)


def check_count(name: str, value, low: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise SamplerError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


class TextStream:
    """Bytes of tokens in, text out as soon as it is whole UTF-8, holding back what might be
    the start of a stop string."""

    def __init__(self, stop: tuple[str, ...] = ()):
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stop = [s for s in stop if s]
        self._pending = ""
        self.stopped = False

    def push(self, data: bytes) -> str:
        self._pending += self._decoder.decode(data)
        for s in self._stop:
            at = self._pending.find(s)
            if at >= 0:
                self.stopped = True
                out, self._pending = self._pending[:at], ""
                return out
        hold = max((_overlap(self._pending, s) for s in self._stop), default=0)
        out = self._pending[: len(self._pending) - hold]
        self._pending = self._pending[len(out) :]
        return out

    def flush(self) -> str:
        out = "" if self.stopped else self._pending + self._decoder.decode(b"", final=True)
        self._pending = ""
        return out


def _overlap(text: str, stop: str) -> int:
    """Length of the longest suffix of text that is a proper prefix of stop."""
    for n in range(min(len(text), len(stop) - 1), 0, -1):
        if stop.startswith(text[-n:]):
            return n
    return 0
