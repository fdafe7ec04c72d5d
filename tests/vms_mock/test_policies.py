"""Policies, pools, tenants and managers: references, in-use rules and tenant visibility."""

from __future__ import annotations

import json
import uuid

import requests

from tests.vmsproc import VmsProcess


def uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


POLICY = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::b/*"]}]})


def test_shared_vip_pool_is_visible_to_tenants(vms: VmsProcess, admin: requests.Session) -> None:
    t1 = vms.session("tenant1-admin", "tenant1-admin")
    seeded = {p["name"] for p in t1.get(vms.url("vippools/")).json()}
    assert "vippool-1" in seeded  # tenant_id null: shared by every tenant
    own = admin.post(vms.url("vippools/"), json={"name": uniq("pool"), "tenant_id": 1,
                                                 "ip_ranges": [["127.0.0.1", "127.0.0.1"]]}).json()
    assert own["id"] not in {p["id"] for p in t1.get(vms.url("vippools/")).json()}
    backwards = [["127.0.0.9", "127.0.0.1"]]
    r = admin.post(vms.url("vippools/"), json={"name": uniq("pool"), "ip_ranges": backwards})
    assert r.status_code == 400 and "ip_ranges" in r.json()


def test_in_use_objects_answer_409(vms: VmsProcess, admin: requests.Session) -> None:
    pol = admin.post(vms.url("viewpolicies/"), json={"name": uniq("vp")}).json()
    view = admin.post(vms.url("views/"), json={"path": "/" + uniq("v"), "create_dir": True,
                                               "policy_id": pol["id"]}).json()
    assert admin.delete(vms.url(f"viewpolicies/{pol['id']}/")).status_code == 409
    assert admin.delete(vms.url(f"views/{view['id']}/")).status_code == 204
    assert admin.delete(vms.url(f"viewpolicies/{pol['id']}/")).status_code == 204

    s3pol = admin.post(vms.url("s3policies/"), json={"name": uniq("sp"), "policy": POLICY}).json()
    user = admin.post(vms.url("users/"), json={"name": uniq("u"), "s3_policies_ids": [s3pol["id"]]}).json()
    assert user["s3_policies_ids"] == [s3pol["id"]]
    assert admin.delete(vms.url(f"s3policies/{s3pol['id']}/")).status_code == 409
    assert admin.patch(vms.url(f"users/{user['id']}/"), json={"s3_policies_ids": []}).status_code == 200
    assert admin.delete(vms.url(f"s3policies/{s3pol['id']}/")).status_code == 204
    r = admin.patch(vms.url(f"users/{user['id']}/"), json={"s3_policies_ids": [999999]})
    assert r.status_code == 400 and "s3_policies_ids" in r.json()
    r = admin.post(vms.url("s3policies/"), json={"name": uniq("sp"), "policy": "not json"})
    assert r.status_code == 400 and "policy" in r.json()

    tenant = admin.post(vms.url("tenants/"), json={"name": uniq("tn")}).json()
    quota = admin.post(vms.url("quotas/"), json={"name": uniq("q"), "path": "/tq",
                                                 "tenant_id": tenant["id"]}).json()
    assert admin.delete(vms.url(f"tenants/{tenant['id']}/")).status_code == 409
    assert admin.delete(vms.url(f"quotas/{quota['id']}/")).status_code == 204
    assert admin.delete(vms.url(f"tenants/{tenant['id']}/")).status_code == 204


def test_managers_are_super_admin_business(vms: VmsProcess, admin: requests.Session) -> None:
    name = uniq("mgr")
    r = admin.post(vms.url("managers/"), json={"username": name, "password": "pw", "role": "tenant_admin"})
    assert r.status_code == 400 and "tenant_id" in r.json()
    r = admin.post(vms.url("managers/"), json={"username": name, "password": "pw", "role": "tenant_admin",
                                               "tenant_id": 2})
    assert r.status_code == 201 and "password" not in r.json()
    t = vms.session(name, "pw")
    assert [x["name"] for x in t.get(vms.url("tenants/")).json()] == ["tenant1"]
    assert t.post(vms.url("managers/"), json={"username": uniq("x"), "password": "pw", "role": "super_admin"}
                  ).status_code == 403
    assert t.post(vms.url("tenants/"), json={"name": uniq("t")}).status_code == 403
    assert admin.patch(vms.url(f"managers/{r.json()['id']}/"), json={"password": "new"}).status_code == 200
    old = requests.post(vms.url("token/"), json={"username": name, "password": "pw"}, timeout=10)
    assert old.status_code == 401
    assert vms.session(name, "new").get(vms.url("views/")).status_code == 200
