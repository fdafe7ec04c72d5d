"""Attach backends: ``nvme-tcp`` (production) and ``loop`` (development/CI), one interface."""

from csi_block_driver.attach.base import AttachBackend, AttachTarget

__all__ = ["AttachBackend", "AttachTarget"]
