"""S3 errors: one exception type, and the ONE table mapping error codes to HTTP statuses.

Every failure inside the S3 endpoint is raised as :class:`S3Error`; the HTTP layer renders it as
the XML document a real S3 server sends (``<Error><Code>...``), so clients (boto3, aws cli, SDKs)
raise the same exceptions they would against AWS.
"""

from __future__ import annotations

import re
from xml.sax.saxutils import escape as _escape

_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def escape(value: str) -> str:
    """XML-escape, percent-encoding the characters XML 1.0 cannot carry (a NUL in a key)."""
    return _escape(_NOT_XML.sub(lambda m: f"%{ord(m.group()):02X}", value))

# code -> (HTTP status, default message). Messages follow AWS wording where AWS has one.
_CODES: dict[str, tuple[int, str]] = {
    "AccessDenied": (403, "Access Denied"),
    "AuthorizationHeaderMalformed": (400, "The authorization header is malformed."),
    "AuthorizationQueryParametersError": (400, "Query-string authentication is malformed."),
    "BadDigest": (400, "The Content-MD5 or checksum you specified did not match what we received."),
    "BucketAlreadyExists": (409, "The requested bucket name is not available."),
    "BucketAlreadyOwnedByYou": (409, "Your previous request to create the named bucket succeeded "
                                     "and you already own it."),
    "BucketNotEmpty": (409, "The bucket you tried to delete is not empty"),
    "EntityTooLarge": (400, "Your proposed upload exceeds the maximum allowed size"),
    "EntityTooSmall": (400, "Your proposed upload is smaller than the minimum allowed object size."),
    "IncompleteBody": (400, "You did not provide the number of bytes specified by the "
                            "Content-Length HTTP header."),
    "InsufficientCapacity": (507, "The storage system has no free capacity for this request."),
    "InternalError": (500, "We encountered an internal error. Please try again."),
    "InvalidAccessKeyId": (403, "The AWS Access Key Id you provided does not exist in our records."),
    "InvalidArgument": (400, "Invalid Argument"),
    "InvalidBucketName": (400, "The specified bucket is not valid."),
    "InvalidBucketState": (409, "The request is not valid with the current state of the bucket."),
    "InvalidDigest": (400, "The Content-MD5 you specified is not valid."),
    "InvalidPart": (400, "One or more of the specified parts could not be found. The part may not "
                         "have been uploaded, or the specified entity tag may not match the part's "
                         "entity tag."),
    "InvalidPartOrder": (400, "The list of parts was not in ascending order. Parts must be ordered "
                              "by part number."),
    "InvalidPartNumber": (416, "The requested partnumber is not satisfiable"),
    "InvalidRange": (416, "The requested range is not satisfiable"),
    "InvalidRequest": (400, "Invalid Request"),
    "InvalidTag": (400, "The tag provided was not a valid tag."),
    "KeyTooLongError": (400, "Your key is too long"),
    "MalformedXML": (400, "The XML you provided was not well-formed or did not validate against "
                          "our published schema"),
    "MetadataTooLarge": (400, "Your metadata headers exceed the maximum allowed metadata size."),
    "MethodNotAllowed": (405, "The specified method is not allowed against this resource."),
    "MissingContentLength": (411, "You must provide the Content-Length HTTP header."),
    "NoSuchBucket": (404, "The specified bucket does not exist"),
    "NoSuchKey": (404, "The specified key does not exist."),
    "NoSuchUpload": (404, "The specified upload does not exist. The upload ID may be invalid, or "
                          "the upload may have been aborted or completed."),
    "NoSuchVersion": (404, "The specified version does not exist."),
    "NoSuchObjectLockConfiguration": (404, "The specified object does not have a ObjectLock "
                                           "configuration"),
    "NotImplemented": (501, "A header you provided implies functionality that is not implemented"),
    "ObjectLockConfigurationNotFoundError": (404, "Object Lock configuration does not exist for "
                                                  "this bucket"),
    "PreconditionFailed": (412, "At least one of the pre-conditions you specified did not hold"),
    "QuotaExceeded": (403, "The quota of the bucket's path has been exceeded."),
    "RequestHeaderSectionTooLarge": (400, "Your request header section exceeds the maximum "
                                          "allowed size."),
    "RequestTimeTooSkewed": (403, "The difference between the request time and the current time "
                                  "is too large."),
    "RequestTimeout": (400, "Your socket connection to the server was not read from or written to "
                            "within the timeout period."),
    "SignatureDoesNotMatch": (403, "The request signature we calculated does not match the "
                                   "signature you provided. Check your key and signing method."),
    "XAmzContentSHA256Mismatch": (400, "The provided 'x-amz-content-sha256' header does not match "
                                       "what was computed."),
    "NotModified": (304, ""),
}


class S3Error(Exception):
    """An S3 protocol error; ``code`` is the S3 error code (it picks the HTTP status)."""

    def __init__(self, code: str, message: str | None = None, **fields: str) -> None:
        status, default = _CODES.get(code, (500, code))
        self.code = code
        self.status = status
        self.message = message or default
        # Extra elements AWS adds to some errors (BucketName, Key, ArgumentName, ...).
        self.fields = fields
        self.headers: dict[str, str] = {}
        super().__init__(f"{code}: {self.message}")

    def to_xml(self, resource: str, request_id: str) -> bytes:
        extra = "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in self.fields.items())
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{self.code}</Code><Message>{escape(self.message)}</Message>{extra}"
            f"<Resource>{escape(resource)}</Resource><RequestId>{request_id}</RequestId>"
            f"<HostId>{request_id}</HostId></Error>"
        ).encode()
