"""Receiving and copying object bytes: streaming, hashing, integrity checks, crash-safe files."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import os
from collections.abc import AsyncGenerator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from vms_mock.s3.awschunked import AwsChunkedBody
from vms_mock.s3.errors import S3Error
from vms_mock.s3.http import Body, Request
from vms_mock.s3.sigv4 import (
    STREAMING_MODES,
    STREAMING_SIGNED_TRAILER,
    AuthResult,
)
from vms_mock.s3.store import BucketStore, ObjectWriter

READ_SIZE = 2 << 20          # body block handed to the workers (smaller: shorter tail after the last byte)
INLINE_LIMIT = 256 * 1024   # bodies up to this size are hashed and written on the loop thread
MAX_OBJECT = 5 << 30         # single PUT / part limit (as S3)
COPY_CHUNK = 8 << 20

CHECKSUM_HEADERS = {f"x-amz-checksum-{a}": a for a in ("crc32", "crc32c", "sha1", "sha256", "crc64nvme")}


def declared_length(req: Request) -> int | None:
    decoded = req.headers.get("x-amz-decoded-content-length")
    if decoded is not None:
        if not decoded.isdigit():
            raise S3Error("InvalidArgument", "x-amz-decoded-content-length is not a number",
                          ArgumentName="x-amz-decoded-content-length")
        return int(decoded)
    if "content-length" in req.headers and "aws-chunked" not in req.headers.get("content-encoding", ""):
        return int(req.headers["content-length"] or 0)
    if req.headers.get("x-amz-content-sha256", "") in STREAMING_MODES:
        raise S3Error("MissingContentLength")
    if "transfer-encoding" not in req.headers:
        raise S3Error("MissingContentLength")  # neither a length nor chunked framing
    return req.body.remaining


def payload_body(req: Request, auth: AuthResult) -> Body:
    """The request body with any aws-chunked framing (and its chunk signatures) removed."""
    mode = auth.payload_mode
    if mode in STREAMING_MODES or "aws-chunked" in req.headers.get("content-encoding", ""):
        decoded = req.headers.get("x-amz-decoded-content-length")
        return AwsChunkedBody(req.body, auth.chunk_signer,
                              int(decoded) if decoded and decoded.isdigit() else None,
                              trailer_signed=mode == STREAMING_SIGNED_TRAILER)
    return req.body


async def _blocks(body: Body) -> AsyncGenerator[list[Any], None]:
    """The payload as blocks of about READ_SIZE bytes (lists of the pieces the socket gave)."""
    while block := await _read_block(body, READ_SIZE):
        yield block


async def _read_block(body: Body, size: int) -> list[bytes]:
    """About ``size`` bytes as the chunks the socket delivered (no joining copy); [] at the end."""
    block: list[bytes] = []
    got = 0
    while got < size:
        data = await body.read(size - got)
        if not data:
            break
        block.append(data)
        got += len(data)
    return block


def _checksum_request(req: Request) -> tuple[str | None, str | None, bool]:
    """(algorithm, expected base64 value or None, value comes in the trailer)."""
    for header, algorithm in CHECKSUM_HEADERS.items():
        if header in req.headers:
            return algorithm, req.headers[header], False
    trailer = req.headers.get("x-amz-trailer", "").strip().lower()
    if trailer in CHECKSUM_HEADERS:
        return CHECKSUM_HEADERS[trailer], None, True
    return None, None, False


async def receive(req: Request, auth: AuthResult, store: BucketStore, pool: ThreadPoolExecutor,
                  limit: int = MAX_OBJECT) -> tuple[ObjectWriter, dict[str, str]]:
    """Stream the payload into a finished (fsynced, unpublished) temp file of ``store``.

    Returns the writer (size, md5, data id) and response headers to echo (checksums). On any
    error the temp file is removed and nothing else has changed.
    """
    length = declared_length(req)
    if length is not None and length > limit:
        raise S3Error("EntityTooLarge", ProposedSize=str(length), MaxSizeAllowed=str(limit))
    content_md5 = req.headers.get("content-md5")
    if content_md5 is not None:
        try:
            expected_md5 = base64.b64decode(content_md5, validate=True)
        except (binascii.Error, ValueError):
            raise S3Error("InvalidDigest", **{"Content-MD5": content_md5}) from None
        if len(expected_md5) != 16:
            raise S3Error("InvalidDigest")
    algorithm, expected_checksum, in_trailer = _checksum_request(req)
    body = payload_body(req, auth)
    writer = ObjectWriter(store, auth.payload_sha256 is not None, algorithm)
    loop = asyncio.get_running_loop()
    pending: list[asyncio.Future[None]] = []
    try:
        received = 0
        blocks = _blocks(body)
        async with contextlib.aclosing(blocks):
            async for block in blocks:
                size = sum(map(len, block))
                received += size
                if received > limit:
                    raise S3Error("EntityTooLarge", MaxSizeAllowed=str(limit))
                for fut in pending:
                    await fut
                pending = []
                if received < INLINE_LIMIT:
                    writer.feed_md5(block)
                    writer.feed_rest(block, hold=True)
                else:
                    # Workers hash and write this block while the loop receives the next one
                    # (hashlib and os.write release the GIL); MD5 runs beside SHA-256 + write.
                    pending = [loop.run_in_executor(pool, writer.feed_md5, block),
                               loop.run_in_executor(pool, writer.feed_rest, block)]
        for fut in pending:
            await fut
        pending = []
        if length is not None and writer.size != length:
            raise S3Error("IncompleteBody")
        _verify(writer, auth, content_md5, algorithm, expected_checksum, in_trailer, body)
        await loop.run_in_executor(pool, writer.finish, True)
    except BaseException:
        for fut in pending:
            with contextlib.suppress(BaseException):
                await fut
        writer.discard()
        raise
    echo = {}
    if algorithm and writer.checksum is not None:
        echo[f"x-amz-checksum-{algorithm}"] = base64.b64encode(writer.checksum.digest()).decode()
    return writer, echo


def _verify(writer: ObjectWriter, auth: AuthResult, content_md5: str | None, algorithm: str | None,
            expected: str | None, in_trailer: bool, body: Body) -> None:
    if auth.payload_sha256 is not None:
        assert writer.sha256 is not None
        if writer.sha256.hexdigest() != auth.payload_sha256:
            raise S3Error("XAmzContentSHA256Mismatch", ClientComputedContentSHA256=auth.payload_sha256,
                          S3ComputedContentSHA256=writer.sha256.hexdigest())
    if content_md5 is not None and base64.b64encode(writer.md5.digest()).decode() != content_md5:
        raise S3Error("BadDigest", ExpectedDigest=content_md5)
    if in_trailer and algorithm is not None:
        expected = body.trailers.get(f"x-amz-checksum-{algorithm}")
        if expected is None:
            raise S3Error("InvalidRequest", f"The trailer x-amz-checksum-{algorithm} is missing")
    if expected is not None and writer.checksum is not None:
        actual = base64.b64encode(writer.checksum.digest()).decode()
        if actual != expected:
            raise S3Error("BadDigest", f"The {algorithm.upper() if algorithm else ''} you specified "
                          "did not match the calculated checksum.")


def copy_into(writer: ObjectWriter, sources: list[tuple[str, int, int]]) -> None:
    """(Worker thread) append byte ranges of files to the writer's temp file, then fsync.

    MD5 is recomputed only when the caller needs it; copy_file_range keeps the copy in the kernel.
    """
    writer.open()
    fd_out = writer._fd
    for path, offset, count in sources:
        fd_in = os.open(path, os.O_RDONLY)
        try:
            off = offset
            left = count
            while left > 0:
                n = os.copy_file_range(fd_in, fd_out, min(left, COPY_CHUNK), off)
                if n == 0:
                    raise S3Error("InternalError", "source data ended early")
                off += n
                left -= n
        finally:
            os.close(fd_in)
        writer.size += count
    writer.finish()


def md5_of_range(path: str, offset: int, count: int) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        f.seek(offset)
        left = count
        while left > 0:
            data = f.read(min(left, COPY_CHUNK))
            if not data:
                break
            h.update(data)
            left -= len(data)
    return h.hexdigest()
