"""Short-term memory: a conversation buffer per session within a token budget, and the
context block built from it and the long-term memories.

Turns are points of kind "turn" in the agent's collection, so they survive a restart and can
be searched with recall(kind="turn"). Their payload adds role, seq (order in the session),
tokens and in_buffer. Tokens are counted by the Memory's generator when it has one, else by
the embedder's tokenizer.

A turn that takes the buffer past buffer_tokens moves the oldest turns out of it, down to
half the budget, so that one summary covers several turns. The turns stay (in_buffer False,
summary: the summary's id), and the summary becomes a memory of kind "summary" in the
session's scope, its metadata listing the turns. With a generator the model writes it
(greedy, at most SUMMARY_TOKENS); otherwise, or when the model returns nothing, it is an
extract: the turns' sentences in order, or when they are too many, a choice of them (see
_extract). The summary and the turns' move are one write.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import numpy as np

from vdb.errors import InvalidArgumentError
from vdb.memory.records import (
    TURN,
    MemoryRecord,
    Recalled,
    _check_name,
    _check_text,
    _count,
    _new_payload,
)
from vdb.text.extract import sentence_spans

ROLES = ("system", "user", "assistant", "tool")
SUMMARY_TOKENS = 160
SUMMARY_PROMPT = (
    "You condense conversations into long-term memory. Summarize the conversation below in "
    "at most five sentences: the facts, preferences, decisions and open questions it holds, "
    "naming who said what. Write only the summary."
)


@dataclass
class Context:
    """A prompt block (text) of memories and recent turns, and what went into it."""

    text: str
    tokens: int
    memories: list[Recalled] = field(default_factory=list)
    turns: list[MemoryRecord] = field(default_factory=list)

    def __str__(self) -> str:
        return self.text


def check_turn(role, text, session_id, user_id) -> None:
    if role not in ROLES:
        raise InvalidArgumentError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    _check_text(text)
    check_session(session_id, user_id)


def check_session(session_id, user_id) -> None:
    if session_id is None:
        raise InvalidArgumentError("a conversation buffer needs a session_id")
    _check_name("session_id", session_id)
    _check_name("user_id", user_id)


def add_turn(mem, role: str, text: str, session_id: str, user_id: str | None):
    check_turn(role, text, session_id, user_id)
    with mem._state.lock:
        mem._flush_locked()
        turns = buffer(mem, session_id, user_id)
        now = mem.clock()
        seq = _next_seq(mem, session_id, user_id, turns)
        p = _payload(TURN, now, session_id, user_id, None)
        p.update(role=role, seq=seq, tokens=mem.count_tokens(_line(role, text)), in_buffer=True)
        tid = uuid.uuid4().hex
        mem.col.upsert([tid], mem.col.embedder.embed([text]), [p], [text])
        turn = mem._record(tid, text, p)
        summaries = _spill(mem, [*turns, turn], session_id, user_id)
    return turn, summaries


def buffer(mem, session_id: str, user_id: str | None) -> list[MemoryRecord]:
    check_session(session_id, user_id)
    clauses = [*mem._scope(user_id, session_id), {"kind": TURN}, {"in_buffer": True}]
    points = mem._all(mem._filter(clauses))
    points.sort(key=lambda pt: pt.payload["seq"])
    return [mem._record(pt.id, pt.document, pt.payload) for pt in points]


def _payload(kind: str, now: float, session_id, user_id, metadata) -> dict:
    entry = {"kind": kind, "importance": 0.5, "metadata": metadata, "ttl": None}
    return _new_payload(dict(entry, session_id=session_id, user_id=user_id), now)


def _next_seq(mem, session_id, user_id, turns) -> int:
    if turns:
        return turns[-1].seq + 1
    clauses = [*mem._scope(user_id, session_id), {"kind": TURN}]
    return mem.col.count(mem._filter(clauses, history=True))


def _spill(mem, turns: list[MemoryRecord], session_id, user_id) -> list[MemoryRecord]:
    """Move the oldest turns out of a buffer over budget into a summary memory."""
    total = sum(t.tokens for t in turns)
    if total <= mem.buffer_tokens:
        return []
    out = []
    while total > mem.buffer_tokens // 2 and len(turns) > 1:
        t = turns.pop(0)
        out.append(t)
        total -= t.tokens
    if not out:
        return []
    text, extractive = summarize(mem, out)
    now = mem.clock()
    sid = uuid.uuid4().hex
    metadata = {"turns": [t.id for t in out], "extractive": extractive}
    s = _payload("summary", now, session_id, user_id, metadata)
    points = mem.col.get([t.id for t in out], with_vectors=True)
    moved = [dict(pt.payload, in_buffer=False, summary=sid) for pt in points]
    vectors = np.vstack([mem.col.embedder.embed([text]), [pt.vector for pt in points]])
    mem.col.upsert(
        [sid, *(pt.id for pt in points)],
        vectors,
        [s, *moved],
        [text, *(pt.document for pt in points)],
    )
    return [mem._record(sid, text, s)]


def summarize(mem, turns: list[MemoryRecord]) -> tuple[str, bool]:
    """(summary of turns, whether it is an extract)."""
    transcript = "\n".join(_line(t.role, t.text) for t in turns)
    model = mem.generator
    if model is not None and _fits(model, transcript):
        messages = [
            {"role": "system", "content": SUMMARY_PROMPT},
            {"role": "user", "content": transcript},
        ]
        text = model.chat(messages, max_tokens=SUMMARY_TOKENS, temperature=0.0).strip()
        if text:
            return text, False
    return _extract(mem, turns), True


def _fits(model, transcript: str) -> bool:
    from vdb.rag import _context

    room = _context(model) - SUMMARY_TOKENS - len(model.tokenize(SUMMARY_PROMPT)) - 64
    return len(model.tokenize(transcript)) <= room


def _extract(mem, turns: list[MemoryRecord]) -> str:
    """The turns' sentences, labelled by role and in order, within SUMMARY_TOKENS or half
    the turns' tokens, whichever is more. When they do not all fit, the user's sentences
    come first (they hold what the user said of themselves), each side's nearest the turns'
    mean embedding first."""
    sentences = [(t.role, t.text[a:b]) for t in turns for a, b in sentence_spans(t.text)]
    if not sentences:
        return "\n".join(_line(t.role, t.text.strip()) for t in turns)
    cost = [mem.count_tokens(_line(*s)) for s in sentences]
    budget = max(SUMMARY_TOKENS, sum(t.tokens for t in turns) // 2)
    if sum(cost) <= budget:
        chosen = range(len(sentences))
    else:
        vecs = mem.col.embedder.embed([text for _, text in sentences])
        near = vecs @ vecs.mean(axis=0)
        order = sorted(range(len(sentences)), key=lambda i: (sentences[i][0] != "user", -near[i]))
        chosen, used = [], 0
        for i in order:
            if not chosen or used + cost[i] <= budget:
                chosen.append(i)
                used += cost[i]
    return "\n".join(_line(*sentences[i]) for i in sorted(chosen))


def _one_line(text: str) -> str:
    return " / ".join(line.strip() for line in text.strip().splitlines() if line.strip())


def _line(role: str, text: str) -> str:
    return f"{role}: {text}"


def context(mem, query, budget_tokens: int, user_id, session_id, k: int) -> Context:
    """Memories for query (the user's, every session) and the session's most recent turns
    that fit budget_tokens: memories first up to half the budget, best first; then the
    newest turns that fit; then more memories in what is left. Memories are listed best
    first, turns in order."""
    if not _count(budget_tokens):
        raise InvalidArgumentError(
            f"budget_tokens must be a positive integer, got {budget_tokens!r}"
        )
    recalled = mem.recall(query, k=k, user_id=user_id)
    turns = buffer(mem, session_id, user_id) if session_id is not None else []
    m_lines = [f"- ({r.memory.kind}) {_one_line(r.memory.text)}" for r in recalled]
    t_lines = [_line(t.role, t.text) for t in turns]
    m_cost = [mem.count_tokens(line) for line in m_lines]
    t_cost = [mem.count_tokens(line) for line in t_lines]
    m_head, t_head = (mem.count_tokens(h) for h in (MEMORIES, CONVERSATION))
    used = 0
    took_m: list[int] = []
    took_t: list[int] = []

    def take_memories(limit: int) -> None:
        nonlocal used
        for i, cost in enumerate(m_cost):
            extra = cost + (0 if took_m else m_head)
            if i not in took_m and used + extra <= limit:
                took_m.append(i)
                used += extra

    take_memories(budget_tokens // 2)
    for i in range(len(t_lines) - 1, -1, -1):
        extra = t_cost[i] + (0 if took_t else t_head)
        if used + extra > budget_tokens:
            break
        took_t.append(i)
        used += extra
    take_memories(budget_tokens)
    took_m.sort()
    took_t.sort()
    parts = []
    if took_m:
        parts.append("\n".join([MEMORIES, *(m_lines[i] for i in took_m)]))
    if took_t:
        parts.append("\n".join([CONVERSATION, *(t_lines[i] for i in took_t)]))
    return Context(
        "\n\n".join(parts),
        used,
        [recalled[i] for i in took_m],
        [turns[i] for i in took_t],
    )


MEMORIES = "Memories:"
CONVERSATION = "Recent conversation:"
