"""Reusable page-aligned I/O blocks for large object bodies, O_DIRECT file I/O on them, and
the cache of recently uploaded blocks.

Large objects bypass the page cache, in both directions, as object stores do (MinIO, for one):
a PUT's blocks are written with O_DIRECT and a GET reads them back with O_DIRECT into the same
kind of block. That keeps the one CPU copy per direction (socket <-> block) and drops the copy
into or out of the page cache. It also keeps memory use flat: uploads and downloads reuse a
bounded set of blocks, where the page cache takes fresh pages for every object written. (On the
project's VM a fresh page costs far more than the copy: the host backs guest memory lazily and
takes freed memory back - 16 MiB into fresh page cache took 52 ms here, into reused pages 9 ms.)
What the page cache gave back - a GET soon after a PUT served from memory - the BlockCache
gives: an upload's blocks stay cached (``vms-mock --s3-block-cache``, 256 MiB by default).

Objects below ``DIRECT_MIN`` stay on the buffered path (one small write, ``pread`` + one send);
objects up to ``store.INLINE_MAX`` are not files at all.

``VMS_S3_DIRECT_IO=0`` in the environment turns O_DIRECT off (every file through the page cache).
"""

from __future__ import annotations

import collections
import errno
import fcntl
import mmap
import os

from prometheus_client import Counter

BLOCK_SIZE = 2 << 20   # one receive/send block (smaller: shorter hashing tail after the last byte)
DIRECT_ALIGN = 4096    # O_DIRECT offset/length/address alignment (logical block size bound)
DIRECT_MIN = 256 * 1024
LOOKUPS = Counter("vms_s3_block_cache_lookups_total", "GETs of large objects looked up in the block cache",
                  ["result"])
FREE_BLOCKS = 8        # free blocks kept for reuse even with the cache off
DIRECT_IO = os.environ.get("VMS_S3_DIRECT_IO", "1") != "0"  # "0": everything through the page cache


class Block:
    """A page-aligned buffer (mmap: O_DIRECT needs the alignment) and the bytes it holds."""

    __slots__ = ("buf", "length", "pins")

    def __init__(self, size: int) -> None:
        self.buf = mmap.mmap(-1, size)
        self.length = 0
        self.pins = 0  # sends in progress from this block: it is not reused meanwhile


class BlockCache:
    """Blocks for large bodies, reused; after an upload its blocks stay as a read cache.

    The page cache is skipped (O_DIRECT), and this takes its place for what was just written:
    an upload's receive blocks are kept, keyed by (data id, block number), up to ``limit``
    bytes in all, least recently used first out. A GET whose whole range is cached is sent from
    them; any other GET reads the file (O_DIRECT). Data ids are never reused, so an entry can
    only be unused, never stale; it ages out. Event loop thread only.
    """

    def __init__(self, limit: int = 256 << 20, size: int = BLOCK_SIZE) -> None:
        self.size = size
        self.limit = max(0, limit) // size  # cached blocks
        self.spare = FREE_BLOCKS  # free blocks kept beyond the cached ones
        self._free: list[Block] = []
        self._cached: collections.OrderedDict[tuple[str, int], Block] = collections.OrderedDict()
        self.hits = 0
        self.misses = 0

    def configure(self, limit: int) -> None:
        self.limit = max(0, limit) // self.size
        while self._cached and len(self._cached) > self.limit:
            self._cached.popitem(last=False)
        self._trim()

    def _trim(self) -> None:
        del self._free[max(self.spare, self.limit - len(self._cached)):]

    def get(self) -> Block:
        """A block to fill: a free one, else the least recently used unpinned cached one."""
        if self._free:
            return self._free.pop()
        if len(self._cached) >= self.limit:
            for key, block in self._cached.items():
                if not block.pins:
                    del self._cached[key]
                    return block
        return Block(self.size)

    def put(self, block: Block) -> None:
        """Give a block back unused."""
        block.length = 0
        self._free.append(block)
        self._trim()

    def keep(self, data_id: str, blocks: list[Block]) -> None:
        """Cache an upload's blocks (in object order); beyond the limit they are given back."""
        if len(blocks) > self.limit:
            for block in blocks:
                self.put(block)
            return
        for i, block in enumerate(blocks):
            self._cached[(data_id, i)] = block
        while len(self._cached) > self.limit:
            key = next((k for k, b in self._cached.items() if not b.pins), None)
            if key is None:
                break
            self._free.append(self._cached.pop(key))
        self._trim()

    def lookup(self, data_id: str, offset: int, count: int) -> list[tuple[Block, int, int]] | None:
        """(block, start, end) slices covering the range, when every block of it is cached."""
        if count <= 0:
            return None
        first, last = offset // self.size, (offset + count - 1) // self.size
        found = []
        for i in range(first, last + 1):
            block = self._cached.get((data_id, i))
            if block is None:
                self.misses += 1
                LOOKUPS.labels("miss").inc()
                return None
            start = offset - i * self.size if i == first else 0
            end = offset + count - i * self.size if i == last else block.length
            if end > block.length:
                self.misses += 1
                LOOKUPS.labels("miss").inc()
                return None
            found.append((block, start, end))
        for i in range(first, last + 1):
            self._cached.move_to_end((data_id, i))
        self.hits += 1
        LOOKUPS.labels("hit").inc()
        return found


BLOCKS = BlockCache()


def set_direct(fd: int, on: bool) -> bool:
    """Switch O_DIRECT on an open file; False where the file system refuses it (tmpfs)."""
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    want = flags | os.O_DIRECT if on else flags & ~os.O_DIRECT
    if want == flags:
        return True
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, want)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        return False
    return True


class FileRange:
    """A byte range of a file read block by block, O_DIRECT where the file system allows it.

    Block reads are independent (positional), so several can be in flight on worker threads."""

    def __init__(self, fd: int, offset: int, count: int, block_size: int = BLOCK_SIZE) -> None:
        self.fd = fd
        self.offset = offset
        self.end = offset + count
        self.block_size = block_size
        self.direct = DIRECT_IO and set_direct(fd, True)
        # Block i covers file bytes from an aligned start, so O_DIRECT reads stay aligned.
        self.base = offset - offset % DIRECT_ALIGN if self.direct else offset

    def __len__(self) -> int:
        return -(-(self.end - self.base) // self.block_size) if self.end > self.base else 0

    def read(self, i: int, block: mmap.mmap) -> memoryview:
        """(Worker) the wanted bytes of block ``i``, read into ``block`` (an mmap)."""
        start = self.base + i * self.block_size
        first = max(start, self.offset)
        last = min(start + self.block_size, self.end)
        view = memoryview(block)
        if self.direct:
            length = -(-(last - start) // DIRECT_ALIGN) * DIRECT_ALIGN
            try:
                got = os.preadv(self.fd, [view[:length]], start)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                got = os.preadv(self.fd, [view[:last - start]], start)
        else:
            got = os.preadv(self.fd, [view[:last - start]], start)
        if got < last - start:
            raise OSError(errno.EIO, "object data ended early")
        return view[first - start:last - start]
