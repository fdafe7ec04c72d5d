"""In-memory FAKE of the Kubernetes API boundary, used only because no kube-apiserver is available
to these tests yet. It implements the operator's ``Kube`` interface and the few CoreV1Api calls
the Kubernetes key store makes, with the API's status codes (404, 409) and ownerReference garbage
collection of Secrets, nothing more."""

from __future__ import annotations

import copy
import uuid
from types import SimpleNamespace
from typing import Any


class FakeApiError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status, self.reason = status, reason


class FakeKube:
    def __init__(self) -> None:
        self.secrets: dict[tuple[str, str], dict[str, Any]] = {}
        self.objects: dict[tuple[str, str, str | None, str], dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []

    # -- helpers for tests
    def add_secret(self, namespace: str, name: str, data_b64: dict[str, str]) -> dict[str, Any]:
        obj = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace, "uid": str(uuid.uuid4())},
            "data": dict(data_b64),
        }
        self.secrets[(namespace, name)] = obj
        return copy.deepcopy(obj)

    def add_object(self, version: str, plural: str, obj: dict[str, Any]) -> None:
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        self.objects[(version, plural, meta.get("namespace"), meta["name"])] = obj

    def garbage_collect(self) -> None:
        uids = {s["metadata"]["uid"] for s in self.secrets.values()}
        for key, s in list(self.secrets.items()):
            owners = s["metadata"].get("ownerReferences") or []
            if owners and not any(o["uid"] in uids for o in owners):
                del self.secrets[key]

    # -- Kube interface
    def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.secrets.get((namespace, name))
        return copy.deepcopy(found) if found else None

    def apply_secret(self, body: dict[str, Any]) -> str:
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        current = self.secrets.get(key)
        if current is None:
            new = copy.deepcopy(body)
            new["metadata"]["uid"] = str(uuid.uuid4())
            self.secrets[key] = new
            return "created"
        if current.get("data") == body["data"] and current["metadata"].get("labels") == body["metadata"].get(
            "labels"
        ):
            return "unchanged"
        uid = current["metadata"]["uid"]
        self.secrets[key] = copy.deepcopy(body)
        self.secrets[key]["metadata"]["uid"] = uid
        return "updated"

    def delete_secret(self, namespace: str, name: str) -> None:
        self.secrets.pop((namespace, name), None)

    def list_objects(self, version: str, plural: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(o) for (v, p, _, _), o in self.objects.items() if v == version and p == plural]

    def get_object(
        self, version: str, plural: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        found = self.objects.get((version, plural, namespace, name))
        return copy.deepcopy(found) if found else None

    def emit_event(self, involved: dict[str, Any], reason: str, message: str, type_: str = "Warning") -> None:
        self.events.append(
            {"object": involved["metadata"]["name"], "reason": reason, "message": message, "type": type_}
        )


class FakeCoreV1Api:
    """The CoreV1Api subset the KubernetesKeyStore calls."""

    def __init__(self) -> None:
        self.store: dict[tuple[str, str], Any] = {}

    def read_namespaced_secret(self, name: str, namespace: str) -> Any:
        if (namespace, name) not in self.store:
            raise FakeApiError(404, "Not Found")
        return self.store[(namespace, name)]

    def create_namespaced_secret(self, namespace: str, body: Any) -> Any:
        if (namespace, body.metadata.name) in self.store:
            raise FakeApiError(409, "AlreadyExists")
        self.store[(namespace, body.metadata.name)] = body
        return body

    def replace_namespaced_secret(self, name: str, namespace: str, body: Any) -> Any:
        if (namespace, name) not in self.store:
            raise FakeApiError(404, "Not Found")
        self.store[(namespace, name)] = body
        return body

    def delete_namespaced_secret(self, name: str, namespace: str) -> None:
        if self.store.pop((namespace, name), None) is None:
            raise FakeApiError(404, "Not Found")

    def list_namespaced_secret(self, namespace: str, label_selector: str = "") -> Any:
        wanted = dict(part.split("=", 1) for part in label_selector.split(",") if part)
        items = [
            s
            for (ns, _), s in self.store.items()
            if ns == namespace and all((s.metadata.labels or {}).get(k) == v for k, v in wanted.items())
        ]
        return SimpleNamespace(items=items)
