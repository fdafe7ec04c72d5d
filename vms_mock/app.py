"""HTTP layer of the VMS emulator (FastAPI): routes, error shapes, auth, faults and audit.

No ``from __future__ import annotations`` here: route handlers are built in loops with the
request model of each resource as a real annotation, which FastAPI reads at definition time.
"""

import asyncio
import errno
import inspect
import json
import logging
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from prometheus_client import Counter, Histogram
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from vms_mock import models as m
from vms_mock.audit import AuditLog
from vms_mock.auth import Principal
from vms_mock.domain import FILTERS, Page, Vms, now_iso
from vms_mock.errors import (
    TOKEN_INVALID_MSG,
    ApiError,
    NotFoundError,
)
from vms_mock.faults import FaultRule, Faults

log = logging.getLogger("vms_mock.api")

REQUESTS = Counter("vms_mock_requests_total", "REST API requests answered", ["method", "status"])
LATENCY = Histogram("vms_mock_request_seconds", "REST API request latency", ["method"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
FAULTS = Counter("vms_mock_faults_injected_total", "requests changed by fault rules", ["kind"])

MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
_METHODS = MUTATING | {"GET", "HEAD", "OPTIONS"}
MAX_BODY = 1 << 20  # no VMS request body comes near 1 MiB

# kind -> (create model, update model)
# Routes match in registration order, so the busiest resources come first.
CRUD: dict[str, tuple[type[BaseModel], type[BaseModel]]] = {
    "volumes": (m.VolumeCreate, m.VolumeUpdate),
    "views": (m.ViewCreate, m.ViewUpdate),
    "blockhosts": (m.BlockHostCreate, m.BlockHostUpdate),
    "quotas": (m.QuotaCreate, m.QuotaUpdate),
    "users": (m.UserCreate, m.UserUpdate),
    "snapshots": (m.SnapshotCreate, m.SnapshotUpdate),
    "s3policies": (m.S3PolicyCreate, m.S3PolicyUpdate),
    "viewpolicies": (m.ViewPolicyCreate, m.ViewPolicyUpdate),
    "qospolicies": (m.QosPolicyCreate, m.QosPolicyUpdate),
    "vippools": (m.VipPoolCreate, m.VipPoolUpdate),
    "tenants": (m.TenantCreate, m.TenantUpdate),
    "managers": (m.ManagerCreate, m.ManagerUpdate),
    "apitokens": (m.ApiTokenCreate, m.ApiTokenUpdate),
}
READ_ONLY = ("blockhostvolumes", "vtasks")
SLOW_CREATES = {"snapshots", "managers"}  # data copies, password hashing: thread pool
AUDIT_FILTERS = {"principal", "tenant", "method", "path", "path__contains", "path__startswith",
                 "object_id", "status", "outcome"}

_MESSAGES = {
    "missing": "This field is required.",
    "extra_forbidden": "Unknown field.",
    "int_type": "A valid integer is required.",
    "int_parsing": "A valid integer is required.",
    "bool_type": "Must be a valid boolean.",
    "string_type": "Not a valid string.",
    "list_type": "Expected a list of items.",
    "dict_type": "Expected a dictionary of items.",
    "model_type": "Expected a dictionary of items.",
    "model_attributes_type": "Expected a dictionary of items.",
    "none_required": "This field may not be set.",
}


def dumps(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), default=str).encode()


def jresp(data: Any, status: int = 200) -> Response:
    return Response(content=dumps(data), status_code=status, media_type="application/json")


def drf_errors(errors: Any) -> dict[str, Any]:
    """FastAPI/pydantic validation errors -> DRF's field map (400)."""
    out: dict[str, list[str]] = {}
    for e in errors:
        loc = list(e.get("loc", ()))
        typ = e.get("type", "")
        if loc and loc[0] in ("body", "query", "path", "header"):
            loc.pop(0)
        if typ == "json_invalid":
            return {"detail": f"JSON parse error - {e.get('ctx', {}).get('error', 'invalid JSON')}"}
        # drop union/tagged branch names pydantic puts in the location
        loc = [x for x in loc if not (isinstance(x, str) and ("[" in x or x in ("str", "int", "none")))]
        msg = _MESSAGES.get(typ) or str(e.get("msg", "Invalid value.")).removeprefix("Value error, ")
        if not loc:
            key = "non_field_errors"
            msg = "No data provided." if typ == "missing" else "Invalid data. Expected a dictionary."
        else:
            key = str(loc[0])
            if len(loc) > 1:
                msg = f"{'.'.join(str(x) for x in loc[1:])}: {msg}"
        if msg not in out.setdefault(key, []):
            out[key].append(msg)
    return out


def obj_id_of(raw: str) -> int:
    """Path ids: anything but a positive integer that fits is simply not found (as in Django)."""
    if not re.fullmatch(r"[0-9]{1,12}", raw) or int(raw) == 0:
        raise NotFoundError()
    return int(raw)


class ApiMiddleware:
    """Faults first (latency, injected errors, forced token expiry), then the audit record of
    every mutating call. Pure ASGI for speed."""

    def __init__(self, app: Any, faults: Faults, audit: AuditLog, vms: Vms,
                 fast_creates: "FastCreates | None" = None) -> None:
        self.app = app
        self.faults = faults
        self.audit = audit
        self.vms = vms
        self.fast_creates = fast_creates

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        state = scope.setdefault("state", {})
        internal = canonical_path(path)
        if internal is not path:
            # /api/ and /api/v5/ serve the same resources as /api/v1/: one route table, one match
            state["orig_path"] = path
            scope = {**scope, "path": internal, "raw_path": internal.encode()}
        status = [500]

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        async def answer(code: int, body: dict[str, Any]) -> None:
            payload = dumps(body)
            await send_wrapper({"type": "http.response.start", "status": code,
                                "headers": [(b"content-type", b"application/json"),
                                            (b"content-length", str(len(payload)).encode())]})
            await send_wrapper({"type": "http.response.body", "body": payload})

        started = time.perf_counter()
        try:
            length = dict(scope.get("headers") or []).get(b"content-length", b"0")
            if not length.isdigit() or int(length) > MAX_BODY:
                await answer(413, {"detail": f"Request body larger than {MAX_BODY} bytes."})
                return
            decision = None if path.startswith("/api/admin/") else self.faults.decide(method, path)
            if decision is not None:
                if decision.latency:
                    FAULTS.labels("latency").inc()
                    await asyncio.sleep(decision.latency)
                if decision.error is not None:
                    FAULTS.labels("error").inc()
                    await answer(decision.error, {"detail": f"Injected fault: HTTP {decision.error}"})
                    return
                auth = dict(scope.get("headers") or []).get(b"authorization", b"")
                if decision.expire and auth[:7].lower() == b"bearer ":
                    FAULTS.labels("expire").inc()
                    await answer(403, {"detail": TOKEN_INVALID_MSG, "code": "token_not_valid"})
                    return
            if needs_auth(internal):
                headers = dict(scope.get("headers") or [])
                try:
                    p = self.vms.authenticate(
                        headers.get(b"authorization", b"").decode("latin-1") or None,
                        headers.get(b"x-tenant-name", b"").decode("utf-8", "replace") or None)
                except ApiError as exc:
                    await answer(exc.status, exc.body)
                    return
                state.update(p=p, principal=p.username, tenant=p.tenant_name)
                fast = self.fast_creates
                if method == "POST" and fast is not None and internal in fast.routes:
                    replay = await fast.handle(scope, receive, send_wrapper, headers)
                    if replay is None:
                        return
                    receive = replay
            await self.app(scope, receive, send_wrapper)
        finally:
            label = method if method in _METHODS else "OTHER"
            counter, histogram = _metric_children(label, status[0])
            counter.inc()
            histogram.observe(time.perf_counter() - started)
            if method in MUTATING and path.startswith("/api/"):
                try:
                    self.audit.record(time=now_iso(), principal=state.get("principal"),
                                      tenant=state.get("tenant"), method=method, path=path,
                                      object_id=state.get("object_id"), status=status[0])
                except Exception:
                    log.exception("audit record failed")


class FastCreates:
    """``POST /api/v1/<kind>/`` of the busy kinds without FastAPI's per-request routing,
    dependency solving and body plumbing (about a third of a create's server CPU).

    Only the plain success path is taken here: a JSON object body that the create model accepts.
    Anything else (another content type, bad JSON, a body the model refuses, an oversized body)
    is handed to the FastAPI route with the body replayed, so every error shape stays the one the
    route gives. The handler body is the route's own (``create_sync`` in create_app) and errors
    the domain raises go through the app's exception handlers, looked up as Starlette does."""

    def __init__(self, app: FastAPI, vms: Vms, models: dict[str, tuple[str, type[BaseModel]]]) -> None:
        self.app = app
        self.vms = vms
        self.routes = models  # internal path -> (kind, create model)

    async def handle(self, scope: dict[str, Any], receive: Callable[[], Awaitable[Any]],
                     send: Callable[[Any], Awaitable[None]],
                     headers: dict[bytes, bytes]) -> Callable[[], Awaitable[Any]] | None:
        """Answer the create and return None, or return the ``receive`` to hand to FastAPI."""
        ctype = headers.get(b"content-type", b"").partition(b";")[0].strip().lower()
        if ctype != b"application/json":
            return receive
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # disconnected: let the route see it too
                return _replay(chunks, receive, True, message)
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_BODY or not message.get("more_body", False):
                break
        if size > MAX_BODY:  # the route's own limits answer; the rest of the body is still unread
            return _replay(chunks, receive, message.get("more_body", False))
        raw = b"".join(chunks)
        kind, model = self.routes[scope["path"]]
        try:
            data = json.loads(raw) if raw else None
            body = model.model_validate(data) if isinstance(data, dict) else None
        except ValueError:  # bad JSON or a refused body (pydantic's ValidationError is one)
            body = None
        if body is None:
            return _replay(chunks, receive, False)
        state = scope["state"]
        try:
            obj = self.vms.create(state["p"], kind, body.model_dump(exclude_unset=True))
            state["object_id"] = obj.get("id")
            response = jresp(obj, 201)
        except ApiError as exc:  # the commonest refusal (conflicts, bad references): no lookup
            response = jresp(exc.body, exc.status)
        except Exception as exc:
            handler = _exception_handler(self.app, exc)
            if handler is None:  # Starlette's ServerErrorMiddleware answers 500 and re-raises
                crash = await _run_handler(self.app.exception_handlers[Exception], scope, exc)
                await crash(scope, receive, send)
                raise
            response = await _run_handler(handler, scope, exc)
        await response(scope, receive, send)
        return None


async def _run_handler(handler: Any, scope: dict[str, Any], exc: Exception) -> Response:
    out = handler(Request(scope), exc)
    return await out if inspect.isawaitable(out) else out


def _exception_handler(app: FastAPI, exc: Exception) -> Any:
    for cls in type(exc).__mro__:
        if cls is not Exception and cls in app.exception_handlers:
            return app.exception_handlers[cls]
    return None


def _replay(chunks: list[bytes], receive: Callable[[], Awaitable[Any]], more_body: bool,
            last: dict[str, Any] | None = None) -> Callable[[], Awaitable[Any]]:
    """A ``receive`` giving the body read so far again (as one message), then ``last`` if the
    read stopped at a non-body message, then whatever the original ``receive`` gives."""
    pending: list[dict[str, Any]] = [
        {"type": "http.request", "body": b"".join(chunks), "more_body": more_body}]
    if last is not None:
        pending.append(last)

    async def replayed() -> Any:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


_METRIC_CHILDREN: dict[tuple[str, int], tuple[Any, Any]] = {}


def _metric_children(method: str, status: int) -> tuple[Any, Any]:
    """REQUESTS' and LATENCY's children for a method and status, looked up once (``labels()``
    takes a lock and builds its key on every call)."""
    children = _METRIC_CHILDREN.get((method, status))
    if children is None:
        children = _METRIC_CHILDREN[(method, status)] = (REQUESTS.labels(method, str(status)),
                                                         LATENCY.labels(method))
    return children


_PUBLIC = ("/api/v1/token", "/api/v1/token/", "/api/v1/token/refresh", "/api/v1/token/refresh/")


def needs_auth(path: str) -> bool:
    """Every API path but login, refresh and the OpenAPI document/docs needs a principal."""
    return (path.startswith("/api/v1/") and path not in _PUBLIC) or path.startswith("/api/admin/")


def canonical_path(path: str) -> str:
    """The /api/v1/ path serving ``path`` (the same object when nothing changes)."""
    if path.startswith("/api/v5/"):
        return "/api/v1/" + path[8:]
    if path.startswith("/api/") and not path.startswith(_OWN_PREFIXES):
        return "/api/v1/" + path[5:]
    return path


_OWN_PREFIXES = ("/api/v1/", "/api/admin/", "/api/openapi.json", "/api/docs")


class _Prefixed:
    """Route decorators that register straight on the app under a prefix. (An included APIRouter
    costs a second full route match per request in this FastAPI version.)"""

    def __init__(self, app: FastAPI, prefix: str, **defaults: Any) -> None:
        self.app, self.prefix, self.defaults = app, prefix, defaults

    def _route(self, method: str, path: str, **kw: Any) -> Callable[[Any], Any]:
        return getattr(self.app, method)(self.prefix + path, **{**self.defaults, **kw})

    def get(self, path: str, **kw: Any) -> Callable[[Any], Any]:
        return self._route("get", path, **kw)

    def post(self, path: str, **kw: Any) -> Callable[[Any], Any]:
        return self._route("post", path, **kw)

    def patch(self, path: str, **kw: Any) -> Callable[[Any], Any]:
        return self._route("patch", path, **kw)

    def delete(self, path: str, **kw: Any) -> Callable[[Any], Any]:
        return self._route("delete", path, **kw)


def page_response(request: Request, page: Page) -> Response:
    items = (b"[" + ",".join(page.raw).encode() + b"]") if page.raw is not None else dumps(page.results)
    if not page.paged:
        return Response(content=items, media_type="application/json")
    count = page.count or 0
    nxt = prev = None
    url = request.url
    orig = request.scope.get("state", {}).get("orig_path")
    if orig:  # links keep the prefix the client used
        url = url.replace(path=orig)
    if page.page * page.page_size < count:
        nxt = str(url.include_query_params(page=page.page + 1))
    if page.page > 1:
        prev = str(url.include_query_params(page=page.page - 1))
    head = dumps({"count": count, "next": nxt, "previous": prev})
    return Response(content=head[:-1] + b',"results":' + items + b"}", media_type="application/json")


def create_app(vms: Vms, faults: Faults, audit: AuditLog, enable_admin: bool = False) -> Any:
    app = FastAPI(title="VAST Management Service (vms-mock)", version=vms.settings.sys_version,
                  openapi_url="/api/openapi.json", docs_url="/api/docs", redoc_url=None,
                  redirect_slashes=True)

    # ---- errors: the ONE mapping of exceptions to responses --------------------------------------
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return jresp(exc.body, exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        return jresp(drf_errors(exc.errors()), 400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return jresp({"detail": "Not found."}, 404)
        if exc.status_code == 405:
            return jresp({"detail": f'Method "{request.method}" not allowed.'}, 405)
        return jresp({"detail": str(exc.detail)}, exc.status_code)

    @app.exception_handler(OSError)
    async def _os_error(request: Request, exc: OSError) -> Response:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):  # the host file system behind the core is full
            return jresp({"detail": f"Insufficient capacity: {exc.strerror}"}, 507)
        return await _crash(request, exc)

    @app.exception_handler(sqlite3.OperationalError)
    async def _db_error(request: Request, exc: sqlite3.OperationalError) -> Response:
        if "full" in str(exc):  # SQLITE_FULL: the data directory's file system is full
            return jresp({"detail": "Insufficient capacity: the state database cannot grow."}, 507)
        return await _crash(request, exc)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> Response:
        log.error("unhandled error", exc_info=exc, extra={"method": request.method, "path": request.url.path})
        return jresp({"detail": f"Internal error ({type(exc).__name__}); see the server log."}, 500)

    # ---- auth -----------------------------------------------------------------------------------
    def principal(request: Request) -> Principal:
        """The caller, authenticated by ApiMiddleware before routing (so 401/403 come before any
        body validation, as in DRF, without FastAPI's per-request dependency machinery)."""
        return request.scope["state"]["p"]

    def params(request: Request) -> dict[str, str]:
        return dict(request.query_params)

    router = _Prefixed(app, "/api/v1")

    @router.post("/token/", tags=["auth"], summary="Log in: username/password -> access and refresh tokens")
    def token(request: Request, body: m.TokenRequest) -> Response:
        request.state.principal = body.username
        tenant = request.headers.get("x-tenant-name")
        request.state.tenant = tenant
        return jresp(vms.login(body.username, body.password, tenant))

    @router.post("/token/refresh/", tags=["auth"], summary="A new access token from a refresh token")
    async def token_refresh(body: m.RefreshRequest) -> Response:
        return jresp(vms.refresh(body.refresh))

    # ---- generic CRUD ---------------------------------------------------------------------------
    def filter_params(kind: str) -> dict[str, Any]:
        """OpenAPI description of a list's query parameters (read from the raw query string)."""
        ps: list[dict[str, Any]] = [
            {"name": "page_size", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": 10000}},
            {"name": "page", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1}},
        ]
        for fld, typ in FILTERS.get(kind, {}).items():
            schema = {"type": "integer"} if typ is int else {"type": "boolean"} if typ is bool else {
                "type": "string"}
            ps.append({"name": fld, "in": "query", "required": False, "schema": schema})
            if typ is str:
                for lk in ("contains", "startswith", "endswith"):
                    ps.append({"name": f"{fld}__{lk}", "in": "query", "required": False,
                               "schema": {"type": "string"}})
        return {"parameters": ps}

    def add_list_get(kind: str) -> None:
        @router.get(f"/{kind}/", tags=[kind], openapi_extra=filter_params(kind), name=f"list_{kind}")
        async def list_objs(request: Request) -> Response:
            p = principal(request)
            return page_response(request, vms.list_objs(p, kind, params(request)))

        @router.get(f"/{kind}/{{obj_id}}/", tags=[kind], name=f"get_{kind}")
        async def get_obj(request: Request, obj_id: str) -> Response:
            p = principal(request)
            return jresp(vms.render(kind, vms.get_obj(p, kind, obj_id_of(obj_id))))

    def add_crud(kind: str, create_model: type[BaseModel], update_model: type[BaseModel]) -> None:
        def create_sync(request: Request, body: create_model) -> Response:  # type: ignore[valid-type]
            p = principal(request)
            obj = vms.create(p, kind, body.model_dump(exclude_unset=True))  # type: ignore[attr-defined]
            request.state.object_id = obj.get("id")
            return jresp(obj, 201)

        async def create_async(request: Request, body: create_model) -> Response:  # type: ignore[valid-type]
            return create_sync(request, body)

        # Handlers run on the event loop: each is a few SQLite statements, cheaper than a thread
        # hop. Those that copy data (snapshots) or hash passwords run in the thread pool.
        router.post(f"/{kind}/", tags=[kind], status_code=201, name=f"create_{kind}")(
            create_sync if kind in SLOW_CREATES else create_async)

        add_list_get(kind)

        @router.patch(f"/{kind}/{{obj_id}}/", tags=[kind], name=f"update_{kind}")
        async def update(request: Request, obj_id: str,
                         body: update_model) -> Response:  # type: ignore[valid-type]
            p = principal(request)
            oid = obj_id_of(obj_id)
            request.state.object_id = oid
            return jresp(vms.update(p, kind, oid, body.model_dump(exclude_unset=True)))  # type: ignore[attr-defined]

        @router.delete(f"/{kind}/{{obj_id}}/", tags=[kind], status_code=204, name=f"delete_{kind}")
        async def delete(request: Request, obj_id: str, force: bool = False) -> Response:
            p = principal(request)
            oid = obj_id_of(obj_id)
            request.state.object_id = oid
            vms.delete(p, kind, oid, force)
            return Response(status_code=204)

    for kind, (cm, um) in CRUD.items():
        add_crud(kind, cm, um)
    for kind in READ_ONLY:
        add_list_get(kind)

    # (method-specific paths such as blockhostvolumes/bulk/ never collide with {obj_id} routes of
    # another method: a method mismatch is only a partial match, so matching goes on)
    @router.patch("/blockhostvolumes/bulk/", tags=["blockhostvolumes"],
                  summary="Map or unmap host/volume pairs; returns an async vtask")
    async def bulk(request: Request, body: m.BulkMapping) -> Response:
        p = principal(request)
        out = vms.bulk_map(p, body.model_dump())
        request.state.object_id = out["async_task"]["id"]
        return jresp(out, 200)

    @router.post("/users/{obj_id}/access_keys/", tags=["users"], status_code=201,
                 summary="Create an access key pair; the secret is shown only here")
    async def create_key(request: Request, obj_id: str, body: m.AccessKeyCreate | None = None
                   ) -> Response:
        p = principal(request)
        oid = obj_id_of(obj_id)
        request.state.object_id = oid
        return jresp(vms.create_access_key(p, oid), 201)

    @router.delete("/users/{obj_id}/access_keys/", tags=["users"], status_code=204)
    async def delete_key(request: Request, obj_id: str, body: m.AccessKeyDelete) -> Response:
        p = principal(request)
        oid = obj_id_of(obj_id)
        request.state.object_id = oid
        vms.delete_access_key(p, oid, body.access_key)
        return Response(status_code=204)

    @router.post("/snapshots/{obj_id}/clone_volume/", tags=["snapshots"], status_code=201,
                 summary="A new block volume from a single-volume snapshot")
    def clone_volume(request: Request, obj_id: str, body: m.CloneVolume) -> Response:
        p = principal(request)
        out = vms.clone_volume(p, obj_id_of(obj_id), body.model_dump())
        request.state.object_id = out["id"]
        return jresp(out, 201)

    @router.delete("/folders/delete_folder/", tags=["folders"], status_code=204,
                   summary="Remove a directory's data (the trash API)")
    def delete_folder(request: Request, body: m.DeleteFolder) -> Response:
        p = principal(request)
        vms.delete_folder(p, body.model_dump())
        return Response(status_code=204)

    @router.get("/audit/", tags=["audit"], openapi_extra={"parameters": [
        {"name": n, "in": "query", "required": False, "schema": {"type": "string"}}
        for n in [*sorted(AUDIT_FILTERS), "page", "page_size"]]})
    async def audit_list(request: Request) -> Response:
        p = principal(request)
        if not p.is_super:
            raise ApiError({"detail": "Only a super-admin may read the audit log."}, 403)
        audit.flush()  # the last calls' records may still be batched
        q = params(request)
        filters = {}
        for k, v in q.items():
            if k in ("page", "page_size"):
                continue
            if k not in AUDIT_FILTERS:
                raise ApiError({k: ["Unknown filter."]}, 400)
            if k == "status" and not re.fullmatch(r"[0-9]{1,3}", v):
                raise ApiError({k: ["Enter a whole number."]}, 400)
            filters[k] = int(v) if k == "status" else v
        page_size = vms._int_param(q, "page_size", 1, 10000)
        page = vms._int_param(q, "page", 1, 10**9) or 1
        rows, count = audit.store.find_audit(filters, (page - 1) * (page_size or 0), page_size,
                                             bool(page_size))
        return page_response(request, Page(rows, count, bool(page_size), page, page_size or 0))

    for kind in ("versions", "clusters"):
        def add_static(kind: str) -> None:
            @router.get(f"/{kind}/", tags=[kind], openapi_extra=filter_params(kind), name=f"list_{kind}")
            async def static_list(request: Request) -> Response:
                principal(request)  # authenticated; every principal may read these
                return page_response(request, vms.static_list(kind, params(request)))

            @router.get(f"/{kind}/{{obj_id}}/", tags=[kind], name=f"get_{kind}")
            async def static_get(request: Request, obj_id: str) -> Response:
                principal(request)  # authenticated; every principal may read these
                oid = obj_id_of(obj_id)
                rows = vms.versions() if kind == "versions" else vms.clusters()
                for r in rows:
                    if r["id"] == oid:
                        return jresp(r)
                raise NotFoundError()
        add_static(kind)


    # /api/ and /api/v5/ are rewritten to /api/v1/ by ApiMiddleware (see canonical_path)

    # ---- admin (fault control) ------------------------------------------------------------------
    if enable_admin:
        admin = _Prefixed(app, "/api/admin", tags=["admin"])

        def require_super(request: Request) -> Principal:
            p = principal(request)
            if not p.is_super:
                raise ApiError({"detail": "Only a super-admin may change faults."}, 403)
            return p

        @admin.get("/faults/")
        async def faults_list(request: Request) -> Response:
            require_super(request)
            return jresp(faults.list())

        @admin.post("/faults/", status_code=201)
        async def faults_add(request: Request, body: FaultRule) -> Response:
            require_super(request)
            rid = faults.add(body)
            return jresp({"id": rid, **body.model_dump()}, 201)

        @admin.delete("/faults/", status_code=204)
        async def faults_clear(request: Request) -> Response:
            require_super(request)
            faults.clear()
            return Response(status_code=204)

        @admin.delete("/faults/{rule_id}/", status_code=204)
        async def faults_remove(request: Request, rule_id: str) -> Response:
            require_super(request)
            if not faults.remove(obj_id_of(rule_id)):
                raise NotFoundError()
            return Response(status_code=204)

        @admin.post("/expire_tokens/", summary="Invalidate every access and refresh token issued so far")
        async def expire_tokens(request: Request) -> Response:
            require_super(request)
            import time

            vms.signer.not_before = time.time()
            return jresp({"detail": "All tokens issued so far are now expired."})


    generate = app.openapi

    def openapi() -> dict[str, Any]:  # built on first request: keeps startup fast
        if app.openapi_schema is None:
            app.openapi_schema = _tune_openapi(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    fast = FastCreates(app, vms, {f"/api/v1/{kind}/": (kind, cm) for kind, (cm, _um) in CRUD.items()
                                  if kind not in SLOW_CREATES})
    return ApiMiddleware(app, faults, audit, vms, fast), app


def _tune_openapi(schema: dict[str, Any]) -> dict[str, Any]:
    """Publish ids as small integers (they are strings in the route so that a malformed id is a
    404, as in Django) and the two authentication schemes."""
    for ops in schema.get("paths", {}).values():
        for op in ops.values():
            for param in op.get("parameters", []):
                if param.get("in") == "path" and param.get("name") in ("obj_id", "rule_id"):
                    param["schema"] = {"type": "integer", "minimum": 1, "maximum": 50}
            op.setdefault("security", [{"bearer": []}, {"apiToken": []}])
    schema.setdefault("components", {})["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                   "description": "access token from POST /api/v1/token/"},
        "apiToken": {"type": "apiKey", "in": "header", "name": "Authorization",
                     "description": "'Api-Token <token>' from POST /api/v1/apitokens/"},
    }
    return schema
