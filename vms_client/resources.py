"""Typed accessors of VMS collections: one generic client plus the few special calls."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel, ValidationError

from .errors import InvalidRequest, MultipleFound, NotFound, TaskFailed, Timeout, VmsError
from .models import (
    AccessKeyPair,
    BlockHostVolume,
    Capacity,
    Cluster,
    Payload,
    ReadModel,
    Version,
    Volume,
    VTask,
)

if TYPE_CHECKING:
    from .client import VmsClient

log = logging.getLogger("vms_client")

ModelT = TypeVar("ModelT", bound=ReadModel)

# Django lookups that do not mean "equal": refused by find_one (identity lookups are exact).
NON_EXACT_LOOKUPS = frozenset({
    "contains", "icontains", "startswith", "istartswith", "endswith", "iendswith", "in", "gt",
    "gte", "lt", "lte", "regex", "iregex", "isnull", "range", "iexact", "search", "not",
})
MAX_PAGES = 100_000


def encode_filter(value: Any) -> str:
    """A filter value as the query string carries it (Django/DRF conventions)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple, set, frozenset)):
        return ",".join(encode_filter(v) for v in value)
    return str(value)


def encode_filters(filters: Mapping[str, Any]) -> dict[str, str]:
    """Query parameters from keyword filters; a None value means "no filter on this field"."""
    return {k: encode_filter(v) for k, v in filters.items() if v is not None}


def exact_filter_keys(filters: Mapping[str, Any]) -> None:
    """Refuse filters that are not exact matches (for identity lookups)."""
    if not filters:
        raise ValueError("find_one needs at least one filter")
    for key, value in filters.items():
        if value is None:
            raise ValueError(f"find_one filter {key!r} is None; an identity lookup needs a value")
        if key.rsplit("__", 1)[-1] in NON_EXACT_LOOKUPS:
            raise ValueError(f"find_one filter {key!r} is not an exact match")


def matches_exactly(obj: Mapping[str, Any], filters: Mapping[str, Any]) -> bool:
    """Whether ``obj`` has every filtered field equal to the value (``a__b`` walks nested
    objects). A field the object does not show cannot be checked and counts as matching: the
    server filtered on it."""
    for key, value in filters.items():
        cur: Any = obj
        checked = True
        for part in key.removesuffix("__exact").split("__"):
            if isinstance(cur, Mapping) and part in cur:
                cur = cur[part]
            else:
                checked = False
                break
        if checked and encode_filter(cur) != encode_filter(value):
            return False
    return True


def split_next(next_url: str) -> tuple[str, dict[str, str]]:
    """Path and query of a ``next`` link; its scheme and host are ignored so that paging stays
    on the configured endpoint (servers behind proxies announce internal host names)."""
    parts = urlsplit(next_url)
    return parts.path, dict(parse_qsl(parts.query, keep_blank_values=True))


def to_payload(model: type[Payload] | None, data: BaseModel | Mapping[str, Any] | None,
               fields: Mapping[str, Any], *, method: str, path: str) -> dict[str, Any]:
    """Validate a create/update body client-side and return its JSON form."""
    if isinstance(data, Payload) and not fields:
        return data.to_json()
    merged: dict[str, Any] = {}
    if isinstance(data, BaseModel):
        merged.update(data.model_dump(exclude_none=True))
    elif data is not None:
        merged.update(data)
    merged.update(fields)
    if model is None:
        return Payload.model_validate(merged).to_json()
    try:
        return model.model_validate(merged).to_json()
    except ValidationError as exc:
        bad = {".".join(str(p) for p in err["loc"]) or "body": [err["msg"]] for err in exc.errors()}
        raise InvalidRequest("invalid request body (checked by the client): "
                             + "; ".join(f"{k}: {v[0]}" for k, v in bad.items()),
                             method=method, path=path, fields=bad) from None


class ResourceClient(Generic[ModelT]):
    """``list / iter / get / find_one / create / update / delete`` of one VMS collection."""

    def __init__(self, client: VmsClient, name: str, model: type[ModelT], *,
                 create_model: type[Payload] | None = None, update_model: type[Payload] | None = None,
                 block: bool = False, api_version: str | None = None) -> None:
        self._client = client
        self.name = name
        self.model = model
        self.create_model = create_model
        self.update_model = update_model
        self.block = block
        self._api_version = api_version

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    # -- paths
    def prefix(self) -> str:
        if self._api_version:
            return f"/api/{self._api_version}/"
        return self._client.api_prefix(block=self.block)

    def collection_path(self) -> str:
        return f"{self.prefix()}{self.name}/"

    def item_path(self, obj_id: int | str) -> str:
        text = str(obj_id)
        if not text or "/" in text or text in (".", ".."):
            raise ValueError(f"bad {self.name} id {obj_id!r}")
        return f"{self.collection_path()}{text}/"

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._client.transport.request(method, path, resource=self.name, **kwargs)

    def _parse(self, body: Any, method: str, path: str) -> ModelT:
        try:
            return self.model.model_validate(body)
        except ValidationError as exc:
            raise VmsError(f"unexpected {self.name} object from the server: "
                           f"{exc.error_count()} validation error(s)", method=method, path=path) from exc

    # -- reads
    def iter_raw(self, **filters: Any) -> Iterator[dict[str, Any]]:
        """Every matching object as a dict, page by page (``page_size`` from the config)."""
        path = self.collection_path()
        params: dict[str, str] = {**encode_filters(filters), "page_size": str(self._client.config.page_size)}
        seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
        for _ in range(MAX_PAGES):
            body = self._request("GET", path, params=params)
            if isinstance(body, list):
                yield from body
                return
            if not isinstance(body, dict) or not isinstance(body.get("results"), list):
                raise VmsError(f"unexpected list answer for {self.name}", method="GET", path=path)
            yield from body["results"]
            next_url = body.get("next")
            if not next_url:
                return
            path, params = split_next(str(next_url))
            key = (path, tuple(sorted(params.items())))
            if key in seen:
                raise VmsError(f"pagination of {self.name} loops on {path}", method="GET", path=path)
            seen.add(key)
        raise VmsError(f"pagination of {self.name} exceeded {MAX_PAGES} pages", method="GET", path=path)

    def iter(self, **filters: Any) -> Iterator[ModelT]:
        path = self.collection_path()
        for raw in self.iter_raw(**filters):
            yield self._parse(raw, "GET", path)

    def list(self, **filters: Any) -> list[ModelT]:
        """All objects matching the exact-match ``filters`` (None values are ignored)."""
        return list(self.iter(**filters))

    def get(self, obj_id: int | str) -> ModelT:
        path = self.item_path(obj_id)
        return self._parse(self._request("GET", path), "GET", path)

    def find_one(self, **filters: Any) -> ModelT | None:
        """The one object whose fields equal ``filters``, or None. Lookup suffixes such as
        ``__contains`` are refused; results are re-checked client-side so that a server which
        ignores a filter cannot hand back the wrong object."""
        exact_filter_keys(filters)
        found = [raw for raw in self.iter_raw(**filters) if matches_exactly(raw, filters)]
        if not found:
            return None
        if len(found) > 1:
            raise MultipleFound(f"{len(found)} {self.name} match {sorted(filters)}", method="GET",
                                path=self.collection_path())
        return self._parse(found[0], "GET", self.collection_path())

    # -- writes
    def create(self, data: BaseModel | Mapping[str, Any] | None = None, *,
               idempotent: bool | None = None, **fields: Any) -> ModelT:
        """POST a new object. Not retried after the server may have received it, unless
        ``idempotent=True`` (a repeat cannot make a second object, e.g. unique names)."""
        path = self.collection_path()
        body = to_payload(self.create_model, data, fields, method="POST", path=path)
        return self._parse(self._request("POST", path, json=body, idempotent=idempotent), "POST", path)

    def update(self, obj_id: int | str, data: BaseModel | Mapping[str, Any] | None = None,
               **fields: Any) -> ModelT:
        """PATCH fields to absolute values (a repeat has the same effect, so it is retried)."""
        path = self.item_path(obj_id)
        body = to_payload(self.update_model, data, fields, method="PATCH", path=path)
        return self._parse(self._request("PATCH", path, json=body, idempotent=True), "PATCH", path)

    def delete(self, obj_id: int | str, *, missing_ok: bool = False) -> bool:
        """DELETE one object. A missing id raises NotFound, or returns False with ``missing_ok``."""
        return self._delete(self.item_path(obj_id), None, missing_ok)

    def _delete(self, path: str, params: Mapping[str, str] | None, missing_ok: bool) -> bool:
        try:
            self._request("DELETE", path, params=params)
        except NotFound:
            if missing_ok:
                return False
            raise
        return True


class VersionsClient(ResourceClient[Version]):
    def current(self) -> str:
        """``sys_version`` of the newest successful install (e.g. ``5.3.0``)."""
        versions = self.list(status="success")
        for version in versions:
            if version.sys_version:
                return version.sys_version
        raise NotFound("no successful version reported", method="GET", path=self.collection_path())


class ClustersClient(ResourceClient[Cluster]):
    def capacity(self) -> Capacity:
        clusters = self.list()
        if not clusters:
            raise NotFound("no cluster reported", method="GET", path=self.collection_path())
        c = clusters[0]
        if c.usable_capacity_bytes is None or c.free_usable_capacity_bytes is None:
            raise VmsError("cluster reports no usable/free capacity", method="GET",
                           path=self.collection_path())
        return Capacity(usable_bytes=c.usable_capacity_bytes, free_bytes=c.free_usable_capacity_bytes,
                        logical_space=c.logical_space, logical_space_in_use=c.logical_space_in_use)


class UsersClient(ResourceClient[ModelT]):
    def create_access_key(self, user_id: int | str) -> AccessKeyPair:
        """Mint a new S3 key pair. Never repeated after the server may have received it: a
        repeat would mint a second key (callers make grants idempotent around this)."""
        path = f"{self.item_path(user_id)}access_keys/"
        body = self._client.transport.request("POST", path, resource="users/access_keys", json={})
        try:
            return AccessKeyPair.model_validate(body)
        except ValidationError as exc:
            raise VmsError("unexpected access key answer", method="POST", path=path) from exc

    def delete_access_key(self, user_id: int | str, access_key: str, *, missing_ok: bool = False) -> bool:
        path = f"{self.item_path(user_id)}access_keys/"
        try:
            self._client.transport.request("DELETE", path, resource="users/access_keys",
                                           json={"access_key": access_key})
        except NotFound:
            if missing_ok:
                return False
            raise
        return True


class SnapshotsClient(ResourceClient[ModelT]):
    def clone_volume(self, snapshot_id: int | str, *, target_subsystem_id: int,
                     target_volume_path: str, **more: Any) -> Volume:
        path = f"{self.item_path(snapshot_id)}clone_volume/"
        body = {"target_subsystem_id": target_subsystem_id, "target_volume_path": target_volume_path, **more}
        answer = self._client.transport.request("POST", path, resource="snapshots/clone_volume", json=body)
        try:
            return Volume.model_validate(answer)
        except ValidationError as exc:
            raise VmsError("unexpected clone_volume answer", method="POST", path=path) from exc


class VolumesClient(ResourceClient[ModelT]):
    def delete(self, obj_id: int | str, *, missing_ok: bool = False, force: bool = False) -> bool:
        """DELETE a volume; ``force=True`` also unmaps it from its hosts."""
        return self._delete(self.item_path(obj_id), {"force": "true"} if force else None, missing_ok)


Pair = tuple[int, int]


class BlockHostVolumesClient(ResourceClient[BlockHostVolume]):
    def _bulk(self, key: str, pairs: Iterable[Pair], wait: float | None) -> VTask:
        body = {key: [{"host_id": int(h), "volume_id": int(v)} for h, v in pairs]}
        path = f"{self.collection_path()}bulk/"
        answer = self._client.transport.request("PATCH", path, resource="blockhostvolumes/bulk", json=body)
        task_body = answer.get("async_task") if isinstance(answer, dict) else None
        if not isinstance(task_body, dict) or "id" not in task_body:
            raise VmsError("bulk answer carried no async_task", method="PATCH", path=path)
        task = VTask.model_validate(task_body)
        if wait is not None:
            return self._client.vtasks.wait(task.id, timeout=wait)
        return task

    def bulk_add(self, pairs: Iterable[Pair], *, wait: float | None = None) -> VTask:
        """Map volumes to hosts: ``[(host_id, volume_id), ...]``. Returns the vtask (waited for
        when ``wait`` gives a timeout in seconds)."""
        return self._bulk("pairs_to_add", pairs, wait)

    def bulk_remove(self, pairs: Iterable[Pair], *, wait: float | None = None) -> VTask:
        return self._bulk("pairs_to_remove", pairs, wait)


class VTasksClient(ResourceClient[VTask]):
    def wait(self, task_id: int | str, timeout: float = 60.0, *,
             clock: Callable[[], float] = time.monotonic,
             sleep: Callable[[float], None] = time.sleep) -> VTask:
        """Poll until COMPLETED (returned) or FAILED (TaskFailed); Timeout after ``timeout``."""
        deadline = clock() + timeout
        delay = 0.05
        while True:
            task = self.get(task_id)
            state = (task.state or "").upper()
            if state == "COMPLETED":
                return task
            if state == "FAILED":
                raise TaskFailed(f"vtask {task_id} failed: " + ("; ".join(task.messages) or "no message"),
                                 method="GET", path=self.item_path(task_id))
            remaining = deadline - clock()
            if remaining <= 0:
                raise Timeout(f"vtask {task_id} still {state or 'unknown'} after {timeout:g}s",
                              method="GET", path=self.item_path(task_id))
            sleep(min(delay, remaining))
            delay = min(delay * 2, 1.0)


class FoldersClient:
    """The "trash" API: remove a directory's data."""

    def __init__(self, client: VmsClient) -> None:
        self._client = client

    def delete_folder(self, path: str, tenant_id: int | None = None) -> None:
        body: dict[str, Any] = {"path": path}
        if tenant_id is not None:
            body["tenant_id"] = tenant_id
        url = f"{self._client.api_prefix(block=False)}folders/delete_folder/"
        self._client.transport.request("DELETE", url, resource="folders", json=body)
