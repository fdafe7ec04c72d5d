"""Turn the credentials Secret a COSI sidecar writes into the flat keys applications expect.

v1alpha1 sidecars write ONE key, ``BucketInfo``, holding a JSON document; v1alpha2 sidecars write
flat ``COSI_S3_*`` keys. Applications (and the AWS SDKs) want ``AWS_ACCESS_KEY_ID`` & co. The
projection is a separate Secret named ``<source>-s3``, owned by the source Secret (ownerReference)
so Kubernetes deletes it with its source.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

SUFFIX = "-s3"
MANAGED_BY = "cosi.vastdata.com-operator"
LABEL_SOURCE = "cosi.vastdata.com/projected-from"
V2_KEYS = ("COSI_S3_ACCESS_KEY_ID", "COSI_S3_ACCESS_SECRET_KEY")


class NotCredentials(ValueError):
    """The Secret is not a COSI credentials Secret (or not an S3 one)."""


def decoded(data: Mapping[str, str] | None) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in (data or {}).items()}


def is_source(data: Mapping[str, Any] | None, labels: Mapping[str, str] | None = None) -> bool:
    if (labels or {}).get("app.kubernetes.io/managed-by") == MANAGED_BY:
        return False
    keys = set(data or {})
    return "BucketInfo" in keys or all(k in keys for k in V2_KEYS)


def flat_credentials(values: Mapping[str, str]) -> dict[str, str]:
    """Flat keys from a decoded v1alpha1 or v1alpha2 credentials Secret."""
    if "BucketInfo" in values:
        try:
            info = json.loads(values["BucketInfo"])
            spec = info["spec"]
            s3 = spec.get("secretS3") or {}
        except (ValueError, KeyError, TypeError, AttributeError):
            raise NotCredentials("BucketInfo is not the JSON a COSI v1alpha1 sidecar writes") from None
        if not s3:
            raise NotCredentials("BucketInfo carries no S3 credentials")
        key_id, secret = s3.get("accessKeyID", ""), s3.get("accessSecretKey", "")
        endpoint, region = s3.get("endpoint", ""), s3.get("region", "")
        bucket = spec.get("bucketName", "")
        style = ""
    elif all(k in values for k in V2_KEYS):
        key_id, secret = values["COSI_S3_ACCESS_KEY_ID"], values["COSI_S3_ACCESS_SECRET_KEY"]
        endpoint, region = values.get("COSI_S3_ENDPOINT", ""), values.get("COSI_S3_REGION", "")
        bucket = values.get("COSI_S3_BUCKET_ID", "")
        style = values.get("COSI_S3_ADDRESSING_STYLE", "")
    else:
        raise NotCredentials("neither BucketInfo nor COSI_S3_* keys")
    if not key_id or not secret:
        raise NotCredentials("the credentials Secret has an empty key id or secret")
    flat = {
        "accessKeyID": key_id,
        "secretAccessKey": secret,
        "endpoint": endpoint,
        "region": region,
        "bucketName": bucket,
        "AWS_ACCESS_KEY_ID": key_id,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "BUCKET_NAME": bucket,
        "BUCKET_HOST": _host(endpoint),
    }
    if style:
        flat["addressingStyle"] = style
    return flat


def _host(endpoint: str) -> str:
    return endpoint.split("://", 1)[-1].split("/", 1)[0]


def projected_secret(source: Mapping[str, Any], flat: Mapping[str, str]) -> dict[str, Any]:
    """The projected Secret (a plain manifest dict) for a source Secret object (dict form)."""
    meta = source["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": meta["name"] + SUFFIX,
            "namespace": meta["namespace"],
            "labels": {"app.kubernetes.io/managed-by": MANAGED_BY, LABEL_SOURCE: meta["name"]},
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": False,
                }
            ],
        },
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in sorted(flat.items())},
    }
