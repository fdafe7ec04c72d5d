#!/usr/bin/env python3
"""A calibration server for s3_bench.py: speaks just enough HTTP/1.1 for boto3's PutObject and
GetObject, keeps no data (PUT bodies are read and dropped, GET returns zeros of the stored
length) and checks no signature. It measures what the boto3 client alone can reach on this
machine: no S3 server can be faster than this with the same client.

    python benchmarks/s3_null_server.py PORT
"""

from __future__ import annotations

import asyncio
import sys

ZEROS = bytes(16 << 20)


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, sizes: dict[str, int]) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
            length = int(headers.get("content-length", "0") or 0)
            if headers.get("expect", "").lower() == "100-continue":
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            left = length
            while left:
                left -= len(await reader.read(min(left, 1 << 20)))
            key = path.split("?", 1)[0]
            etag = b'ETag: "00000000000000000000000000000000"\r\n'
            if method == "PUT":
                sizes[key] = length
                writer.write(b"HTTP/1.1 200 OK\r\n" + etag + b"Content-Length: 0\r\n\r\n")
            elif method == "GET" and key in sizes:
                n = sizes[key]
                head = b"HTTP/1.1 200 OK\r\n" + etag + f"Content-Length: {n}\r\n\r\n".encode()
                if n <= 65536:  # one write for small bodies, as the servers under test do
                    writer.write(head + ZEROS[:n])
                else:
                    writer.write(head)
                    writer.write(memoryview(ZEROS)[:n])
            else:
                writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(port: int) -> None:
    sizes: dict[str, int] = {}
    server = await asyncio.start_server(lambda r, w: serve(r, w, sizes), "127.0.0.1", port, limit=4 << 20)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
