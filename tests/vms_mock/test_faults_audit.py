"""Fault injection (CLI flag and admin endpoint) and the audit log."""

from __future__ import annotations

import json
import time
import uuid

import pytest
import requests

from tests.vmsproc import VmsProcess
from vms_mock.faults import parse_spec


def test_fault_spec_syntax() -> None:
    rule = parse_spec("error=503,rate=0.5,method=POST|delete,times=3,path=^/api/v\\d/(views|volumes)/,x")
    assert rule.error == 503 and rule.rate == 0.5 and rule.method == ["POST", "DELETE"]
    assert rule.times == 3 and rule.path == "^/api/v\\d/(views|volumes)/,x"
    assert parse_spec("latency=250ms").latency == 0.25
    assert parse_spec("expire=1").expire is True
    with pytest.raises(ValueError, match="unknown"):
        parse_spec("colour=red")
    with pytest.raises(ValueError):
        parse_spec("path=(")


def test_cli_fault_answers_503_and_admin_is_off_by_default(fresh_vms: VmsProcess) -> None:
    fresh_vms.faults = ["error=503,method=GET,path=^/api/v1/views/"]
    fresh_vms.enable_admin = False
    vms = fresh_vms.start()
    s = vms.session()
    r = s.get(vms.url("views/"))
    assert r.status_code == 503 and r.json()["detail"]
    assert s.get(vms.url("quotas/")).status_code == 200
    assert s.get(f"{vms.api_url}/api/admin/faults/").status_code == 404


def test_admin_faults_latency_times_and_expiry(vms: VmsProcess, admin: requests.Session) -> None:
    base = f"{vms.api_url}/api/admin/faults/"
    try:
        r = admin.post(base, json={"path": "/qospolicies/", "error": 503, "times": 2})
        assert r.status_code == 201
        codes = [admin.get(vms.url("qospolicies/")).status_code for _ in range(3)]
        assert codes == [503, 503, 200]
        admin.post(base, json={"path": "/vippools/", "latency": 0.3})
        t0 = time.monotonic()
        assert admin.get(vms.url("vippools/")).status_code == 200
        assert time.monotonic() - t0 >= 0.3
        admin.post(base, json={"path": "/viewpolicies/", "expire": True, "times": 1})
        r = admin.get(vms.url("viewpolicies/"))
        assert r.status_code == 403 and "Token is invalid or expired" in r.text
        assert admin.get(vms.url("viewpolicies/")).status_code == 200
        assert len(admin.get(base).json()) == 3
        bad = admin.post(base, json={"path": "(", "error": 503})
        assert bad.status_code == 400 and "path" in bad.json()
        tenant = vms.session("tenant1-admin", "tenant1-admin")
        assert tenant.get(base).status_code == 403
    finally:
        assert admin.delete(base).status_code == 204
    assert admin.get(base).json() == []


def test_every_mutation_is_audited(fresh_vms: VmsProcess) -> None:
    vms = fresh_vms.start()
    s = vms.session()
    name = f"aud-{uuid.uuid4().hex[:6]}"
    created = s.post(vms.url("quotas/"), json={"name": name, "path": "/aud"}).json()
    s.post(vms.url("quotas/"), json={"name": name, "path": "/aud2"})  # fails: unique
    s.delete(vms.url(f"quotas/{created['id']}/"))
    requests.delete(vms.url("quotas/1/"), timeout=10)  # anonymous, 401
    s.get(vms.url("quotas/"))  # reads are not audited
    recs = s.get(vms.url("audit/"), params={"path__contains": "/quotas/"}).json()
    got = [(r["method"], r["status"], r["outcome"], r["principal"]) for r in recs]
    assert got == [("POST", 201, "success", "admin"), ("POST", 400, "failure", "admin"),
                   ("DELETE", 204, "success", "admin"), ("DELETE", 401, "failure", None)]
    assert recs[0]["object_id"] == str(created["id"]) and recs[2]["object_id"] == str(created["id"])
    lines = [json.loads(line) for line in (vms.data_dir / "audit.jsonl").read_text().splitlines()]
    quota_lines = [rec for rec in lines if "/quotas/" in rec["path"]]
    assert [(r["method"], r["status"]) for r in quota_lines] == [(m, st) for m, st, _, _ in got]
    assert all(r["time"].endswith("Z") for r in quota_lines)
    paged = s.get(vms.url("audit/"), params={"method": "DELETE", "page_size": "1"}).json()
    assert paged["count"] == 2 and len(paged["results"]) == 1
    assert vms.session("tenant1-admin", "tenant1-admin").get(vms.url("audit/")).status_code == 403
    assert "password" not in (vms.data_dir / "audit.jsonl").read_text()  # bodies are never logged
