"""``VmsClient``: the typed VMS REST client both drivers use (see docs/architecture.md)."""

from __future__ import annotations

import logging
import threading
from typing import Any

from .config import VmsConfig
from .errors import NotFound
from .metrics import RequestObserver
from .models import (
    ApiToken,
    ApiTokenCreate,
    BlockHost,
    BlockHostCreate,
    BlockHostVolume,
    Cluster,
    Manager,
    ManagerCreate,
    QosPolicy,
    QosPolicyCreate,
    Quota,
    QuotaCreate,
    QuotaUpdate,
    S3Policy,
    S3PolicyCreate,
    Snapshot,
    SnapshotCreate,
    Tenant,
    TenantCreate,
    User,
    UserCreate,
    Version,
    View,
    ViewCreate,
    ViewPolicy,
    ViewPolicyCreate,
    VipPool,
    VipPoolCreate,
    Volume,
    VolumeCreate,
    VolumeUpdate,
    VTask,
)
from .resources import (
    BlockHostVolumesClient,
    ClustersClient,
    FoldersClient,
    ResourceClient,
    SnapshotsClient,
    UsersClient,
    VersionsClient,
    VolumesClient,
    VTasksClient,
)
from .transport import Transport

log = logging.getLogger("vms_client")


class VmsClient:
    """Thread-safe: one client (one connection pool, one token) may serve every thread."""

    def __init__(self, config: VmsConfig, *, observer: RequestObserver | None = None,
                 transport: Transport | None = None) -> None:
        self.config = config
        self.transport = transport or Transport(config, observer)
        self._block_prefix: str | None = None
        self._probe_lock = threading.Lock()

        self.versions = VersionsClient(self, "versions", Version)
        self.clusters = ClustersClient(self, "clusters", Cluster)
        self.tenants = ResourceClient(self, "tenants", Tenant, create_model=TenantCreate)
        self.viewpolicies = ResourceClient(self, "viewpolicies", ViewPolicy, create_model=ViewPolicyCreate)
        self.qospolicies = ResourceClient(self, "qospolicies", QosPolicy, create_model=QosPolicyCreate)
        self.vippools = ResourceClient(self, "vippools", VipPool, create_model=VipPoolCreate)
        self.views = ResourceClient(self, "views", View, create_model=ViewCreate)
        self.quotas = ResourceClient(self, "quotas", Quota, create_model=QuotaCreate,
                                     update_model=QuotaUpdate)
        self.users = UsersClient[User](self, "users", User, create_model=UserCreate)
        self.s3policies = ResourceClient(self, "s3policies", S3Policy, create_model=S3PolicyCreate)
        self.snapshots = SnapshotsClient[Snapshot](self, "snapshots", Snapshot, create_model=SnapshotCreate)
        self.managers = ResourceClient(self, "managers", Manager, create_model=ManagerCreate)
        self.apitokens = ResourceClient(self, "apitokens", ApiToken, create_model=ApiTokenCreate)
        self.volumes = VolumesClient[Volume](self, "volumes", Volume, create_model=VolumeCreate,
                                             update_model=VolumeUpdate, block=True)
        self.blockhosts = ResourceClient(self, "blockhosts", BlockHost, create_model=BlockHostCreate,
                                         block=True)
        self.blockhostvolumes = BlockHostVolumesClient(self, "blockhostvolumes", BlockHostVolume,
                                                       block=True)
        self.vtasks = VTasksClient(self, "vtasks", VTask, api_version="v1")
        self.folders = FoldersClient(self)

    def __repr__(self) -> str:
        return f"VmsClient(endpoint={self.config.endpoint!r}, auth={self.transport.auth!r})"

    def __enter__(self) -> VmsClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self.transport.close()

    def api_prefix(self, *, block: bool) -> str:
        """``/api/<version>/`` for a collection; block collections use ``block_api_version``,
        falling back to ``api_version`` once when the cluster does not serve it."""
        if not block or self.config.block_api_version == self.config.api_version:
            return f"/api/{self.config.api_version}/"
        if self._block_prefix is not None:
            return self._block_prefix
        preferred = f"/api/{self.config.block_api_version}/"
        if not self.config.block_api_fallback:
            return preferred
        with self._probe_lock:
            if self._block_prefix is None:
                self._block_prefix = self._probe_block_prefix(preferred)
        return self._block_prefix

    def _probe_block_prefix(self, preferred: str) -> str:
        try:
            self.transport.request("GET", f"{preferred}volumes/", resource="probe",
                                   params={"page_size": "1"})
        except NotFound:
            fallback = f"/api/{self.config.api_version}/"
            log.warning("cluster has no block API under %s; using %s", preferred, fallback,
                        extra={"vms_endpoint": self.config.endpoint})
            return fallback
        return preferred

