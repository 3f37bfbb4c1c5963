"""The Points service. Reads are built a record at a time with a running count of the
response's bytes, so a response too large to send is refused as soon as it would pass the
server's message limit, never built whole; searches run a chunk of queries at a time, checking
the deadline between chunks."""

from vdb import validate
from vdb.errors import DataCorruptedError, InvalidArgumentError
from vdb.rpc import convert
from vdb.rpc._gen import common_pb2 as pb
from vdb.rpc._gen import points_pb2 as ppb
from vdb.rpc._gen import points_pb2_grpc as pgrpc
from vdb.rpc.handler import rpc
from vdb.rpc.limits import FRAME, MIN_HIT
from vdb.storage.codec import encode_id, stored_id

CHUNK_RESULTS = 16_384  # hits (queries x k) searched at once
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
        """Text queries, or the query vectors."""
        if request.texts:
            if single and len(request.texts) != 1:
                raise InvalidArgumentError(
                    f"Search takes one text, got {len(request.texts)}; use SearchBatch"
                )
            return request.texts[0] if single else list(request.texts)
        queries = convert.unpack(request.queries, "query")
        if single:
            if queries.shape[0] != 1:
                raise InvalidArgumentError(
                    f"Search takes one query row, got {queries.shape[0]}; use SearchBatch"
                )
            return queries[0]
        return queries

    def _search(self, col, request, context, single: bool):
        """The SearchResponse (single) or SearchBatchResponse of a request."""
        queries = self._queries(request, single)
        nq, k = 1 if single else len(queries), request.k or 10
        limits = self.core.limits
        limits.search(nq, k, request.ef)
        if request.texts:
            limits.texts(nq, "text queries")
        budget = self.core.budget()
        hits = nq * min(k, len(col))
        budget.check(hits * (MIN_HIT + (4 * col.dim if request.with_vectors else 0)))
        flt = convert.optional_filter(request)
        if request.texts:
            validate.has_embedder(col.config)
            vectors = self.core.embed(col.embedder, list(request.texts), context)
            queries = vectors[0] if single else vectors
        resp = ppb.SearchResponse() if single else ppb.SearchBatchResponse()
        step = max(1, CHUNK_RESULTS // k)
        for start in range(0, nq, step):
            self.core.check_alive(context)
            part = queries if single else queries[start : start + step]
            with col._searched(part, k, flt, request.ef or None) as (_, scores, rows, read):
                for srow, rrow in zip(scores, rows, strict=True):
                    msg = resp if single else resp.results.add()
                    _add_hits(msg, srow, rrow, read, request.with_vectors, col.dim, budget)
        return resp

    @rpc()
    def Search(self, request, context):
        col = self.core.collection(request.collection)
        return self._cached(col, request, b"1", lambda: self._search(col, request, context, True))

    @rpc()
    def SearchBatch(self, request, context):
        col = self.core.collection(request.collection)
        return self._cached(col, request, b"n", lambda: self._search(col, request, context, False))


def _add_hits(msg, scores, rows, read, with_vectors: bool, dim: int, budget) -> None:
    """Fill a SearchResponse with the hits of one query, a record at a time."""
    records = []
    for score, row in zip(scores.tolist(), rows.tolist(), strict=True):
        rec = read(row, with_vectors)
        if rec is None:
            continue
        hit = msg.hits.add()
        hit.score = score
        convert.set_point(hit.point, rec.id, rec.payload, rec.document)
        budget.add(hit.ByteSize() + FRAME + (4 * dim if with_vectors else 0))
        records.append(rec)
    convert.set_vectors(msg.vectors, records, with_vectors, dim)
    budget.add(3 * FRAME)


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
