"""Typed client of the VAST Management Service (VMS) REST API, used by both drivers.

    from vms_client import VmsClient, VmsConfig
    from vms_client.errors import NotFound, Conflict

    with VmsClient(VmsConfig(endpoint="https://vms.example", username="admin", password="...")) as vms:
        view = vms.views.find_one(name="block-default")      # exact match, or None
        vol = vms.volumes.create(name="/grp/v1", view_id=view.id, size=1 << 30)
        vms.volumes.delete(vol.id, force=True, missing_ok=True)

One client is thread-safe and shares one connection pool and one login (renewed single-flight).
See docs/architecture.md ("vms_client surface") for the resources, retries and errors.
"""

from .client import VmsClient
from .config import VmsConfig

__all__ = ["VmsClient", "VmsConfig"]
