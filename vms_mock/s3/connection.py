"""One client connection of the S3 endpoint: buffered reads, direct reads and flow-controlled writes.

Why not ``asyncio.StreamReader``: it copies every received byte twice (into its buffer, then out
of it) into freshly allocated objects. Object bodies are the bulk of what this server receives,
so :meth:`Connection.readinto` lets the kernel copy body bytes straight into the caller's block
(``BufferedProtocol.get_buffer`` hands the transport that block while a reader waits on it and
nothing is buffered ahead). Request heads and small bodies go through a small internal buffer as
before. Works unchanged under TLS (asyncio's SSL transport feeds buffered protocols too).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

RECV_BLOCK = 256 * 1024    # internal receive area (heads, small bodies)
BUFFER_LIMIT = 1 << 20     # reading pauses while more than this is buffered and unread


class Connection(asyncio.BufferedProtocol):
    """Protocol + reader + writer of one connection; ``serve(conn)`` runs as its task."""

    def __init__(self, serve: Callable[[Connection], Coroutine[Any, Any, None]]) -> None:
        self._serve = serve
        self._recv = bytearray(RECV_BLOCK)
        self._recv_view = memoryview(self._recv)
        self._buf = bytearray()                 # received and not yet consumed
        self._target: memoryview | None = None  # a readinto() block being filled directly
        self._target_got = 0
        self._direct = False                    # get_buffer() handed out the target
        self._waiter: asyncio.Future[None] | None = None
        self._eof = False
        self._read_paused = False
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._lost = False
        self.transport: asyncio.Transport
        self._closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # -- protocol callbacks (event loop) ---------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        asyncio.get_running_loop().create_task(self._serve(self))

    def get_buffer(self, sizehint: int) -> memoryview:
        target = self._target
        # Never hand out an empty buffer: transports read a 0-byte fill as end of stream (a full
        # target waits for its reader to run; bytes arriving meanwhile go to the buffer).
        if target is not None and not self._buf and self._target_got < len(target):
            self._direct = True
            return target[self._target_got:]
        self._direct = False
        return self._recv_view

    def buffer_updated(self, nbytes: int) -> None:
        if self._direct:
            assert self._target is not None
            self._target_got += nbytes
            if self._target_got < len(self._target):
                return  # wake the reader once per block, not once per segment
        else:
            self._buf += self._recv_view[:nbytes]
            if len(self._buf) > BUFFER_LIMIT and not self._read_paused:
                self._read_paused = True
                self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        # Keep a TCP transport open (the response may still be written); TLS ignores the answer.
        return self.transport.get_extra_info("sslcontext") is None

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._lost = True
        self._wake()
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_exception(ConnectionResetError("connection lost"))
        if not self._closed.done():
            self._closed.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    # -- reading ---------------------------------------------------------------------------
    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self) -> None:
        if self._read_paused:
            self._read_paused = False
            self.transport.resume_reading()
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _consumed(self) -> None:
        if self._read_paused and len(self._buf) <= BUFFER_LIMIT // 2:
            self._read_paused = False
            self.transport.resume_reading()

    def _take(self, n: int) -> bytes:
        data = bytes(self._buf[:n])
        del self._buf[:n]
        self._consumed()
        return data

    async def readuntil(self, sep: bytes, limit: int) -> bytes:
        """Bytes up to and including ``sep``. LimitOverrunError past ``limit`` bytes without it,
        IncompleteReadError at end of stream without it."""
        start = 0
        while True:
            i = self._buf.find(sep, start)
            if i >= 0:
                if i + len(sep) > limit:
                    raise asyncio.LimitOverrunError("separator found past the limit", i)
                return self._take(i + len(sep))
            if len(self._buf) > limit:
                raise asyncio.LimitOverrunError("separator not found within the limit", len(self._buf))
            if self._eof:
                partial = self._take(len(self._buf))
                raise asyncio.IncompleteReadError(partial, None)
            start = max(0, len(self._buf) - len(sep) + 1)
            await self._wait()

    async def read(self, n: int) -> bytes:
        """Up to ``n`` bytes (what is buffered, or the next arrival); b"" at end of stream."""
        while not self._buf:
            if self._eof:
                return b""
            await self._wait()
        return self._take(min(n, len(self._buf)))

    async def readinto(self, block: memoryview) -> int:
        """Fill ``block`` (fewer bytes only at end of stream); returns the count.

        Buffered bytes are copied first; the rest arrives straight from the transport."""
        got = min(len(self._buf), len(block))
        if got:
            block[:got] = self._buf[:got]
            del self._buf[:got]
            self._consumed()
        if got == len(block) or self._eof:
            return got
        self._target = block
        self._target_got = got
        try:
            while self._target_got < len(block) and not self._eof:
                await self._wait()
            return self._target_got
        finally:
            self._target = None
            self._direct = False

    # -- writing ---------------------------------------------------------------------------
    def write(self, data: bytes | memoryview) -> None:
        self.transport.write(data)

    async def drain(self) -> None:
        if self._lost or self.transport.is_closing():
            raise ConnectionResetError("connection lost")
        if self._write_paused:
            self._drain_waiter = asyncio.get_running_loop().create_future()
            try:
                await self._drain_waiter
            finally:
                self._drain_waiter = None

    def close(self) -> None:
        self.transport.close()

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)
