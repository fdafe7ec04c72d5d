"""The gRPC server: both COSI versions on one unix socket."""

from __future__ import annotations

import logging
import os
from concurrent import futures
from pathlib import Path

import grpc

from cosi_driver.proto import cosi_v1alpha1_pb2_grpc as v1_grpc
from cosi_driver.proto import cosi_v1alpha2_pb2_grpc as v2_grpc
from cosi_driver.provisioner import Provisioner
from cosi_driver.servicer_v1alpha1 import IdentityV1alpha1, ProvisionerV1alpha1
from cosi_driver.servicer_v1alpha2 import IdentityV1alpha2, ProvisionerV1alpha2
from kubevast_common.unixsocket import remove_stale_socket, socket_path

log = logging.getLogger(__name__)
DEFAULT_ENDPOINT = "unix:///var/lib/cosi/cosi.sock"


def build_server(
    provisioner: Provisioner, driver_name: str, endpoint: str, max_workers: int = 32
) -> grpc.Server:
    path = Path(socket_path(endpoint))
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_socket(str(path))
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
