from vdb.rpc._gen import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class UpsertRequest(_message.Message):
    __slots__ = ("collection", "vectors", "points")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    vectors: _common_pb2.Vectors
    points: _containers.RepeatedCompositeFieldContainer[_common_pb2.Point]
    def __init__(self, collection: _Optional[str] = ..., vectors: _Optional[_Union[_common_pb2.Vectors, _Mapping]] = ..., points: _Optional[_Iterable[_Union[_common_pb2.Point, _Mapping]]] = ...) -> None: ...

class UpsertAck(_message.Message):
    __slots__ = ("batch", "result")
    BATCH_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    batch: int
    result: _common_pb2.WriteResult
    def __init__(self, batch: _Optional[int] = ..., result: _Optional[_Union[_common_pb2.WriteResult, _Mapping]] = ...) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ("collection", "ids", "with_vectors")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    WITH_VECTORS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    ids: _containers.RepeatedCompositeFieldContainer[_common_pb2.PointId]
    with_vectors: bool
    def __init__(self, collection: _Optional[str] = ..., ids: _Optional[_Iterable[_Union[_common_pb2.PointId, _Mapping]]] = ..., with_vectors: _Optional[bool] = ...) -> None: ...

class PointsResponse(_message.Message):
    __slots__ = ("records", "vectors")
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[_common_pb2.Point]
    vectors: _common_pb2.Vectors
    def __init__(self, records: _Optional[_Iterable[_Union[_common_pb2.Point, _Mapping]]] = ..., vectors: _Optional[_Union[_common_pb2.Vectors, _Mapping]] = ...) -> None: ...

class DeleteRequest(_message.Message):
    __slots__ = ("collection", "ids", "filter")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    collection: str
    ids: _common_pb2.PointIdList
    filter: _common_pb2.Filter
    def __init__(self, collection: _Optional[str] = ..., ids: _Optional[_Union[_common_pb2.PointIdList, _Mapping]] = ..., filter: _Optional[_Union[_common_pb2.Filter, _Mapping]] = ...) -> None: ...

class CountRequest(_message.Message):
    __slots__ = ("collection", "filter")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    collection: str
    filter: _common_pb2.Filter
    def __init__(self, collection: _Optional[str] = ..., filter: _Optional[_Union[_common_pb2.Filter, _Mapping]] = ...) -> None: ...

class CountResponse(_message.Message):
    __slots__ = ("count",)
    COUNT_FIELD_NUMBER: _ClassVar[int]
    count: int
    def __init__(self, count: _Optional[int] = ...) -> None: ...

class ScrollRequest(_message.Message):
    __slots__ = ("collection", "filter", "limit", "page_token", "with_vectors")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    WITH_VECTORS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    filter: _common_pb2.Filter
    limit: int
    page_token: bytes
    with_vectors: bool
    def __init__(self, collection: _Optional[str] = ..., filter: _Optional[_Union[_common_pb2.Filter, _Mapping]] = ..., limit: _Optional[int] = ..., page_token: _Optional[bytes] = ..., with_vectors: _Optional[bool] = ...) -> None: ...

class ScrollResponse(_message.Message):
    __slots__ = ("records", "vectors", "next_page_token")
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[_common_pb2.Point]
    vectors: _common_pb2.Vectors
    next_page_token: bytes
    def __init__(self, records: _Optional[_Iterable[_Union[_common_pb2.Point, _Mapping]]] = ..., vectors: _Optional[_Union[_common_pb2.Vectors, _Mapping]] = ..., next_page_token: _Optional[bytes] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("collection", "queries", "texts", "k", "filter", "with_vectors", "ef", "with_payload", "payload_keys", "with_document", "text", "fusion", "dense_weight")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    WITH_VECTORS_FIELD_NUMBER: _ClassVar[int]
    EF_FIELD_NUMBER: _ClassVar[int]
    WITH_PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_KEYS_FIELD_NUMBER: _ClassVar[int]
    WITH_DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    FUSION_FIELD_NUMBER: _ClassVar[int]
    DENSE_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    collection: str
    queries: _common_pb2.Vectors
    texts: _containers.RepeatedScalarFieldContainer[str]
    k: int
    filter: _common_pb2.Filter
    with_vectors: bool
    ef: int
    with_payload: bool
    payload_keys: _containers.RepeatedScalarFieldContainer[str]
    with_document: bool
    text: _containers.RepeatedScalarFieldContainer[str]
    fusion: str
    dense_weight: float
    def __init__(self, collection: _Optional[str] = ..., queries: _Optional[_Union[_common_pb2.Vectors, _Mapping]] = ..., texts: _Optional[_Iterable[str]] = ..., k: _Optional[int] = ..., filter: _Optional[_Union[_common_pb2.Filter, _Mapping]] = ..., with_vectors: _Optional[bool] = ..., ef: _Optional[int] = ..., with_payload: _Optional[bool] = ..., payload_keys: _Optional[_Iterable[str]] = ..., with_document: _Optional[bool] = ..., text: _Optional[_Iterable[str]] = ..., fusion: _Optional[str] = ..., dense_weight: _Optional[float] = ...) -> None: ...

class HitData(_message.Message):
    __slots__ = ("payload", "document")
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    payload: _common_pb2.Struct
    document: str
    def __init__(self, payload: _Optional[_Union[_common_pb2.Struct, _Mapping]] = ..., document: _Optional[str] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("vectors", "counts", "scores", "int_ids", "str_ids", "id_kinds", "width", "string_ids", "data")
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    INT_IDS_FIELD_NUMBER: _ClassVar[int]
    STR_IDS_FIELD_NUMBER: _ClassVar[int]
    ID_KINDS_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    STRING_IDS_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    vectors: _common_pb2.Vectors
    counts: _containers.RepeatedScalarFieldContainer[int]
    scores: bytes
    int_ids: _containers.RepeatedScalarFieldContainer[int]
    str_ids: _containers.RepeatedScalarFieldContainer[str]
    id_kinds: bytes
    width: int
    string_ids: bool
    data: _containers.RepeatedCompositeFieldContainer[HitData]
    def __init__(self, vectors: _Optional[_Union[_common_pb2.Vectors, _Mapping]] = ..., counts: _Optional[_Iterable[int]] = ..., scores: _Optional[bytes] = ..., int_ids: _Optional[_Iterable[int]] = ..., str_ids: _Optional[_Iterable[str]] = ..., id_kinds: _Optional[bytes] = ..., width: _Optional[int] = ..., string_ids: _Optional[bool] = ..., data: _Optional[_Iterable[_Union[HitData, _Mapping]]] = ...) -> None: ...
