"""Seed configuration: create tenants, managers, policies, pools and views from a YAML file.

Entries go through the same domain code (and validation) as API calls, made by an internal
super-admin principal. Names stand for ids: ``tenant: <name>`` -> ``tenant_id``,
``policy: <view policy name>`` -> ``policy_id`` (looked up in the entry's tenant).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from vms_mock.auth import Principal
from vms_mock.domain import Vms
from vms_mock.errors import ApiError

ORDER = ("tenants", "managers", "viewpolicies", "qospolicies", "vippools", "users", "s3policies",
         "views", "quotas", "blockhosts")
SEED_PRINCIPAL = Principal(manager_id=0, username="seed", role="super_admin", tenant_id=None,
                           tenant_name=None, via="seed")


class SeedError(Exception):
    pass


def load_seed(path: Path | None) -> dict[str, Any]:
    text = path.read_text() if path else resources.files("vms_mock").joinpath(
        "seed_default.yaml").read_text()
    doc = yaml.safe_load(text) or {}
    if not isinstance(doc, dict):
        raise SeedError("seed file must be a mapping of resource name -> list of objects")
    unknown = set(doc) - set(ORDER)
    if unknown:
        raise SeedError(f"seed file has unknown sections: {sorted(unknown)}; known: {list(ORDER)}")
    return doc


def _lookup(vms: Vms, kind: str, name: str, tenant_id: int | None) -> int:
    rows, _ = vms.store.find(kind, [("name", "exact", name)], tenant_id=tenant_id, limit=1)
    if not rows:
        raise SeedError(f"seed refers to unknown {kind} {name!r}")
    return int(rows[0]["id"])


def apply_seed(vms: Vms, doc: dict[str, Any]) -> int:
    """Create every object of ``doc``; returns how many. Raises SeedError naming the entry."""
    created = 0
    for kind in ORDER:
        for i, entry in enumerate(doc.get(kind) or []):
            body = dict(entry)
            if "tenant" in body:
                body["tenant_id"] = _lookup(vms, "tenants", body.pop("tenant"), None)
            if "policy" in body:
                body["policy_id"] = _lookup(vms, "viewpolicies", body.pop("policy"), body.get("tenant_id"))
            if kind == "views":
                body.setdefault("create_dir", True)
            try:
                from vms_mock.app import CRUD

                model = CRUD[kind][0]
                fields = model.model_validate(body, strict=False).model_dump(exclude_unset=True)
                vms.create(SEED_PRINCIPAL, kind, fields)
            except ApiError as exc:
                raise SeedError(f"seed {kind}[{i}]: {exc.body}") from None
            except ValueError as exc:
                raise SeedError(f"seed {kind}[{i}]: {exc}") from None
            created += 1
    return created
