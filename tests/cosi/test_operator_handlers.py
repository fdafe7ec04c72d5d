"""Operator handlers called directly against the in-memory FAKE Kubernetes boundary
(tests/cosi/fake_kube.py). No kube-apiserver is available to this suite yet; once the local
control plane lands these move to a real apiserver."""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace
from typing import Any

import pytest

from cosi_driver import naming
from cosi_driver.keystore import KubernetesKeyStore
from cosi_driver.operator import handlers, projection
from cosi_driver.operator.reconcile import OrphanReconciler
from tests.cosi.fake_kube import FakeCoreV1Api, FakeKube

DRIVER = "cosi.vastdata.com"


def b64(values: dict[str, str]) -> dict[str, str]:
    return {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}


def v1alpha1_secret(key: str = "AKID1", secret: str = "s3cr3t") -> dict[str, str]:
    info = {
        "metadata": {"name": "bc-uid"},
        "spec": {
            "bucketName": "cosi-x-0123456789abcdef",
            "authenticationType": "Key",
            "secretS3": {
                "endpoint": "http://127.0.0.1:9000",
                "region": "us-east-1",
                "accessKeyID": key,
                "accessSecretKey": secret,
            },
            "secretAzure": None,
            "protocols": ["S3"],
        },
    }
    return b64({"BucketInfo": json.dumps(info)})


def test_v1alpha1_secret_projected_flat_kept_in_sync_and_collected() -> None:
    kube = FakeKube()
    src = kube.add_secret("app", "creds", v1alpha1_secret())
    assert handlers.project_secret(kube, src) == "created"
    flat = projection.decoded(kube.get_secret("app", "creds-s3")["data"])  # type: ignore[index]
    assert flat["AWS_ACCESS_KEY_ID"] == flat["accessKeyID"] == "AKID1"
    assert flat["AWS_SECRET_ACCESS_KEY"] == flat["secretAccessKey"] == "s3cr3t"
    assert flat["AWS_ENDPOINT_URL"] == flat["endpoint"] == "http://127.0.0.1:9000"
    assert flat["AWS_REGION"] == flat["region"] == "us-east-1"
    assert flat["bucketName"] == "cosi-x-0123456789abcdef"
    projected = kube.get_secret("app", "creds-s3")
    assert projected is not None
    assert projected["metadata"]["ownerReferences"][0]["uid"] == src["metadata"]["uid"]
    assert handlers.project_secret(kube, src) == "unchanged"
    # the source changes (a re-grant after the platform lost the key) -> projection follows
    kube.secrets[("app", "creds")]["data"] = v1alpha1_secret("AKID2", "other")
    assert handlers.project_secret(kube, kube.get_secret("app", "creds")) == "updated"  # type: ignore[arg-type]
    assert projection.decoded(kube.get_secret("app", "creds-s3")["data"])["AWS_ACCESS_KEY_ID"] == "AKID2"  # type: ignore[index]
    # the projection itself is never projected again
    assert handlers.project_secret(kube, kube.get_secret("app", "creds-s3")) == "ignored"  # type: ignore[arg-type]
    # removed with its source
    kube.delete_secret("app", "creds")
    kube.garbage_collect()
    assert kube.get_secret("app", "creds-s3") is None


def test_v1alpha2_flat_secret_projected() -> None:
    kube = FakeKube()
    src = kube.add_secret(
        "app",
        "c2",
        b64(
            {
                "COSI_S3_BUCKET_ID": "cosi-b-0123456789abcdef",
                "COSI_S3_ENDPOINT": "https://s3.local",
                "COSI_S3_REGION": "r1",
                "COSI_S3_ADDRESSING_STYLE": "path",
                "COSI_S3_ACCESS_KEY_ID": "K",
                "COSI_S3_ACCESS_SECRET_KEY": "S",
            }
        ),
    )
    assert handlers.project_secret(kube, src) == "created"
    flat = projection.decoded(kube.get_secret("app", "c2-s3")["data"])  # type: ignore[index]
    assert (flat["AWS_ACCESS_KEY_ID"], flat["AWS_SECRET_ACCESS_KEY"], flat["AWS_REGION"]) == ("K", "S", "r1")
    assert flat["bucketName"] == "cosi-b-0123456789abcdef" and flat["addressingStyle"] == "path"
    handlers.remove_projection(kube, src)
    assert kube.get_secret("app", "c2-s3") is None


def test_unrelated_and_broken_secrets() -> None:
    kube = FakeKube()
    assert handlers.project_secret(kube, kube.add_secret("a", "tls", b64({"tls.crt": "x"}))) == "ignored"
    assert (
        handlers.project_secret(kube, kube.add_secret("a", "bad", b64({"BucketInfo": "{not json"})))
        == "invalid"
    )
    assert kube.get_secret("a", "bad-s3") is None


def _claim(name: str, cls: str, ready: bool = False, created: str = "2020-01-01T00:00:00Z") -> dict[str, Any]:
    return {
        "apiVersion": "objectstorage.k8s.io/v1alpha1",
        "kind": "BucketClaim",
        "metadata": {"name": name, "namespace": "app", "uid": f"uid-{name}", "creationTimestamp": created},
        "spec": {"bucketClassName": cls, "protocols": ["S3"]},
        "status": {"bucketReady": ready},
    }


def test_claim_events_for_bad_class_and_not_ready_once() -> None:
    kube = FakeKube()
    kube.add_object(
        "v1alpha1",
        "bucketclasses",
        {
            "metadata": {"name": "bad"},
            "driverName": DRIVER,
            "deletionPolicy": "delete",
            "parameters": {"colour": "red"},
        },
    )
    kube.add_object(
        "v1alpha1",
        "bucketclasses",
        {"metadata": {"name": "other"}, "driverName": "x.example.com", "parameters": {"colour": "red"}},
    )
    rec = handlers.EventRecorder(kube)
    reasons = handlers.check_claim(kube, rec, _claim("c1", "bad"), DRIVER, grace_seconds=60)
    assert reasons == ["InvalidBucketClassParameters", "InvalidDeletionPolicy", "BucketNotReady"]
    assert "colour" in kube.events[0]["message"]
    assert (
        handlers.check_claim(kube, rec, _claim("c1", "bad"), DRIVER, grace_seconds=60) == []
    )  # not repeated
    # another driver's claims are none of our business
    assert handlers.check_claim(kube, rec, _claim("c2", "other"), DRIVER, grace_seconds=60) == []
    assert handlers.check_claim(kube, rec, _claim("c3", "missing"), DRIVER) == ["BucketClassNotFound"]
    assert handlers.check_claim(kube, rec, _claim("c4", "other", ready=True), DRIVER) == []


def test_access_events() -> None:
    kube = FakeKube()
    kube.add_object(
        "v1alpha1",
        "bucketaccessclasses",
        {
            "metadata": {"name": "iam"},
            "driverName": DRIVER,
            "authenticationType": "IAM",
            "parameters": {"accessMode": "sideways"},
        },
    )
    rec = handlers.EventRecorder(kube)
    access = {
        "apiVersion": "objectstorage.k8s.io/v1alpha1",
        "kind": "BucketAccess",
        "metadata": {
            "name": "a1",
            "namespace": "app",
            "uid": "u-a1",
            "creationTimestamp": "2020-01-01T00:00:00Z",
        },
        "spec": {"bucketAccessClassName": "iam", "bucketClaimName": "c1"},
        "status": {},
    }
    reasons = handlers.check_access(kube, rec, access, DRIVER, grace_seconds=60)
    assert reasons == [
        "UnsupportedAuthenticationType",
        "InvalidBucketAccessClassParameters",
        "AccessNotGranted",
    ]


def test_kubernetes_key_store_against_fake_core_api() -> None:
    pytest.importorskip("kubernetes")
    store = KubernetesKeyStore("cosi-system", FakeCoreV1Api())
    assert store.get("access", "cosi-ba-a-0123456789abcdef") is None
    store.put("access", "cosi-ba-a-0123456789abcdef", {"secret_key": "x"})
    store.put("access", "cosi-ba-a-0123456789abcdef", {"secret_key": "y"})  # 409 -> replace
    assert store.get("access", "cosi-ba-a-0123456789abcdef") == {"secret_key": "y"}
    assert store.names("access") == ["cosi-ba-a-0123456789abcdef"]
    store.delete("access", "cosi-ba-a-0123456789abcdef")
    store.delete("access", "cosi-ba-a-0123456789abcdef")  # 404 is fine
    assert store.names("access") == []


class _Listing:
    def __init__(self, items: list[Any]) -> None:
        self.items = items

    def iter(self) -> list[Any]:
        return self.items


def test_orphan_reconciler_reports_after_grace_and_deletes_by_policy() -> None:
    kube = FakeKube()
    live_user, dead_user = naming.user_name("ba-live"), naming.user_name("ba-dead")
    live_bucket, dead_bucket = naming.bucket_name("bucket-live"), naming.bucket_name("bucket-dead")
    kube.add_object(
        "v1alpha1",
        "bucketaccesses",
        {"metadata": {"name": "a", "namespace": "n"}, "status": {"accountID": live_user}},
    )
    kube.add_object(
        "v1alpha1", "buckets", {"metadata": {"name": "bucket-live"}, "status": {"bucketID": live_bucket}}
    )
    platform = SimpleNamespace(
        users=_Listing(
            [SimpleNamespace(name=n) for n in (live_user, dead_user, "admin", "cosi-bucket-owner")]
        ),
        views=_Listing([SimpleNamespace(bucket=b) for b in (live_bucket, dead_bucket, "someone-elses")]),
    )
    report_only = OrphanReconciler(kube, platform, policy="report", grace_seconds=100)
    assert report_only.run_once(now=1000).users == []  # first sighting: within grace
    report = report_only.run_once(now=1200)
    assert (report.users, report.buckets) == ([dead_user], [dead_bucket])
    assert report.removed_users == []

    calls: list[tuple[str, str]] = []
    verbatim = "bucket-0b5f0c1e-0000-4000-8000-000000000001"  # a v1alpha1 name the store knows
    platform.views.items.append(SimpleNamespace(bucket=verbatim))
    prov = SimpleNamespace(
        revoke=lambda n: calls.append(("revoke", n)),
        delete_bucket=lambda n, ctx: calls.append(("delete", n)),
        store=SimpleNamespace(names=lambda kind: [verbatim] if kind == "bucket" else []),
    )
    deleting = OrphanReconciler(kube, platform, provisioner=prov, policy="delete", grace_seconds=0)
    report = deleting.run_once(now=5)
    assert calls == [("revoke", dead_user), ("delete", verbatim), ("delete", dead_bucket)]
    assert report.removed_users == [dead_user] and report.removed_buckets == [verbatim, dead_bucket]
    with pytest.raises(ValueError):
        OrphanReconciler(kube, platform, policy="delete")


def test_kopf_wiring_calls_the_handlers_without_finalizers() -> None:
    """The kopf registry the operator runs: watch handlers only (a timer or daemon would put kopf
    finalizers on users' COSI objects), each calling the handlers above."""
    kopf = pytest.importorskip("kopf")
    from cosi_driver.operator import main as opmain

    kube = FakeKube()
    registry = kopf.OperatorRegistry()
    args = opmain.parser().parse_args(["--no-orphans", "--event-grace", "60"])
    opmain.register(registry, kube, args)
    assert registry._spawning.get_all_handlers() == []  # no timers/daemons -> no finalizers
    watching = {h.id: h for h in registry._watching.get_all_handlers()}
    assert {"watch-bucketclaims-v1alpha1", "watch-bucketaccesses-v1alpha1"} <= set(watching)
    src = kube.add_secret("app", "creds", v1alpha1_secret())
    [secret_handler] = [h for h in watching.values() if h.selector.any_name == "secrets"]
    secret_handler.fn(event={"type": "ADDED"}, body=src)
    assert kube.get_secret("app", "creds-s3") is not None
    secret_handler.fn(event={"type": "DELETED"}, body=src)
    assert kube.get_secret("app", "creds-s3") is None
    kube.add_object(
        "v1alpha1",
        "bucketclasses",
        {"metadata": {"name": "bad"}, "driverName": DRIVER, "parameters": {"colour": "red"}},
    )
    watching["watch-bucketclaims-v1alpha1"].fn(event={"type": "ADDED"}, body=_claim("c9", "bad"))
    assert [e["reason"] for e in kube.events] == ["InvalidBucketClassParameters", "BucketNotReady"]
    assert "uid-c9" in opmain.watched
    watching["watch-bucketclaims-v1alpha1"].fn(event={"type": "DELETED"}, body=_claim("c9", "bad"))
    assert "uid-c9" not in opmain.watched


def test_objects_being_deleted_get_no_events_and_failed_events_are_retried() -> None:
    kube = FakeKube()
    rec = handlers.EventRecorder(kube)
    going = _claim("c5", "missing")
    going["metadata"]["deletionTimestamp"] = "2020-01-01T00:00:00Z"
    assert handlers.check_claim(kube, rec, going, DRIVER) == []

    def refuse(*_: Any, **__: Any) -> None:
        raise RuntimeError("namespace is being terminated")

    kube.emit_event = refuse  # type: ignore[method-assign]
    assert handlers.check_claim(kube, rec, _claim("c6", "missing"), DRIVER) == []
    del kube.emit_event
    assert handlers.check_claim(kube, rec, _claim("c6", "missing"), DRIVER) == ["BucketClassNotFound"]
