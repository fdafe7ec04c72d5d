"""The operator's Kubernetes boundary: the few calls it makes, behind one small interface.

``KubeApi`` is the real one (kubernetes client). Tests use an in-memory stand-in that follows the
same interface (tests/cosi/fake_kube.py) until a real kube-apiserver is available to them.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Protocol

log = logging.getLogger(__name__)

GROUP = "objectstorage.k8s.io"


class Kube(Protocol):
    def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    def apply_secret(self, body: dict[str, Any]) -> str: ...
    def delete_secret(self, namespace: str, name: str) -> None: ...
    def list_objects(self, version: str, plural: str) -> list[dict[str, Any]]: ...
    def get_object(
        self, version: str, plural: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None: ...
    def emit_event(
        self, involved: dict[str, Any], reason: str, message: str, type_: str = "Warning"
    ) -> None: ...


class KubeApi:
    """``Kube`` over the official client (in-cluster config or KUBECONFIG)."""

    def __init__(self, api_client: Any = None, component: str = "cosi-operator") -> None:
        from kubernetes import client, config

        if api_client is None:
            try:
                config.load_incluster_config()
            except config.ConfigException:
                config.load_kube_config()
            api_client = client.ApiClient()
        self.api_client = api_client
        self.core: Any = client.CoreV1Api(api_client)
        self.custom: Any = client.CustomObjectsApi(api_client)
        self.component = component

    def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            obj = self.core.read_namespaced_secret(name, namespace)
        except Exception as exc:
            if getattr(exc, "status", None) == 404:
                return None
            raise
        return dict(self.api_client.sanitize_for_serialization(obj))

    def apply_secret(self, body: dict[str, Any]) -> str:
        meta = body["metadata"]
        current = self.get_secret(meta["namespace"], meta["name"])
        if current is None:
            try:
                self.core.create_namespaced_secret(meta["namespace"], body)
                return "created"
            except Exception as exc:
                if getattr(exc, "status", None) != 409:
                    raise
                current = self.get_secret(meta["namespace"], meta["name"])
        if (
            current is not None
            and current.get("data") == body["data"]
            and (current.get("metadata", {}).get("labels") or {}) == meta.get("labels")
        ):
            return "unchanged"
        self.core.replace_namespaced_secret(meta["name"], meta["namespace"], body)
        return "updated"

    def delete_secret(self, namespace: str, name: str) -> None:
        try:
            self.core.delete_namespaced_secret(name, namespace)
        except Exception as exc:
            if getattr(exc, "status", None) != 404:
                raise

    def list_objects(self, version: str, plural: str) -> list[dict[str, Any]]:
        try:
            listed = self.custom.list_cluster_custom_object(GROUP, version, plural)
        except Exception as exc:
            if getattr(exc, "status", None) == 404:  # CRD version not installed
                return []
            raise
        return list(listed.get("items", []))

    def get_object(
        self, version: str, plural: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        try:
            if namespace:
                return dict(self.custom.get_namespaced_custom_object(GROUP, version, namespace, plural, name))
            return dict(self.custom.get_cluster_custom_object(GROUP, version, plural, name))
        except Exception as exc:
            if getattr(exc, "status", None) == 404:
                return None
            raise

    def emit_event(self, involved: dict[str, Any], reason: str, message: str, type_: str = "Warning") -> None:
        from kubernetes import client

        meta = involved.get("metadata", {})
        namespace = meta.get("namespace") or "default"
        now = dt.datetime.now(dt.UTC)
        event = client.CoreV1Event(
            metadata=client.V1ObjectMeta(generate_name=f"{meta.get('name', 'cosi')}.", namespace=namespace),
            involved_object=client.V1ObjectReference(
                api_version=involved.get("apiVersion"),
                kind=involved.get("kind"),
                name=meta.get("name"),
                namespace=meta.get("namespace"),
                uid=meta.get("uid"),
                resource_version=meta.get("resourceVersion"),
            ),
            reason=reason,
            message=message[:1024],
            type=type_,
            count=1,
            first_timestamp=now,
            last_timestamp=now,
            source=client.V1EventSource(component=self.component),
            reporting_component=self.component,
            reporting_instance=self.component,
        )
        self.core.create_namespaced_event(namespace, event)
