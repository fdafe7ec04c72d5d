"""Large bodies: received into reused blocks, written and read past the page cache (O_DIRECT).

Sizes are chosen to straddle block (2 MiB) and O_DIRECT (4 KiB) boundaries: an unaligned tail,
ranges that start and end mid-block and mid-page, and the buffered fallback used where a file
system refuses O_DIRECT.
"""

from __future__ import annotations

import hashlib
import socket
import time

import pytest

from tests.s3.test_auth import _streaming_request
from vms_mock.s3 import blocks, http, store
from vms_mock.s3.store import BucketStore

BLOCK = blocks.BLOCK_SIZE
SIZE = 2 * BLOCK + 3 * 4096 + 777  # two full blocks, then an unaligned last block

RANGES = [
    (0, 0), (0, 4095), (1, 4096), (4095, BLOCK + 1), (BLOCK - 1, BLOCK), (BLOCK, 2 * BLOCK - 1),
    (BLOCK + 12345, 2 * BLOCK + 4097), (SIZE - 777, SIZE - 1), (SIZE - 1, SIZE - 1), (0, SIZE - 1),
]


def _check_object(s3, key: str, data: bytes) -> None:
    c = s3.client()
    got = c.get_object(Bucket="bucket-a", Key=key)
    assert got["ContentLength"] == len(data)
    assert got["Body"].read() == data
    for first, last in RANGES:
        r = c.get_object(Bucket="bucket-a", Key=key, Range=f"bytes={first}-{last}")
        assert r["ContentRange"] == f"bytes {first}-{last}/{len(data)}"
        assert r["Body"].read() == data[first:last + 1], (first, last)
    tail = c.get_object(Bucket="bucket-a", Key=key, Range="bytes=-5000")["Body"].read()
    assert tail == data[-5000:]


@pytest.fixture
def block_cache():
    """The process-wide block cache, restored after the test."""
    limit = blocks.BLOCKS.limit * blocks.BLOCKS.size
    yield blocks.BLOCKS
    blocks.BLOCKS.configure(limit)


@pytest.mark.parametrize("cache", [True, False], ids=["from_cache", "from_disk"])
@pytest.mark.parametrize("direct", [True, False], ids=["o_direct", "buffered"])
def test_large_object_round_trip_and_ranges(s3, make_bytes, monkeypatch, block_cache, direct, cache):
    monkeypatch.setattr(blocks, "DIRECT_IO", direct)
    monkeypatch.setattr(store, "DIRECT_IO", direct)
    block_cache.configure(64 << 20 if cache else 0)
    data = make_bytes(SIZE, 11)
    r = s3.client().put_object(Bucket="bucket-a", Key="big", Body=data)
    assert r["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    hits, misses = block_cache.hits, block_cache.misses
    _check_object(s3, "big", data)
    # GETs of more than SMALL_FILE bytes go by blocks (smaller ones are one pread + one send)
    gets = 1 + sum(1 for first, last in RANGES if last - first + 1 > http.SMALL_FILE)
    assert (block_cache.hits - hits, block_cache.misses - misses) == ((gets, 0) if cache else (0, gets))
    files = [p for p in (s3.root / "s3" / "bucket-a" / ".s3" / "data").rglob("*") if p.is_file()]
    assert [p.stat().st_size for p in files] == [SIZE]
    assert files[0].read_bytes() == data


def test_large_streaming_upload_goes_through_blocks(s3, make_bytes):
    """aws-chunked bodies (framing decoded one layer up) take the same block path."""
    data = make_bytes(SIZE, 12)
    r = _streaming_request(s3, "chunked-big", data, 1 << 20)
    assert r.status_code == 200, r.text
    assert r.headers["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    _check_object(s3, "chunked-big", data)


def test_large_body_cut_short_leaves_nothing(s3, make_bytes):
    """A client that stops sending mid-block: no object, no temp file, no data file."""
    c = s3.client()
    data = make_bytes(SIZE, 13)
    url = c.generate_presigned_url("put_object", Params={"Bucket": "bucket-a", "Key": "cut"})
    host, _, rest = url.removeprefix("http://").partition("/")
    addr, port = host.split(":")
    c.put_object(Bucket="bucket-a", Key="other", Body=b"kept")
    with socket.create_connection((addr, int(port))) as sock:
        sock.sendall(f"PUT /{rest} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {SIZE}\r\n\r\n".encode()
                     + data[:BLOCK + 1000])
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(10)
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 400") and b"IncompleteBody" in answer, answer
    base = s3.root / "s3" / "bucket-a" / ".s3"
    _wait_for(lambda: not list((base / "tmp").iterdir()))
    assert list((base / "tmp").iterdir()) == []
    assert [p for p in (base / "data").rglob("*") if p.is_file()] == []  # ("other" is inline)
    assert c.get_object(Bucket="bucket-a", Key="other")["Body"].read() == b"kept"
    with pytest.raises(c.exceptions.NoSuchKey):
        c.get_object(Bucket="bucket-a", Key="cut")


def test_spare_temp_files_are_bounded_and_removed(s3, loop_thread):
    """Empty temp files made ahead of uploads: at most SPARE_FILES, removed at shutdown, and a
    crash's leftovers are swept when the bucket is opened again."""
    c = s3.client()
    for i in range(10):
        c.put_object(Bucket="bucket-a", Key=f"s{i}", Body=b"x" * 100)
    root = s3.root / "s3" / "bucket-a"
    spare = root / ".s3" / "spare"
    _wait_for(lambda: len(list(spare.iterdir())) == store.SPARE_FILES)  # refilled on a worker
    assert all(p.stat().st_size == 0 for p in spare.iterdir())
    loop_thread.run(s3.service.close())
    assert list(spare.iterdir()) == []
    (spare / "left-by-a-crash").touch()
    BucketStore(root).close()
    assert list(spare.iterdir()) == []


def _wait_for(cond, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.02)


def test_block_cache_keeps_recent_uploads_within_its_limit_and_never_reuses_a_pinned_block():
    cache = blocks.BlockCache(limit=4 * blocks.BLOCK_SIZE)

    def upload(data_id: str, sizes: list[int]) -> list[blocks.Block]:
        got = []
        for n in sizes:
            b = cache.get()
            b.buf[:n] = bytes([len(got) + 1]) * n
            b.length = n
            got.append(b)
        cache.keep(data_id, got)
        return got

    full = blocks.BLOCK_SIZE
    upload("a", [full, 100])
    assert cache.lookup("a", full - 10, 20) is not None  # spans both blocks
    assert cache.lookup("a", full, 101) is None  # past the end of what was kept
    upload("b", [full, full])  # 4 blocks cached: the limit
    pinned = cache.lookup("a", 0, 5)
    assert pinned is not None
    pinned[0][0].pins += 1  # a send in progress from a's first block
    upload("c", [full, full])  # needs two blocks: the least recently used unpinned ones go
    assert cache.lookup("a", 0, 5) is not None  # pinned: kept
    assert cache.lookup("a", full, 10) is None  # a's second block was reused
    assert cache.lookup("b", 0, 5) is None  # b's first block was reused
    assert bytes(cache.lookup("c", full, 3)[0][0].buf[:3]) == b"\x02\x02\x02"
    pinned[0][0].pins -= 1
    big = [cache.get() for _ in range(6)]  # an upload larger than the whole cache
    for b in big:
        b.length = full
    cache.keep("huge", big)
    assert cache.lookup("huge", 0, 1) is None  # not cached at all rather than half
    off = blocks.BlockCache(limit=0)
    b = off.get()
    b.length = 10
    off.keep("x", [b])
    assert off.lookup("x", 0, 1) is None and off.get() is b  # no cache, but the block is reused


def test_large_http_chunked_upload(s3, make_bytes):
    """Transfer-Encoding: chunked (no Content-Length) through a presigned URL takes the block path."""
    import requests

    c = s3.client()
    data = make_bytes(SIZE, 14)
    url = c.generate_presigned_url("put_object", Params={"Bucket": "bucket-a", "Key": "te-chunked"})
    pieces = (data[i:i + 300_000] for i in range(0, len(data), 300_000))
    r = requests.put(url, data=pieces, timeout=30)  # a generator: requests sends it chunked
    assert r.status_code == 200, r.text
    assert r.headers["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    _check_object(s3, "te-chunked", data)


def test_a_write_failing_mid_upload_leaves_nothing_and_the_next_upload_works(s3, make_bytes, monkeypatch):
    """A worker error in the hashing/writing pipeline (the disk filling up, say) ends the upload
    with a server error; no temp file or data file stays, and the pipeline's blocks are reusable."""
    import errno

    from botocore.exceptions import ClientError

    original = store.ObjectWriter.feed_block

    def failing(self, block):
        if self.size >= BLOCK:  # the second block of every upload (the client retries)
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, block)

    monkeypatch.setattr(store.ObjectWriter, "feed_block", failing)
    c = s3.client()
    data = make_bytes(SIZE, 15)
    with pytest.raises(ClientError) as e:
        c.put_object(Bucket="bucket-a", Key="fails", Body=data)
    assert e.value.response["Error"]["Code"] == "InsufficientCapacity"  # 507, as capacity runs out
    base = s3.root / "s3" / "bucket-a" / ".s3"
    _wait_for(lambda: not list((base / "tmp").iterdir()))
    assert list((base / "tmp").iterdir()) == []
    assert [p for p in (base / "data").rglob("*") if p.is_file()] == []
    monkeypatch.setattr(store.ObjectWriter, "feed_block", original)
    c.put_object(Bucket="bucket-a", Key="works", Body=data)
    assert c.get_object(Bucket="bucket-a", Key="works")["Body"].read() == data
    with pytest.raises(ClientError):
        c.head_object(Bucket="bucket-a", Key="fails")
