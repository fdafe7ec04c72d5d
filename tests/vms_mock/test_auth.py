"""Authentication over raw HTTP: token expiry and refresh, API tokens, tenant isolation."""

from __future__ import annotations

import time
import uuid

import requests

from tests.vmsproc import VmsProcess


def test_admin_expiry_ttl_expiry_and_refresh(fresh_vms: VmsProcess) -> None:
    fresh_vms.token_ttl = 3.0
    vms = fresh_vms.start()

    def login() -> dict[str, str]:
        r = requests.post(vms.url("token/"), json={"username": "admin", "password": "admin"}, timeout=10)
        assert r.status_code == 200
        return dict(r.json())

    def get(access: str) -> requests.Response:
        return requests.get(vms.url("tenants/"), headers={"Authorization": f"Bearer {access}"}, timeout=10)

    # the admin endpoint expires every token issued so far, refresh tokens too
    old = login()
    assert get(old["access"]).status_code == 200
    expire = requests.post(f"{vms.api_url}/api/admin/expire_tokens/", timeout=10,
                           headers={"Authorization": f"Bearer {old['access']}"})
    assert expire.status_code == 200
    r = get(old["access"])
    assert r.status_code == 403 and "Token is invalid or expired" in r.text
    assert requests.post(vms.url("token/refresh/"), json={"refresh": old["refresh"]},
                         timeout=10).status_code == 401
    # a new login works; its access token lapses after --token-ttl; refresh gives a new one
    tokens = login()
    assert get(tokens["access"]).status_code == 200
    time.sleep(3.3)
    expired = get(tokens["access"])
    assert expired.status_code == 403 and "Token is invalid or expired" in expired.text
    refreshed = requests.post(vms.url("token/refresh/"), json={"refresh": tokens["refresh"]}, timeout=10)
    assert refreshed.status_code == 200
    assert get(refreshed.json()["access"]).status_code == 200
    bad = requests.post(vms.url("token/refresh/"), json={"refresh": tokens["access"]}, timeout=10)
    assert bad.status_code == 401  # an access token is not a refresh token
    forged = get("a.b.c")
    assert forged.status_code == 403 and "Token is invalid or expired" in forged.text


def test_api_token_is_shown_once_and_authenticates(vms: VmsProcess, admin: requests.Session) -> None:
    r = admin.post(vms.url("apitokens/"), json={"name": f"ci-{uuid.uuid4().hex[:6]}"})
    assert r.status_code == 201
    created = r.json()
    token = created["token"]
    listed = admin.get(vms.url(f"apitokens/{created['id']}/")).json()
    assert "token" not in listed
    hdr = {"Authorization": f"Api-Token {token}"}
    assert requests.get(vms.url("views/"), headers=hdr, timeout=10).status_code == 200
    assert admin.delete(vms.url(f"apitokens/{created['id']}/")).status_code == 204
    assert requests.get(vms.url("views/"), headers=hdr, timeout=10).status_code == 401
    wrong = requests.get(vms.url("views/"), headers={"Authorization": "Api-Token nope"}, timeout=10)
    assert wrong.status_code == 401


def test_tenant_admin_sees_and_changes_only_its_tenant(vms: VmsProcess, admin: requests.Session) -> None:
    mine = admin.post(vms.url("quotas/"), json={"name": f"t1-{uuid.uuid4().hex[:6]}", "path": "/t1q",
                                                "tenant_id": 2}).json()
    other = admin.post(vms.url("quotas/"), json={"name": f"t0-{uuid.uuid4().hex[:6]}", "path": "/t0q",
                                                 "tenant_id": 1}).json()
    t1 = vms.session("tenant1-admin", "tenant1-admin")
    listed = {q["id"] for q in t1.get(vms.url("quotas/")).json()}
    assert mine["id"] in listed and other["id"] not in listed
    assert t1.get(vms.url(f"quotas/{other['id']}/")).status_code == 404
    assert t1.patch(vms.url(f"quotas/{other['id']}/"), json={"hard_limit": 1}).status_code == 404
    assert t1.delete(vms.url(f"quotas/{other['id']}/")).status_code == 404
    assert [t["name"] for t in t1.get(vms.url("tenants/")).json()] == ["tenant1"]
    # creating in another tenant is refused; without tenant_id it lands in the principal's tenant
    r = t1.post(vms.url("quotas/"), json={"name": "x-" + uuid.uuid4().hex[:6], "path": "/x", "tenant_id": 1})
    assert r.status_code == 400 and "tenant_id" in r.json()
    r = t1.post(vms.url("quotas/"), json={"name": "y-" + uuid.uuid4().hex[:6], "path": "/y"})
    assert r.status_code == 201 and r.json()["tenant_id"] == 2
    assert t1.get(vms.url("managers/")).status_code == 403
    # a super-admin scoped by X-Tenant-Name sees just that tenant too
    scoped = admin.get(vms.url("quotas/"), headers={"X-Tenant-Name": "tenant1"}).json()
    assert {q["tenant_id"] for q in scoped} == {2}
    assert t1.get(vms.url("quotas/"), headers={"X-Tenant-Name": "default"}).status_code == 403
    # a tenant admin cannot log in to another tenant
    r = requests.post(vms.url("token/"), json={"username": "tenant1-admin", "password": "tenant1-admin"},
                      headers={"X-Tenant-Name": "default"}, timeout=10)
    assert r.status_code == 401
