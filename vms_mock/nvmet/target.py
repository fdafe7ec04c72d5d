"""The NVMe/TCP target: listeners, the controller registry, Fabrics Connect and access control,
namespace change notification and keep-alive enforcement.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time

from . import identify as idf
from . import wire as w
from .blockio import BlockIO
from .connection import QueueConnection
from .controller import Controller, Response
from .metrics import CONNECTIONS, CONTROLLERS, LOOP_LAG, LOOP_LAG_MAX
from .provider import NamespaceProvider
from .stream import PduStream, serve

log = logging.getLogger("vms_mock.nvmet")

CONNECT_DATA_LEN = 1024


def _iattr_connect_data(offset: int) -> int:
    """Connect response DW0 naming the bad field: IATTR=1 (connect data), IPO = byte offset."""
    return 1 << 16 | offset


class NvmeTarget:
    """Serve the provider's subsystems over NVMe/TCP on an I/O port and a discovery port."""

    def __init__(self, provider: NamespaceProvider, *, host: str = "127.0.0.1", io_port: int = 4420,
                 discovery_port: int = 8009, advertise_addr: str | None = None, io_workers: int = 16,
                 poll_interval: float = 0.25) -> None:
        self.provider = provider
        self.host = host
        self.want_ports = {"io": io_port, "discovery": discovery_port}
        self.advertise_addr = advertise_addr
        self.blockio = BlockIO(workers=io_workers)
        self.poll_interval = poll_interval
        self.ports: dict[str, int] = {}
        self.controllers: dict[int, Controller] = {}
        self._conns: set[QueueConnection] = set()
        self._conn_tasks: set[asyncio.Task[None]] = set()
        self._next_cntlid = 1
        self._bg: list[asyncio.Task[None]] = []
        self._seq = -1

    # --- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        for kind in ("io", "discovery"):
            lsock, accept_task = await serve(self.host, self.want_ports[kind],
                                             functools.partial(self._serve, kind=kind))
            self._bg.append(accept_task)
            self.ports[kind] = lsock.getsockname()[1]
        self._seq = self.provider.change_seq()
        self._bg.append(asyncio.create_task(self._watch()))
        self._bg.append(asyncio.create_task(self._lag_probe()))
        log.info("NVMe/TCP target listening", extra={"host": self.host, **self.ports})

    async def close(self) -> None:
        for task in self._bg:
            task.cancel()
        self._bg = []
        for conn in list(self._conns):
            await conn.close()
        if self._conn_tasks:
            await asyncio.wait(list(self._conn_tasks), timeout=2)
        self.blockio.close()

    async def _serve(self, stream: PduStream, kind: str) -> None:
        conn = QueueConnection(self, stream, kind)
        self._conns.add(conn)
        CONNECTIONS.inc()
        task = asyncio.current_task()
        if task is not None:
            self._conn_tasks.add(task)
            task.add_done_callback(self._conn_tasks.discard)
        await conn.run()

    def connection_closed(self, conn: QueueConnection) -> None:
        if conn in self._conns:
            self._conns.discard(conn)
            CONNECTIONS.dec()
        ctrl = conn.ctrl
        if ctrl is None:
            return
        ctrl.forget_queue(conn)
        if conn.qid == 0:
            self._destroy(ctrl, "admin queue closed")

    def _destroy(self, ctrl: Controller, why: str) -> None:
        if self.controllers.pop(ctrl.cntlid, None) is None:
            return
        CONTROLLERS.dec()
        log.info("controller gone", extra={"cntlid": ctrl.cntlid, "subnqn": ctrl.subnqn,
                                           "hostnqn": ctrl.hostnqn, "reason": why})
        for q in list(ctrl.queues.values()):
            asyncio.get_running_loop().create_task(q.close())

    # --- change notification and keep-alive ----------------------------------------------
    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                self.poll_once()
            except Exception:  # the provider is someone else's code: log, keep serving
                log.exception("namespace refresh failed")

    async def _lag_probe(self, period: float = 0.05) -> None:
        """Measure how late the loop runs a timer: the proof that data I/O stays off the loop."""
        worst = 0.0
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(period)
            lag = max(0.0, loop.time() - start - period)
            LOOP_LAG.observe(lag)
            if lag > worst:
                worst = lag
                LOOP_LAG_MAX.set(lag)

    def poll_once(self) -> None:
        now = time.monotonic()
        for ctrl in list(self.controllers.values()):
            if ctrl.keep_alive_expired(now):
                log.warning("keep-alive timeout; controller failed",
                            extra={"cntlid": ctrl.cntlid, "hostnqn": ctrl.hostnqn, "kato_ms": ctrl.kato_ms})
                ctrl.csts |= 2  # CFS
                self._destroy(ctrl, "keep-alive timeout")
        seq = self.provider.change_seq()
        if seq == self._seq:
            return
        self._seq = seq
        for ctrl in list(self.controllers.values()):
            changed = ctrl.refresh_namespaces()
            if changed:
                log.info("namespaces changed", extra={"cntlid": ctrl.cntlid, "nsids": sorted(changed)})
        self.blockio.revalidate({r.backing_path for c in self.controllers.values() for r in c.ns.values()})

    def request_refresh(self) -> None:
        """Re-read state now (the state store calls this through the loop after a commit)."""
        if self._bg:
            try:
                self.poll_once()
            except Exception:
                log.exception("namespace refresh failed")

    def discovery_log(self, conn_addr: str, hostnqn: str) -> bytes:
        addr = self.advertise_addr or conn_addr
        entries = [(nqn, addr, self.ports["io"]) for nqn in self.provider.visible_subsystems(hostnqn)]
        return idf.discovery_log(self.provider.change_seq(), entries)

    # --- Fabrics Connect -------------------------------------------------------------------
    def _alloc_cntlid(self) -> int:
        for _ in range(0xFFEF):
            c = self._next_cntlid
            self._next_cntlid = c + 1 if c < 0xFFEF else 1
            if c not in self.controllers:
                return c
        raise w.NvmeError(w.status(0x81, w.SCT_CMD_SPECIFIC))  # controller busy

    def connect(self, conn: QueueConnection, cmd: w.Command, data: bytes | bytearray) -> Response:
        if len(data) != CONNECT_DATA_LEN:
            return Response(w.SGL_INVALID_DATA)
        recfmt, qid, sqsize = int.from_bytes(cmd.raw[40:42], "little"), cmd.cdw(10) >> 16, \
            cmd.cdw(11) & 0xFFFF
        kato = cmd.cdw(12)
        if recfmt != 0:
            return Response(w.status(0x80, w.SCT_CMD_SPECIFIC))  # incompatible format
        if sqsize == 0 or sqsize > idf.MQES:
            return Response(w.CONNECT_INVALID_PARAM, result=44)  # IATTR 0 (SQE), IPO = SQSIZE
        hostid = bytes(data[0:16])
        cntlid = int.from_bytes(data[16:18], "little")
        try:
            subnqn = w.nqn_field(data, 256)
            hostnqn = w.nqn_field(data, 512)
        except UnicodeDecodeError:
            return Response(w.CONNECT_INVALID_PARAM, result=_iattr_connect_data(256))
        if not hostnqn:
            return Response(w.CONNECT_INVALID_HOST, result=_iattr_connect_data(512))
        discovery = subnqn == w.DISCOVERY_NQN
        if conn.port_kind == "discovery" and not discovery:
            return Response(w.CONNECT_INVALID_PARAM, result=_iattr_connect_data(256))
        if not discovery:
            if not self.provider.subsystem_exists(subnqn):
                log.info("connect to an unknown subsystem refused", extra={"subnqn": subnqn,
                                                                          "hostnqn": hostnqn})
                return Response(w.CONNECT_INVALID_PARAM, result=_iattr_connect_data(256))
            if not self.provider.host_allowed(hostnqn, subnqn):
                log.info("connect from a host without mappings refused",
                         extra={"subnqn": subnqn, "hostnqn": hostnqn})
                return Response(w.CONNECT_INVALID_HOST, result=_iattr_connect_data(512))
        if qid == 0:
            ctrl = Controller(cntlid=self._alloc_cntlid(), subnqn=subnqn, hostnqn=hostnqn, hostid=hostid,
                              kato_ms=kato, provider=self.provider, blockio=self.blockio,
                              discovery_log=functools.partial(self.discovery_log, conn.local_addr))
            self.controllers[ctrl.cntlid] = ctrl
            CONTROLLERS.inc()
            log.info("controller created", extra={"cntlid": ctrl.cntlid, "subnqn": subnqn,
                                                  "hostnqn": hostnqn, "kato_ms": kato})
        else:
            found = self.controllers.get(cntlid)
            if found is None or found.subnqn != subnqn or found.hostnqn != hostnqn:
                return Response(w.CONNECT_INVALID_PARAM, result=_iattr_connect_data(16))
            ctrl = found
            if discovery or qid > ctrl.nr_io_queues or qid in ctrl.queues:
                return Response(w.CONNECT_INVALID_PARAM, result=42)  # IATTR 0 (SQE), IPO = QID
            if not ctrl.cc & 1:
                return Response(w.CMD_SEQ_ERROR)
        conn.ctrl = ctrl
        conn.qid = qid
        conn.qsize = sqsize + 1
        conn.sqhd = conn.sqhd % conn.qsize
        ctrl.queues[qid] = conn
        ctrl.touch()
        return Response(result=ctrl.cntlid)
