"""The HTTP application of ``kgrec serve``: a FastAPI app over one or more loaded runs.

Every answer uses the data's own user, item, entity and relation ids. Errors are JSON
``{"error": message, "status": code}``: an unknown run, user, item, entity or relation
gives 404, a bad value or body 422 (also a request the run's model cannot answer, e.g.
KG completion from MKR), a body over ``max_body`` bytes or a batch over ``max_batch``
entries 413, a missing or wrong bearer token 401. A 5xx is a bug.

Endpoints are ``async``: each request is computed on the event loop, one at a time (the
server runs one torch thread on one core, where a thread pool only adds switching).

With several runs, the ``run`` query parameter (a run's name, i.e. its folder name, or
its position from 0) selects one; the default is the first.
"""


import hmac
import time
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from kgrec.errors import KGRecError
from kgrec.serve.engine import Engine, NotFound, Unsupported, _jsonable

MAX_K = 1000
STATIC = Path(str(resources.files("kgrec.serve") / "static"))

Id = str | int


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RecommendBody(_Body):
    users: list[Id] = Field(min_length=1, description="users, by the data's own ids")
    k: int = Field(10, ge=1, le=MAX_K)
    exclude_seen: bool = True
    explain: bool = False


class Pair(_Body):
    user: Id
    item: Id


class ScoreBody(_Body):
    pairs: list[Pair] = Field(min_length=1, description="user-item pairs to score")


def ok(payload: dict[str, Any]) -> JSONResponse:
    """A 200 answer, serialised directly (no response-model pass); a non-finite float
    becomes ``null`` (JSON has no NaN)."""
    try:
        return JSONResponse(payload)
    except ValueError:
        return JSONResponse(_jsonable(payload))


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": message, "status": status, **extra}, status, headers=headers)


class BodyLimit:
    """ASGI middleware answering 413 to a request body over ``limit`` bytes (declared in
    ``Content-Length`` or, for a chunked body, counted while it is read)."""

    def __init__(self, app, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        too_big = _error(413, f"request body over {self.limit} bytes")
        if declared is not None:
            try:
                if int(declared) > self.limit:
                    return await too_big(scope, receive, send)
            except ValueError:
                return await _error(400, "bad Content-Length")(scope, receive, send)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return await self.app(scope, receive, send)  # client went away
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                return await too_big(scope, receive, send)
            more = message.get("more_body", False)
        body, sent = b"".join(chunks), False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await self.app(scope, replay, send)


class Timing:
    """ASGI middleware adding ``Server-Timing: app;dur=MS`` (time in the app, milliseconds)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()

        async def timed(message):
            if message["type"] == "http.response.start":
                ms = (time.perf_counter() - t0) * 1000
                message["headers"] = [*message.get("headers", []),
                                      (b"server-timing", f"app;dur={ms:.3f}".encode())]
            await send(message)

        return await self.app(scope, receive, timed)


def create_app(runs: list[Engine | str | Path], token: str | None = None,
               data_dir: str | Path | None = None, max_body: int = 1 << 20,
               max_batch: int = 1000) -> FastAPI:
    """The app serving ``runs`` (loaded :class:`Engine` objects or run folders, each loaded
    once here). ``token``: bearer token required by every endpoint but ``/``, ``/health``,
    the page's files and the docs."""
    engines: list[Engine] = []
    for r in runs:
        engines.append(r if isinstance(r, Engine) else Engine.load(r, data_dir))
    if not engines:
        raise KGRecError("no run to serve")
    names: dict[str, Engine] = {}
    for e in engines:  # unique names: folder name, then name-2, name-3, ...
        base, n = e.name, 2
        while e.name in names:
            e.name, n = f"{base}-{n}", n + 1
        names[e.name] = e

    app = FastAPI(title="kgrec serve", version="1",
                  description="Recommendations, scores, explanations, similar items and KG "
                              "completion from trained kgrec runs. Ids are the data's own.")
    app.state.engines = engines
    app.add_middleware(BodyLimit, limit=max_body)
    app.add_middleware(Timing)

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound):
        return _error(404, str(exc))

    @app.exception_handler(KGRecError)
    async def _bad_value(request: Request, exc: KGRecError):
        return _error(422, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
        text = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
        return _error(422, text or "invalid request", detail=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        return _error(exc.status_code, str(exc.detail))

    async def authorise(request: Request) -> None:
        if token is None:
            return
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(),
                                                                  token.encode()):
            raise HTTPException(401, "missing or wrong bearer token" if given
                                else "this server needs 'Authorization: Bearer TOKEN'")

    async def engine(run: Annotated[str | None, Query(description="run name or position; "
                                                      "default the first")] = None) -> Engine:
        if run is None:
            return engines[0]
        if run in names:
            return names[run]
        if run.isdigit() and int(run) < len(engines):
            return engines[int(run)]
        raise NotFound(f"unknown run {run!r}; serving {', '.join(names)}")

    Auth = Depends(authorise)
    Run = Annotated[Engine, Depends(engine)]
    K = Annotated[int, Query(ge=1, le=MAX_K, description="number of answers")]

    def batch_limit(n: int) -> None:
        if n > max_batch:
            raise HTTPException(413, f"{n} entries in one request; at most {max_batch}")

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/health", summary="liveness and the served runs")
    async def health() -> JSONResponse:
        return ok({"status": "ok", "runs": list(names)})

    @app.get("/models", dependencies=[Auth], summary="each loaded run: model, dataset, "
             "metrics, protocols and what it can answer")
    async def models() -> JSONResponse:
        return ok({"runs": [e.info() for e in engines]})

    @app.get("/users", dependencies=[Auth], summary="user ids of a run (for choosing one)")
    async def users(e: Run, q: str = "", offset: Annotated[int, Query(ge=0)] = 0,
                    limit: Annotated[int, Query(ge=1, le=10_000)] = 100) -> JSONResponse:
        return ok({"run": e.name, "users": e.users(offset, limit, q), "total": e.n_users})

    @app.get("/items", dependencies=[Auth], summary="items of a run: id, name, KG entity")
    async def items(e: Run, offset: Annotated[int, Query(ge=0)] = 0,
                    limit: Annotated[int, Query(ge=1, le=100_000)] = 100) -> JSONResponse:
        return ok({"run": e.name, "items": e.items(offset, limit), "total": e.n_items})

    @app.get("/recommend", dependencies=[Auth], summary="top-K items for a user")
    async def recommend(e: Run, user: str, k: K = 10, exclude_seen: bool = True,
                        explain: bool = False) -> JSONResponse:
        recs = e.recommend_many([user], k, exclude_seen, explain)[0]
        return ok({"run": e.name, "user": user, "score": e.score_kind, "items": recs})

    @app.post("/recommend", dependencies=[Auth], summary="top-K items for several users")
    async def recommend_batch(e: Run, body: RecommendBody) -> JSONResponse:
        batch_limit(len(body.users))
        recs = e.recommend_many(body.users, body.k, body.exclude_seen, body.explain)
        return ok({"run": e.name, "results": [{"user": str(u), "items": r}
                                              for u, r in zip(body.users, recs, strict=True)]})

    @app.post("/score", dependencies=[Auth], summary="scores of user-item pairs "
              "(probabilities for CTR models, ranking scores otherwise)")
    async def score(e: Run, body: ScoreBody) -> JSONResponse:
        batch_limit(len(body.pairs))
        s = e.score_pairs([p.user for p in body.pairs], [p.item for p in body.pairs])
        return ok({"run": e.name, "score": e.score_kind,
                   "scores": [{"user": str(p.user), "item": str(p.item), "score": v}
                              for p, v in zip(body.pairs, s, strict=True)]})

    @app.get("/explain", dependencies=[Auth], summary="the model's explanation of a user-item pair")
    async def explain(e: Run, user: str, item: str) -> JSONResponse:
        return ok({"run": e.name, **e.explain(user, item)})

    @app.get("/similar", dependencies=[Auth], summary="items with the most similar "
             "representation (cosine)")
    async def similar(e: Run, item: str, k: K = 10) -> JSONResponse:
        return ok({"run": e.name, "item": item, "similarity": e.similarity,
                   "items": e.similar(item, k)})

    @app.get("/item", dependencies=[Auth], summary="an item's entity and KG neighbours")
    async def item(e: Run, item: str,
                   limit: Annotated[int, Query(ge=1, le=MAX_K)] = 50) -> JSONResponse:
        return ok({"run": e.name, **e.item(item, limit)})

    @app.get("/complete", dependencies=[Auth], summary="KG completion: best tails of "
             "(head, relation, ?) or heads of (?, relation, tail)")
    async def complete(e: Run, relation: str, head: str | None = None, tail: str | None = None,
                       k: K = 10) -> JSONResponse:
        return ok({"run": e.name, "head": head, "relation": relation, "tail": tail,
                   "entities": e.complete(relation, head, tail, k)})

    return app


__all__ = ["create_app", "Engine", "NotFound", "Unsupported"]
