"""Typed client of the VAST Management Service (VMS) REST API, used by both drivers."""

from .client import VmsClient
from .config import VmsConfig

__all__ = ["VmsClient", "VmsConfig"]
