"""One NVMe controller (an association of a host with a subsystem): properties, admin commands,
features, asynchronous events, keep-alive bookkeeping and the I/O command set.
"""

from __future__ import annotations

import hashlib
import logging
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import identify as idf
from . import wire as w
from .blockio import BlockIO
from .metrics import BYTES_READ, BYTES_WRITTEN
from .provider import NamespaceProvider, NamespaceRecord

if TYPE_CHECKING:
    from .connection import QueueConnection

log = logging.getLogger("vms_mock.nvmet")

AEN_TYPE_NOTICE = 2
AEN_INFO_NS_ATTR_CHANGED = 0


@dataclass
class Response:
    status: int = w.OK
    result: int = 0
    data: bytes | bytearray | None = None


class Controller:
    def __init__(self, *, cntlid: int, subnqn: str, hostnqn: str, hostid: bytes, kato_ms: int,
                 provider: NamespaceProvider, blockio: BlockIO, discovery_log: Callable[[str], bytes]
                 ) -> None:
        self.cntlid = cntlid
        self.subnqn = subnqn
        self.hostnqn = hostnqn
        self.hostid = hostid
        self.kato_ms = kato_ms
        self.discovery = subnqn == w.DISCOVERY_NQN
        self.provider = provider
        self.blockio = blockio
        self._discovery_log = discovery_log
        self.cc = 0
        self.csts = 0
        self.nr_io_queues = idf.MAX_IO_QUEUES
        self.aen_config = 0
        self.queues: dict[int, QueueConnection] = {}
        self.last_activity = time.monotonic()
        self.serial = hashlib.sha256(subnqn.encode()).hexdigest()[:20]
        self._aers: deque[tuple[QueueConnection, int]] = deque()
        self._events: deque[int] = deque()
        self._ns_event_masked = False
        self.changed_nsids: set[int] = set()
        self.io_stats = [0, 0, 0, 0]  # bytes read, bytes written, read commands, write commands
        self.ns: dict[int, NamespaceRecord] = {}
        if not self.discovery:
            self.ns = {r.nsid: r for r in provider.namespaces(subnqn, hostnqn)}

    def __repr__(self) -> str:
        return f"Controller(cntlid={self.cntlid}, subnqn={self.subnqn!r}, hostnqn={self.hostnqn!r})"

    # --- state changes from outside ----------------------------------------------------------
    def touch(self) -> None:
        self.last_activity = time.monotonic()

    def keep_alive_expired(self, now: float) -> bool:
        # Like the Linux target, a controller dies when a whole window passes without traffic;
        # the window is twice KATO so a host sending Keep Alive every KATO never races it.
        return self.kato_ms > 0 and now - self.last_activity > 2 * self.kato_ms / 1000

    def refresh_namespaces(self) -> set[int]:
        """Re-read the namespaces this host sees; post a namespace-attribute-changed event."""
        if self.discovery:
            return set()
        new = {r.nsid: r for r in self.provider.namespaces(self.subnqn, self.hostnqn)}
        changed = {n for n in set(new) | set(self.ns) if new.get(n) != self.ns.get(n)}
        self.ns = new
        if changed:
            self.changed_nsids |= changed
            if self.aen_config & idf.OAES_NS_ATTR and not self._ns_event_masked:
                self._ns_event_masked = True
                self._post_event(AEN_TYPE_NOTICE | AEN_INFO_NS_ATTR_CHANGED << 8 | w.LOG_CHANGED_NS << 16)
        return changed

    def _post_event(self, dw0: int) -> None:
        self._events.append(dw0)
        self._deliver_events()

    def _deliver_events(self) -> None:
        while self._events and self._aers:
            conn, cid = self._aers.popleft()
            if conn.closed:
                continue
            conn.complete_later(cid, Response(result=self._events.popleft()))

    def forget_queue(self, conn: QueueConnection) -> None:
        if self.queues.get(conn.qid) is conn:
            del self.queues[conn.qid]
        self._aers = deque(a for a in self._aers if a[0] is not conn)

    # --- fabrics -----------------------------------------------------------------------------
    def property_get(self, cmd: w.Command) -> Response:
        size8 = cmd.raw[40] & 0x7 == 1
        offset = cmd.cdw(11)
        values = {w.PROP_CAP: idf.controller_capabilities(), w.PROP_VS: idf.NVME_VS,
                  w.PROP_CC: self.cc, w.PROP_CSTS: self.csts}
        if offset not in values or (offset == w.PROP_CAP) != size8:
            return Response(w.INVALID_FIELD)
        return Response(result=values[offset])

    def property_set(self, cmd: w.Command) -> Response:
        offset = cmd.cdw(11)
        value = int.from_bytes(cmd.raw[48:56], "little")
        if offset != w.PROP_CC:
            return Response(w.INVALID_FIELD)
        old, self.cc = self.cc, value & 0xFFFFFFFF
        if self.cc & 1 and not old & 1:
            self.csts = 1  # RDY
        elif not self.cc & 1 and old & 1:
            self.csts = 0  # controller reset
        shn = (self.cc >> 14) & 3
        if shn:
            self.csts = (self.csts & ~0xC) | (2 << 2)  # shutdown processing complete
        return Response()

    # --- admin commands ----------------------------------------------------------------------
    async def admin(self, conn: QueueConnection, cmd: w.Command, data: bytes | bytearray) -> Response | None:
        """Execute an admin command; None means "completes later" (AER)."""
        if not (self.cc & 1 and self.csts & 1):
            return Response(w.CMD_SEQ_ERROR)
        op = cmd.opcode
        if op == w.ADM_IDENTIFY:
            return self._identify(cmd)
        if op == w.ADM_GET_LOG_PAGE:
            return self._get_log_page(cmd)
        if op == w.ADM_SET_FEATURES:
            return self._set_features(cmd)
        if op == w.ADM_GET_FEATURES:
            return self._get_features(cmd)
        if op == w.ADM_KEEP_ALIVE:
            return Response()
        if op == w.ADM_ASYNC_EVENT:
            if len(self._aers) > idf.AERL:
                return Response(w.AER_LIMIT)
            self._aers.append((conn, cmd.cid))
            self._deliver_events()
            return None
        if op == w.ADM_ABORT and not self.discovery:
            return Response(result=1)  # command not aborted
        return Response(w.INVALID_OPCODE)

    def _identify(self, cmd: w.Command) -> Response:
        cns = cmd.cdw(10) & 0xFF
        if cns == idf.CNS_CONTROLLER:
            nn = max([1024, *self.ns])
            return Response(data=idf.identify_controller(
                cntlid=self.cntlid, subnqn=self.subnqn, serial=self.serial, discovery=self.discovery,
                nn=0 if self.discovery else nn))
        if self.discovery:
            return Response(w.INVALID_FIELD)
        nsid = cmd.nsid
        if cns == idf.CNS_NAMESPACE:
            if nsid == 0 or nsid == 0xFFFFFFFF:
                return Response(w.INVALID_NS)
            return Response(data=idf.identify_namespace(self.ns.get(nsid)))
        if cns == idf.CNS_ACTIVE_NS:
            if nsid >= 0xFFFFFFFE:
                return Response(w.INVALID_NS)
            return Response(data=idf.active_ns_list(list(self.ns), nsid))
        if cns == idf.CNS_NS_DESCRIPTORS:
            rec = self.ns.get(nsid)
            if rec is None:
                return Response(w.INVALID_NS)
            return Response(data=idf.ns_descriptors(rec))
        if cns == idf.CNS_CS_CONTROLLER and (cmd.cdw(11) >> 24) == 0:
            return Response(data=bytes(4096))  # NVM command set: no extra limits
        return Response(w.INVALID_FIELD)

    def _get_log_page(self, cmd: w.Command) -> Response:
        lid = cmd.cdw(10) & 0xFF
        rae = bool(cmd.cdw(10) & (1 << 15))
        numd = ((cmd.cdw(11) & 0xFFFF) << 16 | cmd.cdw(10) >> 16) + 1
        length = numd * 4
        offset = cmd.cdw(12) | cmd.cdw(13) << 32
        if offset & 3:
            return Response(w.INVALID_FIELD)
        if self.discovery:
            if lid != w.LOG_DISCOVERY:
                return Response(w.INVALID_LOG_PAGE)
            page = self._discovery_log(self.hostnqn)
        elif lid == w.LOG_ERROR:
            page = bytes(64)
        elif lid == w.LOG_SMART:
            page = idf.smart_log(*self.io_stats)
        elif lid == w.LOG_FW_SLOT:
            page = idf.fw_slot_log()
        elif lid == w.LOG_CHANGED_NS:
            page = idf.changed_ns_log(list(self.changed_nsids))
            if not rae:
                self.changed_nsids.clear()
                self._ns_event_masked = False
        else:
            return Response(w.INVALID_LOG_PAGE)
        if offset > len(page):
            return Response(w.INVALID_FIELD)
        chunk = page[offset:offset + length]
        return Response(data=chunk + bytes(length - len(chunk)))

    def _set_features(self, cmd: w.Command) -> Response:
        fid = cmd.cdw(10) & 0xFF
        value = cmd.cdw(11)
        if fid == w.FEAT_KATO:
            self.kato_ms = value
            return Response()
        if fid == w.FEAT_ASYNC_EVENT:
            self.aen_config = value
            return Response()
        if self.discovery:
            return Response(w.INVALID_FIELD)
        if fid == w.FEAT_NUM_QUEUES:
            nsqr, ncqr = value & 0xFFFF, value >> 16
            if nsqr == 0xFFFF or ncqr == 0xFFFF:
                return Response(w.INVALID_FIELD)
            n = min(nsqr, ncqr, idf.MAX_IO_QUEUES - 1)
            self.nr_io_queues = n + 1
            return Response(result=n | n << 16)
        if fid == w.FEAT_VOLATILE_WC:
            return Response()
        return Response(w.INVALID_FIELD)

    def _get_features(self, cmd: w.Command) -> Response:
        fid = cmd.cdw(10) & 0xFF
        if fid == w.FEAT_KATO:
            return Response(result=self.kato_ms)
        if fid == w.FEAT_ASYNC_EVENT:
            return Response(result=self.aen_config)
        if not self.discovery:
            if fid == w.FEAT_NUM_QUEUES:
                n = self.nr_io_queues - 1
                return Response(result=n | n << 16)
            if fid == w.FEAT_VOLATILE_WC:
                return Response(result=1)
        return Response(w.INVALID_FIELD)

    # --- I/O command set ---------------------------------------------------------------------
    def _namespace(self, nsid: int) -> NamespaceRecord | None:
        return self.ns.get(nsid)

    async def io(self, cmd: w.Command, data: bytes | bytearray) -> Response:
        if not (self.cc & 1 and self.csts & 1):
            return Response(w.CMD_SEQ_ERROR)
        op = cmd.opcode
        if op not in (w.IO_FLUSH, w.IO_WRITE, w.IO_READ, w.IO_WRITE_ZEROES, w.IO_DSM):
            return Response(w.INVALID_OPCODE)
        if op == w.IO_FLUSH and cmd.nsid == 0xFFFFFFFF:
            for rec in list(self.ns.values()):
                await self.blockio.flush(rec.backing_path)
            return Response()
        found = self._namespace(cmd.nsid)
        if found is None:
            return Response(w.INVALID_NS)
        rec = found
        if op == w.IO_FLUSH:
            await self.blockio.flush(rec.backing_path)
            return Response()
        if op == w.IO_DSM:
            return await self._dsm(cmd, rec, data)
        slba = cmd.cdw(10) | cmd.cdw(11) << 32
        nlb = (cmd.cdw(12) & 0xFFFF) + 1
        nsze = rec.size >> idf.LBA_SHIFT
        if slba + nlb > nsze:
            return Response(w.LBA_RANGE)
        offset, length = slba << idf.LBA_SHIFT, nlb << idf.LBA_SHIFT
        if op == w.IO_WRITE_ZEROES:
            await self.blockio.deallocate(rec.backing_path, offset, length, rec.size)
            if cmd.cdw(12) & (1 << 30):
                await self.blockio.flush(rec.backing_path)
            return Response()
        if length > idf.MAX_TRANSFER:
            return Response(w.INVALID_FIELD)
        if cmd.sgl_length != length:
            return Response(w.SGL_INVALID_DATA)
        if op == w.IO_READ:
            out = await self.blockio.read(rec.backing_path, offset, length, rec.size)
            BYTES_READ.inc(length)
            self.io_stats[0] += length
            self.io_stats[2] += 1
            return Response(data=out)
        fua = bool(cmd.cdw(12) & (1 << 30))
        await self.blockio.write(rec.backing_path, offset, data, rec.size, fua=fua)
        BYTES_WRITTEN.inc(length)
        self.io_stats[1] += length
        self.io_stats[3] += 1
        return Response()

    async def _dsm(self, cmd: w.Command, rec: NamespaceRecord, data: bytes | bytearray) -> Response:
        nr = (cmd.cdw(10) & 0xFF) + 1
        # The transfer may be longer than the ranges (Linux sends a whole buffer for one range),
        # never shorter - the same rule as the Linux target.
        if len(data) < nr * 16:
            return Response(w.SGL_INVALID_DATA)
        if not cmd.cdw(11) & (1 << 2):  # only "deallocate" has an effect; other hints are advisory
            return Response()
        nsze = rec.size >> idf.LBA_SHIFT
        ranges = [struct.unpack_from("<IIQ", data, i * 16) for i in range(nr)]
        if any(slba + nlb > nsze for _attr, nlb, slba in ranges):
            return Response(w.LBA_RANGE)
        for _attr, nlb, slba in ranges:
            await self.blockio.deallocate(rec.backing_path, slba << idf.LBA_SHIFT,
                                          nlb << idf.LBA_SHIFT, rec.size)
        return Response()

