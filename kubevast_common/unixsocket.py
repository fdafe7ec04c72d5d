"""The unix socket a gRPC driver serves on: endpoint parsing and start-up after a crash.

Both drivers (CSI and COSI) are reached by their sidecars through a socket file in a shared
directory. A file left behind by a crashed process must not stop the next one from starting,
but a socket another live process still serves must not be stolen, and a non-socket file at
that path is never deleted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import stat

log = logging.getLogger(__name__)


def socket_path(endpoint: str) -> str:
    """The filesystem path of a ``unix://`` endpoint (``unix:///x`` and ``unix:/x`` accepted)."""
    if endpoint.startswith("unix://"):
        path = endpoint[len("unix://") :]
    elif endpoint.startswith("unix:"):
        path = endpoint[len("unix:") :]
    else:
        raise ValueError(f"endpoint {endpoint!r} must be a unix:// socket")
    if not path.startswith("/"):
        raise ValueError(f"endpoint {endpoint!r} must name an absolute socket path")
    return path


def remove_stale_socket(path: str) -> None:
    """Remove a socket nobody listens on; refuse a live one or anything that is not a socket."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise ValueError(f"{path} exists and is not a socket; refusing to remove it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(0.5)
        probe.connect(path)
    except OSError:
        log.info("removing stale socket", extra={"path": path})
        unlink_socket(path)
        return
    finally:
        probe.close()
    raise ValueError(f"another process is serving on {path}; refusing to take its socket")


def unlink_socket(path: str) -> None:
    """Remove the socket file at shutdown (gone already is fine)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
