"""AWS Signature Version 4 verification for S3 requests.

Covers the Authorization header form, presigned URLs (query form), and the payload modes S3
accepts: a hex SHA-256 of the body, ``UNSIGNED-PAYLOAD`` and the ``STREAMING-*`` aws-chunked
modes (whose per-chunk signatures are checked by :class:`ChunkSigner`).

Secrets are looked up through the directory on every request; only the derived signing key is
memoised, keyed by the secret itself, so a revoked or rotated key can never be served from it.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import re
import time
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote, unquote

from vms_mock.s3.directory import AccessKeyRecord, S3Directory
from vms_mock.s3.errors import S3Error

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
MAX_SKEW_SECONDS = 15 * 60
MAX_PRESIGN_EXPIRES = 7 * 24 * 3600

UNSIGNED = "UNSIGNED-PAYLOAD"
STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
STREAMING_MODES = {STREAMING_SIGNED, STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER}

_CRED_RE = re.compile(r"^([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class AuthResult:
    principal: AccessKeyRecord
    # Hex SHA-256 the body must have, or None when the payload is not signed as a whole.
    payload_sha256: str | None
    payload_mode: str  # a hex digest, UNSIGNED-PAYLOAD or one of STREAMING_MODES
    chunk_signer: ChunkSigner | None = None


def _uri_encode(text: str, safe: str = "-_.~") -> str:
    return quote(text, safe=safe)


def canonical_query(raw_query: str, drop_signature: bool) -> str:
    pairs: list[tuple[str, str]] = []
    if raw_query:
        for part in raw_query.split("&"):
            if not part:
                continue
            k, _, v = part.partition("=")
            k = unquote(k.replace("+", " "))
            if drop_signature and k == "X-Amz-Signature":
                continue
            pairs.append((_uri_encode(k), _uri_encode(unquote(v.replace("+", " ")))))
    pairs.sort()
    return "&".join(f"{k}={v}" for k, v in pairs)


def canonical_uri(raw_path: str) -> str:
    # S3 signs the path URI-encoded once (no double encoding, no dot-segment normalisation).
    return _uri_encode(unquote(raw_path), safe="/-_.~") or "/"


def _canonical_headers(headers: dict[str, str], signed: list[str]) -> str:
    out = []
    for name in signed:
        value = headers.get(name)
        if value is None:
            raise S3Error("SignatureDoesNotMatch", f"Signed header {name!r} is missing")
        out.append(f"{name}:{' '.join(value.split())}\n")
    return "".join(out)


@lru_cache(maxsize=256)
def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    k = hmac.new(("AWS4" + secret).encode(), date.encode(), hashlib.sha256).digest()
    k = hmac.new(k, region.encode(), hashlib.sha256).digest()
    k = hmac.new(k, service.encode(), hashlib.sha256).digest()
    return hmac.new(k, b"aws4_request", hashlib.sha256).digest()


def _hmac_hex(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def parse_amz_date(value: str) -> float:
    """Seconds since the epoch of an ISO-8601 basic timestamp (``20260102T030405Z``)."""
    if len(value) == 16 and value[8] == "T" and value[15] == "Z" and value[:8].isdigit() \
            and value[9:15].isdigit():
        fields = (int(value[0:4]), int(value[4:6]), int(value[6:8]), int(value[9:11]),
                  int(value[11:13]), int(value[13:15]))
        if 1 <= fields[1] <= 12 and 1 <= fields[2] <= 31 and fields[3] < 24 and fields[4] < 60 \
                and fields[5] < 61:
            return float(calendar.timegm((*fields, 0, 0, 0)))
    raise S3Error("AccessDenied", "AWS authentication requires a valid Date or x-amz-date header")


class ChunkSigner:
    """Checks the signature chain of a ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD*`` body."""

    def __init__(self, key: bytes, amz_date: str, scope: str, seed_signature: str) -> None:
        self._key = key
        self._prefix = f"AWS4-HMAC-SHA256-PAYLOAD\n{amz_date}\n{scope}\n"
        self._trailer_prefix = f"AWS4-HMAC-SHA256-TRAILER\n{amz_date}\n{scope}\n"
        self.previous = seed_signature

    def verify_chunk(self, chunk_sha256_hex: str, signature: str) -> None:
        sts = f"{self._prefix}{self.previous}\n{EMPTY_SHA256}\n{chunk_sha256_hex}"
        expected = _hmac_hex(self._key, sts)
        if not hmac.compare_digest(expected, signature):
            raise S3Error("SignatureDoesNotMatch", "The chunk signature does not match")
        self.previous = expected

    def verify_trailer(self, trailer_text: str, signature: str) -> None:
        digest = hashlib.sha256(trailer_text.encode()).hexdigest()
        expected = _hmac_hex(self._key, f"{self._trailer_prefix}{self.previous}\n{digest}")
        if not hmac.compare_digest(expected, signature):
            raise S3Error("SignatureDoesNotMatch", "The trailer signature does not match")


def _principal(directory: S3Directory, access_key: str) -> AccessKeyRecord:
    record = directory.lookup_access_key(access_key)
    if record is None or not record.enabled:
        raise S3Error("InvalidAccessKeyId", AWSAccessKeyId=access_key)
    return record


def verify_request(method: str, raw_path: str, raw_query: str, headers: dict[str, str],
                   query: dict[str, str], directory: S3Directory,
                   now: float | None = None) -> AuthResult | None:
    """Verify the request's SigV4 signature; None for an anonymous request."""
    now = time.time() if now is None else now
    auth = headers.get("authorization")
    if auth is not None:
        return _verify_header(method, raw_path, raw_query, headers, auth, directory, now)
    if "X-Amz-Signature" in query or "X-Amz-Credential" in query:
        return _verify_presigned(method, raw_path, raw_query, headers, query, directory, now)
    return None


def _split_credential(credential: str, malformed_code: str) -> tuple[str, str, str, str]:
    m = _CRED_RE.match(credential)
    if not m:
        raise S3Error(malformed_code, "The credential is malformed; expecting "
                      "\"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\".")
    access_key, date, region, service = m.groups()
    if service != "s3":
        raise S3Error(malformed_code, f"The credential scope names service {service!r}, not 's3'")
    return access_key, date, region, service


def _verify_header(method: str, raw_path: str, raw_query: str, headers: dict[str, str], auth: str,
                   directory: S3Directory, now: float) -> AuthResult:
    if not auth.startswith(ALGORITHM + " "):
        if auth.startswith("AWS "):
            raise S3Error("InvalidRequest", "Signature Version 2 is not supported; use AWS4-HMAC-SHA256")
        raise S3Error("AuthorizationHeaderMalformed", "Unsupported authorization type")
    parts: dict[str, str] = {}
    for item in auth[len(ALGORITHM) + 1:].split(","):
        k, _, v = item.strip().partition("=")
        parts[k] = v
    try:
        credential, signed_names, signature = (parts["Credential"], parts["SignedHeaders"],
                                               parts["Signature"])
    except KeyError as exc:
        raise S3Error("AuthorizationHeaderMalformed",
                      f"The authorization header is missing {exc.args[0]}") from None
    access_key, date, region, service = _split_credential(credential, "AuthorizationHeaderMalformed")
    record = _principal(directory, access_key)
    amz_date = headers.get("x-amz-date")
    if amz_date is None:
        raise S3Error("AccessDenied", "AWS authentication requires a valid Date or x-amz-date header")
    t = parse_amz_date(amz_date)
    if abs(now - t) > MAX_SKEW_SECONDS:
        err = S3Error("RequestTimeTooSkewed", RequestTime=amz_date,
                      ServerTime=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
                      MaxAllowedSkewMilliseconds=str(MAX_SKEW_SECONDS * 1000))
        raise err
    if amz_date[:8] != date:
        raise S3Error("SignatureDoesNotMatch", "The credential date does not match x-amz-date")
    payload = headers.get("x-amz-content-sha256")
    if payload is None:
        raise S3Error("InvalidRequest", "Missing required header for this request: "
                      "x-amz-content-sha256")
    if payload != UNSIGNED and payload not in STREAMING_MODES and not _HEX64.match(payload):
        raise S3Error("InvalidArgument", "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, "
                      "STREAMING-AWS4-HMAC-SHA256-PAYLOAD, or a valid sha256 value.",
                      ArgumentName="x-amz-content-sha256", ArgumentValue=payload)
    signed = signed_names.split(";")
    if "host" not in signed:
        raise S3Error("AuthorizationHeaderMalformed", "SignedHeaders must include host")
    scope = f"{date}/{region}/{service}/aws4_request"
    canonical = "\n".join((method, canonical_uri(raw_path), canonical_query(raw_query, False),
                           _canonical_headers(headers, signed), signed_names, payload))
    sts = f"{ALGORITHM}\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    key = signing_key(record.secret_key, date, region, service)
    expected = _hmac_hex(key, sts)
    if not hmac.compare_digest(expected, signature):
        raise S3Error("SignatureDoesNotMatch", AWSAccessKeyId=access_key, StringToSign=sts,
                      CanonicalRequest=canonical)
    chunk_signer = None
    if payload in (STREAMING_SIGNED, STREAMING_SIGNED_TRAILER):
        chunk_signer = ChunkSigner(key, amz_date, scope, expected)
    return AuthResult(record, payload if _HEX64.match(payload) else None, payload, chunk_signer)


def _verify_presigned(method: str, raw_path: str, raw_query: str, headers: dict[str, str],
                      query: dict[str, str], directory: S3Directory, now: float) -> AuthResult:
    for name in ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
                 "X-Amz-SignedHeaders", "X-Amz-Signature"):
        if name not in query:
            raise S3Error("AuthorizationQueryParametersError",
                          f"Query-string authentication requires the {name} parameter")
    if query["X-Amz-Algorithm"] != ALGORITHM:
        raise S3Error("AuthorizationQueryParametersError",
                      "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"")
    access_key, date, region, service = _split_credential(query["X-Amz-Credential"],
                                                          "AuthorizationQueryParametersError")
    record = _principal(directory, access_key)
    amz_date = query["X-Amz-Date"]
    t = parse_amz_date(amz_date)
    try:
        expires = int(query["X-Amz-Expires"])
    except ValueError:
        raise S3Error("AuthorizationQueryParametersError",
                      "X-Amz-Expires should be a number") from None
    if expires < 0 or expires > MAX_PRESIGN_EXPIRES:
        raise S3Error("AuthorizationQueryParametersError",
                      "X-Amz-Expires must be less than a week (in seconds) that is 604800")
    if t - now > MAX_SKEW_SECONDS:
        raise S3Error("RequestTimeTooSkewed")
    if now > t + expires:
        raise S3Error("AccessDenied", "Request has expired", **{"X-Amz-Expires": str(expires)})
    signed_names = query["X-Amz-SignedHeaders"]
    signed = signed_names.split(";")
    payload = headers.get("x-amz-content-sha256", UNSIGNED)
    scope = f"{date}/{region}/{service}/aws4_request"
    canonical = "\n".join((method, canonical_uri(raw_path), canonical_query(raw_query, True),
                           _canonical_headers(headers, signed), signed_names, payload))
    sts = f"{ALGORITHM}\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    key = signing_key(record.secret_key, date, region, service)
    expected = _hmac_hex(key, sts)
    if not hmac.compare_digest(expected, query["X-Amz-Signature"]):
        raise S3Error("SignatureDoesNotMatch", AWSAccessKeyId=access_key, StringToSign=sts,
                      CanonicalRequest=canonical)
    return AuthResult(record, payload if _HEX64.match(payload) else None, payload)
