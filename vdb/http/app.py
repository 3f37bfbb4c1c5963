"""The Starlette application: routes, errors in OpenAI's shape, request metrics."""

import time

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from vdb.http import auth, console, openapi
from vdb.http.errors import body, response
from vdb.http.metrics import CONTENT_TYPE
from vdb.http.openai import OpenAIRoutes
from vdb.http.retrieval import RetrievalRoutes


class _Measure:
    """Counts every request by route and status and times it (pure ASGI: streams pass
    through untouched)."""

    def __init__(self, app, metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), [500]

        async def sending(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            name = route.path if route is not None else "unmatched"
            self.metrics.observe(name, status[0], time.perf_counter() - start)


def _answering(handler):
    """The handler with every exception answered in OpenAI's error shape."""

    async def answer(request):
        try:
            return await handler(request)
        except Exception as exc:
            return response(exc)

    return answer


def _methods(**handlers):
    """One endpoint for several methods: the handler of the request's method."""

    async def dispatch(request):
        return await handlers[request.method.lower()](request)

    return _answering(dispatch), [m.upper() for m in handlers]


def store_routes(server) -> list[Route]:
    """Collections, points, search, hybrid query and answers."""
    r = RetrievalRoutes(server)
    one = "/v1/collections/{name}"

    def post(path, handler):
        return Route(one + path, _answering(handler), methods=["POST"])

    listing, listing_methods = _methods(get=r.list, post=r.create)
    single, single_methods = _methods(get=r.info, delete=r.drop)
    points, points_methods = _methods(post=r.upsert, put=r.upsert)
    return [
        Route("/v1/collections", listing, methods=listing_methods),
        Route(one, single, methods=single_methods),
        Route(one + "/points", points, methods=points_methods),
        post("/points/get", r.get),
        post("/points/delete", r.delete),
        post("/count", r.count),
        post("/scroll", r.scroll),
        post("/search", r.search),
        post("/query", r.query),
        post("/ask", r.ask),
    ]


def build(server, metrics):
    routes = OpenAIRoutes(server)

    async def healthz(request):
        ok = not server.core.stopping.is_set()
        return JSONResponse({"status": "ok" if ok else "stopping"}, status_code=200 if ok else 503)

    spec = JSONResponse(openapi.document())

    async def openapi_json(request):
        return spec

    async def prometheus(request):
        auth.admit(server.core, request)
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    async def http_error(request, exc: HTTPException):
        kind = "invalid_request_error"
        code = "not_found" if exc.status_code == 404 else None
        return JSONResponse(body(str(exc.detail), kind, None, code), status_code=exc.status_code)

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/openapi.json", openapi_json),
            Route("/metrics", _answering(prometheus)),
            Route("/v1/models", _answering(routes.models)),
            Route("/v1/embeddings", _answering(routes.embeddings), methods=["POST"]),
            Route("/v1/chat/completions", _answering(routes.chat), methods=["POST"]),
            Route("/v1/completions", _answering(routes.completions), methods=["POST"]),
            *store_routes(server),
            *console.routes(),
        ],
        exception_handlers={HTTPException: http_error},
        middleware=[Middleware(_Measure, metrics=metrics)],
    )
