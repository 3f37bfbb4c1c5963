from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ServerInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CacheStats(_message.Message):
    __slots__ = ("enabled", "hits", "misses", "hit_rate", "entries", "capacity", "ttl_seconds")
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    HITS_FIELD_NUMBER: _ClassVar[int]
    MISSES_FIELD_NUMBER: _ClassVar[int]
    HIT_RATE_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    enabled: bool
    hits: int
    misses: int
    hit_rate: float
    entries: int
    capacity: int
    ttl_seconds: float
    def __init__(self, enabled: _Optional[bool] = ..., hits: _Optional[int] = ..., misses: _Optional[int] = ..., hit_rate: _Optional[float] = ..., entries: _Optional[int] = ..., capacity: _Optional[int] = ..., ttl_seconds: _Optional[float] = ...) -> None: ...

class ServerInfo(_message.Message):
    __slots__ = ("version", "uptime_seconds", "read_only", "collections", "cache", "in_flight", "max_message_bytes", "workers", "limits")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    UPTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    READ_ONLY_FIELD_NUMBER: _ClassVar[int]
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    CACHE_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    version: str
    uptime_seconds: float
    read_only: bool
    collections: int
    cache: CacheStats
    in_flight: int
    max_message_bytes: int
    workers: int
    limits: Limits
    def __init__(self, version: _Optional[str] = ..., uptime_seconds: _Optional[float] = ..., read_only: _Optional[bool] = ..., collections: _Optional[int] = ..., cache: _Optional[_Union[CacheStats, _Mapping]] = ..., in_flight: _Optional[int] = ..., max_message_bytes: _Optional[int] = ..., workers: _Optional[int] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ...) -> None: ...

class Limits(_message.Message):
    __slots__ = ("max_batch_queries", "max_k", "max_results", "max_embed_texts", "max_text_bytes")
    MAX_BATCH_QUERIES_FIELD_NUMBER: _ClassVar[int]
    MAX_K_FIELD_NUMBER: _ClassVar[int]
    MAX_RESULTS_FIELD_NUMBER: _ClassVar[int]
    MAX_EMBED_TEXTS_FIELD_NUMBER: _ClassVar[int]
    MAX_TEXT_BYTES_FIELD_NUMBER: _ClassVar[int]
    max_batch_queries: int
    max_k: int
    max_results: int
    max_embed_texts: int
    max_text_bytes: int
    def __init__(self, max_batch_queries: _Optional[int] = ..., max_k: _Optional[int] = ..., max_results: _Optional[int] = ..., max_embed_texts: _Optional[int] = ..., max_text_bytes: _Optional[int] = ...) -> None: ...
