"""Receiving and copying object bytes: streaming, hashing, integrity checks, crash-safe files."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import errno
import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from vms_mock.s3.awschunked import AwsChunkedBody
from vms_mock.s3.blocks import BLOCKS, DIRECT_MIN, Block
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




# Blocks (16 MiB) an upload may hold waiting for or being hashed/written. Deep, so the loop
# always has a block to receive into: MD5 is the slowest stage, and bytes that arrive while the
# loop waits for it are buffered and copied again (depth 3 cost 10 % more server CPU than 8).
PIPELINE_DEPTH = 8


class _Chain:
    """Runs ``fn`` over blocks on a worker, in order, one step at a time; the blocks that arrive
    while a step runs go together into the next step (one worker hand-off per batch, not per
    block, when the stage lags - MD5 does)."""

    def __init__(self, pool: ThreadPoolExecutor, fn: Callable[[memoryview], None],
                 progress: asyncio.Event) -> None:
        self.pool = pool
        self.fn = fn
        self.progress = progress
        self.waiting: list[memoryview] = []
        self.running: asyncio.Future[int] | None = None
        self.done = 0  # blocks processed
        self.error: BaseException | None = None

    def add(self, view: memoryview) -> None:
        self.waiting.append(view)
        if self.running is None and self.error is None:
            self._start()

    def _start(self) -> None:
        batch, self.waiting = self.waiting, []
        self.running = asyncio.get_running_loop().run_in_executor(self.pool, self._run, batch)
        self.running.add_done_callback(self._finished)

    def _run(self, batch: list[memoryview]) -> int:
        for view in batch:
            self.fn(view)
        return len(batch)

    def _finished(self, fut: asyncio.Future[int]) -> None:
        self.running = None
        if fut.cancelled() or fut.exception() is not None:
            self.error = fut.exception() or asyncio.CancelledError()
        else:
            self.done += fut.result()
            if self.waiting:
                self._start()
        self.progress.set()

    @property
    def idle(self) -> bool:
        return self.running is None and (not self.waiting or self.error is not None)


async def _receive_blocks(body: Body, writer: ObjectWriter, pool: ThreadPoolExecutor,
                          limit: int) -> list[Block]:
    """Large bodies, as a pipeline: the loop receives block k+1 straight from the socket while
    workers hash and write earlier blocks - MD5 on one, SHA-256 + checksum + the O_DIRECT write
    on the other, each in block order (hashlib, zlib-ng and os.write release the GIL). Returns
    the filled blocks, in order (the caller caches them); on error they go back to the pool."""
    filled: list[Block] = []
    progress = asyncio.Event()
    chains = (_Chain(pool, writer.feed_md5, progress),
              _Chain(pool, writer.feed_block, progress))

    async def wait_until(cond: Callable[[], bool]) -> None:
        while not cond():
            progress.clear()
            await progress.wait()
        for chain in chains:
            if chain.error is not None:
                raise chain.error

    received = 0
    ok = False
    try:
        while True:
            block = BLOCKS.get()
            view = memoryview(block.buf)
            try:
                n = await body.readinto(view)
            except BaseException:
                BLOCKS.put(block)
                raise
            if n == 0:
                BLOCKS.put(block)
                break
            block.length = n
            filled.append(block)
            received += n
            if received > limit:
                raise S3Error("EntityTooLarge", MaxSizeAllowed=str(limit))
            for chain in chains:
                chain.add(view[:n])
            await wait_until(lambda: any(c.error for c in chains) or
                             len(filled) - min(c.done for c in chains) < PIPELINE_DEPTH)
        await wait_until(lambda: all(c.idle for c in chains))
        ok = True
        return filled
    finally:
        if not ok:
            for chain in chains:
                chain.waiting = []
            with contextlib.suppress(BaseException):  # let the workers finish with the blocks first
                await wait_until(lambda: all(c.running is None for c in chains))
            for block in filled:
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
    filled: list[Block] = []
    try:
        if length is not None and length < INLINE_LIMIT:
            # Small body: hashed on the loop thread, written by finish() in one go.
            while data := await body.read(INLINE_LIMIT):
                if writer.size + len(data) > limit:
                    raise S3Error("EntityTooLarge", MaxSizeAllowed=str(limit))
                writer.feed_md5(data)
                writer.hold(data)
        else:
            filled = await _receive_blocks(body, writer, pool, limit)
        if length is not None and writer.size != length:
            raise S3Error("IncompleteBody")
        _verify(writer, auth, content_md5, algorithm, expected_checksum, in_trailer, body)
        if inline and writer.size <= INLINE_MAX and writer.take_inline():
            pass
        else:
            await loop.run_in_executor(pool, writer.finish, True)
    except OSError as exc:
        for block in filled:
            BLOCKS.put(block)
        writer.discard()
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):  # the data dir's file system is full
            raise S3Error("InsufficientCapacity") from exc
        raise
    except BaseException:
        for block in filled:
            BLOCKS.put(block)
        writer.discard()
        raise
    if filled:
        BLOCKS.keep(writer.data_id, filled)  # a GET soon after is served from memory
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
