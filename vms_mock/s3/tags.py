"""Object tags: validation (AWS limits) and the ``x-amz-tagging`` request header."""

from __future__ import annotations

from urllib.parse import parse_qsl

from vms_mock.s3.errors import S3Error

MAX_TAGS = 10
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 256


def check_tags(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Validated tags, in the order given."""
    if len(pairs) > MAX_TAGS:
        raise S3Error("InvalidTag", "Object tags cannot be greater than 10")
    tags: dict[str, str] = {}
    for key, value in pairs:
        if not key or len(key) > MAX_TAG_KEY:
            raise S3Error("InvalidTag", "The TagKey you have provided is invalid")
        if len(value) > MAX_TAG_VALUE:
            raise S3Error("InvalidTag", "The TagValue you have provided is invalid")
        if key in tags:
            raise S3Error("InvalidTag", "Cannot provide multiple Tags with the same key")
        tags[key] = value
    return tags


def tags_from_header(value: str | None) -> dict[str, str]:
    """The ``x-amz-tagging`` header of PutObject / CreateMultipartUpload (URL query encoding)."""
    if not value:
        return {}
    try:
        pairs = parse_qsl(value, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise S3Error("InvalidArgument", "The header 'x-amz-tagging' shall be encoded as UTF-8 "
                      "then URLEncoded URL query parameters without tag name duplicates.",
                      ArgumentName="x-amz-tagging") from None
    return check_tags(pairs)
