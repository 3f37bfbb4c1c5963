"""JSON routes for collections and points: the embedded API's calls (Database and Collection)
with its validation and errors, under the server's keys, limits and query cache."""

import numpy as np
from starlette.concurrency import run_in_threadpool

from vdb.http import auth
from vdb.http.auth import CALL
from vdb.http.errors import ApiError
from vdb.http.openai import Json, field, read_json


def record(r, with_vectors: bool) -> dict:
    out = {"id": r.id, "payload": r.payload, "document": r.document}
    if with_vectors:
        out["vector"] = r.vector
    return out


def hit(h) -> dict:
    out = {"id": h.id, "score": float(h.score), "payload": h.payload, "document": h.document}
    if h.vector is not None:
        out["vector"] = h.vector
    return out


def vector_of(value, name: str = "vector") -> np.ndarray | None:
    """A query vector from JSON: a list of numbers, as float32 (dim)."""
    if value is None:
        return None
    if not isinstance(value, list) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in value
    ):
        raise ApiError(400, f"{name!r} must be a list of numbers", name)
    return np.array(value, dtype=np.float32)  # (dim,)


def flag(req: dict, name: str, default: bool) -> bool:
    return field(req, name, bool, default)


class StoreRoutes:
    def __init__(self, server):
        self.server, self.core = server, server.core
        self.limit = server.options.max_message_bytes

    async def _request(self, request, write: bool = False, body: bool = True):
        auth.admit(self.core, request, write=write)
        self.core.check_alive(CALL)
        return await read_json(request, self.limit) if body else {}

    def _col(self, request):
        return self.core.collection(request.path_params["name"])

    async def list(self, request):
        """The collections with their sizes."""
        await self._request(request, body=False)

        def work():
            out = []
            for name in self.core.db.list_collections():
                col = self.core.db.get_collection(name)
                cfg = col.config
                out.append(
                    {
                        "name": name,
                        "count": col.count(),
                        "dim": cfg.dim,
                        "metric": cfg.metric,
                        "embedder": cfg.embedder,
                        "text": cfg.text is not None,
                    }
                )
            return {"collections": out}

        return Json(await run_in_threadpool(work))

    async def create(self, request):
        from vdb.rpc.server import _model_name

        req = await self._request(request, write=True)
        name = field(req, "name", str, required=True)
        dim = field(req, "dim", int)
        metric = field(req, "metric", str, "cosine")
        index = field(req, "index", (str, dict))
        embedder = field(req, "embedder", str)
        text = field(req, "text", (bool, str, dict))
        embedder = _model_name(embedder) if embedder else None
        db = self.core.db
        col = await run_in_threadpool(
            db.create_collection, name, dim, metric, index, embedder, text
        )
        return Json(col.info(), status_code=201)

    async def info(self, request):
        await self._request(request, body=False)
        return Json(await run_in_threadpool(lambda: self._col(request).info()))

    async def drop(self, request):
        await self._request(request, write=True, body=False)

        def work():
            col = self._col(request)
            self.core.db.drop_collection(col.name)
            self.core.wrote(col)

        await run_in_threadpool(work)
        return Json({"deleted": request.path_params["name"]})

    async def upsert(self, request):
        """Points as columns (ids, vectors, payloads, documents: Collection.upsert's
        arguments) or as a list of objects (points: [{id, vector, payload, document}])."""
        req = await self._request(request, write=True)
        if req.get("points") is not None:
            points = field(req, "points", list)
            if not all(isinstance(p, dict) for p in points):
                raise ApiError(400, "points must be objects", "points")
            ids = [p.get("id") for p in points]
            vectors = [p.get("vector") for p in points]
            vectors = None if all(v is None for v in vectors) else vectors
            payloads = [p.get("payload") for p in points]
            documents = [p.get("document") for p in points]
        else:
            ids = field(req, "ids", list, required=True)
            vectors = field(req, "vectors", list)
            payloads, documents = req.get("payloads"), req.get("documents")

        def work():
            from vdb import validate

            col = self._col(request)
            vecs = vectors
            if vecs is None:  # the collection embeds the documents, a slice at a time
                texts = validate.texts_to_embed(ids, documents)
                validate.has_embedder(col.config)
                self.core.limits.texts(len(texts), "documents to embed")
                vecs = self.core.embed(col.embedder, texts, CALL)
            try:
                return col.upsert(ids, vecs, payloads, documents)
            finally:
                self.core.wrote(col)

        result = await run_in_threadpool(work)
        return Json({"lsn": result.lsn, "count": result.count})

    async def get(self, request):
        req = await self._request(request)
        ids = field(req, "ids", list, required=True)
        vectors = flag(req, "with_vectors", False)
        records = await run_in_threadpool(lambda: self._col(request).get(ids, vectors))
        return Json({"points": [record(r, vectors) for r in records]})

    async def delete(self, request):
        req = await self._request(request, write=True)
        ids, flt = field(req, "ids", list), req.get("filter")

        def work():
            col = self._col(request)
            try:
                return col.delete(ids=ids, filter=flt)
            finally:
                self.core.wrote(col)

        result = await run_in_threadpool(work)
        return Json({"lsn": result.lsn, "count": result.count})

    async def count(self, request):
        req = await self._request(request)
        flt = req.get("filter")
        return Json({"count": await run_in_threadpool(lambda: self._col(request).count(flt))})

    async def scroll(self, request):
        """A page of points in id order after `after`; `next` is the after of the next page
        (null on the last one)."""
        req = await self._request(request)
        limit = field(req, "limit", int, 100)
        self.core.limits.k(limit, "limit")
        after = field(req, "after", (int, str))
        vectors = flag(req, "with_vectors", False)
        flt = req.get("filter")
        page, nxt = await run_in_threadpool(
            lambda: self._col(request).scroll(flt, limit, after, vectors)
        )
        return Json({"points": [record(r, vectors) for r in page], "next": nxt})
