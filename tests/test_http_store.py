"""REST routes for collections, points, search, hybrid query and answers, through a real server
on 127.0.0.1 port 0, congruent with the embedded API over the same database."""

import json

import numpy as np
import pytest

import llm
from tests.conftest import fixture_file
from tests.helpers.http_client import HANDBOOK, request
from tests.rpc import serving
from vdb import rag
from vdb.database import DEFAULT_EMBEDDER

pytest.importorskip("uvicorn")

KEY, READ_ONLY = "writer", "reader"
DOCS = HANDBOOK


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    options = dict(
        http_port=0,
        api_keys=(KEY,),
        read_only_keys=(READ_ONLY,),
        model=str(fixture_file("models", "stories260K.gguf")),
    )
    with serving(tmp_path_factory.mktemp("db"), **options) as (server, _):
        yield server


@pytest.fixture(scope="module")
def base(served):
    return f"http://127.0.0.1:{served.http_port}"


def call(base, path, data=None, key=KEY, method=None):
    """(status, decoded JSON or raw text) of one request."""
    status, payload = request(base, path, data, key, method, timeout=120)
    try:
        return status, json.loads(payload)
    except ValueError:
        return status, payload.decode()


def ok(result, status=200):
    assert result[0] == status, result
    return result[1]


def pairs(hits) -> list:
    """(id, score) of hits, from HTTP dicts or embedded Hits."""
    return [(h["id"], h["score"]) if isinstance(h, dict) else (h.id, h.score) for h in hits]


@pytest.fixture(scope="module")
def collections(base, served):
    ok(call(base, "/v1/collections", {"name": "vecs", "dim": 4, "metric": "l2"}), 201)
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((50, 4)).astype(np.float32)  # (50, 4)
    ok(
        call(
            base,
            "/v1/collections/vecs/points",
            {
                "ids": list(range(50)),
                "vectors": vectors.tolist(),
                "payloads": [{"group": i % 3, "name": f"p{i}"} for i in range(50)],
            },
        )
    )
    spec = {"name": "docs", "embedder": DEFAULT_EMBEDDER, "text": True}
    ok(call(base, "/v1/collections", spec), 201)
    points = [{"id": f"d{i}", "document": d, "payload": {"n": i}} for i, d in enumerate(DOCS)]
    assert ok(call(base, "/v1/collections/docs/points", {"points": points}))["count"] == len(DOCS)
    db = served.core.db
    return db.get_collection("vecs"), db.get_collection("docs"), vectors


def test_collections_list_info_and_counts(base, collections):
    vecs, docs, _ = collections
    listed = {c["name"]: c for c in ok(call(base, "/v1/collections"))["collections"]}
    assert listed["vecs"]["count"] == 50 and listed["docs"]["count"] == len(DOCS)
    assert listed["docs"]["embedder"] == DEFAULT_EMBEDDER and listed["docs"]["text"]
    info = ok(call(base, "/v1/collections/vecs"))
    assert {k: info[k] for k in ("name", "dim", "metric", "count", "lsn")} == {
        k: vecs.info()[k] for k in ("name", "dim", "metric", "count", "lsn")
    }
    flt = {"group": 1}
    assert ok(call(base, "/v1/collections/vecs/count", {"filter": flt}))["count"] == vecs.count(flt)


def test_search_is_the_embedded_search(base, collections):
    vecs, docs, vectors = collections
    q = vectors[7] + 0.01
    for body, kwargs in (
        ({}, {}),
        ({"filter": {"group": 2}, "k": 7}, {"filter": {"group": 2}, "k": 7}),
        ({"ef": 50, "k": 3}, {"ef": 50, "k": 3}),
    ):
        got = ok(call(base, "/v1/collections/vecs/search", {"vector": q.tolist(), **body}))
        assert pairs(got["hits"]) == pairs(vecs.search(q, **kwargs)), body
    got = ok(call(base, "/v1/collections/vecs/search", {"vector": q.tolist(), "k": 2}))
    assert got["hits"][0]["payload"] == vecs.search(q, k=1)[0].payload
    got = ok(
        call(
            base,
            "/v1/collections/vecs/search",
            {"vector": q.tolist(), "k": 2, "with_payload": False, "with_vectors": True},
        )
    )
    assert got["hits"][0]["payload"] is None
    np.testing.assert_array_equal(
        np.float32(got["hits"][0]["vector"]), vecs.search(q, k=1, with_vectors=True)[0].vector
    )
    question = "where do visitors park"
    got = ok(call(base, "/v1/collections/docs/search", {"text": question, "k": 4}))
    assert pairs(got["hits"]) == pairs(docs.search(question, k=4))
    assert got["hits"][0]["document"] == DOCS[2]


def test_hybrid_query_is_the_embedded_query(base, collections):
    _, docs, _ = collections
    text = "printer paper error"
    cases = [
        ({}, {"queries": text}),
        ({"fusion": "rrf"}, {"queries": text, "fusion": "rrf"}),
        (
            {"fusion": "dbsf", "dense_weight": 0.7},
            {"queries": text, "fusion": "dbsf", "dense_weight": 0.7},
        ),
        ({"dense": False}, {"queries": None}),
        ({"filter": {"n": {"$gte": 2}}}, {"queries": text, "filter": {"n": {"$gte": 2}}}),
    ]
    for body, kwargs in cases:
        got = ok(call(base, "/v1/collections/docs/query", {"text": text, "k": 5, **body}))
        assert pairs(got["hits"]) == pairs(docs.search(k=5, text=text, **kwargs)), body
    vector = docs.embedder.embed(["paper"])[0]
    got = ok(
        call(base, "/v1/collections/docs/query", {"text": text, "vector": vector.tolist(), "k": 3})
    )
    assert pairs(got["hits"]) == pairs(docs.search(vector, k=3, text=text))


def test_points_get_scroll_and_delete(base, collections, served):
    ok(call(base, "/v1/collections", {"name": "scratch", "dim": 2}), 201)
    col = served.core.db.get_collection("scratch")
    ids = [3, 1, "a", 2]
    ok(
        call(
            base,
            "/v1/collections/scratch/points",
            {"ids": ids, "vectors": [[1, 0], [0, 1], [1, 1], [1, 2]], "documents": ["x"] * 4},
        )
    )
    got = ok(
        call(base, "/v1/collections/scratch/points/get", {"ids": [2, 9, "a"], "with_vectors": True})
    )
    assert [p["id"] for p in got["points"]] == [r.id for r in col.get([2, 9, "a"])] == [2, "a"]
    np.testing.assert_array_equal(np.float32(got["points"][0]["vector"]), col.get(2).vector)
    page = ok(call(base, "/v1/collections/scratch/scroll", {"limit": 3}))
    records, after = col.scroll(limit=3)
    assert [p["id"] for p in page["points"]] == [r.id for r in records] and page["next"] == after
    rest = ok(call(base, "/v1/collections/scratch/scroll", {"limit": 3, "after": page["next"]}))
    assert [p["id"] for p in rest["points"]] == ["a"] and rest["next"] is None
    assert ok(call(base, "/v1/collections/scratch/points/delete", {"ids": [1, 7]}))["count"] == 1
    assert col.count() == 3
    ok(call(base, "/v1/collections/scratch", method="DELETE"))
    assert "scratch" not in served.core.db.list_collections()
    assert call(base, "/v1/collections/scratch")[0] == 404


def error(result, status: int) -> str:
    assert result[0] == status, result
    err = result[1]["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    return err["message"]


def test_errors_have_the_embedded_classes_statuses(base, collections):
    v = [0.0, 0.0, 0.0, 0.0]
    search = "/v1/collections/vecs/search"
    assert "dim" in error(call(base, search, {"vector": [1.0, 2.0]}), 400)
    error(call(base, search, {"vector": v, "filter": {"$nope": 1}}), 400)
    error(call(base, search, {"vector": v, "k": "many"}), 400)
    error(call(base, search, {"vector": v, "k": 0}), 400)
    error(call(base, search, {"vector": ["a"]}), 400)
    error(call(base, search, {"vector": v, "with_payload": 3}), 400)
    error(call(base, search, {}), 400)
    error(call(base, search, b"{oops"), 400)
    error(call(base, "/v1/collections/vecs/search", {"text": "no embedder here"}), 400)
    error(call(base, "/v1/collections/vecs/query", {"text": "x", "fusion": "best"}), 400)
    error(call(base, "/v1/collections/nope/search", {"vector": v}), 404)
    error(call(base, "/v1/collections/nope"), 404)
    error(call(base, "/v1/collections/nope", method="DELETE"), 404)
    error(call(base, "/v1/collections/vecs/points/get", {"ids": [{"x": 1}]}), 400)
    error(call(base, "/v1/collections/vecs/points", {"ids": [1], "vectors": [[1, 2]]}), 400)
    error(call(base, "/v1/collections/vecs/points/delete", {}), 400)
    error(call(base, "/v1/collections/vecs/points", {"points": None, "ids": [1]}), 400)
    error(call(base, "/v1/collections", {"name": "vecs", "dim": 4}), 409)
    error(call(base, "/v1/collections", {"name": "bad name!", "dim": 4}), 400)
    error(call(base, "/v1/collections", {"name": "x", "dim": 4, "embedder": "/etc/passwd"}), 404)
    error(call(base, "/v1/collections/vecs/scroll", {"limit": 10**9}), 400)
    error(call(base, "/v1/collections/vecs/count", method="GET"), 405)
    assert ok(call(base, "/v1/collections/vecs/count", {}))["count"] == 50  # still serving


def test_read_only_key_reads_but_may_not_write(base, collections):
    v = [0.0] * 4
    assert ok(call(base, "/v1/collections", key=READ_ONLY))["collections"]
    assert ok(call(base, "/v1/collections/vecs/search", {"vector": v}, key=READ_ONLY))["hits"]
    assert ok(call(base, "/v1/collections/vecs/count", {}, key=READ_ONLY))["count"] == 50
    writes = [
        ("/v1/collections", {"name": "new", "dim": 2}, None),
        ("/v1/collections/vecs/points", {"ids": [99], "vectors": [v]}, None),
        ("/v1/collections/vecs/points/delete", {"ids": [1]}, None),
        ("/v1/collections/vecs", None, "DELETE"),
    ]
    for path, data, method in writes:
        result = call(base, path, data, key=READ_ONLY, method=method)
        assert result[0] == 403 and result[1]["error"]["code"] == "permission_denied", path
    assert call(base, "/v1/collections/vecs/count", {}, key=None)[0] == 401
    assert call(base, "/v1/collections/vecs/count", {}, key="wrong")[0] == 401
    assert ok(call(base, "/v1/collections/vecs/count", {}))["count"] == 50


def events(payload: str) -> list:
    """(event name, data) of each server-sent event."""
    out = []
    for block in payload.split("\n\n"):
        if not block:
            continue
        name, data = "message", ""
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
        out.append((name, data))
    return out


def test_ask_streams_the_answer_then_its_sources(base, collections):
    _, docs, _ = collections
    question = "How long are backups kept?"
    stories = llm.load(fixture_file("models", "stories260K.gguf"))
    local = rag.ask(docs, question, stories, k=3, max_tokens=20, temperature=0)
    body = {"question": question, "k": 3, "max_tokens": 20, "temperature": 0}
    got = ok(call(base, "/v1/collections/docs/ask", {**body, "stream": False}))
    assert got["text"] == local.text and not got["extractive"]
    assert [s["id"] for s in got["sources"]] == [s.id for s in local.sources]
    assert got["cited"] == local.cited
    status, payload = call(base, "/v1/collections/docs/ask", body)
    found = events(payload)
    assert status == 200 and found[-1] == ("message", "[DONE]")
    pieces = [json.loads(d)["text"] for n, d in found[:-2] if n == "message"]
    assert "".join(pieces) == local.text and len(pieces) > 1
    name, answer = found[-2]
    assert name == "answer" and json.loads(answer) == got


def test_ask_extractive(base, collections):
    _, docs, _ = collections
    question = "Where do visitors park?"
    local = rag.ask(docs, question, k=3)
    body = {"question": question, "k": 3, "generate": False}
    got = ok(call(base, "/v1/collections/docs/ask", {**body, "stream": False}))
    assert got["text"] == local.text and got["extractive"] and got["span"] == list(local.span)
    found = events(call(base, "/v1/collections/docs/ask", body, key=READ_ONLY)[1])
    assert json.loads(found[0][1])["text"] == local.text and found[1][0] == "answer"
    error(call(base, "/v1/collections/docs/ask", {"question": "  "}), 400)
    error(call(base, "/v1/collections/docs/ask", {"question": "x", "max_tokens": 0}), 400)
    error(call(base, "/v1/collections/nope/ask", {"question": "x"}), 404)


def test_openapi_lists_every_route(base, served):
    from openapi_spec_validator import validate

    status, doc = call(base, "/openapi.json", key=None)
    assert status == 200 and doc["openapi"].startswith("3.") and doc["paths"]
    validate(doc)
    routes = {
        (route.path, method.lower())
        for route in served.http.app.routes
        for method in getattr(route, "methods", None) or ()  # not the static files' mount
        if method != "HEAD"
    }
    listed = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    assert routes == listed


def test_the_listening_socket_says_tcp(served):
    import socket

    # asyncio sets TCP_NODELAY on the connections of such a socket only
    assert served.http.server.servers[0].sockets[0].proto == socket.IPPROTO_TCP


BAD_VALUES = [None, True, 0, -1, 1.5, "x", "", [], [1], ["a"], [[1, 2]], {}, {"a": 1}, [None]]
BAD_VALUES += [[True], 10**30, 1e308, {"$and": 5}, [[]], [{"x": 1}], {"$nope": []}]
FIELDS = {
    "/v1/collections": ["name", "dim", "metric", "index", "embedder", "text"],
    "/v1/collections/vecs/points": ["ids", "vectors", "payloads", "documents", "points"],
    "/v1/collections/docs/points": ["ids", "vectors", "payloads", "documents", "points"],
    "/v1/collections/vecs/points/get": ["ids", "with_vectors"],
    "/v1/collections/vecs/points/delete": ["ids", "filter"],
    "/v1/collections/vecs/count": ["filter"],
    "/v1/collections/vecs/scroll": ["filter", "limit", "after", "with_vectors"],
    "/v1/collections/vecs/search": ["vector", "text", "k", "ef", "filter", "with_payload"],
    "/v1/collections/docs/search": ["vector", "text", "k", "filter", "with_document"],
    "/v1/collections/docs/query": ["text", "vector", "dense", "fusion", "dense_weight", "k"],
}


def test_random_bad_bodies_never_get_a_server_error(base, collections, served):
    import random

    rnd = random.Random(0)
    ro = served.core.db.get_collection("vecs")
    for path, fields in FIELDS.items():
        for i in range(40):
            chosen = rnd.sample(fields, rnd.randint(1, len(fields)))
            body = {f: rnd.choice(BAD_VALUES) for f in chosen}
            if path == "/v1/collections" and isinstance(body.get("name"), str):
                body["name"] += f"n{i}"
            status, payload = call(base, path, body)
            assert status < 500, (path, body, payload)
            if status >= 400:
                assert set(payload["error"]) == {"message", "type", "param", "code"}
    assert call(base, "/healthz", key=None)[0] == 200 and ro.count() >= 0
