"""Is a bucket empty? Asked over S3, because the management API cannot tell.

Deleting the view of a bucket that still holds objects would strand (or, with a later folder
delete, destroy) user data, so before a non-forced delete the driver lists at most one key with a
short-lived key pair of the bucket owner, minted for this one request and deleted right after.
Signed with AWS SigV4 (path-style), no SDK needed at runtime.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import threading
from urllib.parse import quote, urlsplit

import requests

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class ProbeDenied(RuntimeError):
    """The key was refused (unknown key id or no permission)."""


def _sign(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def signed_get(
    endpoint: str,
    bucket: str,
    query: dict[str, str],
    access_key: str,
    secret_key: str,
    region: str,
    now: dt.datetime | None = None,
) -> tuple[str, dict[str, str]]:
    """URL and headers of a SigV4-signed path-style GET on ``bucket``."""
    parts = urlsplit(endpoint)
    host = parts.netloc
    now = now or dt.datetime.now(dt.UTC)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    path = f"{parts.path.rstrip('/')}/{quote(bucket, safe='')}"
    canonical_query = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(query.items())
    )
    headers = {"host": host, "x-amz-content-sha256": EMPTY_SHA256, "x-amz-date": amz_date}
    signed = ";".join(sorted(headers))
    canonical = "\n".join(
        [
            "GET",
            path,
            canonical_query,
            "".join(f"{k}:{headers[k]}\n" for k in sorted(headers)),
            signed,
            EMPTY_SHA256,
        ]
    )
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _sign(_sign(_sign(_sign(f"AWS4{secret_key}".encode(), day), region), "s3"), "aws4_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    out = {k: v for k, v in headers.items() if k != "host"}
    out["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={signed}, Signature={signature}"
    )
    return f"{parts.scheme}://{host}{path}?{canonical_query}", out


_local = threading.local()


def _session() -> requests.Session:
    """One keep-alive session per thread (a fresh TCP connection per probe costs more than the probe)."""
    session = getattr(_local, "session", None)
    if session is None:
        session = _local.session = requests.Session()
    return session


def bucket_has_objects(
    endpoint: str,
    bucket: str,
    access_key: str,
    secret_key: str,
    region: str,
    verify: bool | str = True,
    timeout: float = 10.0,
) -> bool:
    url, headers = signed_get(
        endpoint, bucket, {"list-type": "2", "max-keys": "1"}, access_key, secret_key, region
    )
    resp = _session().get(url, headers=headers, timeout=timeout, verify=verify)
    if resp.status_code == 404:
        return False
    if resp.status_code == 403:
        raise ProbeDenied(f"S3 refused the listing of {bucket}")
    if resp.status_code != 200:
        raise RuntimeError(f"S3 list of {bucket} answered {resp.status_code}")
    count = re.search(r"<KeyCount>(\d+)</KeyCount>", resp.text)
    if count is not None:
        return int(count.group(1)) > 0
    return "<Contents>" in resp.text
