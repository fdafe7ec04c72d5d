"""User-space NVMe/TCP target of the vms-mock storage core (see docs/architecture.md)."""

from .provider import NamespaceProvider, NamespaceRecord, StaticNamespaceProvider
from .target import NvmeTarget

__all__ = ["NamespaceProvider", "NamespaceRecord", "NvmeTarget", "StaticNamespaceProvider"]
