from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TextParams(_message.Message):
    __slots__ = ("analyzer", "field")
    ANALYZER_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    analyzer: str
    field: str
    def __init__(self, analyzer: _Optional[str] = ..., field: _Optional[str] = ...) -> None: ...

class EnableTextRequest(_message.Message):
    __slots__ = ("name", "text")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    name: str
    text: TextParams
    def __init__(self, name: _Optional[str] = ..., text: _Optional[_Union[TextParams, _Mapping]] = ...) -> None: ...

class CollectionName(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class IndexParams(_message.Message):
    __slots__ = ("kind", "hnsw_threshold", "m", "ef_construction", "ef_search", "seed", "int8", "max_batch", "batch_fraction", "compact_share")
    KIND_FIELD_NUMBER: _ClassVar[int]
    HNSW_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    M_FIELD_NUMBER: _ClassVar[int]
    EF_CONSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    EF_SEARCH_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    INT8_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_FIELD_NUMBER: _ClassVar[int]
    BATCH_FRACTION_FIELD_NUMBER: _ClassVar[int]
    COMPACT_SHARE_FIELD_NUMBER: _ClassVar[int]
    kind: str
    hnsw_threshold: int
    m: int
    ef_construction: int
    ef_search: int
    seed: int
    int8: bool
    max_batch: int
    batch_fraction: float
    compact_share: float
    def __init__(self, kind: _Optional[str] = ..., hnsw_threshold: _Optional[int] = ..., m: _Optional[int] = ..., ef_construction: _Optional[int] = ..., ef_search: _Optional[int] = ..., seed: _Optional[int] = ..., int8: _Optional[bool] = ..., max_batch: _Optional[int] = ..., batch_fraction: _Optional[float] = ..., compact_share: _Optional[float] = ...) -> None: ...

class CreateCollectionRequest(_message.Message):
    __slots__ = ("name", "dim", "metric", "index", "embedder", "text")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    EMBEDDER_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    name: str
    dim: int
    metric: str
    index: IndexParams
    embedder: str
    text: TextParams
    def __init__(self, name: _Optional[str] = ..., dim: _Optional[int] = ..., metric: _Optional[str] = ..., index: _Optional[_Union[IndexParams, _Mapping]] = ..., embedder: _Optional[str] = ..., text: _Optional[_Union[TextParams, _Mapping]] = ...) -> None: ...

class CollectionInfo(_message.Message):
    __slots__ = ("name", "dim", "metric", "index", "count", "lsn", "index_in_use", "loaded_from", "created_at", "cid", "embedder", "damage", "buffered", "text")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    LSN_FIELD_NUMBER: _ClassVar[int]
    INDEX_IN_USE_FIELD_NUMBER: _ClassVar[int]
    LOADED_FROM_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    CID_FIELD_NUMBER: _ClassVar[int]
    EMBEDDER_FIELD_NUMBER: _ClassVar[int]
    DAMAGE_FIELD_NUMBER: _ClassVar[int]
    BUFFERED_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    name: str
    dim: int
    metric: str
    index: IndexParams
    count: int
    lsn: int
    index_in_use: str
    loaded_from: str
    created_at: float
    cid: int
    embedder: str
    damage: _containers.RepeatedScalarFieldContainer[str]
    buffered: int
    text: TextParams
    def __init__(self, name: _Optional[str] = ..., dim: _Optional[int] = ..., metric: _Optional[str] = ..., index: _Optional[_Union[IndexParams, _Mapping]] = ..., count: _Optional[int] = ..., lsn: _Optional[int] = ..., index_in_use: _Optional[str] = ..., loaded_from: _Optional[str] = ..., created_at: _Optional[float] = ..., cid: _Optional[int] = ..., embedder: _Optional[str] = ..., damage: _Optional[_Iterable[str]] = ..., buffered: _Optional[int] = ..., text: _Optional[_Union[TextParams, _Mapping]] = ...) -> None: ...

class ListCollectionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListCollectionsResponse(_message.Message):
    __slots__ = ("names",)
    NAMES_FIELD_NUMBER: _ClassVar[int]
    names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, names: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteCollectionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ExistsResponse(_message.Message):
    __slots__ = ("exists",)
    EXISTS_FIELD_NUMBER: _ClassVar[int]
    exists: bool
    def __init__(self, exists: _Optional[bool] = ...) -> None: ...

class CheckpointResponse(_message.Message):
    __slots__ = ("lsn",)
    LSN_FIELD_NUMBER: _ClassVar[int]
    lsn: int
    def __init__(self, lsn: _Optional[int] = ...) -> None: ...

class CompactResponse(_message.Message):
    __slots__ = ("unlinked",)
    UNLINKED_FIELD_NUMBER: _ClassVar[int]
    unlinked: int
    def __init__(self, unlinked: _Optional[int] = ...) -> None: ...
