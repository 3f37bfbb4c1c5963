"""Bounded work per request: the server's limits on queries, k, results and texts to embed,
checked before the work (by the server, and by the remote client when the server reports
them), and a running count of a response's bytes that refuses it as soon as it would pass the
largest message the server sends.

Limits are refused with LimitExceededError and an oversized response with
MessageTooLargeError: both RESOURCE_EXHAUSTED over the wire.
"""

from dataclasses import dataclass, fields

from vdb.errors import LimitExceededError, MessageTooLargeError

FRAME = 6  # bytes of a field's tag and length around an embedded message, at most
MIN_HIT = 5  # bytes of the smallest search hit on the wire: a float32 score, a 1-byte id


@dataclass(frozen=True)
class Limits:
    """What one request may ask for. The defaults are generous: they refuse requests that
    would hold a worker for minutes or take gigabytes, not real workloads."""

    max_batch_queries: int = 10_000  # query rows (or texts) of one SearchBatch
    max_k: int = 10_000  # k of a search, recall or hybrid search; also ef
    max_results: int = 1_000_000  # queries x k of one SearchBatch
    max_texts: int = 4_096  # texts one request has embedded: Embed, Remember, Upsert, queries
    max_text_bytes: int = 4 << 20  # a text tokenized whole: prompts, turns, token counts

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{f.name} must be a positive integer, got {value!r}")

    def search(self, queries: int, k: int, ef: int = 0) -> None:
        """A search of `queries` rows for the k best (ef: the HNSW breadth asked, 0 if none)."""
        if queries > self.max_batch_queries:
            raise LimitExceededError(
                f"{queries} queries in one batch; this server takes at most "
                f"{self.max_batch_queries} (--max-batch-queries): send several batches"
            )
        self.k(k)
        if ef > self.max_k:
            raise LimitExceededError(f"ef={ef} is above this server's limit of {self.max_k}")
        if queries * k > self.max_results:
            raise LimitExceededError(
                f"{queries} queries x k={k} asks for {queries * k} results; this server returns "
                f"at most {self.max_results} per request (--max-results): send smaller batches"
            )

    def k(self, k: int, what: str = "k") -> None:
        if k > self.max_k:
            raise LimitExceededError(
                f"{what}={k} is above this server's limit of {self.max_k} (--max-k)"
            )

    def texts(self, n: int, what: str = "texts to embed") -> None:
        if n > self.max_texts:
            raise LimitExceededError(
                f"{n} {what} in one request; this server embeds at most {self.max_texts} per "
                "request (--max-embed-texts): send several requests"
            )

    def text(self, text: str, what: str = "text") -> None:
        """A text that is tokenized whole (tokenizers take tens of bytes of memory per byte
        of text; texts only embedded are cut to the model's length first and need no
        limit)."""
        if len(text) > self.max_text_bytes // 4 and len(text.encode()) > self.max_text_bytes:
            raise LimitExceededError(
                f"the {what} is {len(text.encode())} bytes; this server tokenizes at most "
                f"{self.max_text_bytes} bytes of one text (--max-text-size)"
            )


class Budget:
    """A running count of the bytes of a response being built, against the largest message the
    server sends: add() raises MessageTooLargeError as soon as the count passes it, so that a
    response too large to send is never built whole."""

    def __init__(self, limit: int, what: str = "the response"):
        self.limit, self.what, self.used = limit, what, 0

    def add(self, nbytes: int) -> None:
        self.used += nbytes
        if self.used > self.limit:
            raise self.error()

    def check(self, estimate: int) -> None:
        """Refuse before any work when an estimate of the whole response is already too
        large."""
        if estimate > self.limit:
            self.used = estimate
            raise self.error()

    @property
    def left(self) -> int:
        return max(0, self.limit - self.used)

    def error(self) -> MessageTooLargeError:
        return MessageTooLargeError(
            f"{self.what} would be larger than max {self.limit} bytes (the server's "
            "--max-message-size): ask for fewer results, or leave out payloads, documents or "
            "vectors"
        )
