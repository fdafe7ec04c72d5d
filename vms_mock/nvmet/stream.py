"""A buffered asyncio protocol for PDU streams that receives large payloads in place.

``asyncio.StreamReader`` copies every byte several times (into its buffer, out as a slice, into
the caller's buffer). NVMe data PDUs are up to 1 MiB, so this protocol lets the reader hand over
the destination (``readinto``): the kernel then copies socket data straight into it. Small reads
(PDU headers) come from an internal buffer. One consumer reads at a time (the PDU loop).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

BUFSIZE = 1 << 18


class PduStream(asyncio.BufferedProtocol):
    def __init__(self, on_connected: Callable[[PduStream], None] | None = None) -> None:
        self._on_connected = on_connected
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray(BUFSIZE)
        self._view = memoryview(self._buf)
        self._start = 0
        self._end = 0
        self._want: memoryview | None = None  # destination of a pending read
        self._filled = 0
        self._copy_out = False  # the pending read returns bytes (readexactly)
        self._waiter: asyncio.Future[None] | None = None
        self._direct = False  # the last get_buffer handed out the destination itself
        self._eof: BaseException | None = None
        self._read_paused = False
        self._write_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []

    # --- protocol callbacks ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self._on_connected:
            self._on_connected(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = exc or ConnectionResetError("connection closed")
        self._wake(self._eof)
        self._write_paused = False
        for w in self._drain_waiters:
            if not w.done():
                w.set_exception(ConnectionResetError("connection closed"))
        self._drain_waiters.clear()

    def eof_received(self) -> bool:
        self._eof = asyncio.IncompleteReadError(b"", None)
        self._wake(self._eof)
        return False

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._want is not None and self._start == self._end and not self._copy_out:
            self._direct = True
            return self._want[self._filled:]
        self._direct = False
        if self._start == self._end:
            self._start = self._end = 0
        elif self._end == len(self._buf):
            n = self._end - self._start
            self._buf[:n] = self._buf[self._start:self._end]
            self._start, self._end = 0, n
        return self._view[self._end:]

    def buffer_updated(self, nbytes: int) -> None:
        if self._direct:
            self._filled += nbytes
            if self._want is not None and self._filled == len(self._want):
                self._wake(None)
            return
        self._end += nbytes
        self._satisfy()
        if self._end - self._start >= len(self._buf) and self.transport and not self._read_paused:
            self._read_paused = True
            self.transport.pause_reading()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        for w in self._drain_waiters:
            if not w.done():
                w.set_result(None)
        self._drain_waiters.clear()

    # --- reading ---------------------------------------------------------------------------
    def _wake(self, exc: BaseException | None) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            if exc is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(exc)

    def _satisfy(self) -> None:
        """Move buffered bytes into the pending destination."""
        if self._want is not None:
            take = min(self._end - self._start, len(self._want) - self._filled)
            if take:
                self._want[self._filled:self._filled + take] = self._view[self._start:self._start + take]
                self._start += take
                self._filled += take
            if self._filled == len(self._want):
                self._wake(None)
        if self._read_paused and self._end - self._start < len(self._buf) // 2 and self.transport:
            self._read_paused = False
            self.transport.resume_reading()

    async def readinto(self, dest: memoryview, copy_out: bool = False) -> None:
        if not len(dest):
            return
        self._want, self._filled, self._copy_out = dest, 0, copy_out
        try:
            self._satisfy()
            if self._filled < len(dest):
                if self._eof is not None:
                    raise self._eof
                self._waiter = asyncio.get_running_loop().create_future()
                await self._waiter
        finally:
            self._want = None
            self._direct = False
        self._satisfy()

    async def readexactly(self, n: int) -> bytes:
        out = bytearray(n)
        # Small reads come through the internal buffer (several PDUs per recv); big ones in place.
        await self.readinto(memoryview(out), copy_out=n <= 4096)
        return bytes(out)

    # --- writing ---------------------------------------------------------------------------
    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.transport is None or self.transport.is_closing():
            raise ConnectionResetError("connection closed")
        self.transport.write(data)

    async def drain(self) -> None:
        if self._eof is not None and isinstance(self._eof, ConnectionError):
            raise self._eof
        if self._write_paused:
            w = asyncio.get_running_loop().create_future()
            self._drain_waiters.append(w)
            await w

    def extra(self, name: str) -> object:
        return self.transport.get_extra_info(name) if self.transport else None

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    @property
    def closing(self) -> bool:
        return self.transport is None or self.transport.is_closing()
