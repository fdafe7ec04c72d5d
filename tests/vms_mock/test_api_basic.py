"""The REST API over a real vms-mock process: auth, shapes, filters, pagination, errors."""

from __future__ import annotations

import uuid

import requests

from tests.vmsproc import VmsProcess


def uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_no_credentials_is_401(vms: VmsProcess) -> None:
    r = requests.get(vms.url("views/"), timeout=10)
    assert r.status_code == 401
    assert r.json() == {"detail": "Authentication credentials were not provided."}


def test_bad_password_is_401(vms: VmsProcess) -> None:
    r = requests.post(vms.url("token/"), json={"username": "admin", "password": "nope"}, timeout=10)
    assert r.status_code == 401


def test_token_login_and_versions_on_every_prefix(vms: VmsProcess, admin: requests.Session) -> None:
    for version in ("v1", "", "v5"):
        r = admin.get(vms.url("versions/", version), params={"status": "success"})
        assert r.status_code == 200, r.text
        assert r.json()[0]["sys_version"] == "5.3.0"


def test_seeded_objects(vms: VmsProcess, admin: requests.Session) -> None:
    assert admin.get(vms.url("tenants/"), params={"name": "default"}).json()[0]["id"] == 1
    pools = admin.get(vms.url("vippools/")).json()
    assert pools[0]["ip_ranges"][0][0].startswith("127.")
    block = admin.get(vms.url("views/", "v5"), params={"name": "block-default"}).json()
    assert block[0]["nqn"].startswith("nqn.2024-08.com.vastdata:")
    assert admin.get(vms.url("viewpolicies/"), params={"name": "s3-default"}).json()


def test_view_crud_and_uniqueness(vms: VmsProcess, admin: requests.Session) -> None:
    path = "/" + uniq("nfs")
    r = admin.post(vms.url("views/"), json={"path": path, "create_dir": True, "protocols": ["NFS"],
                                            "policy_id": 1})
    assert r.status_code == 201, r.text
    view = r.json()
    assert view["path"] == path and view["tenant_id"] == 1
    assert (vms.data_dir / "fs" / path.lstrip("/")).is_dir()
    again = admin.post(vms.url("views/"), json={"path": path, "create_dir": True, "policy_id": 1})
    assert again.status_code == 400
    assert again.json() == {"path": ["This field must be unique."]}
    assert admin.get(vms.url(f"views/{view['id']}/")).json()["path"] == path
    assert [v["id"] for v in admin.get(vms.url("views/"), params={"path": path}).json()] == [view["id"]]
    assert admin.delete(vms.url(f"views/{view['id']}/")).status_code == 204
    gone = admin.get(vms.url(f"views/{view['id']}/"))
    assert gone.status_code == 404 and gone.json() == {"detail": "Not found."}
    assert admin.delete(vms.url(f"views/{view['id']}/")).status_code == 404


def test_s3_view_needs_existing_owner_and_valid_bucket(vms: VmsProcess, admin: requests.Session) -> None:
    user = admin.post(vms.url("users/"), json={"name": uniq("owner")}).json()
    bucket = uniq("bkt")
    body = {"path": f"/{bucket}", "create_dir": True, "protocols": ["S3"], "bucket": bucket,
            "bucket_owner": "nobody-" + bucket, "policy_id": 2}
    r = admin.post(vms.url("views/"), json=body)
    assert r.status_code == 400 and "bucket_owner" in r.json()
    r = admin.post(vms.url("views/"), json={**body, "bucket_owner": user["name"], "bucket": "Bad_Name"})
    assert r.status_code == 400 and "bucket" in r.json()
    r = admin.post(vms.url("views/"), json={**body, "bucket_owner": user["name"], "s3_versioning": True,
                                            "s3_locks": True, "s3_locks_retention_mode": "GOVERNANCE",
                                            "s3_locks_retention_period": "7d"})
    assert r.status_code == 201, r.text
    assert r.json()["bucket"] == bucket and r.json()["s3_locks"] is True
    r = admin.patch(vms.url(f"views/{r.json()['id']}/"), json={"s3_locks": False})
    assert r.status_code == 400 and "s3_locks" in r.json()


def test_validation_errors_name_the_field(vms: VmsProcess, admin: requests.Session) -> None:
    r = admin.post(vms.url("quotas/"), json={"name": uniq("q"), "path": "/x", "hard_limit": "big",
                                             "colour": "red"})
    assert r.status_code == 400
    assert set(r.json()) == {"hard_limit", "colour"}
    r = admin.post(vms.url("quotas/"), json={"path": "/x"})
    assert r.status_code == 400 and r.json() == {"name": ["This field is required."]}
    r = admin.post(vms.url("quotas/"), data="{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "JSON parse error" in r.json()["detail"]
    r = admin.post(vms.url("quotas/"), json=[1, 2])
    assert r.status_code == 400 and "non_field_errors" in r.json()
    r = admin.post(vms.url("quotas/"), json={"name": uniq("q"), "path": "/x", "tenant_id": 999})
    assert r.status_code == 400 and "tenant_id" in r.json()
    r = admin.get(vms.url("quotas/"), params={"colour": "red"})
    assert r.status_code == 400 and "colour" in r.json()
    assert admin.get(vms.url("quotas/abc/")).status_code == 404
    assert admin.get(vms.url("quotas/\u00b2/")).status_code == 404  # a unicode digit is no id
    assert admin.get(vms.url("quotas/"), params={"page_size": "\u00b2"}).status_code == 400


def test_a_manager_cannot_delete_itself(vms: VmsProcess, admin: requests.Session) -> None:
    me = admin.get(vms.url("managers/"), params={"username": "admin"}).json()[0]
    assert "password" not in me and "_password" not in me
    assert admin.delete(vms.url(f"managers/{me['id']}/")).status_code == 409


def test_filters_and_pagination(vms: VmsProcess, admin: requests.Session) -> None:
    tag = uniq("pg")
    ids = [admin.post(vms.url("quotas/"), json={"name": f"{tag}-{i}", "path": f"/{tag}/{i}",
                                                 "hard_limit": i}).json()["id"] for i in range(7)]
    first = admin.get(vms.url("quotas/"), params={"name__startswith": tag, "page_size": "3"}).json()
    assert first["count"] == 7 and len(first["results"]) == 3 and first["previous"] is None
    seen = [q["id"] for q in first["results"]]
    nxt = first["next"]
    while nxt:
        page = admin.get(nxt).json()
        seen += [q["id"] for q in page["results"]]
        nxt = page["next"]
    assert seen == ids
    exact = admin.get(vms.url("quotas/"), params={"path": f"/{tag}/1"}).json()
    assert [q["id"] for q in exact] == [ids[1]]  # exact, not substring (/tag/1 vs /tag/10)
    assert len(admin.get(vms.url("quotas/"), params={"path__contains": tag}).json()) == 7
    assert len(admin.get(vms.url("quotas/"), params={"name__endswith": f"{tag}-6"}).json()) == 1
    r = admin.patch(vms.url(f"quotas/{ids[0]}/"), json={"hard_limit": 4096})
    assert r.status_code == 200 and r.json()["hard_limit"] == 4096


def test_openapi_published(vms: VmsProcess) -> None:
    doc = requests.get(f"{vms.api_url}/api/openapi.json", timeout=10).json()
    assert "/api/v1/views/" in doc["paths"] and "/api/v1/blockhostvolumes/bulk/" in doc["paths"]


def test_unknown_route_is_json_404(vms: VmsProcess, admin: requests.Session) -> None:
    r = admin.get(vms.url("nosuchthing/"))
    assert r.status_code == 404 and r.json() == {"detail": "Not found."}


def test_delete_folder_removes_data_once_the_view_is_gone(vms: VmsProcess, admin: requests.Session) -> None:
    path = "/" + uniq("trash")
    view = admin.post(vms.url("views/"), json={"path": path, "create_dir": True, "policy_id": 1}).json()
    data = vms.data_dir / "fs" / path.lstrip("/")
    (data / "sub").mkdir()
    (data / "sub" / "file").write_bytes(b"x" * 100)
    r = admin.delete(vms.url("folders/delete_folder/"), json={"path": path, "tenant_id": 1})
    assert r.status_code == 409  # still exported by a view
    assert admin.delete(vms.url(f"views/{view['id']}/")).status_code == 204
    assert data.exists()  # deleting a view keeps its data
    r = admin.delete(vms.url("folders/delete_folder/"), json={"path": path, "tenant_id": 1})
    assert r.status_code == 204 and not data.exists()
    r = admin.delete(vms.url("folders/delete_folder/"), json={"path": path, "tenant_id": 1})
    assert r.status_code == 404
    r = admin.delete(vms.url("folders/delete_folder/"), json={"path": "/", "tenant_id": 1})
    assert r.status_code == 400 and "path" in r.json()
    r = admin.delete(vms.url("folders/delete_folder/"), json={"path": "/a/../b", "tenant_id": 1})
    assert r.status_code == 400 and "path" in r.json()


def test_access_keys_are_listed_without_secrets(vms: VmsProcess, admin: requests.Session) -> None:
    user = admin.post(vms.url("users/"), json={"name": uniq("keys")}).json()
    assert user["uid"] >= 50000 and user["access_keys"] == []
    pair = admin.post(vms.url(f"users/{user['id']}/access_keys/"), json={}).json()
    assert set(pair) == {"access_key", "secret_key"}
    listed = admin.get(vms.url(f"users/{user['id']}/")).json()["access_keys"]
    assert [(k["key"], k["status"]) for k in listed] == [(pair["access_key"], "enabled")]
    assert pair["secret_key"] not in admin.get(vms.url("users/")).text
    r = admin.delete(vms.url(f"users/{user['id']}/access_keys/"), json={"access_key": pair["access_key"]})
    assert r.status_code == 204
    r = admin.delete(vms.url(f"users/{user['id']}/access_keys/"), json={"access_key": pair["access_key"]})
    assert r.status_code == 404
    assert admin.get(vms.url(f"users/{user['id']}/")).json()["access_keys"] == []


def test_oversized_body_is_refused(vms: VmsProcess, admin: requests.Session) -> None:
    r = admin.post(vms.url("quotas/"), json={"name": "x" * (2 << 20), "path": "/big"})
    assert r.status_code == 413 and "detail" in r.json()
    r = admin.post(vms.url("quotas/"), json={"name": "x" * 129, "path": "/big"})
    assert r.status_code == 400 and "name" in r.json()


def test_filters_on_other_kinds(vms: VmsProcess, admin: requests.Session) -> None:
    host = admin.post(vms.url("blockhosts/", "v5"), json={
        "name": uniq("fh"), "nqn": f"nqn.2014-08.org.nvmexpress:uuid:{uuid.uuid4()}"}).json()
    found = admin.get(vms.url("blockhosts/", "v5"), params={"nqn": host["nqn"], "tenant_id": 1}).json()
    assert [h["id"] for h in found] == [host["id"]]
    assert admin.get(vms.url("vtasks/"), params={"state": "RUNNING", "tenant_id": "1"}).status_code == 200
    r = admin.get(vms.url("blockhosts/", "v5"), params={"tenant_id": "one"})
    assert r.status_code == 400 and "tenant_id" in r.json()
    r = admin.get(vms.url("blockhosts/", "v5"), params={"tenant_id__contains": "1"})
    assert r.status_code == 400
    assert admin.get(vms.url("tenants/"), params={"id__in": "1,2"}).json()[1]["name"] == "tenant1"
