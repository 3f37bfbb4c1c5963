"""The Retrieval service from the client side: what a remote collection calls for vdb.rag."""

import grpc

from vdb.results import Hit
from vdb.rpc import convert, model_client, status
from vdb.rpc._gen import retrieval_pb2 as rpb
from vdb.rpc._gen import retrieval_pb2_grpc as rgrpc


def _stub(db):
    return rgrpc.RetrievalStub(db._channel)


def hit_from(msg) -> Hit:
    return Hit(
        convert.id_from(msg.id),
        msg.score,
        convert.struct_from(msg.payload),
        msg.document if msg.HasField("document") else None,
    )


def hybrid_search(
    db, name: str, query: str, k: int, filter, dense_weight: float | None, fusion: str = "convex"
) -> list[Hit]:
    """The Retrieval.HybridSearch RPC (the same query as RemoteCollection.search(query,
    text=query))."""
    request = rpb.HybridSearchRequest(collection=name, query=query, k=k, fusion=fusion)
    if dense_weight is not None:
        request.dense_weight = dense_weight
    if filter is not None:
        convert.set_filter(request.filter, filter)
    return [hit_from(h) for h in db._call(_stub(db).HybridSearch, request).hits]


def ask(db, name, question, generate, k, filter, max_tokens, on_piece, sampler, memory=None):
    from vdb.rag import Answer, as_sources

    request = rpb.AskRequest(
        collection=name,
        question=question,
        k=k,
        generate=generate,
        max_tokens=max_tokens,
        memory=memory or "",
    )
    if filter is not None:
        convert.set_filter(request.filter, filter)
    model_client.check_sampler(request.sampler, sampler)
    call = db._start(_stub(db).Ask, request)
    result = None
    try:
        for msg in call:
            if msg.text and on_piece:
                on_piece(msg.text)
            if msg.HasField("result"):
                result = msg.result
    except grpc.RpcError as exc:
        raise status.error_from(exc) from None
    finally:
        call.cancel()
    if result is None:
        from vdb.errors import ServerError

        raise ServerError("the Ask stream ended without its result")
    hits = {s.number: hit_from(s.hit) for s in result.sources}
    sources = as_sources([hits[n] for n in sorted(hits)])
    for src, number in zip(sources, sorted(hits), strict=True):
        src.number = number
    span = (result.span_start, result.span_end) if result.extractive and sources else None
    return Answer(question, result.text, result.extractive, sources, list(result.cited), span)
