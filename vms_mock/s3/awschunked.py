"""Decoding of ``Content-Encoding: aws-chunked`` bodies (the STREAMING-* payload modes).

Framing: ``<hex size>[;chunk-signature=<sig>]\\r\\n<data>\\r\\n`` ... ``0[;chunk-signature=..]\\r\\n``
then optional trailer lines (``x-amz-checksum-crc32:...``, ``x-amz-trailer-signature:...``) and
a final ``\\r\\n``. Signed modes check every chunk's signature, chained from the seed signature.
"""

from __future__ import annotations

import hashlib

from vms_mock.s3.errors import S3Error
from vms_mock.s3.http import Body
from vms_mock.s3.sigv4 import ChunkSigner

MAX_CHUNK = 16 << 20
MAX_LINE = 4096


class AwsChunkedBody(Body):
    def __init__(self, inner: Body, signer: ChunkSigner | None, decoded_length: int | None,
                 trailer_signed: bool) -> None:
        self.inner = inner
        self.signer = signer
        self.trailer_signed = trailer_signed
        self.remaining = decoded_length
        self.trailers = {}
        self._buf = bytearray()
        self._chunk_left = 0
        self._chunk_sig: str | None = None
        self._chunk_hash: hashlib._Hash | None = None
        self._finished = False
        self._received = 0
        self._declared = decoded_length

    @property
    def done(self) -> bool:
        return self._finished

    async def _fill(self) -> None:
        data = await self.inner.read(1 << 20)
        if not data:
            raise S3Error("IncompleteBody", "The aws-chunked body ended early")
        self._buf += data

    async def _line(self) -> str:
        while True:
            i = self._buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self._buf[:i])
                del self._buf[:i + 2]
                return line.decode("latin-1")
            if len(self._buf) > MAX_LINE:
                raise S3Error("InvalidRequest", "aws-chunked framing line too long")
            await self._fill()

    async def _start_chunk(self) -> None:
        header = await self._line()
        size_text, _, ext = header.partition(";")
        try:
            size = int(size_text.strip(), 16)
        except ValueError:
            raise S3Error("InvalidRequest", "Invalid aws-chunked chunk size") from None
        if size > MAX_CHUNK:
            raise S3Error("InvalidRequest", "aws-chunked chunk too large")
        sig = None
        if ext.startswith("chunk-signature="):
            sig = ext[len("chunk-signature="):].strip()
        if self.signer is not None and sig is None:
            raise S3Error("SignatureDoesNotMatch", "A chunk signature is missing")
        self._chunk_sig = sig
        self._chunk_hash = hashlib.sha256() if self.signer is not None else None
        self._chunk_left = size
        if size == 0:
            self._end_chunk()
            await self._read_trailers()

    def _end_chunk(self) -> None:
        if self.signer is not None:
            assert self._chunk_hash is not None and self._chunk_sig is not None
            self.signer.verify_chunk(self._chunk_hash.hexdigest(), self._chunk_sig)

    async def _read_trailers(self) -> None:
        lines = []
        while line := await self._line():
            lines.append(line)
        signature = None
        for line in lines:
            k, _, v = line.partition(":")
            k = k.strip().lower()
            if k == "x-amz-trailer-signature":
                signature = v.strip()
            else:
                self.trailers[k] = v.strip()
        if self.trailer_signed and self.signer is not None:
            if signature is None:
                raise S3Error("SignatureDoesNotMatch", "The trailer signature is missing")
            text = "".join(f"{k}:{v}\n" for k, v in self.trailers.items())
            self.signer.verify_trailer(text, signature)
        if self._declared is not None and self._received != self._declared:
            raise S3Error("IncompleteBody")
        self._finished = True
        self.remaining = 0
        # Drain what follows at the HTTP layer (the final CRLF of HTTP chunking, if any).
        while not self.inner.done and await self.inner.read(1 << 16):
            pass

    async def read(self, n: int) -> bytes:
        if self._finished:
            return b""
        if self._chunk_left == 0:
            await self._start_chunk()
            if self._finished:
                return b""
        if not self._buf:
            await self._fill()
        take = min(n, self._chunk_left, len(self._buf))
        data = bytes(self._buf[:take])
        del self._buf[:take]
        self._chunk_left -= take
        self._received += take
        if self._declared is not None:
            if self._received > self._declared:
                raise S3Error("IncompleteBody", "More data than x-amz-decoded-content-length")
            self.remaining = self._declared - self._received
        if self._chunk_hash is not None:
            self._chunk_hash.update(data)
        if self._chunk_left == 0:
            if len(self._buf) < 2:
                await self._fill()
            if self._buf[:2] != b"\r\n":
                raise S3Error("InvalidRequest", "aws-chunked chunk not followed by CRLF")
            del self._buf[:2]
            self._end_chunk()
        return data
