"""Zero-copy PDU streams over non-blocking sockets.

``asyncio.StreamReader`` copies every byte several times and the 3.11 selector transport moves its
whole pending write buffer on every partial send (slow with MiB-sized data PDUs in flight). This
class uses the loop's socket primitives instead: large payloads are received straight into the
caller's buffer (``readinto``) and sent from the caller's buffer (``send``); small reads (PDU
headers) are batched through an internal buffer. One task reads at a time; senders serialize
with their own lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

log = logging.getLogger("vms_mock.nvmet")

BUFSIZE = 1 << 16
DIRECT_MIN = 1 << 14  # reads at least this large go straight into the destination
SEND_HIGH = 4 << 20  # senders wait while more than this is queued...
SEND_LOW = 1 << 20  # ...until the queue drains below this
IOV_MAX = 512

Buffer = bytes | bytearray | memoryview


class PduStream:
    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self._loop = asyncio.get_running_loop()
        self._buf = bytearray(BUFSIZE)
        self._view = memoryview(self._buf)
        self._start = 0
        self._end = 0
        self._eof = False
        self._closed = False
        self._busy = 0  # socket operations in progress (the fd is closed only when none are)
        self._outq: list[Buffer] = []
        self._outq_bytes = 0
        self._flusher: asyncio.Task[None] | None = None
        self._send_error: OSError | None = None
        self._space = asyncio.Event()
        try:
            self.peername: Any = sock.getpeername()
            self.sockname: Any = sock.getsockname()
        except OSError:
            self.peername = self.sockname = None

    @classmethod
    async def connect(cls, host: str, port: int) -> PduStream:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, stype, proto, _name, addr = infos[0]
        sock = socket.socket(family, stype, proto)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, addr)
        except BaseException:
            sock.close()
            raise
        return cls(sock)

    # --- reading ---------------------------------------------------------------------------
    async def _recv(self, dest: memoryview) -> int:
        if self._closed:
            raise ConnectionResetError("connection closed")
        self._busy += 1
        try:
            n = await self._loop.sock_recv_into(self.sock, dest)
        finally:
            self._busy -= 1
            self._maybe_release()
        if n == 0:
            self._eof = True
        return n

    async def readinto(self, dest: memoryview) -> None:
        """Fill ``dest`` completely (raises IncompleteReadError at end of stream)."""
        filled = 0
        want = len(dest)
        avail = self._end - self._start
        if avail:
            filled = min(avail, want)
            dest[:filled] = self._view[self._start:self._start + filled]
            self._start += filled
        while filled < want:
            if self._eof:
                raise asyncio.IncompleteReadError(bytes(dest[:filled]), want)
            if want - filled >= DIRECT_MIN:
                filled += await self._recv(dest[filled:])
                continue
            # small remainder: read as much as is there into the buffer (the next PDUs too)
            self._start = self._end = 0
            self._end = await self._recv(self._view)
            take = min(self._end, want - filled)
            dest[filled:filled + take] = self._view[:take]
            self._start = take
            filled += take

    async def readexactly(self, n: int) -> bytes:
        if self._end - self._start >= n:  # fast path: already buffered
            out = bytes(self._view[self._start:self._start + n])
            self._start += n
            return out
        out_buf = bytearray(n)
        await self.readinto(memoryview(out_buf))
        return bytes(out_buf)

    # --- writing ---------------------------------------------------------------------------
    async def send(self, parts: Sequence[Buffer]) -> None:
        """Queue parts for sending in order; a single flusher writes everything queued with one
        ``sendmsg`` (many small PDUs per syscall, large payloads from the callers' buffers).
        Returns at once unless too much is queued (the peer is not reading)."""
        if self._closed or self._send_error is not None:
            raise ConnectionResetError(f"connection closed ({self._send_error or 'locally'})")
        for p in parts:
            if len(p):  # queued by reference: callers never reuse a buffer they sent
                self._outq.append(p)
                self._outq_bytes += len(p)
        if self._flusher is None or self._flusher.done():
            self._flusher = self._loop.create_task(self._flush())
        while self._outq_bytes > SEND_HIGH and self._send_error is None and not self._closed:
            self._space.clear()
            await self._space.wait()

    async def flush(self) -> None:
        """Wait until everything queued was handed to the kernel (or the connection broke)."""
        if self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)

    async def _flush(self) -> None:
        self._busy += 1
        try:
            while self._outq and not self._closed:
                batch, self._outq = self._outq[:IOV_MAX], self._outq[IOV_MAX:]
                size = sum(len(b) for b in batch)
                await self._sendmsg_all(batch)
                self._outq_bytes -= size
                if self._outq_bytes <= SEND_LOW:
                    self._space.set()
        except OSError as exc:
            self._send_error = exc
            self._outq.clear()
            self._outq_bytes = 0
        finally:
            self._space.set()
            self._busy -= 1
            self._maybe_release()

    async def _sendmsg_all(self, bufs: list[Buffer]) -> None:
        views = [memoryview(b) for b in bufs]
        while views:
            try:
                n = self.sock.sendmsg(views)
            except (BlockingIOError, InterruptedError):
                n = 0
            while n and views:
                if n >= len(views[0]):
                    n -= len(views[0])
                    views.pop(0)
                else:
                    views[0] = views[0][n:]
                    n = 0
            if views:
                await self._writable()

    async def _writable(self) -> None:
        fut: asyncio.Future[None] = self._loop.create_future()
        fd = self.sock.fileno()

        def ready() -> None:
            if not fut.done():
                fut.set_result(None)

        self._loop.add_writer(fd, ready)
        try:
            await fut
        finally:
            self._loop.remove_writer(fd)

    # --- closing ---------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the connection: pending reads see end of stream; the fd is closed once idle."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self._maybe_release()

    def _maybe_release(self) -> None:
        if self._closed and not self._busy and self.sock.fileno() >= 0:
            self.sock.close()

    @property
    def closed(self) -> bool:
        return self._closed


async def serve(host: str, port: int, on_stream: Callable[[PduStream], Coroutine[Any, Any, None]],
                backlog: int = 128) -> tuple[socket.socket, asyncio.Task[None]]:
    """Listen on host:port; run ``on_stream`` in a task per connection. Returns (socket, accept task)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, stype, proto, _name, addr = infos[0]
    lsock = socket.socket(family, stype, proto)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(addr)
    lsock.listen(backlog)
    lsock.setblocking(False)
    tasks: set[asyncio.Task[None]] = set()

    async def accept_loop() -> None:
        try:
            while True:
                try:
                    conn, _peer = await loop.sock_accept(lsock)
                except OSError as exc:  # e.g. EMFILE: keep listening, the next accept may work
                    log.warning("accept failed", extra={"error": str(exc), "port": lsock.getsockname()[1]})
                    await asyncio.sleep(0.1)
                    continue
                task = loop.create_task(on_stream(PduStream(conn)))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        finally:
            lsock.close()

    return lsock, loop.create_task(accept_loop())
