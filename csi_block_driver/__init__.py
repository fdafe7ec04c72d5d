"""kubevast block CSI driver: CSI v1.12 over the VMS block API, attached with NVMe/TCP or loop."""

__version__ = "0.1.0"
