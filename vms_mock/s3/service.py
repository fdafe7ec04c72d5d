"""Starting and stopping the S3 endpoint inside the vms-mock event loop."""

from __future__ import annotations

import asyncio
import logging
import ssl
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from vms_mock.s3.app import S3App
from vms_mock.s3.blocks import BLOCKS
from vms_mock.s3.directory import S3Directory
from vms_mock.s3.http import HttpServer

log = logging.getLogger(__name__)


class S3Service:
    """A running S3 endpoint: ``.port`` is the bound port; ``await close()`` stops it."""

    def __init__(self, app: S3App, server: HttpServer, pool: ThreadPoolExecutor) -> None:
        self.app = app
        self.server = server
        self.pool = pool

    @property
    def port(self) -> int:
        return self.server.port

    async def close(self) -> None:
        await self.server.close()
        self.pool.shutdown(wait=True)
        self.app.close()


def _as_directory(core: Any) -> S3Directory:
    if hasattr(core, "lookup_access_key") and hasattr(core, "create_bucket_view") and \
            hasattr(core, "list_bucket_views"):
        return core  # already speaks the S3Directory protocol
    from vms_mock.s3.core_directory import CoreApiDirectory

    return CoreApiDirectory(core)


def _follow_folder_deletes(core: Any, app: S3App) -> None:
    """Release capacity when the VMS folder-delete API removes a bucket's directory."""
    subscribe = getattr(core, "subscribe", None)
    if subscribe is None:
        return
    loop = asyncio.get_running_loop()

    def on_event(event: str, payload: dict[str, Any]) -> None:
        if event == "folder.deleted" and payload.get("path"):
            # Called in the committing thread; the stores belong to the loop thread.
            loop.call_soon_threadsafe(app.folder_deleted, str(payload["path"]))

    subscribe(on_event)


def _ssl_context(tls: Any) -> ssl.SSLContext | None:
    """Accept an SSLContext, or vms_mock.tls.TlsFiles (cert_file/key_file), or None."""
    if tls is None or isinstance(tls, ssl.SSLContext):
        return tls
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    return ctx


async def start_s3(core: Any, host: str, port: int, tls: Any = None,
                   region: str = "us-east-1",
                   virtual_host_suffixes: tuple[str, ...] = ("localhost",),
                   block_cache: int | None = None) -> S3Service:
    """Serve S3 on ``host:port`` (0 picks a free port) for the buckets of ``core``.

    ``core`` is the VMS state façade (``vms_mock.core_api``) or any S3Directory. ``tls`` is a
    server SSLContext or ``vms_mock.tls.TlsFiles`` for https, or None for plain http.
    Requests to ``<bucket>.<suffix>`` hosts use virtual-host addressing; everything else is
    path style.
    """
    directory = _as_directory(core)
    if block_cache is not None:
        BLOCKS.configure(block_cache)
    pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="s3-io")
    app = S3App(directory, pool, region=region, virtual_host_suffixes=virtual_host_suffixes)
    app.open_existing_buckets()
    _follow_folder_deletes(core, app)
    server = HttpServer(app.handle, app.render_error, pool)
    ctx = _ssl_context(tls)
    await server.start(host, port, ctx)
    log.info("S3 endpoint listening", extra={"host": host, "port": server.port,
                                             "tls": ctx is not None})
    return S3Service(app, server, pool)
