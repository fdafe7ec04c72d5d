"""Extract the uncompressed ELF kernel from a bzImage (like the kernel's scripts/extract-vmlinux).

qemu boots that ELF directly through its PVH note, skipping the in-guest decompression, which is
slow under software emulation. Usage: extract_vmlinux.py <vmlinuz> <vmlinux-out>; exit 1 if none found.
"""

from __future__ import annotations

import gzip
import lzma
import sys
import zlib

MAGICS = [
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x1f\x8b\x08", "gzip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
]


def _try(blob: bytes, kind: str) -> bytes | None:
    try:
        if kind == "xz":
            return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(blob)
        if kind == "gzip":
            return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(blob)
    except (lzma.LZMAError, zlib.error, gzip.BadGzipFile, EOFError):
        return None
    return None


def main() -> int:
    src, dst = sys.argv[1], sys.argv[2]
    with open(src, "rb") as f:
        data = f.read()
    for magic, kind in MAGICS:
        pos = data.find(magic)
        while pos != -1:
            out = _try(data[pos:], kind)
            if out and out[:4] == b"\x7fELF":
                with open(dst, "wb") as f:
                    f.write(out)
                return 0
            pos = data.find(magic, pos + 1)
    print("no ELF kernel found inside", src, file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
