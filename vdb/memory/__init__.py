"""Agent memory: long-term memories (vdb.memory.store: Memory, made of vdb.memory.writing,
reading and access; vdb.memory.records: the records and argument checks) and conversation
buffers (vdb.memory.conversation). See Memory."""

from vdb.memory.conversation import ROLES, Context
from vdb.memory.store import (
    DEFAULT_WEIGHTS,
    DUPLICATE_COSINE,
    KINDS,
    TURN,
    Memory,
    MemoryNotFoundError,
    MemoryRecord,
    Recalled,
)

__all__ = [
    "DEFAULT_WEIGHTS",
    "DUPLICATE_COSINE",
    "KINDS",
    "ROLES",
    "TURN",
    "Context",
    "Memory",
    "MemoryNotFoundError",
    "MemoryRecord",
    "Recalled",
]
