"""One NVMe/TCP connection (= one queue): PDU framing, digests, R2T flow, command dispatch.

Commands run as separate tasks so a queue keeps many in flight (queue depth is the host's
SQSIZE); responses are written whole under one lock so PDUs never interleave.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from . import identify as idf
from . import wire as w
from .controller import Controller, Response
from .metrics import COMMAND_RESULT, FATAL
from .stream import Buffer, PduStream

if TYPE_CHECKING:
    from .target import NvmeTarget

log = logging.getLogger("vms_mock.nvmet")

MAXH2CDATA = idf.MAX_TRANSFER
# Largest PDU a host may send: a capsule with in-capsule data or an H2CData PDU, plus digests.
MAX_PDU = 128 + 8 + max(idf.INLINE_DATA, MAXH2CDATA)


class _PendingR2T:
    def __init__(self, cid: int, length: int) -> None:
        self.cid = cid
        self.buf = bytearray(length)
        self.received = 0
        self.done: asyncio.Future[bytearray] = asyncio.get_running_loop().create_future()


class QueueConnection:
    def __init__(self, target: NvmeTarget, stream: PduStream, port_kind: str) -> None:
        self.target = target
        self.stream = stream
        self.port_kind = port_kind  # "io" or "discovery"
        self.peer = stream.peername
        sock = stream.sockname
        self.local_addr: str = str(sock[0]) if isinstance(sock, tuple) else "127.0.0.1"
        self.hdgst = False
        self.ddgst = False
        self.c2h_align = 0  # HPDA: pad C2H data to this alignment
        self.qid = -1
        self.qsize = 32
        self.sqhd = 0
        self.ctrl: Controller | None = None
        self.closed = False
        self._send_lock = asyncio.Lock()
        self._r2t: dict[int, _PendingR2T] = {}
        self._next_ttag = 0
        self._tasks: set[asyncio.Task[None]] = set()

    # --- sending ---------------------------------------------------------------------------
    def _frame(self, ptype: int, flags: int, hdr_tail: bytes, data: Buffer = b"") -> list[Buffer]:
        hlen = w.HLEN[ptype]
        hd = 4 if self.hdgst and ptype in w.DIGESTED else 0
        parts: list[Buffer] = []
        pad = 0
        pdo = 0
        dd = 0
        if data:
            pdo = hlen + hd
            if ptype == w.C2H_DATA and self.c2h_align:
                pdo = -(-pdo // self.c2h_align) * self.c2h_align
            pad = pdo - hlen - hd
            dd = 4 if self.ddgst and ptype in w.DIGESTED else 0
        plen = hlen + hd + pad + len(data) + dd
        hdr = w.header(ptype, flags | (w.FLAG_HDGST if hd else 0) | (w.FLAG_DDGST if dd else 0),
                       hlen, pdo, plen) + hdr_tail
        parts.append(hdr)
        if hd:
            parts.append(w.digest(hdr))
        if data:
            if pad:
                parts.append(bytes(pad))
            parts.append(data)
            if dd:
                parts.append(w.digest(data))
        return parts

    async def _send(self, parts: list[Buffer]) -> None:
        if self.closed:
            return
        async with self._send_lock:
            # on a broken connection the read loop sees it too and cleans up
            with contextlib.suppress(ConnectionError):
                await self.stream.send(parts)

    async def respond(self, cid: int, resp: Response) -> None:
        parts: list[Buffer] = []
        if resp.data:
            parts += self._frame(w.C2H_DATA, w.FLAG_DATA_LAST,
                                 w.DATA_HDR.pack(cid, 0, 0, len(resp.data)), resp.data)
        cqe = w.build_cqe(cid, resp.status, resp.result, self.sqhd, max(self.qid, 0))
        parts += self._frame(w.CAPSULE_RESP, 0, cqe)
        COMMAND_RESULT["admin" if self.qid == 0 else "io", resp.status == 0].inc()
        await self._send(parts)

    def complete_later(self, cid: int, resp: Response) -> None:
        """Complete a command from outside its task (asynchronous event notifications)."""
        self._spawn(self.respond(cid, resp))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def terminate(self, fes: int, fei: int, offending: bytes) -> None:
        """Send a C2HTermReq and close (the host must reconnect)."""
        FATAL.labels(str(fes)).inc()
        tail = w.TERM_HDR.pack(fes, fei)
        body = offending[:128]
        hdr = w.header(w.C2H_TERM_REQ, 0, 24, 0, 24 + len(body)) + tail
        with contextlib.suppress(Exception):
            async with self._send_lock:
                await self.stream.send([hdr + body])
                await asyncio.wait_for(self.stream.flush(), 2)

    # --- receiving -------------------------------------------------------------------------
    async def run(self) -> None:
        last_header = b""
        try:
            last_header = await self._handshake()
            while True:
                common = await self.stream.readexactly(8)
                last_header = common
                ptype, _flags, hlen, pdo, plen = w.COMMON.unpack(common)
                if ptype not in (w.CAPSULE_CMD, w.H2C_DATA, w.H2C_TERM_REQ):
                    raise w.TransportError(w.FES_INVALID_HEADER_FIELD, 0, f"unexpected PDU type {ptype}")
                if hlen != w.HLEN[ptype]:
                    raise w.TransportError(w.FES_INVALID_HEADER_FIELD, 2, f"bad HLEN {hlen}")
                hd = 4 if self.hdgst and ptype in w.DIGESTED else 0
                if plen < hlen + hd or plen > MAX_PDU:
                    raise w.TransportError(w.FES_INVALID_HEADER_FIELD, 4, f"bad PLEN {plen}")
                rest = await self.stream.readexactly(hlen - 8 + hd)
                hdr = common + rest[:hlen - 8]
                last_header = hdr
                if hd and rest[hlen - 8:] != w.digest(hdr):
                    raise w.TransportError(w.FES_HEADER_DIGEST_ERROR, 0, "header digest mismatch")
                data: Buffer = b""
                data_ok = True
                if plen > hlen + hd:
                    if ptype == w.H2C_TERM_REQ:
                        await self.stream.readexactly(plen - hlen - hd)
                    else:
                        if pdo < hlen + hd or pdo > plen:
                            raise w.TransportError(w.FES_INVALID_HEADER_FIELD, 3, f"bad PDO {pdo}")
                        if pdo > hlen + hd:
                            await self.stream.readexactly(pdo - hlen - hd)
                        dd = 4 if self.ddgst else 0
                        if plen - pdo <= dd:
                            raise w.TransportError(w.FES_INVALID_HEADER_FIELD, 4, f"bad PLEN {plen}")
                        if ptype == w.CAPSULE_CMD:
                            data = await self.stream.readexactly(plen - pdo - dd)
                        else:  # H2CData lands directly in the command's buffer
                            data = self._h2c_destination(hdr, plen - pdo - dd)
                            await self.stream.readinto(data)
                        if dd:
                            data_ok = await self.stream.readexactly(4) == w.digest(data)
                if ptype == w.H2C_TERM_REQ:
                    fes = struct.unpack_from("<H", hdr, 8)[0]
                    log.info("host terminated the connection", extra={"fes": fes, "peer": str(self.peer)})
                    return
                if ptype == w.CAPSULE_CMD:
                    self._on_capsule(w.Command(hdr[8:72]), bytes(data), data_ok)
                elif not len(data):
                    raise w.TransportError(w.FES_INVALID_HEADER_FIELD, 4, "H2CData without data")
                else:
                    self._on_h2c_data(hdr, data_ok)
        except w.TransportError as e:
            log.warning("NVMe/TCP fatal error; terminating the connection",
                        extra={"fes": e.fes, "fei": e.fei, "reason": str(e), "peer": str(self.peer)})
            await self.terminate(e.fes, e.fei, last_header)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            await self.close()

    async def _handshake(self) -> bytes:
        hdr = await self.stream.readexactly(8)
        ptype, _flags, hlen, _pdo, plen = w.COMMON.unpack(hdr)
        if ptype != w.ICREQ:
            raise w.TransportError(w.FES_PDU_SEQUENCE_ERROR, 0, f"expected ICReq, got PDU type {ptype}")
        if hlen != 128 or plen != 128:
            raise w.TransportError(w.FES_INVALID_HEADER_FIELD, 2 if hlen != 128 else 4, "bad ICReq length")
        body = hdr + await self.stream.readexactly(120)
        pfv, hpda, dgst, _maxr2t = struct.unpack_from("<HBBI", body, 8)
        if pfv != 0:
            raise w.TransportError(w.FES_INVALID_HEADER_FIELD, 8, f"unsupported PFV {pfv}")
        if hpda > 31:
            raise w.TransportError(w.FES_INVALID_HEADER_FIELD, 10, f"bad HPDA {hpda}")
        self.hdgst = bool(dgst & 1)
        self.ddgst = bool(dgst & 2)
        self.c2h_align = (hpda + 1) * 4 if hpda else 0
        resp = bytearray(128)
        struct.pack_into("<BBBBIHBBI", resp, 0, w.ICRESP, 0, 128, 0, 128, 0, 0, dgst & 3, MAXH2CDATA)
        async with self._send_lock:
            await self.stream.send([bytes(resp)])
        return body

    def _on_capsule(self, cmd: w.Command, data: bytes, data_ok: bool) -> None:
        self.sqhd = (self.sqhd + 1) % self.qsize
        if self.ctrl:
            self.ctrl.touch()
        self._spawn(self._execute(cmd, data, data_ok))

    def _h2c_destination(self, hdr: bytes, length: int) -> memoryview:
        """Validate an H2CData header; return where its payload goes."""
        cccid, ttag, datao, datal = w.DATA_HDR.unpack_from(hdr, 8)
        pending = self._r2t.get(ttag)
        if pending is None or pending.cid != cccid:
            raise w.TransportError(w.FES_INVALID_HEADER_FIELD, 10, f"unknown TTAG {ttag}")
        if datal != length or datao != pending.received or datao + datal > len(pending.buf):
            raise w.TransportError(w.FES_DATA_OUT_OF_RANGE, 12, "H2CData outside the R2T")
        return memoryview(pending.buf)[datao:datao + datal]

    def _on_h2c_data(self, hdr: bytes, data_ok: bool) -> None:
        _cccid, ttag, _datao, datal = w.DATA_HDR.unpack_from(hdr, 8)
        pending = self._r2t[ttag]
        if self.ctrl:
            self.ctrl.touch()
        if not data_ok:
            del self._r2t[ttag]
            pending.done.set_exception(w.NvmeError(w.TRANSIENT_TRANSPORT, "data digest mismatch"))
            return
        pending.received += datal
        if pending.received == len(pending.buf):
            del self._r2t[ttag]
            pending.done.set_result(pending.buf)

    async def _collect(self, cid: int, length: int) -> bytearray:
        """Ask the host for a command's data with one R2T and wait for its H2CData PDUs."""
        ttag = self._next_ttag
        while ttag in self._r2t:
            ttag = (ttag + 1) & 0xFFFF
        self._next_ttag = (ttag + 1) & 0xFFFF
        pending = _PendingR2T(cid, length)
        self._r2t[ttag] = pending
        await self._send(self._frame(w.R2T, 0, struct.pack("<HHII4x", cid, ttag, 0, length)))
        return await pending.done

    async def _execute(self, cmd: w.Command, data: bytes, data_ok: bool) -> None:
        try:
            resp = await self._dispatch(cmd, data, data_ok)
        except w.NvmeError as e:
            resp = Response(e.status, e.result)
        except ValueError as e:  # an out-of-range access refused by the I/O layer
            log.warning("refused NVMe command", extra={"error": str(e), "opcode": cmd.opcode})
            resp = Response(w.LBA_RANGE)
        except OSError as e:
            log.error("backing file I/O failed", extra={"error": str(e), "opcode": cmd.opcode})
            resp = Response(w.INTERNAL)
        if resp is not None:
            await self.respond(cmd.cid, resp)

    def _direction(self, cmd: w.Command) -> int:
        """1 = host to controller, 2 = controller to host, 0 = no data."""
        return (cmd.fctype if cmd.opcode == w.FABRICS else cmd.opcode) & 3

    async def _dispatch(self, cmd: w.Command, data: bytes | bytearray, data_ok: bool) -> Response | None:
        if not data_ok:
            return Response(w.TRANSIENT_TRANSPORT)
        stype, length = cmd.sgl_type, cmd.sgl_length
        direction = self._direction(cmd)
        if direction and length:
            if stype == w.SGL_DATA_BLOCK_OFFSET:
                if direction != 1 or cmd.sgl_address != 0 or length != len(data):
                    return Response(w.SGL_INVALID_DATA)
            elif stype == w.SGL_TRANSPORT_DATA_BLOCK:
                if data:
                    return Response(w.SGL_INVALID_DATA)
                if length > idf.MAX_TRANSFER:
                    return Response(w.INVALID_FIELD)
                if direction == 1:
                    data = await self._collect(cmd.cid, length)
            else:
                return Response(w.SGL_INVALID_TYPE)
        elif data:
            return Response(w.SGL_INVALID_DATA)

        if cmd.opcode == w.FABRICS:
            return await self._fabrics(cmd, data)
        if self.ctrl is None:
            return Response(w.INVALID_OPCODE)  # only Connect is valid on an unconnected queue
        if self.qid == 0:
            resp = await self.ctrl.admin(self, cmd, data)
        else:
            resp = await self.ctrl.io(cmd, data)
        if resp is not None and resp.data is not None and direction == 2:
            # Return exactly what the host's SGL asked for (admin pages are padded/truncated).
            resp.data = resp.data[:length] + bytes(max(0, length - len(resp.data)))
        return resp

    async def _fabrics(self, cmd: w.Command, data: bytes | bytearray) -> Response:
        fct = cmd.fctype
        if fct == w.FCT_CONNECT:
            if self.ctrl is not None:
                return Response(w.CMD_SEQ_ERROR)
            return self.target.connect(self, cmd, data)
        if self.ctrl is None:
            return Response(w.INVALID_OPCODE)
        if fct == w.FCT_DISCONNECT:
            self._spawn(self._close_after_response())
            return Response()
        if self.qid != 0:
            return Response(w.INVALID_OPCODE)
        if fct == w.FCT_PROPERTY_GET:
            return self.ctrl.property_get(cmd)
        if fct == w.FCT_PROPERTY_SET:
            return self.ctrl.property_set(cmd)
        return Response(w.INVALID_OPCODE)

    async def _close_after_response(self) -> None:
        await asyncio.sleep(0)  # let the response be queued first
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.stream.flush(), 2)
        await self.close()

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for pending in self._r2t.values():
            if not pending.done.done():
                pending.done.set_exception(w.NvmeError(w.TRANSIENT_TRANSPORT, "connection closed"))
        self._r2t.clear()
        self.target.connection_closed(self)
        with contextlib.suppress(Exception):
            self.stream.close()
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()
