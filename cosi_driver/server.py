"""The gRPC server: both COSI versions on one unix socket."""

from __future__ import annotations

import logging
import os
import socket
import stat
from concurrent import futures
from pathlib import Path

import grpc

from cosi_driver.proto import cosi_v1alpha1_pb2_grpc as v1_grpc
from cosi_driver.proto import cosi_v1alpha2_pb2_grpc as v2_grpc
from cosi_driver.provisioner import Provisioner
from cosi_driver.servicer_v1alpha1 import IdentityV1alpha1, ProvisionerV1alpha1
from cosi_driver.servicer_v1alpha2 import IdentityV1alpha2, ProvisionerV1alpha2

log = logging.getLogger(__name__)
DEFAULT_ENDPOINT = "unix:///var/lib/cosi/cosi.sock"


def socket_path(endpoint: str) -> Path:
    if endpoint.startswith("unix://"):
        path = endpoint[len("unix://") :]
    elif endpoint.startswith("unix:"):
        path = endpoint[len("unix:") :]
    else:
        raise ValueError(f"COSI endpoint {endpoint!r} must be a unix:// socket")
    if not path.startswith("/"):
        raise ValueError(f"COSI endpoint {endpoint!r} must be an absolute unix socket path")
    return Path(path)


def remove_stale_socket(path: Path) -> None:
    """A socket file left by a crashed driver must not stop this one; a live one must."""
    if not path.exists() and not path.is_symlink():
        return
    if not stat.S_ISSOCK(path.lstat().st_mode):
        raise RuntimeError(f"{path} exists and is not a socket; refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(0.5)
        probe.connect(str(path))
    except OSError:
        log.info("removing stale socket", extra={"path": str(path)})
        path.unlink(missing_ok=True)
        return
    finally:
        probe.close()
    raise RuntimeError(f"another process is serving on {path}")


def build_server(
    provisioner: Provisioner, driver_name: str, endpoint: str, max_workers: int = 32
) -> grpc.Server:
    path = socket_path(endpoint)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_socket(path)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="cosi-rpc"),
        options=[("grpc.max_receive_message_length", 4 * 1024 * 1024)],
    )
    v1_grpc.add_IdentityServicer_to_server(IdentityV1alpha1(driver_name), server)
    v1_grpc.add_ProvisionerServicer_to_server(ProvisionerV1alpha1(provisioner), server)
    v2_grpc.add_IdentityServicer_to_server(IdentityV1alpha2(driver_name), server)
    v2_grpc.add_ProvisionerServicer_to_server(ProvisionerV1alpha2(provisioner), server)
    old_umask = os.umask(0o077)  # the socket is for the sidecar in the same pod only
    try:
        server.add_insecure_port(f"unix://{path}")
    finally:
        os.umask(old_umask)
    return server
