"""A lean HTTP/1.1 server for the S3 endpoint on asyncio (see connection.py for the I/O).

Why not an ASGI framework: S3 throughput is dominated by per-request overhead at small sizes and
by copies at large sizes. This layer parses a request head in one pass, hands the body to the
handler as a stream (Content-Length, ``Transfer-Encoding: chunked``), answers
``Expect: 100-continue`` at once for small bodies and otherwise only when the handler starts
reading the body (so a large upload refused before that never sends its body), and sends file
bodies block by block from O_DIRECT reads (blocks.py). Keep-alive, an idle timeout and
header-size limits.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import secrets
import ssl
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import unquote_plus

from vms_mock.s3.blocks import BLOCKS, Block, FileRange
from vms_mock.s3.connection import Connection

log = logging.getLogger(__name__)

MAX_HEAD_BYTES = 64 * 1024
MAX_CHUNK_LINE = 4096           # a Transfer-Encoding: chunked size or trailer line
IDLE_TIMEOUT = 75.0
BODY_TIMEOUT = 120.0            # longest wait for the next body bytes
SMALL_FILE = 256 * 1024         # file bodies up to this size are sent with the head in one write
READ_AHEAD = 2                  # file blocks read ahead of the one being sent
EARLY_CONTINUE = 256 * 1024     # Expect: 100-continue is answered at once up to this body size
DRAIN_LIMIT = 1 << 20           # unread body bytes we drain to keep a connection alive

_REASONS = {s.value: s.phrase for s in HTTPStatus}


class BadRequest(Exception):
    """The bytes on the wire are not a usable HTTP request (answered with a plain 400)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Body:
    """A request body read as a stream; ``read`` returns b"" once it is exhausted."""

    remaining: int | None = None  # bytes left, when known
    trailers: dict[str, str]

    async def read(self, n: int) -> bytes:
        raise NotImplementedError

    async def read_full(self, n: int) -> bytes:
        """``n`` bytes, or fewer only at the end of the body (big blocks: fewer thread hops)."""
        parts = []
        got = 0
        while got < n:
            data = await self.read(n - got)
            if not data:
                break
            parts.append(data)
            got += len(data)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def readinto(self, block: memoryview) -> int:
        """Fill ``block`` (fewer bytes only at the end of the body); returns the count."""
        got = 0
        while got < len(block):
            data = await self.read(len(block) - got)
            if not data:
                break
            block[got:got + len(data)] = data
            got += len(data)
        return got

    @property
    def done(self) -> bool:
        raise NotImplementedError


class _Watch:
    """Deadline of the read a connection is blocked in; a server-wide sweeper aborts connections
    past it (one timer for all connections instead of a wait_for per read)."""

    __slots__ = ("deadline", "transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.deadline = 0.0

    def arm(self, timeout: float) -> None:
        self.deadline = time.monotonic() + timeout

    def disarm(self) -> None:
        self.deadline = 0.0


class _Continue:
    """Sends ``100 Continue`` once, on the first body read, when the client asked for it."""

    def __init__(self, writer: Connection, expected: bool) -> None:
        self.writer = writer
        self.pending = expected
        self.sent = False

    def __call__(self) -> None:
        if self.pending:
            self.pending = False
            self.sent = True
            self.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")


class LengthBody(Body):
    def __init__(self, reader: Connection, length: int, cont: _Continue, watch: _Watch) -> None:
        self.reader = reader
        self.watch = watch
        self.remaining = length
        self.cont = cont
        self.trailers = {}

    @property
    def done(self) -> bool:
        return self.remaining == 0

    async def read(self, n: int) -> bytes:
        assert self.remaining is not None
        if self.remaining == 0:
            return b""
        if self.cont.pending:
            self.cont()
        self.watch.arm(BODY_TIMEOUT)
        data = await self.reader.read(min(n, self.remaining))
        self.watch.disarm()
        if not data:
            raise BadRequest("IncompleteBody", "the connection closed before the body ended")
        self.remaining -= len(data)
        return data

    async def readinto(self, block: memoryview) -> int:
        """Body bytes land in ``block`` straight from the socket (no intermediate copies)."""
        assert self.remaining is not None
        want = min(len(block), self.remaining)
        if want == 0:
            return 0
        if self.cont.pending:
            self.cont()
        self.watch.arm(BODY_TIMEOUT)
        got = await self.reader.readinto(block[:want])
        self.watch.disarm()
        self.remaining -= got
        if got < want:
            raise BadRequest("IncompleteBody", "the connection closed before the body ended")
        return got


class ChunkedBody(Body):
    """``Transfer-Encoding: chunked`` (HTTP framing; aws-chunked is decoded one layer up)."""

    def __init__(self, reader: Connection, cont: _Continue, watch: _Watch) -> None:
        self.reader = reader
        self.watch = watch
        self.cont = cont
        self.chunk_left = 0
        self.finished = False
        self.trailers = {}

    @property
    def done(self) -> bool:
        return self.finished

    async def _line(self) -> bytes:
        self.watch.arm(BODY_TIMEOUT)
        try:
            line = await self.reader.readuntil(b"\r\n", MAX_CHUNK_LINE)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            raise BadRequest("IncompleteBody", "bad chunked encoding") from None
        finally:
            self.watch.disarm()
        return line[:-2]

    async def read(self, n: int) -> bytes:
        if self.finished:
            return b""
        if self.cont.pending:
            self.cont()
        if self.chunk_left == 0:
            size_line = await self._line()
            try:
                self.chunk_left = int(size_line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise BadRequest("IncompleteBody", "bad chunk size line") from None
            if self.chunk_left == 0:
                while line := await self._line():
                    k, _, v = line.decode("latin-1").partition(":")
                    self.trailers[k.strip().lower()] = v.strip()
                self.finished = True
                return b""
        self.watch.arm(BODY_TIMEOUT)
        data = await self.reader.read(min(n, self.chunk_left))
        self.watch.disarm()
        if not data:
            raise BadRequest("IncompleteBody", "the connection closed before the body ended")
        self.chunk_left -= len(data)
        if self.chunk_left == 0 and await self._line() != b"":
            raise BadRequest("IncompleteBody", "chunk not followed by CRLF")
        return data


@dataclass
class Request:
    method: str
    raw_path: str
    raw_query: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Body
    request_id: str
    tls: bool = False
    started: float = field(default_factory=time.monotonic)


@dataclass
class Response:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    # A file body: (open file descriptor, offset, count); the fd is closed after sending.
    file: tuple[int, int, int] | None = None
    cache_key: str | None = None  # the file's data id: its blocks may still be cached (blocks.py)
    head_only: bool = False  # HEAD: Content-Length describes a body that is not sent


Handler = Callable[[Request], Awaitable[Response]]
ErrorRenderer = Callable[[Request | None, str, str], Response]


def parse_query(raw_query: str) -> dict[str, str]:
    out: dict[str, str] = {}
    if raw_query:
        for part in raw_query.split("&"):
            if part:
                k, _, v = part.partition("=")
                out.setdefault(unquote_plus(k), unquote_plus(v))
    return out


class _DateCache:
    def __init__(self) -> None:
        self.second = -1
        self.value = ""

    def get(self) -> str:
        now = int(time.time())
        if now != self.second:
            self.second = now
            self.value = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now))
        return self.value


class HttpServer:
    def __init__(self, handler: Handler, render_error: ErrorRenderer, pool: ThreadPoolExecutor,
                 server_name: str = "VastS3") -> None:
        self.handler = handler
        self.pool = pool  # file reads of large bodies
        self.render_error = render_error
        self.server_name = server_name
        self._dates = _DateCache()
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._watches: set[_Watch] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self.port = 0

    async def start(self, host: str, port: int, tls: ssl.SSLContext | None) -> None:
        self.tls = tls is not None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: Connection(self._serve), host, port, ssl=tls, backlog=512)
        self.port = self._server.sockets[0].getsockname()[1]
        self._sweeper = asyncio.create_task(self._sweep())

    async def _sweep(self) -> None:
        """Abort connections stuck in a read past its deadline (idle keep-alive, stalled body)."""
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for watch in list(self._watches):
                if watch.deadline and watch.deadline < now:
                    watch.deadline = 0.0
                    watch.transport.abort()

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        if self._server is not None:
            self._server.close()
            tasks = list(self._connections)
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=5)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None

    # -- one connection --------------------------------------------------------------------
    async def _serve(self, conn: Connection) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        watch = _Watch(conn.transport)
        self._watches.add(watch)
        writer = conn
        try:
            while await self._one_request(conn, watch):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        except Exception:
            log.exception("S3 connection failed")
        finally:
            self._connections.discard(task)
            self._watches.discard(watch)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 2)

    async def _one_request(self, conn: Connection, watch: _Watch) -> bool:
        """Serve one request; False when the connection must close."""
        reader = writer = conn
        watch.arm(IDLE_TIMEOUT)
        try:
            head = await reader.readuntil(b"\r\n\r\n", MAX_HEAD_BYTES)
        except asyncio.IncompleteReadError:
            return False
        except asyncio.LimitOverrunError:
            await self._send(writer, self.render_error(None, "RequestHeaderSectionTooLarge", ""),
                             "GET", False)
            return False
        finally:
            watch.disarm()
        request_id = secrets.token_hex(8).upper()
        try:
            if len(head) > MAX_HEAD_BYTES:
                raise BadRequest("RequestHeaderSectionTooLarge", "header section too large")
            req, cont = self._parse_head(head, conn, request_id, watch)
        except BadRequest as exc:
            await self._send(writer, self.render_error(None, exc.code, str(exc)), "GET", False)
            return False
        keep_alive = req.headers.get("connection", "").lower() != "close"
        try:
            resp = await self.handler(req)
        except BadRequest as exc:
            resp = self.render_error(req, exc.code, str(exc))
            keep_alive = False
        except Exception:
            log.exception("S3 request failed", extra={"method": req.method, "path": req.raw_path})
            resp = self.render_error(req, "InternalError", "")
            keep_alive = False
        if not req.body.done:
            keep_alive = keep_alive and await self._drain(req.body, cont)
        await self._send(writer, resp, req.method, keep_alive)
        return keep_alive

    def _parse_head(self, head: bytes, conn: Connection, request_id: str,
                    watch: _Watch) -> tuple[Request, _Continue]:
        reader = writer = conn
        lines = head[:-4].decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise BadRequest("InvalidRequest", "malformed request line")
        method, target, _version = parts
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                raise BadRequest("InvalidRequest", "malformed header line")
            name = name.lower()
            value = value.strip()
            headers[name] = f"{headers[name]},{value}" if name in headers else value
        if target.startswith(("http://", "https://")):
            target = "/" + target.split("/", 3)[3] if target.count("/") >= 3 else "/"
        raw_path, _, raw_query = target.partition("?")
        cont = _Continue(writer, headers.get("expect", "").lower() == "100-continue")
        body: Body
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = ChunkedBody(reader, cont, watch)
        else:
            length = headers.get("content-length", "0") or "0"
            if not length.isdigit():
                raise BadRequest("InvalidRequest", "bad Content-Length")
            body = LengthBody(reader, int(length), cont, watch)
            if cont.pending and body.remaining is not None and body.remaining <= EARLY_CONTINUE:
                # A small body costs less to receive (and drain, if refused) than the round
                # trip it waits for: invite it now, so it travels while we authenticate.
                cont()
        return Request(method=method, raw_path=raw_path, raw_query=raw_query,
                       query=parse_query(raw_query), headers=headers, body=body,
                       request_id=request_id, tls=self.tls), cont

    async def _drain(self, body: Body, cont: _Continue) -> bool:
        """Read and drop a small unread body so the connection stays usable."""
        if cont.pending:
            return False  # the client has not sent the body and waits: close instead
        if body.remaining is None or body.remaining > DRAIN_LIMIT:
            return False
        try:
            while await body.read(1 << 16):
                pass
        except (BadRequest, ConnectionError):
            return False
        return True

    async def _send(self, writer: Connection, resp: Response, method: str,
                    keep_alive: bool) -> None:
        headers = resp.headers
        if resp.file is not None:
            length = resp.file[2]
        else:
            length = int(headers.pop("content-length", len(resp.body))) if resp.head_only else len(
                resp.body)
        head = [f"HTTP/1.1 {resp.status} {_REASONS.get(resp.status, 'Unknown')}\r\n"
                f"Date: {self._dates.get()}\r\nServer: {self.server_name}\r\n"]
        if resp.status != 304:
            head.append(f"Content-Length: {length}\r\n")
        if not keep_alive:
            head.append("Connection: close\r\n")
        for k, v in headers.items():
            head.append(f"{k}: {v}\r\n")
        head.append("\r\n")
        data = "".join(head).encode("latin-1", "replace")
        if resp.file is None:
            if method != "HEAD" and not resp.head_only and resp.status != 304:
                data += resp.body
            writer.write(data)
            await writer.drain()
            return
        fd, offset, count = resp.file
        try:
            if method != "HEAD" and count <= SMALL_FILE:
                # Small objects: one write of head + data (fewer syscalls than sendfile).
                writer.write(data + os.pread(fd, count, offset))
                await writer.drain()
                return
            writer.write(data)
            if method != "HEAD" and count:
                cached = BLOCKS.lookup(resp.cache_key, offset, count) if resp.cache_key else None
                if cached is not None:
                    await self._send_cached(writer, cached)
                else:
                    await self._send_blocks(writer, FileRange(fd, offset, count))
            await writer.drain()
        finally:
            os.close(fd)

    async def _send_blocks(self, writer: Connection, rng: FileRange) -> None:
        """Send a file range block by block, reading ahead: while one block goes to the socket,
        the next ``READ_AHEAD`` are read on workers (O_DIRECT: large objects were written past
        the page cache, so they are read past it too; blocks.py says why)."""
        loop = asyncio.get_running_loop()
        blocks = [BLOCKS.get() for _ in range(READ_AHEAD + 1)]
        reads: collections.deque[asyncio.Future[memoryview]] = collections.deque()
        nxt = 0

        def read_ahead() -> None:
            nonlocal nxt
            while len(reads) < READ_AHEAD and nxt < len(rng):
                buf = blocks[nxt % len(blocks)].buf
                reads.append(loop.run_in_executor(self.pool, rng.read, nxt, buf))
                nxt += 1

        # drain() then returns only once the transport holds nothing of a block (a transport
        # may keep a reference instead of a copy), so the block can be refilled. (high=1, not 0:
        # the SSL transport pauses at size >= high, so 0 would pause it for good.)
        writer.transport.set_write_buffer_limits(high=1, low=0)
        try:
            read_ahead()
            while reads:
                view = await reads.popleft()
                read_ahead()
                writer.write(view)
                await writer.drain()
        finally:
            for fut in reads:
                with contextlib.suppress(BaseException):
                    await fut
            if not writer.transport.is_closing():
                writer.transport.set_write_buffer_limits()
            for block in blocks:
                BLOCKS.put(block)

    async def _send_cached(self, writer: Connection, slices: list[tuple[Block, int, int]]) -> None:
        """Send a range from cached blocks (pinned meanwhile, so no upload reuses them)."""
        for block, _start, _end in slices:
            block.pins += 1
        writer.transport.set_write_buffer_limits(high=1, low=0)  # as in _send_blocks
        try:
            for block, start, end in slices:
                writer.write(memoryview(block.buf)[start:end])
                await writer.drain()
        finally:
            for block, _start, _end in slices:
                block.pins -= 1
            if not writer.transport.is_closing():
                writer.transport.set_write_buffer_limits()
