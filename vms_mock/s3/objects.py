"""Receiving and copying object bytes: streaming, hashing, integrity checks, crash-safe files."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from vms_mock.s3.awschunked import AwsChunkedBody
from vms_mock.s3.blocks import BLOCKS, DIRECT_MIN
from vms_mock.s3.errors import S3Error
from vms_mock.s3.http import Body, Request
from vms_mock.s3.sigv4 import (
    STREAMING_MODES,
    STREAMING_SIGNED_TRAILER,
    AuthResult,
)
from vms_mock.s3.store import INLINE_MAX, BucketStore, ObjectWriter

log = logging.getLogger(__name__)

INLINE_LIMIT = DIRECT_MIN   # bodies below this size are hashed on the loop thread, written in one go
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




async def _receive_blocks(body: Body, writer: ObjectWriter, pool: ThreadPoolExecutor, limit: int) -> None:
    """Large bodies: block k is hashed (MD5 on one worker; SHA-256, the checksum and the file
    write on another - hashlib, zlib-ng and os.write release the GIL) while block k+1 arrives
    straight from the socket into the other block."""
    loop = asyncio.get_running_loop()
    blocks = [BLOCKS.get(), BLOCKS.get()]
    pending: list[asyncio.Future[None]] = []
    try:
        turn = 0
        while True:
            view = memoryview(blocks[turn])
            n = await body.readinto(view)
            for fut in pending:
                await fut
            pending = []
            if n == 0:
                break
            if writer.size + n > limit:
                raise S3Error("EntityTooLarge", MaxSizeAllowed=str(limit))
            pending = [loop.run_in_executor(pool, writer.feed_md5, [view[:n]]),
                       loop.run_in_executor(pool, writer.feed_block, view[:n])]
            turn ^= 1
    finally:
        for fut in pending:
            with contextlib.suppress(BaseException):
                await fut
        for block in blocks:
            BLOCKS.put(block)


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
                  limit: int = MAX_OBJECT, inline: bool = False) -> tuple[ObjectWriter, dict[str, str]]:
    """Stream the payload into a finished (fsynced, unpublished) temp file of ``store``.

    With ``inline``, a payload of at most INLINE_MAX bytes is kept in memory instead
    (``writer.inline_data``; it goes into the index row). Returns the writer (size, md5, data id)
    and response headers to echo (checksums). On any error the temp file is removed and nothing
    else has changed.
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
    try:
        if length is not None and length < INLINE_LIMIT:
            # Small body: hashed on the loop thread, written by finish() in one go.
            while data := await body.read(INLINE_LIMIT):
                if writer.size + len(data) > limit:
                    raise S3Error("EntityTooLarge", MaxSizeAllowed=str(limit))
                writer.feed_md5([data])
                writer.feed_rest([data], hold=True)
        else:
            await _receive_blocks(body, writer, pool, limit)
        if length is not None and writer.size != length:
            raise S3Error("IncompleteBody")
        _verify(writer, auth, content_md5, algorithm, expected_checksum, in_trailer, body)
        if inline and writer.size <= INLINE_MAX and writer.take_inline():
            pass
        else:
            await loop.run_in_executor(pool, writer.finish, True)
    except BaseException:
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


def prepare_next(store: BucketStore, pool: ThreadPoolExecutor) -> None:
    """After an upload is committed: make its bucket's next temp file on a worker.

    Not earlier: file creation contends with the commit's own writes (same file system
    journal; the commit took 4x longer when the two overlapped)."""
    pool.submit(_refill, store)


def _refill(store: BucketStore) -> None:
    try:
        store.refill_spares()
    except Exception:  # a full disk shows up on the next upload, with its own error
        log.warning("could not prepare temp files", exc_info=True)


def copy_into(writer: ObjectWriter, sources: Sequence[tuple[str | bytes, int, int]]) -> None:
    """(Worker thread) append byte ranges of files (or of inline object bytes) to the writer's
    temp file, then fsync.

    MD5 is recomputed only when the caller needs it; copy_file_range keeps the copy in the kernel.
    """
    writer.open()
    fd_out = writer._fd
    for path, offset, count in sources:
        if isinstance(path, bytes):
            writer.write_bytes(memoryview(path)[offset:offset + count])
            continue
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
