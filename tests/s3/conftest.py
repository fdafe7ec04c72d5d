"""A real S3 endpoint on loopback for the S3 tests.

The server is ``vms_mock.s3.service.start_s3`` running in its own event-loop thread, serving a
:class:`StaticS3Directory` (an in-process identity/bucket directory, not a mock: the same
Protocol the VMS state implements). boto3 talks to it over real sockets.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from vms_mock.s3.directory import AccessKeyRecord, StaticS3Directory
from vms_mock.s3.service import S3Service, start_s3


class LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="s3-test-loop", daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@dataclass
class S3Env:
    directory: StaticS3Directory
    service: S3Service
    endpoint: str
    root: Path
    owner: AccessKeyRecord
    other: AccessKeyRecord

    def client(self, key: AccessKeyRecord | None = None, **config: Any) -> Any:
        key = key or self.owner
        cfg = Config(s3={"addressing_style": config.pop("addressing_style", "path")},
                     retries={"max_attempts": 1}, signature_version="s3v4", **config)
        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=key.access_key, aws_secret_access_key=key.secret_key,
                            config=cfg)

    def add_user(self, user_id: int, name: str, tenant_id: int = 1, **fields: Any) -> AccessKeyRecord:
        return self.directory.add_key(AccessKeyRecord(
            access_key=f"AK{name.upper()}{user_id:04d}", secret_key=f"secret-{name}-{user_id}",
            user_id=user_id, user_name=name, tenant_id=tenant_id, **fields))


@pytest.fixture(scope="module")
def loop_thread() -> Iterator[LoopThread]:
    lt = LoopThread()
    yield lt
    lt.stop()


@pytest.fixture
def s3(tmp_path: Path, loop_thread: LoopThread) -> Iterator[S3Env]:
    directory = StaticS3Directory(tmp_path / "fs", capacity=1 << 34)
    owner = directory.add_key(AccessKeyRecord(access_key="AKOWNER0001", secret_key="owner-secret",
                                              user_id=1, user_name="alice", tenant_id=1,
                                              allow_create_bucket=True, allow_delete_bucket=True))
    other = directory.add_key(AccessKeyRecord(access_key="AKOTHER0002", secret_key="other-secret",
                                              user_id=2, user_name="bob", tenant_id=1))
    directory.add_view("bucket-a", bucket_owner="alice")
    service = loop_thread.run(start_s3(directory, "127.0.0.1", 0))
    env = S3Env(directory, service, f"http://127.0.0.1:{service.port}", tmp_path / "fs", owner, other)
    yield env
    loop_thread.run(env.service.close())  # a test may have restarted it


@pytest.fixture
def make_bytes() -> Callable[[int, int], bytes]:
    import random

    def make(size: int, seed: int = 0) -> bytes:
        return random.Random(seed).randbytes(size)

    return make
