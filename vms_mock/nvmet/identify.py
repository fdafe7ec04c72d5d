"""Identify data structures and log pages (NVMe base spec 1.4 layouts)."""

from __future__ import annotations

import struct
from collections.abc import Sequence

from .provider import NamespaceRecord
from .wire import fixed

LBA_SHIFT = 9  # 512-byte logical blocks, like the Linux target's file backend
LBA_SIZE = 1 << LBA_SHIFT
MDTS = 8  # max data transfer 2^8 * 4 KiB = 1 MiB
MAX_TRANSFER = (1 << MDTS) * 4096
INLINE_DATA = 8192  # in-capsule data a host may send with a command
MQES = 127  # 0-based: 128 entries per queue
MAX_IO_QUEUES = 16
AERL = 3  # 0-based: 4 outstanding Async Event Requests
KAS = 10  # keep-alive granularity in 100 ms units
NVME_VS = 0x00010300  # 1.3
OAES_NS_ATTR = 1 << 8
CNTRLTYPE_IO = 1
CNTRLTYPE_DISCOVERY = 2

CNS_NAMESPACE = 0x00
CNS_CONTROLLER = 0x01
CNS_ACTIVE_NS = 0x02
CNS_NS_DESCRIPTORS = 0x03
CNS_CS_CONTROLLER = 0x06


def controller_capabilities() -> int:
    """CAP: MQES, CQR, TO = 7.5 s, CSS = NVM command set, MPSMIN = 4 KiB."""
    return MQES | (1 << 16) | (15 << 24) | (1 << 37)


def identify_controller(*, cntlid: int, subnqn: str, serial: str, discovery: bool, nn: int) -> bytes:
    b = bytearray(4096)
    struct.pack_into("<HH", b, 0, 0x1B36, 0x1B36)  # VID/SSVID (QEMU-style; any non-zero)
    b[4:24] = fixed(serial, 20)
    b[24:64] = fixed("kubevast vms-mock NVMe/TCP target", 40)
    b[64:72] = fixed("1.0", 8)
    b[72] = 6  # RAB
    b[76] = 0 if discovery else 0x02  # CMIC: may have several controllers (one per host)
    b[77] = MDTS
    struct.pack_into("<H", b, 78, cntlid)
    struct.pack_into("<I", b, 80, NVME_VS)
    struct.pack_into("<I", b, 92, 0 if discovery else OAES_NS_ATTR)
    b[111] = CNTRLTYPE_DISCOVERY if discovery else CNTRLTYPE_IO
    struct.pack_into("<H", b, 256, 0)  # OACS: no optional admin commands
    b[258] = 3  # ACL
    b[259] = AERL
    b[260] = 0x03  # FRMW: slot 1 read-only, 1 slot
    b[261] = 0x04  # LPA: extended data for Get Log Page
    b[262] = 0  # ELPE: 1 error log entry
    struct.pack_into("<H", b, 320, KAS)
    b[512] = 0x66  # SQES
    b[513] = 0x44  # CQES
    struct.pack_into("<H", b, 514, MQES + 1)  # MAXCMD
    struct.pack_into("<I", b, 516, nn)
    # ONCS: Dataset Management (bit 2) and Write Zeroes (bit 3)
    struct.pack_into("<H", b, 520, 0 if discovery else 0x000C)
    b[525] = 0 if discovery else 0x01  # VWC present: hosts send Flush/FUA
    # SGLS: SGLs supported (bit 0); offsets in-capsule (bit 20)
    struct.pack_into("<I", b, 536, (1 << 0) | (1 << 20))
    b[768:1024] = fixed(subnqn, 256, b"\0")
    # Fabrics: IOCCSZ (16-byte units), IORCSZ, ICDOFF, FCATT, MSDBD
    struct.pack_into("<IIHBB", b, 1792, (64 + INLINE_DATA) // 16, 1, 0, 0, 1)
    return bytes(b)


def identify_namespace(rec: NamespaceRecord | None) -> bytes:
    b = bytearray(4096)
    if rec is None:  # allocated but inactive NSID: all zeros
        return bytes(b)
    nsze = rec.size >> LBA_SHIFT
    struct.pack_into("<QQQ", b, 0, nsze, nsze, nsze)
    b[24] = 0x01  # NSFEAT: thin provisioned
    b[25] = 0  # NLBAF: one format
    b[26] = 0  # FLBAS: format 0
    b[30] = 0x01  # NMIC: may be attached to several controllers
    b[33] = 0x09  # DLFEAT: deallocated blocks read zeros; write zeroes may deallocate
    b[104:120] = rec.nguid
    struct.pack_into("<HBB", b, 128, 0, LBA_SHIFT, 0)  # LBAF0: no metadata, 512 B
    return bytes(b)


def active_ns_list(nsids: Sequence[int], after: int) -> bytes:
    ids = sorted(n for n in nsids if n > after)[:1024]
    return struct.pack(f"<{len(ids)}I", *ids) + bytes(4096 - 4 * len(ids))


def ns_descriptors(rec: NamespaceRecord) -> bytes:
    out = bytearray()
    out += bytes([0x02, 16, 0, 0]) + rec.nguid  # NGUID
    out += bytes([0x03, 16, 0, 0]) + rec.uuid.bytes  # UUID
    out += bytes([0x04, 1, 0, 0, 0])  # CSI: NVM command set
    return bytes(out) + bytes(4096 - len(out))


def smart_log(bytes_read: int = 0, bytes_written: int = 0, reads: int = 0, writes: int = 0) -> bytes:
    """SMART / health page; data units are thousands of 512-byte units, rounded up (spec)."""
    b = bytearray(512)
    struct.pack_into("<BHBB", b, 0, 0, 300, 100, 10)  # no warnings, 300 K, 100% spare, threshold 10%
    for off, value in ((32, -(-bytes_read // 512_000)), (48, -(-bytes_written // 512_000)),
                       (64, reads), (80, writes)):
        b[off:off + 16] = value.to_bytes(16, "little")
    return bytes(b)


def fw_slot_log() -> bytes:
    b = bytearray(512)
    b[0] = 1  # active slot 1
    b[8:16] = fixed("1.0", 8)
    return bytes(b)


def changed_ns_log(nsids: Sequence[int]) -> bytes:
    ids = sorted(set(nsids))
    if len(ids) > 1024:
        ids = [0xFFFFFFFF]  # more than 1024 changed: the list overflows
    return struct.pack(f"<{len(ids)}I", *ids) + bytes(4096 - 4 * len(ids))


def discovery_log(genctr: int, entries: Sequence[tuple[str, str, int]], portid: int = 1) -> bytes:
    """Header + one 1024-byte entry per (subsystem NQN, traddr, trsvcid)."""
    b = bytearray(1024 * (1 + len(entries)))
    struct.pack_into("<QQH", b, 0, genctr, len(entries), 0)
    for i, (nqn, traddr, port) in enumerate(entries):
        off = 1024 * (i + 1)
        # TRTYPE TCP, ADRFAM IPv4/IPv6, SUBTYPE NVM subsystem, TREQ not specified
        adrfam = 2 if ":" in traddr else 1
        struct.pack_into("<BBBBHHH", b, off, 3, adrfam, 2, 0, portid, 0xFFFF, MQES + 1)
        b[off + 32:off + 64] = fixed(str(port), 32, b"\0")
        b[off + 256:off + 512] = fixed(nqn, 256, b"\0")
        b[off + 512:off + 768] = fixed(traddr, 256, b"\0")
        b[off + 768] = 0  # TSAS: no security
    return bytes(b)
