"""The Points service. Reads are built in pieces with a running count of the response's
bytes, so a response too large to send is refused as soon as it would pass the server's message
limit, never built whole. Searches run a chunk of queries at a time through the embedded
search, checking the deadline between chunks; their ids and scores go out as packed columns
converted from the result arrays, payloads and documents only when asked for."""

import numpy as np

from vdb import validate
from vdb.errors import DataCorruptedError, InvalidArgumentError
from vdb.results import SearchResults, Selection
from vdb.rpc import convert
from vdb.rpc._gen import common_pb2 as pb
from vdb.rpc._gen import points_pb2 as ppb
from vdb.rpc._gen import points_pb2_grpc as pgrpc
from vdb.rpc.handler import rpc
from vdb.rpc.limits import FRAME, MIN_HIT
from vdb.storage.codec import encode_id, stored_id
from vdb.text import hybrid

CHUNK_RESULTS = 16_384  # hits (queries x k) searched at once
READ_RESULTS = 256  # hits of the first chunk that reads records (payloads, documents, vectors)
PIECE = 256  # records read at once by Get and Scroll, at most


class PointsService(pgrpc.PointsServicer):
    def __init__(self, core):
        self.core = core

    # ------------------------------------------------------------ writes

    def _upsert(self, col, request, context) -> pb.WriteResult:
        vectors = convert.unpack(request.vectors) if request.HasField("vectors") else None
        ids, payloads, documents = [], [], []
        for point in request.points:
            pid, payload, document = convert.point_fields(point)
            ids.append(pid)
            payloads.append(payload)
            documents.append(document)
        if vectors is None:  # the collection embeds the documents: a slice at a time here
            texts = validate.texts_to_embed(ids, documents)
            validate.has_embedder(col.config)
            self.core.limits.texts(len(texts), "documents to embed")
            vectors = self.core.embed(col.embedder, texts, context)
        self.core.check_alive(context)
        try:
            result = col.upsert(ids, vectors, payloads, documents)
        finally:
            self.core.wrote(col)
        return pb.WriteResult(lsn=result.lsn, count=result.count)

    @rpc(write=True)
    def Upsert(self, request, context):
        return self._upsert(self.core.collection(request.collection), request, context)

    @rpc(write=True)
    def UpsertStream(self, request_iterator, context):
        cols = {}
        for i, request in enumerate(request_iterator):
            col = cols.get(request.collection)
            if col is None:
                col = cols[request.collection] = self.core.collection(request.collection)
            yield ppb.UpsertAck(batch=i, result=self._upsert(col, request, context))

    @rpc(write=True)
    def Delete(self, request, context):
        col = self.core.collection(request.collection)
        selector = request.WhichOneof("selector")
        try:
            if selector == "ids":
                result = col.delete(ids=[convert.id_from(m) for m in request.ids.ids])
            elif selector == "filter":
                result = col.delete(filter=convert.filter_from(request.filter))
            else:
                raise InvalidArgumentError("delete takes either ids or filter")
        finally:
            self.core.wrote(col)
        return pb.WriteResult(lsn=result.lsn, count=result.count)

    # ------------------------------------------------------------ records

    @rpc()
    def Get(self, request, context):
        col = self.core.collection(request.collection)
        ids = [convert.id_from(m) for m in request.ids]
        budget = self.core.budget()
        resp = ppb.PointsResponse()
        records = []
        for part in _pieces(ids, budget):
            self.core.check_alive(context)
            _add_records(resp, col.get(part, request.with_vectors), records, budget)
        convert.set_vectors(resp.vectors, records, request.with_vectors, col.dim)
        return resp

    @rpc()
    def Count(self, request, context):
        col = self.core.collection(request.collection)
        return ppb.CountResponse(count=col.count(convert.optional_filter(request)))

    @rpc()
    def Scroll(self, request, context):
        col = self.core.collection(request.collection)
        flt = convert.optional_filter(request)
        after, limit = _after(request.page_token), request.limit or 100
        budget = self.core.budget()
        resp = ppb.ScrollResponse()
        records, more = [], True
        while more and len(records) < limit:
            self.core.check_alive(context)
            want = min(limit - len(records), _piece_size(budget, len(records)))
            page, after = col.scroll(flt, want, after, request.with_vectors)
            more = after is not None
            _add_records(resp, page, records, budget)
        convert.set_vectors(resp.vectors, records, request.with_vectors, col.dim)
        if more:
            resp.next_page_token = encode_id(records[-1].id)
        return resp

    # ------------------------------------------------------------ search

    def _cached(self, col, request, tag: bytes, compute):
        cache = self.core.cache
        if cache is None:
            return compute()
        key = (col.config.cid, col.lsn, tag + request.SerializeToString(deterministic=True))
        resp = cache.get(key)
        if resp is None:
            resp = compute()
            cache.put(key, resp, resp.ByteSize())
        return resp

    @staticmethod
    def _queries(request, single: bool):
        """Text queries (a list), the query vectors (n, dim), or None for a keyword search
        without them."""
        n = len(request.texts) if request.texts else None
        if n is None and request.text and not request.HasField("queries"):
            queries = None
        elif n is not None:
            queries = list(request.texts)
        else:
            queries = convert.unpack(request.queries, "queries")
        keyword = len(request.text) if request.text else None
        count = len(queries) if queries is not None else keyword
        if single and count != 1:
            what = (
                f"{n} texts"
                if n is not None
                else f"{count} query rows"
                if queries is not None
                else f"{count} keyword texts"
            )
            raise InvalidArgumentError(f"Search takes one query, got {what}; use SearchBatch")
        if keyword is not None and keyword != count:
            raise InvalidArgumentError(
                f"a hybrid search takes one keyword text per query: got {count} queries and "
                f"{keyword} keyword texts"
            )
        return queries

    @staticmethod
    def _keyword(request):
        """The keyword half's arguments of col.search: text (None without), fusion, weight."""
        if not request.text:
            if request.fusion or request.HasField("dense_weight"):
                raise InvalidArgumentError("fusion and dense_weight need keyword texts (text)")
            return None, "convex", None
        weight = request.dense_weight if request.HasField("dense_weight") else None
        return list(request.text), request.fusion or "convex", weight

    def _search(self, col, request, context, single: bool) -> ppb.SearchResponse:
        """The SearchResponse of a Search (one query) or SearchBatch request, searched a chunk
        of queries at a time (the deadline checked between chunks) and refused as soon as its
        bytes would pass the server's message limit."""
        want = convert.selection_from(request)
        queries = self._queries(request, single)
        text, fusion, weight = self._keyword(request)
        nq, k = len(queries if queries is not None else text), request.k or 10
        limits = self.core.limits
        limits.search(nq, k, request.ef)
        if request.texts:
            limits.texts(nq, "text queries")
        if text is not None:
            for t in text:
                limits.text(t, "keyword text")
        budget = self.core.budget()
        hits = nq * min(k, len(col))
        budget.check(hits * (MIN_HIT + (4 * col.dim if want.vectors else 0)))
        flt = convert.optional_filter(request)
        if text is not None:
            hybrid.checked(fusion, weight)  # before any embedding
            for t in text:
                if not t.strip():
                    raise InvalidArgumentError("a keyword text must be a non-empty string")
        if request.texts:
            validate.has_embedder(col.config)
            queries = self.core.embed(col.embedder, queries, context)
        out = _Gathered(want, col.dim, budget)
        start = 0
        while start < nq:
            self.core.check_alive(context)
            step = out.step(k)
            found = col.search(
                queries[start : start + step] if queries is not None else None,
                k,
                flt,
                want.vectors,
                request.ef or None,
                want.payload,
                want.document,
                text=text[start : start + step] if text is not None else None,
                fusion=fusion,
                dense_weight=weight,
            )
            out.add(found)
            start += step
        return out.message()

    @rpc()
    def Search(self, request, context):
        col = self.core.collection(request.collection)
        return self._cached(col, request, b"1", lambda: self._search(col, request, context, True))

    @rpc()
    def SearchBatch(self, request, context):
        col = self.core.collection(request.collection)
        return self._cached(col, request, b"n", lambda: self._search(col, request, context, False))


class _Gathered:
    """A SearchResponse gathered a chunk of queries at a time: each chunk's ids and scores as
    arrays, its payloads and documents encoded once per point, its bytes counted against the
    budget before the chunk is kept."""

    def __init__(self, want: Selection, dim: int, budget):
        self.want, self.dim, self.budget = want, dim, budget
        self.counts: list[np.ndarray] = []  # (nq_chunk,) int64 per chunk
        self.scores: list[bytes] = []  # little-endian float32, a chunk's hits each
        self.ids: list[np.ndarray] = []  # (n_chunk,) int64 or object per chunk
        self.vectors: list[bytes] = []  # little-endian float32 rows, a chunk's hits each
        self.data: list[bytes] = []  # an encoded HitData field per hit
        self.width, self.string_ids, self.queries, self.hits = 0, False, 0, 0

    def step(self, k: int) -> int:
        """Queries to search next: CHUNK_RESULTS hits' worth; when records are read,
        READ_RESULTS hits' worth first, then as many as the bytes left hold at the size per
        hit seen so far (so that records too large to send are not all read first)."""
        if not self.want.reads or (self.queries and not self.hits):
            return max(1, CHUNK_RESULTS // k)
        if not self.hits:
            return max(1, READ_RESULTS // k)
        per_hit = max(1, self.budget.used // self.hits)
        return max(1, min(CHUNK_RESULTS, self.budget.left // per_hit) // k)

    def add(self, results: SearchResults) -> None:
        counts = results.counts  # (nq,)
        found = np.arange(results.ids.shape[1]) < counts[:, None]  # (nq, width)
        ids = results.ids[found]  # (n,) in query order, best first
        n = len(ids)
        nbytes = 4 * n + _id_bytes(ids) + 5 * len(counts) + FRAME
        data = []
        if self.want.payload or self.want.document:
            nbytes += _hit_data(results, data)
        if self.want.vectors:
            nbytes += 4 * self.dim * n + FRAME
        self.budget.add(nbytes)
        if self.want.vectors and n:
            rows = [hit.vector for hits in results for hit in hits]
            self.vectors.append(np.stack(rows).astype("<f4", copy=False).tobytes())
        self.data.extend(data)
        self.counts.append(counts)
        self.scores.append(results.scores[found].astype("<f4", copy=False).tobytes())
        self.ids.append(ids)
        self.width = max(self.width, results.ids.shape[1])
        self.string_ids |= results.ids.dtype == object
        self.queries += len(counts)
        self.hits += n

    def message(self) -> ppb.SearchResponse:
        resp = ppb.SearchResponse(width=self.width, string_ids=self.string_ids)
        if self.counts:
            resp.counts.extend(np.concatenate(self.counts).tolist())
            convert.set_ids(resp, np.concatenate(self.ids))
        resp.scores = b"".join(self.scores)
        if self.data:  # the encoded HitData fields, read in at C speed
            resp.MergeFromString(b"".join(self.data))
        if self.want.vectors:
            resp.vectors.dim = self.dim
            resp.vectors.data = b"".join(self.vectors)
        return resp


_VARINT_STEPS = np.array([1 << (7 * i) for i in range(1, 10)], np.uint64)  # 2 bytes from 2^7


def _id_bytes(ids: np.ndarray) -> int:
    """Bytes of ids (n,) in a SearchResponse: exact for int64 (zigzag varints); for an
    object array of ints and strs, a bound (each id's decimal or UTF-8 text, plus 3)."""
    if ids.dtype != object:
        zigzag = ((ids << 1) ^ (ids >> 63)).view(np.uint64)
        return len(ids) + int(np.searchsorted(_VARINT_STEPS, zigzag, side="right").sum())
    return len("".join(map(str, ids)).encode("utf-8", "surrogatepass")) + 3 * len(ids)


def _hit_data(results: SearchResults, out: list) -> int:
    """Append the HitData of every hit of results to out, as the encoded field of a
    SearchResponse (one encoding per point: the hits of a point found by several queries share
    it); returns their bytes."""
    made: dict = {}  # id -> encoded field
    nbytes = 0
    for hits in results:
        for hit in hits:
            field = made.get(hit.id)
            if field is None:
                one = ppb.SearchResponse()  # serialized alone: just the encoded data field
                msg = one.data.add()
                if hit.payload is not None:
                    convert.set_struct(msg.payload, hit.payload)
                if hit.document is not None:
                    msg.document = hit.document
                field = made[hit.id] = one.SerializeToString()
            out.append(field)
            nbytes += len(field)
    return nbytes


def _add_records(msg, page, records: list, budget) -> None:
    """Append a page of records to a PointsResponse or ScrollResponse (their vectors are
    packed at the end, from `records`)."""
    for rec in page:
        point = msg.records.add()
        convert.set_point(point, rec.id, rec.payload, rec.document)
        budget.add(point.ByteSize() + FRAME + (0 if rec.vector is None else 4 * len(rec.vector)))
        records.append(rec)


def _piece_size(budget, done: int) -> int:
    """Records to read next: as many as the bytes left would hold at the size seen so far
    (one at a time while records are large), at most PIECE."""
    if not done:
        return 16
    seen = max(1, budget.used // done)
    return max(1, min(PIECE, budget.left // seen))


def _pieces(ids: list, budget):
    start = 0
    while start < len(ids):
        n = _piece_size(budget, start)
        yield ids[start : start + n]
        start += n


def _after(token: bytes):
    """The id a scroll page token stands for (None for the first page)."""
    if not token:
        return None
    try:
        return stored_id(token)
    except DataCorruptedError:
        raise InvalidArgumentError("page_token is not one this server issued") from None
