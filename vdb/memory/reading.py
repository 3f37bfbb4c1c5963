"""Reading agent memory: recall (relevance fused from the dense and keyword halves, then
recency and importance), get, list, history and stats."""

from __future__ import annotations

import math

from vdb import filters
from vdb.errors import InvalidArgumentError
from vdb.memory.records import KINDS, TURN, MemoryRecord, Recalled, _check_text, _count, _one_vector

CANDIDATES = 64  # memories re-ranked per recall
# Relevance of a text query: KEYWORD_WEIGHT * (BM25 / the best BM25 among the candidates)
# + (1 - KEYWORD_WEIGHT) * (1 + cosine) / 2 (measured by bench/bench_memory.py).
KEYWORD_WEIGHT = 0.2


class Reading:
    """Memory's reads (a mixin: Memory provides col, clock, weights, _state, the scope filters
    and the point helpers)."""

    def recall(
        self,
        query,
        k: int = 5,
        kind: str | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        all_users: bool = False,
        history: bool = False,
        filter=None,
    ) -> list[Recalled]:
        """The k most useful memories for query (a text, or a vector from the same embedder)
        in a scope, best first. Conversation turns take part only with kind="turn".

        The CANDIDATES nearest memories (and, for a text, the CANDIDATES best by BM25 on the
        keyword index) are scored by the weights (default 0.6 relevance, 0.2 recency, 0.2
        importance). Relevance is in [0, 1]: for a vector, (1 + cosine) / 2; for a text, the
        dense and keyword halves fused first, KEYWORD_WEIGHT (0.2) times the memory's BM25
        score over the best candidate's plus 0.8 times (1 + cosine) / 2, so that a rare name
        or number in the question finds the memory that holds it while memories that match
        alike keep the same relevance and recency and importance decide between them.

        A recall refreshes the last access of what it returns (history=True also ranks closed
        versions, and refreshes nothing). Refreshes count at once, for every Memory on this
        agent in the process, and are written in batches: with the next write, once
        flush_interval seconds old or FLUSH_TOUCHES many, or by flush(); a crash loses only
        refreshes, never a memory."""
        if isinstance(query, str):
            _check_text(query, "query")
        elif not _one_vector(query):
            raise InvalidArgumentError("query must be one text or one vector")
        if not _count(k):
            raise InvalidArgumentError(f"k must be a positive integer, got {k!r}")
        clauses = self._reading(kind, user_id, session_id, all_users)
        if filter is not None:
            filters.parse(filter)  # its errors point into the caller's filter
            clauses.append(filter)
        flt = self._filter(clauses, history)
        now = self.clock()
        top = self._ranked(query, max(CANDIDATES, k), k, flt, now)
        if not history:
            self._touch([h.id for *_, h in top], now)
        return [
            Recalled(self._record(h.id, h.document, h.payload), s, rel, rec, imp)
            for s, rel, rec, imp, h in top
        ]

    def _ranked(self, query, n: int, k: int, flt, now: float) -> list:
        """[(score, relevance, recency, importance, Hit)] of the k best of the memories a
        recall ranks, best first: the n nearest, and for a text with a keyword index the n
        best by BM25 too, found in one query of the collection, which reads the records of
        the k best only (the others are scored from its payload columns)."""
        if not isinstance(query, str) or self.col.config.text is None:
            hits = self.col.search(query, k=n, filter=flt)
            scored = [(*self._scored(h.id, (1.0 + h.score) / 2, h.payload, now), h) for h in hits]
            scored.sort(key=lambda s: -s[0])
            return scored[:k]
        chosen = {}

        def choose(ids, dense, keyword, columns):
            best = float(keyword.max(initial=0.0)) or 1.0
            rows = zip(
                ids, dense.tolist(), keyword.tolist(), columns["last_access"].tolist(),
                columns["importance"].tolist(), strict=True,
            )  # fmt: skip
            scored = [
                self._scored(
                    i,
                    KEYWORD_WEIGHT * kw / best
                    + (1 - KEYWORD_WEIGHT) * min(1.0, max(0.0, (1.0 + d) / 2)),
                    {"last_access": last, "importance": imp},
                    now,
                )
                for i, d, kw, last, imp in rows
            ]
            order = sorted(range(len(scored)), key=lambda j: -scored[j][0])[:k]
            chosen.update((ids[j], scored[j]) for j in order)
            return order

        found = self.col._search_halves(
            query, query, k=n, filter=flt, numbers=("last_access", "importance"), choose=choose
        )
        return [(*chosen[f.hit.id], f.hit) for f in found]

    def _scored(self, memory_id, rel: float, payload: dict, now: float) -> tuple:
        """(score, relevance, recency, importance) of a memory whose relevance is rel."""
        w = self.weights
        rec = self._recency(memory_id, payload, now)
        imp = payload["importance"]
        return w["relevance"] * rel + w["recency"] * rec + w["importance"] * imp, rel, rec, imp

    def get(self, memory_id: str) -> MemoryRecord:
        pt = self._point(memory_id)
        return self._record(pt.id, pt.document, pt.payload)

    def list(
        self,
        kind: str | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        all_users: bool = False,
        history: bool = False,
    ) -> list[MemoryRecord]:
        """Memories of a scope, oldest first (turns only with kind="turn")."""
        clauses = self._reading(kind, user_id, session_id, all_users)
        points = self._all(self._filter(clauses, history))
        records = [self._record(pt.id, pt.document, pt.payload) for pt in points]
        return sorted(records, key=lambda r: (r.created, r.id))

    def history(self, memory_id: str) -> list[MemoryRecord]:
        """Every version of the memory, oldest first."""
        return [self.get(i) for i in self._chain_ids(memory_id)]

    def stats(self) -> dict:
        points = self._all(None)
        now = self.clock()
        current = [pt for pt in points if pt.payload["current"]]
        live = [pt for pt in current if pt.payload.get("expires_at", math.inf) > now]
        by_kind = {k: sum(pt.payload["kind"] == k for pt in live) for k in (*KINDS, TURN)}
        users = sorted({pt.payload["user_id"] for pt in live if "user_id" in pt.payload})
        return {
            "agent": self.agent,
            "memories": sum(pt.payload["kind"] != TURN for pt in live),
            "turns": by_kind[TURN],
            "versions": len(points),
            "expired": len(current) - len(live),
            "forgotten": sum(bool(pt.payload.get("forgotten")) for pt in points),
            "by_kind": by_kind,
            "users": users,
        }
