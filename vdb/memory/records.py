"""Memories as records: the constants of vdb.memory, MemoryRecord and Recalled, the payload of a
new memory, and the checks of Memory's arguments (shared with the remote client)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from vdb.errors import InvalidArgumentError, NotFoundError, shown
from vdb.storage.codec import encode_payload

KINDS = ("fact", "event", "preference", "summary")
TURN = "turn"  # a conversation turn (see vdb.memory.conversation)
DEFAULT_WEIGHTS = {"relevance": 0.6, "recency": 0.2, "importance": 0.2}
DUPLICATE_COSINE = 0.92  # at or above: the same memory said again (all-MiniLM-L6-v2 scale)
MAX_AGENT = 56  # characters of an agent name: "memory." + agent is a collection name
AGENT_RE = re.compile(rf"^[A-Za-z0-9_.-]{{1,{MAX_AGENT}}}$")


class MemoryNotFoundError(NotFoundError):
    """No memory has this id."""


@dataclass
class MemoryRecord:
    id: str
    text: str
    kind: str
    importance: float
    created: float
    last_access: float
    count: int
    current: bool
    user_id: str | None = None
    session_id: str | None = None
    valid_from: float | None = None
    valid_to: float | None = None
    previous: str | None = None
    next: str | None = None
    expires_at: float | None = None
    metadata: dict | None = None
    role: str | None = None  # turns only: role, seq, tokens, in_buffer, summary
    seq: int | None = None
    tokens: int | None = None
    in_buffer: bool | None = None
    summary: str | None = None


@dataclass
class Recalled:
    memory: MemoryRecord
    score: float
    relevance: float
    recency: float
    importance: float


def _record(pid, document, p: dict) -> MemoryRecord:
    return MemoryRecord(
        id=pid,
        text=document or "",
        kind=p["kind"],
        importance=p["importance"],
        created=p["created"],
        last_access=p["last_access"],
        count=p["count"],
        current=p["current"],
        user_id=p.get("user_id"),
        session_id=p.get("session_id"),
        valid_from=p.get("valid_from"),
        valid_to=p.get("valid_to"),
        previous=p.get("previous"),
        next=p.get("next"),
        expires_at=p.get("expires_at"),
        metadata=p.get("metadata"),
        role=p.get("role"),
        seq=p.get("seq"),
        tokens=p.get("tokens"),
        in_buffer=p.get("in_buffer"),
        summary=p.get("summary"),
    )


def check_agent(agent) -> None:
    """An agent's name: its memories live in the collection "memory.<agent>"."""
    if not isinstance(agent, str) or not AGENT_RE.match(agent):
        raise InvalidArgumentError(
            f"agent must be 1-{MAX_AGENT} letters, digits, '_', '-' or '.', got {shown(agent)}"
        )


def check_options(agent, half_life, weights, duplicate_cosine, max_memories, buffer_tokens) -> dict:
    """Check a Memory's options (embedded or remote); returns the weights normalized."""
    check_agent(agent)
    if not (_number(half_life) and half_life > 0):
        raise InvalidArgumentError(f"half_life must be > 0 seconds, got {half_life!r}")
    w = dict(DEFAULT_WEIGHTS, **(weights or {}))
    if (
        set(w) != set(DEFAULT_WEIGHTS)
        or any(not _number(v) or v < 0 for v in w.values())
        or not sum(w.values()) > 0
    ):
        raise InvalidArgumentError(
            f"weights: non-negative relevance, recency and importance, got {weights!r}"
        )
    if not (_number(duplicate_cosine) and -1 <= duplicate_cosine <= 1):
        raise InvalidArgumentError(f"duplicate_cosine must be in [-1, 1], got {duplicate_cosine!r}")
    if max_memories is not None and not _count(max_memories):
        raise InvalidArgumentError(f"max_memories must be a positive integer, got {max_memories!r}")
    if not _count(buffer_tokens):
        raise InvalidArgumentError(
            f"buffer_tokens must be a positive integer, got {buffer_tokens!r}"
        )
    total = sum(w.values())
    return {k: v / total for k, v in w.items()}


def _new_payload(e: dict, now: float) -> dict:
    p = {
        "kind": e["kind"],
        "importance": float(e["importance"]),
        "created": now,
        "last_access": now,
        "count": 1,
        "current": True,
        "valid_from": now,
    }
    for name in ("user_id", "session_id", "metadata"):
        if e[name] is not None:
            p[name] = e[name]
    if e["ttl"] is not None:
        p["expires_at"] = now + e["ttl"]
    return p


def _entry(item, defaults: dict) -> dict:
    """A checked remember_many item: text, kind, importance, metadata, user_id, session_id,
    ttl."""
    if isinstance(item, str):
        item = {"text": item}
    if not isinstance(item, dict):
        raise InvalidArgumentError(f"a memory is a text or a dict, got {type(item).__name__}")
    unknown = set(item) - {"text", *defaults}
    if unknown:
        raise InvalidArgumentError(f"unknown memory fields: {', '.join(sorted(unknown))}")
    e = dict(defaults, **item)
    _check_text(e.get("text"))
    if e["kind"] not in KINDS:
        raise InvalidArgumentError(f"kind must be one of {', '.join(KINDS)}, got {e['kind']!r}")
    _check_importance(e["importance"])
    if e["ttl"] is not None and not (_number(e["ttl"]) and e["ttl"] > 0):
        raise InvalidArgumentError(f"ttl must be > 0 seconds, got {e['ttl']!r}")
    _check_metadata(e["metadata"])
    for name in ("user_id", "session_id"):
        _check_name(name, e[name])
    return e


def _one_vector(query) -> bool:
    try:
        arr = np.asarray(query)
    except (TypeError, ValueError):
        return False
    return arr.ndim == 1 and arr.dtype.kind in "fiu"


def _check_metadata(metadata) -> None:
    """metadata: None or a dict the store can keep (JSON: string keys, finite numbers)."""
    if metadata is None:
        return
    if not isinstance(metadata, dict):
        raise InvalidArgumentError(f"metadata must be a dict, got {type(metadata).__name__}")
    encode_payload({"metadata": metadata})


def _check_name(name: str, value) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise InvalidArgumentError(f"{name} must be a non-empty string, got {value!r}")


def _check_vectors(vectors, n: int, dim: int) -> np.ndarray:
    v = np.asarray(vectors, dtype=np.float32)
    if v.shape != (n, dim):
        raise InvalidArgumentError(f"vectors must have shape ({n}, {dim}), got {v.shape}")
    if not np.isfinite(v).all() or not (np.linalg.norm(v, axis=1) > 0).all():
        raise InvalidArgumentError("vectors must be finite and non-zero")
    return v


def _number(x) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _count(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 1


def _check_text(text, what: str = "text") -> None:
    if not isinstance(text, str) or not text.strip():
        raise InvalidArgumentError(f"{what} must be a non-empty string")


def _check_importance(importance) -> None:
    if not _number(importance) or not 0 <= importance <= 1:
        raise InvalidArgumentError(f"importance must be in [0, 1], got {importance!r}")
