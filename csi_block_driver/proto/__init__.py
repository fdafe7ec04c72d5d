"""CSI v1.12.0 protocol: ``csi.proto`` and the Python stubs generated from it (committed)."""

from csi_block_driver.proto import csi_pb2, csi_pb2_grpc

__all__ = ["csi_pb2", "csi_pb2_grpc"]
