"""The web console at /: one static page, its script and its style, shipped in the package
(vdb/http/static) and served as they are; the page calls the JSON routes with the key the
user gives it."""

from pathlib import Path

from starlette.responses import FileResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"


async def page(request):
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


def routes() -> list:
    return [Route("/", page), Mount("/static", StaticFiles(directory=STATIC), name="static")]
