from vdb.rpc._gen import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MemoryOptions(_message.Message):
    __slots__ = ("half_life", "weights", "duplicate_cosine", "max_memories", "buffer_tokens", "embedder")
    HALF_LIFE_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_COSINE_FIELD_NUMBER: _ClassVar[int]
    MAX_MEMORIES_FIELD_NUMBER: _ClassVar[int]
    BUFFER_TOKENS_FIELD_NUMBER: _ClassVar[int]
    EMBEDDER_FIELD_NUMBER: _ClassVar[int]
    half_life: float
    weights: MemoryWeights
    duplicate_cosine: float
    max_memories: int
    buffer_tokens: int
    embedder: str
    def __init__(self, half_life: _Optional[float] = ..., weights: _Optional[_Union[MemoryWeights, _Mapping]] = ..., duplicate_cosine: _Optional[float] = ..., max_memories: _Optional[int] = ..., buffer_tokens: _Optional[int] = ..., embedder: _Optional[str] = ...) -> None: ...

class MemoryWeights(_message.Message):
    __slots__ = ("relevance", "recency", "importance")
    RELEVANCE_FIELD_NUMBER: _ClassVar[int]
    RECENCY_FIELD_NUMBER: _ClassVar[int]
    IMPORTANCE_FIELD_NUMBER: _ClassVar[int]
    relevance: float
    recency: float
    importance: float
    def __init__(self, relevance: _Optional[float] = ..., recency: _Optional[float] = ..., importance: _Optional[float] = ...) -> None: ...

class MemoryAgent(_message.Message):
    __slots__ = ("agent", "options")
    AGENT_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    agent: str
    options: MemoryOptions
    def __init__(self, agent: _Optional[str] = ..., options: _Optional[_Union[MemoryOptions, _Mapping]] = ...) -> None: ...

class MemoryItem(_message.Message):
    __slots__ = ("text", "kind", "importance", "metadata", "user_id", "session_id", "ttl")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    IMPORTANCE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    text: str
    kind: str
    importance: float
    metadata: _common_pb2.Struct
    user_id: str
    session_id: str
    ttl: float
    def __init__(self, text: _Optional[str] = ..., kind: _Optional[str] = ..., importance: _Optional[float] = ..., metadata: _Optional[_Union[_common_pb2.Struct, _Mapping]] = ..., user_id: _Optional[str] = ..., session_id: _Optional[str] = ..., ttl: _Optional[float] = ...) -> None: ...

class RememberRequest(_message.Message):
    __slots__ = ("agent", "options", "items", "vectors", "batch_size")
    AGENT_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    agent: str
    options: MemoryOptions
    items: _containers.RepeatedCompositeFieldContainer[MemoryItem]
    vectors: _common_pb2.Vectors
    batch_size: int
    def __init__(self, agent: _Optional[str] = ..., options: _Optional[_Union[MemoryOptions, _Mapping]] = ..., items: _Optional[_Iterable[_Union[MemoryItem, _Mapping]]] = ..., vectors: _Optional[_Union[_common_pb2.Vectors, _Mapping]] = ..., batch_size: _Optional[int] = ...) -> None: ...

class MemoryRecord(_message.Message):
    __slots__ = ("id", "text", "kind", "importance", "created", "last_access", "count", "current", "user_id", "session_id", "valid_from", "valid_to", "previous", "next", "expires_at", "metadata", "role", "seq", "tokens", "in_buffer", "summary")
    ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    IMPORTANCE_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    LAST_ACCESS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    VALID_FROM_FIELD_NUMBER: _ClassVar[int]
    VALID_TO_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    NEXT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    IN_BUFFER_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    id: str
    text: str
    kind: str
    importance: float
    created: float
    last_access: float
    count: int
    current: bool
    user_id: str
    session_id: str
    valid_from: float
    valid_to: float
    previous: str
    next: str
    expires_at: float
    metadata: _common_pb2.Value
    role: str
    seq: int
    tokens: int
    in_buffer: bool
    summary: str
    def __init__(self, id: _Optional[str] = ..., text: _Optional[str] = ..., kind: _Optional[str] = ..., importance: _Optional[float] = ..., created: _Optional[float] = ..., last_access: _Optional[float] = ..., count: _Optional[int] = ..., current: _Optional[bool] = ..., user_id: _Optional[str] = ..., session_id: _Optional[str] = ..., valid_from: _Optional[float] = ..., valid_to: _Optional[float] = ..., previous: _Optional[str] = ..., next: _Optional[str] = ..., expires_at: _Optional[float] = ..., metadata: _Optional[_Union[_common_pb2.Value, _Mapping]] = ..., role: _Optional[str] = ..., seq: _Optional[int] = ..., tokens: _Optional[int] = ..., in_buffer: _Optional[bool] = ..., summary: _Optional[str] = ...) -> None: ...

class MemoryRecords(_message.Message):
    __slots__ = ("records",)
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[MemoryRecord]
    def __init__(self, records: _Optional[_Iterable[_Union[MemoryRecord, _Mapping]]] = ...) -> None: ...

class RecallRequest(_message.Message):
    __slots__ = ("agent", "options", "text", "vector", "k", "kind", "user_id", "session_id", "all_users", "history", "filter")
    AGENT_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    ALL_USERS_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    agent: str
    options: MemoryOptions
    text: str
    vector: _common_pb2.Vectors
    k: int
    kind: str
    user_id: str
    session_id: str
    all_users: bool
    history: bool
    filter: _common_pb2.Filter
    def __init__(self, agent: _Optional[str] = ..., options: _Optional[_Union[MemoryOptions, _Mapping]] = ..., text: _Optional[str] = ..., vector: _Optional[_Union[_common_pb2.Vectors, _Mapping]] = ..., k: _Optional[int] = ..., kind: _Optional[str] = ..., user_id: _Optional[str] = ..., session_id: _Optional[str] = ..., all_users: _Optional[bool] = ..., history: _Optional[bool] = ..., filter: _Optional[_Union[_common_pb2.Filter, _Mapping]] = ...) -> None: ...

class RecalledMemory(_message.Message):
    __slots__ = ("memory", "score", "relevance", "recency", "importance")
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    RELEVANCE_FIELD_NUMBER: _ClassVar[int]
    RECENCY_FIELD_NUMBER: _ClassVar[int]
    IMPORTANCE_FIELD_NUMBER: _ClassVar[int]
    memory: MemoryRecord
    score: float
    relevance: float
    recency: float
    importance: float
    def __init__(self, memory: _Optional[_Union[MemoryRecord, _Mapping]] = ..., score: _Optional[float] = ..., relevance: _Optional[float] = ..., recency: _Optional[float] = ..., importance: _Optional[float] = ...) -> None: ...

class RecallResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[RecalledMemory]
    def __init__(self, results: _Optional[_Iterable[_Union[RecalledMemory, _Mapping]]] = ...) -> None: ...

class MemoryIdRequest(_message.Message):
    __slots__ = ("agent", "options", "id")
    AGENT_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    agent: str
    options: MemoryOptions
    id: str
    def __init__(self, agent: _Optional[str] = ..., options: _Optional[_Union[MemoryOptions, _Mapping]] = ..., id: _Optional[str] = ...) -> None: ...

class ListMemoriesRequest(_message.Message):
    __slots__ = ("agent", "options", "kind", "user_id", "session_id", "all_users", "history")
    AGENT_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    ALL_USERS_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    agent: str
    options: MemoryOptions
    kind: str
    user_id: str
    session_id: str
    all_users: bool
    history: bool
    def __init__(self, agent: _Optional[str] = ..., options: _Optional[_Union[MemoryOptions, _Mapping]] = ..., kind: _Optional[str] = ..., user_id: _Optional[str] = ..., session_id: _Optional[str] = ..., all_users: _Optional[bool] = ..., history: _Optional[bool] = ...) -> None: ...

class UpdateMemoryRequest(_message.Message):
    __slots__ = ("agent", "options", "id", "text", "importance", "metadata")
    AGENT_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    IMPORTANCE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    agent: str
    options: MemoryOptions
    id: str
    text: str
    importance: float
    metadata: _common_pb2.Struct
    def __init__(self, agent: _Optional[str] = ..., options: _Optional[_Union[MemoryOptions, _Mapping]] = ..., id: _Optional[str] = ..., text: _Optional[str] = ..., importance: _Optional[float] = ..., metadata: _Optional[_Union[_common_pb2.Struct, _Mapping]] = ...) -> None: ...

class ForgetRequest(_message.Message):
    __slots__ = ("agent", "options", "id", "filter", "hard")
    AGENT_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    HARD_FIELD_NUMBER: _ClassVar[int]
    agent: str
    options: MemoryOptions
    id: str
    filter: _common_pb2.Filter
    hard: bool
    def __init__(self, agent: _Optional[str] = ..., options: _Optional[_Union[MemoryOptions, _Mapping]] = ..., id: _Optional[str] = ..., filter: _Optional[_Union[_common_pb2.Filter, _Mapping]] = ..., hard: _Optional[bool] = ...) -> None: ...

class ForgetResponse(_message.Message):
    __slots__ = ("count",)
    COUNT_FIELD_NUMBER: _ClassVar[int]
    count: int
    def __init__(self, count: _Optional[int] = ...) -> None: ...

class MemoryStats(_message.Message):
    __slots__ = ("agent", "memories", "turns", "versions", "expired", "forgotten", "by_kind", "users")
    class ByKindEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    AGENT_FIELD_NUMBER: _ClassVar[int]
    MEMORIES_FIELD_NUMBER: _ClassVar[int]
    TURNS_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    EXPIRED_FIELD_NUMBER: _ClassVar[int]
    FORGOTTEN_FIELD_NUMBER: _ClassVar[int]
    BY_KIND_FIELD_NUMBER: _ClassVar[int]
    USERS_FIELD_NUMBER: _ClassVar[int]
    agent: str
    memories: int
    turns: int
    versions: int
    expired: int
    forgotten: int
    by_kind: _containers.ScalarMap[str, int]
    users: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, agent: _Optional[str] = ..., memories: _Optional[int] = ..., turns: _Optional[int] = ..., versions: _Optional[int] = ..., expired: _Optional[int] = ..., forgotten: _Optional[int] = ..., by_kind: _Optional[_Mapping[str, int]] = ..., users: _Optional[_Iterable[str]] = ...) -> None: ...

class AddTurnRequest(_message.Message):
    __slots__ = ("agent", "options", "role", "text", "session_id", "user_id")
    AGENT_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    agent: str
    options: MemoryOptions
    role: str
    text: str
    session_id: str
    user_id: str
    def __init__(self, agent: _Optional[str] = ..., options: _Optional[_Union[MemoryOptions, _Mapping]] = ..., role: _Optional[str] = ..., text: _Optional[str] = ..., session_id: _Optional[str] = ..., user_id: _Optional[str] = ...) -> None: ...

class AddTurnResponse(_message.Message):
    __slots__ = ("turn", "summaries")
    TURN_FIELD_NUMBER: _ClassVar[int]
    SUMMARIES_FIELD_NUMBER: _ClassVar[int]
    turn: MemoryRecord
    summaries: _containers.RepeatedCompositeFieldContainer[MemoryRecord]
    def __init__(self, turn: _Optional[_Union[MemoryRecord, _Mapping]] = ..., summaries: _Optional[_Iterable[_Union[MemoryRecord, _Mapping]]] = ...) -> None: ...

class TurnsRequest(_message.Message):
    __slots__ = ("agent", "options", "session_id", "user_id")
    AGENT_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    agent: str
    options: MemoryOptions
    session_id: str
    user_id: str
    def __init__(self, agent: _Optional[str] = ..., options: _Optional[_Union[MemoryOptions, _Mapping]] = ..., session_id: _Optional[str] = ..., user_id: _Optional[str] = ...) -> None: ...

class ContextRequest(_message.Message):
    __slots__ = ("agent", "options", "text", "vector", "budget_tokens", "user_id", "session_id", "k")
    AGENT_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    BUDGET_TOKENS_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    agent: str
    options: MemoryOptions
    text: str
    vector: _common_pb2.Vectors
    budget_tokens: int
    user_id: str
    session_id: str
    k: int
    def __init__(self, agent: _Optional[str] = ..., options: _Optional[_Union[MemoryOptions, _Mapping]] = ..., text: _Optional[str] = ..., vector: _Optional[_Union[_common_pb2.Vectors, _Mapping]] = ..., budget_tokens: _Optional[int] = ..., user_id: _Optional[str] = ..., session_id: _Optional[str] = ..., k: _Optional[int] = ...) -> None: ...

class ContextResponse(_message.Message):
    __slots__ = ("text", "tokens", "memories", "turns")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    MEMORIES_FIELD_NUMBER: _ClassVar[int]
    TURNS_FIELD_NUMBER: _ClassVar[int]
    text: str
    tokens: int
    memories: _containers.RepeatedCompositeFieldContainer[RecalledMemory]
    turns: _containers.RepeatedCompositeFieldContainer[MemoryRecord]
    def __init__(self, text: _Optional[str] = ..., tokens: _Optional[int] = ..., memories: _Optional[_Iterable[_Union[RecalledMemory, _Mapping]]] = ..., turns: _Optional[_Iterable[_Union[MemoryRecord, _Mapping]]] = ...) -> None: ...

class CountTokensRequest(_message.Message):
    __slots__ = ("agent", "options", "text")
    AGENT_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    agent: str
    options: MemoryOptions
    text: str
    def __init__(self, agent: _Optional[str] = ..., options: _Optional[_Union[MemoryOptions, _Mapping]] = ..., text: _Optional[str] = ...) -> None: ...

class CountTokensResponse(_message.Message):
    __slots__ = ("tokens",)
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    tokens: int
    def __init__(self, tokens: _Optional[int] = ...) -> None: ...

class FlushResponse(_message.Message):
    __slots__ = ("written",)
    WRITTEN_FIELD_NUMBER: _ClassVar[int]
    written: int
    def __init__(self, written: _Optional[int] = ...) -> None: ...
