"""What the operator does for one object. Plain functions over the ``Kube`` boundary, so they are
tested directly; ``main`` wires them to kopf."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from prometheus_client import Counter

from cosi_driver.errors import InvalidArgument
from cosi_driver.operator import projection
from cosi_driver.operator.kube import Kube
from cosi_driver.params import check_access_params, parse_access_mode, parse_bucket_params

log = logging.getLogger(__name__)

PROJECTIONS = Counter("cosi_operator_projections_total", "credential Secret projections", ["result"])
EVENTS = Counter("cosi_operator_events_total", "Events emitted on claims and accesses", ["reason"])


def project_secret(kube: Kube, secret: Mapping[str, Any]) -> str:
    """Create or refresh the flat ``<name>-s3`` Secret for a COSI credentials Secret."""
    meta = secret.get("metadata", {})
    if not projection.is_source(secret.get("data"), meta.get("labels")):
        return "ignored"
    try:
        flat = projection.flat_credentials(projection.decoded(secret.get("data")))
    except projection.NotCredentials as exc:
        log.warning("credentials Secret not projected", extra={"secret": meta.get("name"), "why": str(exc)})
        PROJECTIONS.labels("invalid").inc()
        return "invalid"
    result = kube.apply_secret(projection.projected_secret(secret, flat))
    PROJECTIONS.labels(result).inc()
    log.info(
        "credentials projected",
        extra={"secret": meta.get("name"), "namespace": meta.get("namespace"), "result": result},
    )
    return result


def remove_projection(kube: Kube, secret: Mapping[str, Any]) -> None:
    """Belt and braces next to the ownerReference (e.g. clusters with GC lag)."""
    meta = secret.get("metadata", {})
    if projection.is_source(secret.get("data"), meta.get("labels")):
        kube.delete_secret(meta["namespace"], meta["name"] + projection.SUFFIX)


def _params(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict((obj.get("spec") or {}).get("parameters") or obj.get("parameters") or {})


def _driver(obj: Mapping[str, Any]) -> str:
    return str((obj.get("spec") or {}).get("driverName") or obj.get("driverName") or "")


def _age(obj: Mapping[str, Any], now: float) -> float:
    stamp = obj.get("metadata", {}).get("creationTimestamp")
    if not stamp:
        return 0.0
    created = time.mktime(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    return now - created


class EventRecorder:
    """Emit a Warning once per (object, reason, message), not on every pass."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._seen: dict[tuple[str, str], str] = {}
        self._mu = threading.Lock()

    def warn(self, obj: Mapping[str, Any], reason: str, message: str) -> bool:
        key = (str(obj.get("metadata", {}).get("uid") or obj.get("metadata", {}).get("name")), reason)
        with self._mu:
            if self._seen.get(key) == message:
                return False
            self._seen[key] = message
        try:
            self.kube.emit_event(dict(obj), reason, message)
        except Exception as exc:  # e.g. the namespace is terminating; try again on the next pass
            with self._mu:
                self._seen.pop(key, None)
            log.warning("event not recorded", extra={"reason": reason, "error": str(exc)[:300]})
            return False
        EVENTS.labels(reason).inc()
        return True


def check_claim(
    kube: Kube,
    recorder: EventRecorder,
    claim: Mapping[str, Any],
    driver_name: str,
    grace_seconds: float = 120.0,
    now: float | None = None,
) -> list[str]:
    """Warnings a BucketClaim's owner must see (bad class parameters, not ready for long)."""
    if claim.get("metadata", {}).get("deletionTimestamp"):
        return []  # going away: nothing for its owner to fix
    version = str(claim.get("apiVersion", "objectstorage.k8s.io/v1alpha1")).split("/")[-1]
    spec = claim.get("spec") or {}
    status = claim.get("status") or {}
    reasons: list[str] = []
    class_name = spec.get("bucketClassName")
    if class_name and not spec.get("existingBucketName"):
        cls = kube.get_object(version, "bucketclasses", class_name)
        if cls is None:
            if recorder.warn(claim, "BucketClassNotFound", f"BucketClass {class_name!r} does not exist"):
                reasons.append("BucketClassNotFound")
            return reasons
        if _driver(cls) != driver_name:
            return reasons
        try:
            parse_bucket_params(_params(cls))
        except InvalidArgument as exc:
            if recorder.warn(
                claim, "InvalidBucketClassParameters", f"BucketClass {class_name}: {exc.message}"
            ):
                reasons.append("InvalidBucketClassParameters")
        policy = cls.get("deletionPolicy") or (cls.get("spec") or {}).get("deletionPolicy")
        if (
            policy is not None
            and policy not in ("Retain", "Delete")
            and recorder.warn(
                claim,
                "InvalidDeletionPolicy",
                f"BucketClass {class_name}: deletionPolicy {policy!r} must be Retain or Delete",
            )
        ):
            reasons.append("InvalidDeletionPolicy")
    ready = status.get("bucketReady") or status.get("readyToUse")
    if (
        not ready
        and _age(claim, now or time.time()) > grace_seconds
        and recorder.warn(
            claim,
            "BucketNotReady",
            f"bucket not ready after {int(grace_seconds)}s; check the cosi-driver logs and the "
            "Bucket's events",
        )
    ):
        reasons.append("BucketNotReady")
    return reasons


def check_access(
    kube: Kube,
    recorder: EventRecorder,
    access: Mapping[str, Any],
    driver_name: str,
    grace_seconds: float = 120.0,
    now: float | None = None,
) -> list[str]:
    if access.get("metadata", {}).get("deletionTimestamp"):
        return []
    version = str(access.get("apiVersion", "objectstorage.k8s.io/v1alpha1")).split("/")[-1]
    spec = access.get("spec") or {}
    status = access.get("status") or {}
    reasons: list[str] = []
    class_name = spec.get("bucketAccessClassName")
    if class_name:
        cls = kube.get_object(version, "bucketaccessclasses", class_name)
        if cls is None:
            if recorder.warn(
                access, "BucketAccessClassNotFound", f"BucketAccessClass {class_name!r} does not exist"
            ):
                reasons.append("BucketAccessClassNotFound")
            return reasons
        if _driver(cls) != driver_name:
            return reasons
        auth = cls.get("authenticationType") or (cls.get("spec") or {}).get("authenticationType")
        if (
            auth is not None
            and str(auth) not in ("Key", "KEY")
            and recorder.warn(
                access,
                "UnsupportedAuthenticationType",
                f"BucketAccessClass {class_name}: authenticationType {auth!r} is not supported (use Key)",
            )
        ):
            reasons.append("UnsupportedAuthenticationType")
        try:
            if version == "v1alpha1":
                parse_access_mode(_params(cls))
            else:
                check_access_params(_params(cls))
        except InvalidArgument as exc:
            if recorder.warn(
                access, "InvalidBucketAccessClassParameters", f"BucketAccessClass {class_name}: {exc.message}"
            ):
                reasons.append("InvalidBucketAccessClassParameters")
    granted = status.get("accessGranted") or status.get("readyToUse")
    if (
        not granted
        and _age(access, now or time.time()) > grace_seconds
        and recorder.warn(
            access,
            "AccessNotGranted",
            f"access not granted after {int(grace_seconds)}s; check the cosi-driver logs",
        )
    ):
        reasons.append("AccessNotGranted")
    return reasons
