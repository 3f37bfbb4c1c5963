from vdb.rpc._gen import common_pb2 as _common_pb2
from vdb.rpc._gen import generation_pb2 as _generation_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class HybridSearchRequest(_message.Message):
    __slots__ = ("collection", "query", "k", "filter", "dense_weight", "fusion")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    DENSE_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    FUSION_FIELD_NUMBER: _ClassVar[int]
    collection: str
    query: str
    k: int
    filter: _common_pb2.Filter
    dense_weight: float
    fusion: str
    def __init__(self, collection: _Optional[str] = ..., query: _Optional[str] = ..., k: _Optional[int] = ..., filter: _Optional[_Union[_common_pb2.Filter, _Mapping]] = ..., dense_weight: _Optional[float] = ..., fusion: _Optional[str] = ...) -> None: ...

class HybridHit(_message.Message):
    __slots__ = ("id", "score", "payload", "document")
    ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    id: _common_pb2.PointId
    score: float
    payload: _common_pb2.Struct
    document: str
    def __init__(self, id: _Optional[_Union[_common_pb2.PointId, _Mapping]] = ..., score: _Optional[float] = ..., payload: _Optional[_Union[_common_pb2.Struct, _Mapping]] = ..., document: _Optional[str] = ...) -> None: ...

class HybridSearchResponse(_message.Message):
    __slots__ = ("hits",)
    HITS_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[HybridHit]
    def __init__(self, hits: _Optional[_Iterable[_Union[HybridHit, _Mapping]]] = ...) -> None: ...

class AskRequest(_message.Message):
    __slots__ = ("collection", "question", "k", "filter", "generate", "max_tokens", "sampler", "memory")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    QUESTION_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    GENERATE_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    SAMPLER_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    collection: str
    question: str
    k: int
    filter: _common_pb2.Filter
    generate: bool
    max_tokens: int
    sampler: _generation_pb2.SamplerSettings
    memory: str
    def __init__(self, collection: _Optional[str] = ..., question: _Optional[str] = ..., k: _Optional[int] = ..., filter: _Optional[_Union[_common_pb2.Filter, _Mapping]] = ..., generate: _Optional[bool] = ..., max_tokens: _Optional[int] = ..., sampler: _Optional[_Union[_generation_pb2.SamplerSettings, _Mapping]] = ..., memory: _Optional[str] = ...) -> None: ...

class AskSource(_message.Message):
    __slots__ = ("number", "hit")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    HIT_FIELD_NUMBER: _ClassVar[int]
    number: int
    hit: HybridHit
    def __init__(self, number: _Optional[int] = ..., hit: _Optional[_Union[HybridHit, _Mapping]] = ...) -> None: ...

class AskResult(_message.Message):
    __slots__ = ("extractive", "cited", "sources", "span_start", "span_end", "text")
    EXTRACTIVE_FIELD_NUMBER: _ClassVar[int]
    CITED_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    SPAN_START_FIELD_NUMBER: _ClassVar[int]
    SPAN_END_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    extractive: bool
    cited: _containers.RepeatedScalarFieldContainer[int]
    sources: _containers.RepeatedCompositeFieldContainer[AskSource]
    span_start: int
    span_end: int
    text: str
    def __init__(self, extractive: _Optional[bool] = ..., cited: _Optional[_Iterable[int]] = ..., sources: _Optional[_Iterable[_Union[AskSource, _Mapping]]] = ..., span_start: _Optional[int] = ..., span_end: _Optional[int] = ..., text: _Optional[str] = ...) -> None: ...

class AskResponse(_message.Message):
    __slots__ = ("text", "result")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    text: str
    result: AskResult
    def __init__(self, text: _Optional[str] = ..., result: _Optional[_Union[AskResult, _Mapping]] = ...) -> None: ...
