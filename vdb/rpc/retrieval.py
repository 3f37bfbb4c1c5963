"""The Retrieval service: hybrid search and answers (vdb.rag) run in the server."""

from vdb import rag
from vdb.errors import InvalidArgumentError
from vdb.rpc import convert
from vdb.rpc._gen import retrieval_pb2 as rpb
from vdb.rpc._gen import retrieval_pb2_grpc as rgrpc
from vdb.rpc.handler import rpc


def _hit(msg, hit) -> None:
    convert.set_id(msg.id, hit.id)
    msg.score = hit.score
    if hit.payload:
        convert.set_struct(msg.payload, hit.payload)
    if hit.document is not None:
        msg.document = hit.document


class RetrievalService(rgrpc.RetrievalServicer):
    def __init__(self, core, generation):
        self.core, self.generation = core, generation

    @rpc()
    def HybridSearch(self, request, context):
        self.core.limits.k(request.k or 10)
        self.core.limits.text(request.query, "query")
        col = self.core.collection(request.collection)
        weight = request.dense_weight if request.HasField("dense_weight") else None
        hits = rag.search(  # the Points service's hybrid query (Collection.search(text=...))
            col,
            request.query,
            k=request.k or 10,
            filter=convert.optional_filter(request),
            dense_weight=weight,
            fusion=request.fusion or "convex",
        )
        resp = rpb.HybridSearchResponse()
        for h in hits:
            _hit(resp.hits.add(), h)
        return resp

    @rpc()
    def Ask(self, request, context):
        self.core.limits.k(request.k or 5)
        self.core.limits.text(request.question, "question")
        self.core.limits.text(request.memory, "memory block")
        col = self.core.collection(request.collection)
        question = request.question
        if not question.strip():
            raise InvalidArgumentError("the question must be a non-empty text")
        sources = rag.as_sources(
            rag.search(col, question, k=request.k or 5, filter=convert.optional_filter(request))
        )
        if not sources:
            yield rpb.AskResponse(text=rag.NO_SOURCE)
            yield self._result(rag.Answer(question, rag.NO_SOURCE, not request.generate, []))
            return
        if not request.generate:
            answer = rag.extractive(col, question, sources)
            yield rpb.AskResponse(text=answer.text)
            yield self._result(answer)
            return
        max_tokens = request.max_tokens if request.HasField("max_tokens") else 256
        settings = convert.sampler_from(request.sampler)
        used = []

        def start(model, cancel):
            chosen, stream = rag.start_answer(
                model,
                question,
                sources,
                max_tokens,
                request.memory or None,
                cancel=cancel,
                prefill_chunk=self.generation.prefill_chunk,
                **settings,
            )
            used.extend(chosen)
            return stream

        pieces = []
        for msg in self.generation._serve(context, start):
            text = msg.text.lstrip() if not pieces else msg.text  # after "Answer:"
            if text:
                pieces.append(text)
                yield rpb.AskResponse(text=text)
            if msg.HasField("finished"):
                text = "".join(pieces)
                answer = rag.Answer(question, text, False, used, rag.citations(text, used))
                yield self._result(answer)

    @staticmethod
    def _result(answer) -> rpb.AskResponse:
        result = rpb.AskResult(extractive=answer.extractive, cited=answer.cited, text=answer.text)
        for s in answer.sources:
            src = result.sources.add(number=s.number)
            _hit(src.hit, rag_hit(s))
        if answer.span is not None:
            result.span_start, result.span_end = answer.span
        return rpb.AskResponse(result=result)


def rag_hit(source):
    from vdb.results import Hit

    return Hit(source.id, source.score, source.payload, source.text)
