"""Creates take a fast path past FastAPI's routing (vms_mock.app.FastCreates) when the body is a
JSON object the model accepts, and the FastAPI route otherwise. Both must answer alike: these
tests send good and bad bodies in the shapes a client can send them over a real socket."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import requests

from tests.vmsproc import VmsProcess


def uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def chunked(body: bytes, size: int = 7) -> Iterator[bytes]:
    """A generator body: requests sends it with Transfer-Encoding: chunked, in several pieces."""
    for i in range(0, len(body), size):
        yield body[i:i + size]


def audit_of(admin: requests.Session, vms: VmsProcess, path: str) -> list[dict[str, object]]:
    r = admin.get(vms.url("audit/"), params={"path": path, "page_size": "1000"})
    assert r.status_code == 200, r.text
    return [rec for rec in r.json()["results"] if rec["method"] == "POST"]


def test_json_create_answers_the_stored_object_and_is_audited(vms: VmsProcess,
                                                              admin: requests.Session) -> None:
    path = f"/{uniq('fast')}"
    before = len(audit_of(admin, vms, "/api/v1/views/"))
    r = admin.post(vms.url("views/"), json={"path": path, "protocols": ["NFS"], "create_dir": True})
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["path"] == path and created["tenant_id"] == 1
    assert admin.get(vms.url(f"views/{created['id']}/")).json() == created
    records = audit_of(admin, vms, "/api/v1/views/")
    assert len(records) == before + 1
    assert records[-1]["object_id"] == str(created["id"]) and records[-1]["status"] == 201


def test_chunked_and_charset_bodies_create_too(vms: VmsProcess, admin: requests.Session) -> None:
    body = json.dumps({"path": f"/{uniq('chunk')}", "protocols": ["NFS"], "create_dir": True}).encode()
    r = admin.post(vms.url("views/"), data=chunked(body), headers={"Content-Type": "application/json"})
    assert r.status_code == 201, r.text
    body = json.dumps({"path": f"/{uniq('cs')}", "protocols": ["NFS"], "create_dir": True}).encode()
    r = admin.post(vms.url("views/"), data=body, headers={"Content-Type": "application/json; charset=utf-8"})
    assert r.status_code == 201, r.text


def test_bad_bodies_keep_the_routes_error_shapes(vms: VmsProcess, admin: requests.Session) -> None:
    url = vms.url("views/")
    path = f"/{uniq('bad')}"
    good = {"path": path, "protocols": ["NFS"], "create_dir": True}
    cases: list[tuple[dict[str, object], dict[str, object]]] = [
        ({"data": json.dumps(good), "headers": {"Content-Type": "text/plain"}},
         {"non_field_errors": ["Invalid data. Expected a dictionary."]}),
        ({"json": {**good, "bogus": 1}}, {"bogus": ["Unknown field."]}),
        ({"json": {"protocols": ["NFS"]}}, {"path": ["This field is required."]}),
        ({"json": [good]}, {"non_field_errors": ["Invalid data. Expected a dictionary."]}),
        ({"data": b"", "headers": {"Content-Type": "application/json"}},
         {"non_field_errors": ["No data provided."]}),
        ({"data": chunked(b'{"path": '), "headers": {"Content-Type": "application/json"}},
         {"detail": "JSON parse error - Expecting value"}),
    ]
    for kwargs, expected in cases:
        r = admin.post(url, **kwargs)  # type: ignore[arg-type]
        assert (r.status_code, r.json()) == (400, expected), kwargs
    assert not admin.get(url, params={"path": path}).json()  # nothing was made


def test_domain_refusals_from_the_fast_path(vms: VmsProcess, admin: requests.Session) -> None:
    path = f"/{uniq('dup')}"
    assert admin.post(vms.url("views/"), json={"path": path, "protocols": ["NFS"],
                                               "create_dir": True}).status_code == 201
    r = admin.post(vms.url("views/"), json={"path": path, "protocols": ["NFS"], "create_dir": True})
    assert (r.status_code, r.json()) == (400, {"path": ["This field must be unique."]})
    r = admin.post(vms.url("volumes/"), json={"name": uniq("vol"), "view_id": 999999, "size": 1 << 30})
    assert (r.status_code, r.json()) == (400, {"view_id": ['Invalid pk "999999" - object does not exist.']})
    records = audit_of(admin, vms, "/api/v1/volumes/")
    assert records[-1]["status"] == 400 and records[-1]["outcome"] == "failure"


def test_a_tenant_admin_cannot_create_in_another_tenant(vms: VmsProcess) -> None:
    t1 = vms.session("tenant1-admin", "tenant1-admin")
    r = t1.post(vms.url("views/"), json={"path": f"/{uniq('t')}", "protocols": ["NFS"],
                                         "create_dir": True, "tenant_id": 1})
    assert r.status_code == 400, r.text
    assert "tenant_id" in r.json()
