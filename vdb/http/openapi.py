"""The OpenAPI 3 document of the HTTP API, served at /openapi.json: each route's method,
summary and request fields, kept beside the routes (a test holds the two equal)."""

from vdb._version import __version__

NUMBER, INTEGER, STRING, BOOL = ({"type": t} for t in ("number", "integer", "string", "boolean"))
ANY = {}
OBJECT = {"type": "object"}
ID = {"oneOf": [INTEGER, STRING]}
VECTOR = {"type": "array", "items": NUMBER}
LIST = {"type": "array"}
TEXTS = {"oneOf": [STRING, {"type": "array", "items": STRING}]}
FILTER = {"type": "object", "description": "a payload filter, as Collection.search takes"}
SAMPLER = {"temperature": NUMBER, "top_p": NUMBER, "top_k": INTEGER, "seed": INTEGER}
SELECT = {
    "with_payload": {"oneOf": [BOOL, {"type": "array", "items": STRING}]},
    "with_document": BOOL,
    "with_vectors": BOOL,
}
GENERATE = {
    "model": STRING,
    "max_tokens": INTEGER,
    "max_completion_tokens": INTEGER,
    "stop": TEXTS,
    "stream": BOOL,
    "stream_options": OBJECT,
    "n": INTEGER,
    **SAMPLER,
}
C = "/v1/collections/{name}"

# (path, method, summary, request fields or None, required fields, a streamed response)
ROUTES = (
    ("/healthz", "get", "Health (no key needed)", None, (), False),
    ("/metrics", "get", "Prometheus metrics", None, (), False),
    ("/openapi.json", "get", "This document (no key needed)", None, (), False),
    ("/", "get", "The web console (no key needed; its page asks for one)", None, (), False),
    ("/v1/models", "get", "The generation model and the default embedder", None, (), False),
    (
        "/v1/embeddings",
        "post",
        "Embeddings (OpenAI)",
        {"input": {"oneOf": [TEXTS, LIST]}, "model": STRING, "encoding_format": STRING},
        ("input",),
        False,
    ),
    (
        "/v1/chat/completions",
        "post",
        "Chat completion (OpenAI); server-sent events with stream: true",
        {"messages": {"type": "array", "items": OBJECT}, **GENERATE},
        ("messages",),
        True,
    ),
    (
        "/v1/completions",
        "post",
        "Text completion (OpenAI); server-sent events with stream: true",
        {"prompt": {"oneOf": [STRING, LIST]}, **GENERATE},
        ("prompt",),
        True,
    ),
    ("/v1/collections", "get", "Collections with their sizes", None, (), False),
    (
        "/v1/collections",
        "post",
        "Create a collection (Database.create_collection)",
        {
            "name": STRING,
            "dim": INTEGER,
            "metric": STRING,
            "index": {"oneOf": [STRING, OBJECT]},
            "embedder": STRING,
            "text": {"oneOf": [BOOL, STRING, OBJECT]},
        },
        ("name",),
        False,
    ),
    (C, "get", "A collection's info (Collection.info)", None, (), False),
    (C, "delete", "Delete a collection and its points", None, (), False),
    (
        C + "/points",
        "post",
        "Upsert points: columns ids, vectors, payloads, documents, or points: [{id, vector, "
        "payload, document}]",
        {
            "ids": {"type": "array", "items": ID},
            "vectors": {"type": "array", "items": VECTOR},
            "payloads": {"type": "array", "items": OBJECT},
            "documents": {"type": "array", "items": STRING},
            "points": {"type": "array", "items": OBJECT},
        },
        (),
        False,
    ),
    (C + "/points", "put", "Upsert points (as POST)", None, (), False),
    (
        C + "/points/get",
        "post",
        "Points by id, in the order asked; absent ids are left out",
        {"ids": {"type": "array", "items": ID}, "with_vectors": BOOL},
        ("ids",),
        False,
    ),
    (
        C + "/points/delete",
        "post",
        "Delete points by ids or by filter",
        {"ids": {"type": "array", "items": ID}, "filter": FILTER},
        (),
        False,
    ),
    (C + "/count", "post", "Count points (matching a filter)", {"filter": FILTER}, (), False),
    (
        C + "/scroll",
        "post",
        "A page of points in id order; next is the after of the next page",
        {"filter": FILTER, "limit": INTEGER, "after": ID, "with_vectors": BOOL},
        (),
        False,
    ),
    (
        C + "/search",
        "post",
        "Top-k points for a vector, or a text the collection's embedder embeds",
        {"vector": VECTOR, "text": STRING, "k": INTEGER, "ef": INTEGER, "filter": FILTER, **SELECT},
        (),
        False,
    ),
    (
        C + "/query",
        "post",
        "Hybrid query: BM25 over the keyword index fused with a dense search",
        {
            "text": STRING,
            "vector": VECTOR,
            "dense": BOOL,
            "fusion": {"enum": ["convex", "rrf", "dbsf"]},
            "dense_weight": NUMBER,
            "k": INTEGER,
            "ef": INTEGER,
            "filter": FILTER,
            **SELECT,
        },
        ("text",),
        False,
    ),
    (
        C + "/ask",
        "post",
        "An answer from the collection's sources: server-sent events (text pieces, then "
        "event: answer with the sources, then [DONE]), or JSON with stream: false",
        {
            "question": STRING,
            "k": INTEGER,
            "filter": FILTER,
            "max_tokens": INTEGER,
            "stream": BOOL,
            "generate": BOOL,
            **SAMPLER,
        },
        ("question",),
        True,
    ),
)


def _operation(summary, fields, required, streamed) -> dict:
    json_body = {"application/json": {"schema": OBJECT}}
    ok = {"description": "OK", "content": dict(json_body)}
    if streamed:
        ok["content"]["text/event-stream"] = {"schema": STRING}
    error = {"description": "An error in OpenAI's shape", "content": json_body}
    op = {"summary": summary, "responses": {"200": ok, "4XX": error, "5XX": error}}
    if fields is not None:
        schema = {"type": "object", "properties": fields}
        if required:
            schema["required"] = list(required)
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
    return op


def document() -> dict:
    paths: dict = {}
    for path, method, summary, fields, required, streamed in ROUTES:
        op = _operation(summary, fields, required, streamed)
        if "{name}" in path:
            op["parameters"] = [{"name": "name", "in": "path", "required": True, "schema": STRING}]
        paths.setdefault(path, {})[method] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "vdb", "version": __version__},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
        "paths": paths,
    }
