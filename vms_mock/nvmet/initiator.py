"""A small asyncio NVMe/TCP initiator (host) for protocol tests and the benchmark.

It speaks the same wire format as the Linux host (ICReq, Fabrics Connect, property handshake,
in-capsule or R2T/H2CData writes, C2HData reads, optional digests) and keeps many commands in
flight per queue. It is not a block device: it is a way to drive a target from Python.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
import uuid
from collections import deque
from dataclasses import dataclass, field

from . import wire as w
from .stream import PduStream

INLINE_DEFAULT = 8192


@dataclass
class Completion:
    status: int
    result: int
    data: bytes | bytearray = b""

    def check(self, what: str = "command") -> Completion:
        if self.status:
            raise w.NvmeError(self.status, f"{what} failed with NVMe status 0x{self.status:04x}", self.result)
        return self


class TermReqReceived(ConnectionError):
    def __init__(self, fes: int, fei: int) -> None:
        super().__init__(f"target terminated the connection: FES={fes} FEI={fei}")
        self.fes = fes
        self.fei = fei


@dataclass
class _Inflight:
    future: asyncio.Future[Completion]
    read_buf: bytearray | None = None
    write_data: bytes = b""
    received: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class InitiatorQueue:
    """One TCP connection = one NVMe queue."""

    def __init__(self, stream: PduStream, hdgst: bool, ddgst: bool) -> None:
        self.stream = stream
        self.hdgst = hdgst
        self.ddgst = ddgst
        self.maxh2cdata = 4096
        self.inline_limit = INLINE_DEFAULT
        self.qid = -1
        self._cids: deque[int] = deque(range(0xFFFF))
        self._inflight: dict[int, _Inflight] = {}
        self._lock = asyncio.Lock()
        self._rx: asyncio.Task[None] | None = None
        self.error: BaseException | None = None

    @classmethod
    async def open(cls, host: str, port: int, *, hdgst: bool = False, ddgst: bool = False,
                   hpda: int = 0, timeout: float = 10) -> InitiatorQueue:
        stream = await asyncio.wait_for(PduStream.connect(host, port), timeout)
        q = cls(stream, hdgst, ddgst)
        icreq = bytearray(128)
        struct.pack_into("<BBBBIHBBI", icreq, 0, w.ICREQ, 0, 128, 0, 128, 0, hpda,
                         (1 if hdgst else 0) | (2 if ddgst else 0), 0)
        await stream.send([bytes(icreq)])
        resp = await asyncio.wait_for(stream.readexactly(128), timeout)
        ptype, _f, hlen, _pdo, plen = w.COMMON.unpack_from(resp)
        if ptype != w.ICRESP or hlen != 128 or plen != 128:
            raise ConnectionError(f"bad ICResp: {resp[:8].hex()}")
        _pfv, _cpda, dgst, maxh2c = struct.unpack_from("<HBBI", resp, 8)
        q.hdgst, q.ddgst = bool(dgst & 1), bool(dgst & 2)
        q.maxh2cdata = maxh2c
        q._rx = asyncio.create_task(q._receive())
        return q

    # --- framing ---------------------------------------------------------------------------
    def _frame_parts(self, ptype: int, flags: int, tail: bytes, data: bytes | memoryview = b""
                     ) -> list[bytes | memoryview]:
        hlen = w.HLEN[ptype]
        hd = 4 if self.hdgst else 0
        dd = 4 if self.ddgst and len(data) else 0
        pdo = hlen + hd if len(data) else 0
        plen = hlen + hd + len(data) + dd
        hdr = w.header(ptype, flags | (w.FLAG_HDGST if hd else 0) | (w.FLAG_DDGST if dd else 0),
                       hlen, pdo, plen) + tail
        parts: list[bytes | memoryview] = [hdr + (w.digest(hdr) if hd else b"")]
        if len(data):
            parts.append(data)
            if dd:
                parts.append(w.digest(data))
        return parts

    def _frame(self, ptype: int, flags: int, tail: bytes, data: bytes = b"") -> bytes:
        return b"".join(bytes(p) for p in self._frame_parts(ptype, flags, tail, data))

    async def send_raw(self, *parts: bytes | bytearray | memoryview) -> None:
        """Write bytes as they are (also used for malformed-PDU tests)."""
        async with self._lock:
            await self.stream.send(parts)

    async def submit(self, opcode: int, *, nsid: int = 0, cdws: dict[int, int] | None = None,
                     fctype: int | None = None, write_data: bytes = b"", read_len: int = 0,
                     timeout: float = 30) -> Completion:
        if self.error:
            raise ConnectionError(f"queue failed: {self.error}")
        cid = self._cids.popleft()
        loop = asyncio.get_running_loop()
        inflight = _Inflight(loop.create_future(), bytearray(read_len) if read_len else None, write_data)
        self._inflight[cid] = inflight
        inline = b""
        if write_data and len(write_data) <= self.inline_limit:
            sgl = (w.SGL_DATA_BLOCK_OFFSET, 0, len(write_data))
            inline = write_data
        else:
            sgl = (w.SGL_TRANSPORT_DATA_BLOCK, 0, len(write_data) or read_len)
        sqe = w.build_sqe(opcode, cid, nsid, cdws, sgl, fctype)
        try:
            await self.send_raw(*self._frame_parts(w.CAPSULE_CMD, 0, sqe, inline))
            async with asyncio.timeout(timeout):
                return await inflight.future
        finally:
            self._inflight.pop(cid, None)
            self._cids.append(cid)

    async def _receive(self) -> None:
        try:
            while True:
                common = await self.stream.readexactly(8)
                ptype, _flags, hlen, pdo, plen = w.COMMON.unpack(common)
                if ptype == w.C2H_TERM_REQ:
                    rest = await self.stream.readexactly(plen - 8)
                    fes, fei = w.TERM_HDR.unpack_from(rest, 0)
                    raise TermReqReceived(fes, fei)
                hd = 4 if self.hdgst else 0
                rest = await self.stream.readexactly(hlen - 8 + hd)
                hdr = common + rest[:hlen - 8]
                if hd and rest[hlen - 8:] != w.digest(hdr):
                    raise ConnectionError("header digest mismatch from target")
                if plen > hlen + hd:
                    if pdo > hlen + hd:
                        await self.stream.readexactly(pdo - hlen - hd)
                    dd = 4 if self.ddgst else 0
                    if ptype != w.C2H_DATA:
                        raise ConnectionError(f"PDU type {ptype} with data")
                    dest = self._c2h_destination(hdr, plen - pdo - dd)
                    await self.stream.readinto(dest)
                    if dd and await self.stream.readexactly(4) != w.digest(dest):
                        raise ConnectionError("data digest mismatch from target")
                if ptype == w.CAPSULE_RESP:
                    result, _sqhd, _sqid, cid, st = w.parse_cqe(hdr[8:24])
                    inf = self._inflight.get(cid)
                    if inf and not inf.future.done():
                        inf.future.set_result(Completion(st, result, inf.read_buf or b""))
                elif ptype == w.C2H_DATA:
                    pass  # payload already placed by _c2h_destination
                elif ptype == w.R2T:
                    cid, ttag, off, length = w.DATA_HDR.unpack_from(hdr, 8)
                    inf = self._inflight.get(cid)
                    if inf is None:
                        raise ConnectionError(f"R2T for unknown cid {cid}")
                    await self._send_h2c(cid, ttag, inf.write_data, off, length)
                else:
                    raise ConnectionError(f"unexpected PDU type {ptype}")
        except (asyncio.IncompleteReadError, ConnectionError, OSError) as e:
            err = e if isinstance(e, ConnectionError) else ConnectionError(f"connection closed: {e}")
            self.error = err
            for inf in self._inflight.values():
                if not inf.future.done():
                    inf.future.set_exception(err)

    def _c2h_destination(self, hdr: bytes, length: int) -> memoryview:
        cid, _ttag, off, datal = w.DATA_HDR.unpack_from(hdr, 8)
        inf = self._inflight.get(cid)
        if inf is None or inf.read_buf is None or datal != length or off + length > len(inf.read_buf):
            raise ConnectionError(f"unexpected C2HData for cid {cid}")
        return memoryview(inf.read_buf)[off:off + length]

    async def _send_h2c(self, cid: int, ttag: int, payload: bytes, off: int, length: int) -> None:
        end = off + length
        pos = off
        view = memoryview(payload)
        async with self._lock:
            while pos < end:
                n = min(self.maxh2cdata, end - pos)
                last = w.FLAG_DATA_LAST if pos + n == end else 0
                await self.stream.send(self._frame_parts(w.H2C_DATA, last, w.DATA_HDR.pack(cid, ttag, pos, n),
                                                         view[pos:pos + n]))
                pos += n

    async def wait_closed(self, timeout: float = 5) -> BaseException | None:
        """Wait until the target closes this connection; returns why (e.g. TermReqReceived)."""
        if self._rx:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._rx), timeout)
        return self.error

    async def close(self) -> None:
        if self._rx:
            self._rx.cancel()
        self.stream.close()


class Initiator:
    """An NVMe-oF host association: an admin queue and N I/O queues to one subsystem."""

    def __init__(self, admin: InitiatorQueue, cntlid: int, subnqn: str, hostnqn: str) -> None:
        self.admin = admin
        self.cntlid = cntlid
        self.subnqn = subnqn
        self.hostnqn = hostnqn
        self.io: list[InitiatorQueue] = []
        self.identify_data = b""

    @staticmethod
    def connect_data(subnqn: str, hostnqn: str, hostid: bytes, cntlid: int) -> bytes:
        data = bytearray(1024)
        data[0:16] = hostid
        data[16:18] = cntlid.to_bytes(2, "little")
        data[256:256 + len(subnqn)] = subnqn.encode()
        data[512:512 + len(hostnqn)] = hostnqn.encode()
        return bytes(data)

    @staticmethod
    async def fabrics_connect(q: InitiatorQueue, *, subnqn: str, hostnqn: str, hostid: bytes, qid: int,
                              sqsize: int, cntlid: int = 0xFFFF, kato_ms: int = 0) -> Completion:
        c = await q.submit(w.FABRICS, fctype=w.FCT_CONNECT,
                           cdws={10: qid << 16, 11: sqsize - 1, 12: kato_ms},
                           write_data=Initiator.connect_data(subnqn, hostnqn, hostid, cntlid))
        if c.status == 0:
            q.qid = qid
        return c

    @classmethod
    async def connect(cls, host: str, port: int, subnqn: str, hostnqn: str, *, hostid: bytes | None = None,
                      kato_ms: int = 5000, hdgst: bool = False, ddgst: bool = False, io_queues: int = 1,
                      queue_size: int = 32) -> Initiator:
        hostid = hostid or uuid.uuid5(uuid.NAMESPACE_URL, hostnqn).bytes
        admin = await InitiatorQueue.open(host, port, hdgst=hdgst, ddgst=ddgst)
        opened: list[InitiatorQueue] = []
        try:
            c = await cls.fabrics_connect(admin, subnqn=subnqn, hostnqn=hostnqn, hostid=hostid, qid=0,
                                          sqsize=32, kato_ms=kato_ms)
            c.check("Connect")
            self = cls(admin, c.result & 0xFFFF, subnqn, hostnqn)
            await self.enable()
            self.identify_data = bytes((await self.identify(1)).data)
            discovery = subnqn == w.DISCOVERY_NQN
            if not discovery and io_queues:
                ioccsz = int.from_bytes(self.identify_data[1792:1796], "little")
                granted = (await self.set_features(w.FEAT_NUM_QUEUES, (io_queues - 1) | (io_queues - 1) << 16)
                           ).check("Set Features (number of queues)").result
                n = min(io_queues, (granted & 0xFFFF) + 1)
                for qid in range(1, n + 1):
                    q = await InitiatorQueue.open(host, port, hdgst=hdgst, ddgst=ddgst)
                    opened.append(q)
                    q.inline_limit = max(0, ioccsz * 16 - 64)
                    (await cls.fabrics_connect(q, subnqn=subnqn, hostnqn=hostnqn, hostid=hostid, qid=qid,
                                               sqsize=queue_size, cntlid=self.cntlid)).check("I/O Connect")
                    self.io.append(q)
            return self
        except BaseException:
            for q in opened:
                await q.close()
            await admin.close()
            raise

    # --- admin -----------------------------------------------------------------------------
    async def property_get(self, offset: int, size8: bool = False) -> int:
        c = await self.admin.submit(w.FABRICS, fctype=w.FCT_PROPERTY_GET,
                                    cdws={10: 1 if size8 else 0, 11: offset})
        return c.check("Property Get").result

    async def property_set(self, offset: int, value: int) -> None:
        raw = value.to_bytes(8, "little")
        (await self.admin.submit(w.FABRICS, fctype=w.FCT_PROPERTY_SET,
                                 cdws={10: 0, 11: offset, 12: int.from_bytes(raw[:4], "little"),
                                       13: int.from_bytes(raw[4:], "little")})).check("Property Set")

    async def enable(self, timeout: float = 5) -> None:
        await self.property_get(w.PROP_CAP, size8=True)
        await self.property_set(w.PROP_CC, 1 | 6 << 16 | 4 << 20)
        deadline = asyncio.get_running_loop().time() + timeout
        while not (await self.property_get(w.PROP_CSTS)) & 1:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("controller never became ready")
            await asyncio.sleep(0.01)

    async def identify(self, cns: int, nsid: int = 0, cdw11: int = 0) -> Completion:
        return await self.admin.submit(w.ADM_IDENTIFY, nsid=nsid, cdws={10: cns, 11: cdw11}, read_len=4096)

    async def get_log_page(self, lid: int, length: int, offset: int = 0, rae: bool = False,
                           nsid: int = 0xFFFFFFFF) -> Completion:
        numd = length // 4 - 1
        return await self.admin.submit(
            w.ADM_GET_LOG_PAGE, nsid=nsid, read_len=length,
            cdws={10: lid | (1 << 15 if rae else 0) | (numd & 0xFFFF) << 16, 11: numd >> 16,
                  12: offset & 0xFFFFFFFF, 13: offset >> 32})

    async def set_features(self, fid: int, value: int) -> Completion:
        return await self.admin.submit(w.ADM_SET_FEATURES, cdws={10: fid, 11: value})

    async def get_features(self, fid: int) -> Completion:
        return await self.admin.submit(w.ADM_GET_FEATURES, cdws={10: fid})

    async def keep_alive(self) -> Completion:
        return await self.admin.submit(w.ADM_KEEP_ALIVE)

    async def async_event(self, timeout: float = 30) -> Completion:
        return await self.admin.submit(w.ADM_ASYNC_EVENT, timeout=timeout)

    async def discovery_entries(self) -> list[dict[str, object]]:
        head = (await self.get_log_page(w.LOG_DISCOVERY, 1024)).check("discovery log").data
        numrec = int.from_bytes(head[8:16], "little")
        page = (await self.get_log_page(w.LOG_DISCOVERY, 1024 * (1 + numrec))).check("discovery log").data
        out = []
        for i in range(numrec):
            e = page[1024 * (i + 1):1024 * (i + 2)]
            out.append({"trtype": e[0], "subtype": e[2], "subnqn": w.nqn_field(e, 256),
                        "traddr": w.nqn_field(e, 512), "trsvcid": w.nqn_field(e, 32, 32)})
        return out

    # --- I/O -------------------------------------------------------------------------------
    def _q(self, qid: int) -> InitiatorQueue:
        return self.io[(qid - 1) % len(self.io)]

    async def read(self, nsid: int, slba: int, nlb: int, *, qid: int = 1, lba_size: int = 512) -> Completion:
        return await self._q(qid).submit(w.IO_READ, nsid=nsid, read_len=nlb * lba_size,
                                         cdws={10: slba & 0xFFFFFFFF, 11: slba >> 32, 12: nlb - 1})

    async def write(self, nsid: int, slba: int, data: bytes, *, fua: bool = False, qid: int = 1,
                    lba_size: int = 512) -> Completion:
        nlb = len(data) // lba_size
        return await self._q(qid).submit(
            w.IO_WRITE, nsid=nsid, write_data=data,
            cdws={10: slba & 0xFFFFFFFF, 11: slba >> 32, 12: (nlb - 1) | (1 << 30 if fua else 0)})

    async def flush(self, nsid: int, *, qid: int = 1) -> Completion:
        return await self._q(qid).submit(w.IO_FLUSH, nsid=nsid)

    async def write_zeroes(self, nsid: int, slba: int, nlb: int, *, qid: int = 1) -> Completion:
        return await self._q(qid).submit(w.IO_WRITE_ZEROES, nsid=nsid,
                                         cdws={10: slba & 0xFFFFFFFF, 11: slba >> 32, 12: nlb - 1})

    async def deallocate(self, nsid: int, ranges: list[tuple[int, int]], *, qid: int = 1) -> Completion:
        """Dataset Management with the deallocate attribute over (slba, nlb) ranges."""
        data = b"".join(struct.pack("<IIQ", 0, nlb, slba) for slba, nlb in ranges)
        return await self._q(qid).submit(w.IO_DSM, nsid=nsid, write_data=data,
                                         cdws={10: len(ranges) - 1, 11: 1 << 2})

    async def close(self) -> None:
        for q in self.io:
            await q.close()
        await self.admin.close()


def random_hostnqn() -> str:
    return f"nqn.2014-08.org.nvmexpress:uuid:{uuid.UUID(bytes=os.urandom(16))}"
