"""CSI Identity service: plugin name/version, capabilities, and a Probe that checks real readiness.

Probe asks the VMS (controller mode) and the node's attach prerequisites (node mode); a failed
check is FAILED_PRECONDITION/UNAVAILABLE with the reason, so a liveness probe restarts a plugin
that cannot work instead of reporting it healthy.
"""

from __future__ import annotations

from collections.abc import Callable

from google.protobuf import wrappers_pb2

import csi_block_driver
from csi_block_driver.errors import FailedPrecondition
from csi_block_driver.proto import csi_pb2, csi_pb2_grpc

DEFAULT_NAME = "block.csi.vastdata.com"

Service = csi_pb2.PluginCapability.Service
Expansion = csi_pb2.PluginCapability.VolumeExpansion


class IdentityService(csi_pb2_grpc.IdentityServicer):
    def __init__(self, name: str, controller: bool, checks: list[Callable[[], list[str]]]) -> None:
        self.name = name
        self.controller = controller
        self.checks = checks

    def GetPluginInfo(self, request, context):
        return csi_pb2.GetPluginInfoResponse(
            name=self.name,
            vendor_version=csi_block_driver.__version__,
            manifest={"project": "kubevast", "csi-spec": "1.12.0"},
        )

    def GetPluginCapabilities(self, request, context):
        caps = []
        if self.controller:
            caps.append(csi_pb2.PluginCapability(service=Service(type=Service.CONTROLLER_SERVICE)))
        caps.append(csi_pb2.PluginCapability(volume_expansion=Expansion(type=Expansion.ONLINE)))
        return csi_pb2.GetPluginCapabilitiesResponse(capabilities=caps)

    def Probe(self, request, context):
        problems: list[str] = []
        for check in self.checks:
            problems += check()
        if problems:
            raise FailedPrecondition("not ready: " + "; ".join(problems))
        return csi_pb2.ProbeResponse(ready=wrappers_pb2.BoolValue(value=True))
