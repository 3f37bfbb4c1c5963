"""Token selection and the generation loop: samplers, stop strings, UTF-8-safe streaming.

Sampler order (as llama.cpp's default chain): repetition penalty over the last
repeat_last_n tokens, then top-k, top-p, min-p, temperature, and a draw from a seeded
generator; temperature 0 (or top_k 1) is greedy.
"""

import codecs
from dataclasses import dataclass

import numpy as np

from llm.errors import SamplerError


@dataclass(frozen=True)
class Sampler:
    temperature: float = 0.8
    top_k: int = 40  # 0: all tokens
    top_p: float = 0.95
    min_p: float = 0.05
    repeat_penalty: float = 1.0  # 1: off
    repeat_last_n: int = 64
    seed: int | None = None

    def __post_init__(self):
        checks = (
            ("temperature", self.temperature >= 0),
            ("top_k", isinstance(self.top_k, int) and self.top_k >= 0),
            ("top_p", 0 < self.top_p <= 1),
            ("min_p", 0 <= self.min_p < 1),
            ("repeat_penalty", self.repeat_penalty > 0),
            ("repeat_last_n", isinstance(self.repeat_last_n, int) and self.repeat_last_n >= 0),
            ("seed", self.seed is None or (isinstance(self.seed, int) and self.seed >= 0)),
        )
        for name, ok in checks:
            if not ok:
                raise SamplerError(f"{name}={getattr(self, name)!r} is out of range")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0 or self.top_k == 1

    def pick(self, logits: np.ndarray, history: list[int], rng: np.random.Generator) -> int:
        logits = logits.astype(np.float64)
        if self.repeat_penalty != 1.0 and history and self.repeat_last_n:
            recent = np.unique(history[-self.repeat_last_n :])
            vals = logits[recent]
            logits[recent] = np.where(
                vals > 0, vals / self.repeat_penalty, vals * self.repeat_penalty
            )
        if self.greedy:
            return int(np.argmax(logits))
        order = np.argsort(-logits)
        if self.top_k:
            order = order[: self.top_k]
        cand = logits[order]
        probs = np.exp(cand - cand[0])
        probs /= probs.sum()
        if self.top_p < 1:
            keep = int(np.searchsorted(np.cumsum(probs), self.top_p)) + 1
            order, cand, probs = order[:keep], cand[:keep], probs[:keep]
        if self.min_p > 0:
            keep = probs >= self.min_p * probs[0]
            order, cand = order[keep], cand[keep]
        scaled = np.exp((cand - cand[0]) / self.temperature)
        return int(order[rng.choice(len(order), p=scaled / scaled.sum())])


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
