"""Platform against cluster: users, keys and buckets this driver made whose Kubernetes objects are
gone. Report-only by default; ``delete`` removes them through the driver's own (idempotent) revoke
and non-forced delete, so a non-empty bucket is never destroyed by the reconciler."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Gauge

from cosi_driver import naming
from cosi_driver.operator.kube import Kube

log = logging.getLogger(__name__)
ORPHANS = Gauge(
    "cosi_operator_orphans", "platform objects of this driver with no Kubernetes object", ["kind"]
)
POLICIES = ("report", "delete")


@dataclass
class OrphanReport:
    users: list[str] = field(default_factory=list)
    buckets: list[str] = field(default_factory=list)
    removed_users: list[str] = field(default_factory=list)
    removed_buckets: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def referenced(kube: Kube) -> tuple[set[str], set[str]]:
    """Account ids and bucket ids the cluster still refers to (both API versions)."""
    accounts: set[str] = set()
    buckets: set[str] = set()
    for version in ("v1alpha1", "v1alpha2"):
        for access in kube.list_objects(version, "bucketaccesses"):
            account = (access.get("status") or {}).get("accountID")
            if account:
                accounts.add(account)
        for bucket in kube.list_objects(version, "buckets"):
            bid = (bucket.get("status") or {}).get("bucketID") or (bucket.get("spec") or {}).get(
                "existingBucketID"
            )
            if bid:
                buckets.add(bid)
    return accounts, buckets


class OrphanReconciler:
    def __init__(
        self,
        kube: Kube,
        client: Any,
        provisioner: Any = None,
        policy: str = "report",
        grace_seconds: float = 600.0,
    ) -> None:
        if policy not in POLICIES:
            raise ValueError(f"orphan policy must be one of {POLICIES}")
        if policy == "delete" and provisioner is None:
            raise ValueError("orphan policy delete needs the driver's provisioner")
        self.kube, self.client, self.provisioner = kube, client, provisioner
        self.policy, self.grace = policy, grace_seconds
        self._first_seen: dict[str, float] = {}

    def _old_enough(self, key: str, now: float, current: set[str]) -> bool:
        self._first_seen.setdefault(key, now)
        return now - self._first_seen[key] >= self.grace

    def run_once(self, now: float | None = None) -> OrphanReport:
        now = time.time() if now is None else now
        accounts, bucket_ids = referenced(self.kube)
        # v1alpha1 buckets carry their COSI name verbatim: the store says which are ours
        recorded = set(self.provisioner.store.names("bucket")) if self.provisioner is not None else set()
        users = sorted(u.name for u in self.client.users.iter() if u.name and naming.is_owned_user(u.name))
        buckets = sorted(
            v.bucket
            for v in self.client.views.iter()
            if v.bucket and (naming.is_owned_bucket(v.bucket) or v.bucket in recorded)
        )
        report = OrphanReport()
        candidates = {f"user:{u}" for u in users if u not in accounts} | {
            f"bucket:{b}" for b in buckets if b not in bucket_ids
        }
        # Forget candidates that got referenced (or vanished) since the last pass.
        self._first_seen = {k: v for k, v in self._first_seen.items() if k in candidates}
        for key in sorted(candidates):
            if not self._old_enough(key, now, candidates):
                continue
            kind, name = key.split(":", 1)
            (report.users if kind == "user" else report.buckets).append(name)
        ORPHANS.labels("user").set(len(report.users))
        ORPHANS.labels("bucket").set(len(report.buckets))
        for name in report.users:
            log.warning("orphan platform user", extra={"user": name, "policy": self.policy})
        for name in report.buckets:
            log.warning("orphan platform bucket", extra={"bucket": name, "policy": self.policy})
        if self.policy == "delete":
            for name in report.users:
                try:
                    self.provisioner.revoke(name)
                    report.removed_users.append(name)
                except Exception as exc:
                    report.errors.append(f"user {name}: {exc}")
            for name in report.buckets:
                try:
                    self.provisioner.delete_bucket(name, {})
                    report.removed_buckets.append(name)
                except Exception as exc:
                    report.errors.append(f"bucket {name}: {exc}")
        return report
