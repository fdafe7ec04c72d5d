"""NVMe/TCP wire format: PDU headers, digests, submission/completion entries, status codes.

Everything here is pure encoding/decoding so both the target and the project's initiator share
one definition of the bytes on the wire (NVMe/TCP transport spec 1.0, NVMe base spec 1.4).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import crc32c as _crc32c

# --- PDU types and flags -------------------------------------------------------------------
ICREQ = 0x00
ICRESP = 0x01
H2C_TERM_REQ = 0x02
C2H_TERM_REQ = 0x03
CAPSULE_CMD = 0x04
CAPSULE_RESP = 0x05
H2C_DATA = 0x06
C2H_DATA = 0x07
R2T = 0x09

FLAG_HDGST = 0x01
FLAG_DDGST = 0x02
FLAG_DATA_LAST = 0x04
FLAG_DATA_SUCCESS = 0x08

# Header length (without digest) of every PDU type we know.
HLEN = {
    ICREQ: 128, ICRESP: 128, H2C_TERM_REQ: 24, C2H_TERM_REQ: 24, CAPSULE_CMD: 72,
    CAPSULE_RESP: 24, H2C_DATA: 24, C2H_DATA: 24, R2T: 24,
}
# PDU types that carry a header digest when it was negotiated (ICReq/ICResp/TermReq never do).
DIGESTED = {CAPSULE_CMD, CAPSULE_RESP, H2C_DATA, C2H_DATA, R2T}

# Fatal error status (TermReq FES)
FES_INVALID_HEADER_FIELD = 0x01
FES_PDU_SEQUENCE_ERROR = 0x02
FES_HEADER_DIGEST_ERROR = 0x03
FES_DATA_OUT_OF_RANGE = 0x04
FES_DATA_LIMIT_EXCEEDED = 0x05
FES_UNSUPPORTED_PARAMETER = 0x06

COMMON = struct.Struct("<BBBBI")  # type, flags, hlen, pdo, plen
DATA_HDR = struct.Struct("<HHII4x")  # cccid, ttag, offset, length
TERM_HDR = struct.Struct("<HI10x")  # fes, fei

DISCOVERY_NQN = "nqn.2014-08.org.nvmexpress.discovery"

# --- Admin / I/O / fabrics opcodes ----------------------------------------------------------
ADM_GET_LOG_PAGE = 0x02
ADM_IDENTIFY = 0x06
ADM_ABORT = 0x08
ADM_SET_FEATURES = 0x09
ADM_GET_FEATURES = 0x0A
ADM_ASYNC_EVENT = 0x0C
ADM_KEEP_ALIVE = 0x18
FABRICS = 0x7F

FCT_PROPERTY_SET = 0x00
FCT_CONNECT = 0x01
FCT_PROPERTY_GET = 0x04
FCT_DISCONNECT = 0x08

IO_FLUSH = 0x00
IO_WRITE = 0x01
IO_READ = 0x02
IO_WRITE_ZEROES = 0x08
IO_DSM = 0x09

# Features
FEAT_VOLATILE_WC = 0x06
FEAT_NUM_QUEUES = 0x07
FEAT_ASYNC_EVENT = 0x0B
FEAT_KATO = 0x0F

# Log pages
LOG_ERROR = 0x01
LOG_SMART = 0x02
LOG_FW_SLOT = 0x03
LOG_CHANGED_NS = 0x04
LOG_DISCOVERY = 0x70

# Controller properties
PROP_CAP = 0x00
PROP_VS = 0x08
PROP_CC = 0x14
PROP_CSTS = 0x1C

# --- Status codes (value of the CQE status field without the phase bit) -------------------
SCT_GENERIC = 0
SCT_CMD_SPECIFIC = 1

SC_SUCCESS = 0x00
SC_INVALID_OPCODE = 0x01
SC_INVALID_FIELD = 0x02
SC_DATA_XFER_ERROR = 0x04
SC_INTERNAL = 0x06
SC_INVALID_NS = 0x0B
SC_CMD_SEQ_ERROR = 0x0C
SC_SGL_INVALID_DATA = 0x0F
SC_SGL_INVALID_TYPE = 0x11
SC_TRANSIENT_TRANSPORT = 0x22
SC_LBA_RANGE = 0x80
SC_NS_NOT_READY = 0x82
# command specific
SC_INVALID_QID = 0x01
SC_INVALID_QUEUE_SIZE = 0x02
SC_AER_LIMIT = 0x05
SC_INVALID_LOG_PAGE = 0x09
SC_CONNECT_INVALID_PARAM = 0x82
SC_CONNECT_INVALID_HOST = 0x84


def status(sc: int, sct: int = SCT_GENERIC, dnr: bool = True) -> int:
    """CQE status field (phase bit excluded) as Linux's ``nvme_completion.status >> 1`` sees it."""
    return ((sct & 0x7) << 8 | (sc & 0xFF)) | (0x4000 if dnr else 0)


OK = 0
INVALID_OPCODE = status(SC_INVALID_OPCODE)
INVALID_FIELD = status(SC_INVALID_FIELD)
INVALID_NS = status(SC_INVALID_NS)
LBA_RANGE = status(SC_LBA_RANGE)
SGL_INVALID_DATA = status(SC_SGL_INVALID_DATA)
SGL_INVALID_TYPE = status(SC_SGL_INVALID_TYPE)
INTERNAL = status(SC_INTERNAL, dnr=False)
TRANSIENT_TRANSPORT = status(SC_TRANSIENT_TRANSPORT, dnr=False)
CMD_SEQ_ERROR = status(SC_CMD_SEQ_ERROR)
INVALID_LOG_PAGE = status(SC_INVALID_LOG_PAGE, SCT_CMD_SPECIFIC)
AER_LIMIT = status(SC_AER_LIMIT, SCT_CMD_SPECIFIC)
INVALID_QID = status(SC_INVALID_QID, SCT_CMD_SPECIFIC)
INVALID_QUEUE_SIZE = status(SC_INVALID_QUEUE_SIZE, SCT_CMD_SPECIFIC)
CONNECT_INVALID_PARAM = status(SC_CONNECT_INVALID_PARAM, SCT_CMD_SPECIFIC)
CONNECT_INVALID_HOST = status(SC_CONNECT_INVALID_HOST, SCT_CMD_SPECIFIC)


class NvmeError(Exception):
    """A command failed with an NVMe status (the CQE carries ``status`` and ``result``)."""

    def __init__(self, status_code: int, message: str = "", result: int = 0) -> None:
        super().__init__(message or f"NVMe status 0x{status_code:04x}")
        self.status = status_code
        self.result = result


class TransportError(Exception):
    """The connection must be terminated with a TermReq carrying ``fes``/``fei``."""

    def __init__(self, fes: int, fei: int = 0, message: str = "") -> None:
        super().__init__(message or f"NVMe/TCP fatal error FES={fes} FEI={fei}")
        self.fes = fes
        self.fei = fei


def crc(data: bytes | bytearray | memoryview) -> int:
    return _crc32c.crc32c(data)


def digest(data: bytes | bytearray | memoryview) -> bytes:
    return struct.pack("<I", _crc32c.crc32c(data))


# --- Submission queue entry -------------------------------------------------------------------
SGL_DATA_BLOCK_OFFSET = 0x01  # in-capsule data: type 0 (data block), subtype 1 (offset)
SGL_TRANSPORT_DATA_BLOCK = 0x5A  # type 5 (transport data block), subtype 0xA (transport specific)


@dataclass
class Command:
    """A parsed 64-byte SQE (the fields both sides need)."""

    raw: bytes

    @property
    def opcode(self) -> int:
        return self.raw[0]

    @property
    def flags(self) -> int:
        return self.raw[1]

    @property
    def cid(self) -> int:
        return int.from_bytes(self.raw[2:4], "little")

    @property
    def nsid(self) -> int:
        return int.from_bytes(self.raw[4:8], "little")

    @property
    def fctype(self) -> int:
        return self.raw[4]

    def cdw(self, n: int) -> int:
        off = n * 4
        return int.from_bytes(self.raw[off:off + 4], "little")

    @property
    def sgl_length(self) -> int:
        return int.from_bytes(self.raw[32:36], "little")

    @property
    def sgl_address(self) -> int:
        return int.from_bytes(self.raw[24:32], "little")

    @property
    def sgl_type(self) -> int:
        return self.raw[39]


def build_sqe(opcode: int, cid: int, nsid: int = 0, cdws: dict[int, int] | None = None,
              sgl: tuple[int, int, int] | None = None, fctype: int | None = None) -> bytes:
    """Build a 64-byte SQE. ``sgl`` is (type byte, address/offset, length). PSDT = SGL (bits 7:6)."""
    b = bytearray(64)
    b[0] = opcode
    b[1] = 0x40  # PSDT 01b: SGL for data
    b[2:4] = cid.to_bytes(2, "little")
    b[4:8] = nsid.to_bytes(4, "little")
    if fctype is not None:
        b[4] = fctype
    for n, v in (cdws or {}).items():
        b[n * 4:n * 4 + 4] = (v & 0xFFFFFFFF).to_bytes(4, "little")
    stype, addr, length = sgl if sgl else (SGL_TRANSPORT_DATA_BLOCK, 0, 0)
    b[24:32] = addr.to_bytes(8, "little")
    b[32:36] = length.to_bytes(4, "little")
    b[39] = stype
    return bytes(b)


CQE = struct.Struct("<QHHHH")  # result, sqhd, sqid, cid, status<<1|phase


def build_cqe(cid: int, status_code: int, result: int, sqhd: int, sqid: int) -> bytes:
    return CQE.pack(result & 0xFFFFFFFFFFFFFFFF, sqhd, sqid, cid, (status_code << 1) & 0xFFFF)


def parse_cqe(raw: bytes) -> tuple[int, int, int, int, int]:
    """(result, sqhd, sqid, cid, status) from a 16-byte CQE."""
    result, sqhd, sqid, cid, st = CQE.unpack(raw)
    return result, sqhd, sqid, cid, st >> 1


def header(ptype: int, flags: int, hlen: int, pdo: int, plen: int) -> bytes:
    return COMMON.pack(ptype, flags, hlen, pdo, plen)


def nqn_field(data: bytes | bytearray, off: int, size: int = 256) -> str:
    """A NUL-terminated ASCII NQN field; raises ValueError when it is not ASCII."""
    raw = bytes(data[off:off + size]).split(b"\0", 1)[0]
    return raw.decode("ascii")


def fixed(text: str, size: int, pad: bytes = b" ") -> bytes:
    raw = text.encode("ascii")[:size]
    return raw + pad * (size - len(raw))
