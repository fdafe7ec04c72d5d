"""Retries, timeouts, races, error mapping and secret hygiene of vms_client against a real
vms-mock process with injected faults."""

from __future__ import annotations

import logging
import socket
import threading
import time

import pytest
from prometheus_client import REGISTRY

from tests.vms_client.conftest import Admin, ClientFactory, Recorder, uniq
from tests.vmsproc import VmsProcess
from vms_client import VmsClient
from vms_client.auth import TokenAuth
from vms_client.errors import (
    CapacityExceeded,
    Conflict,
    NotFound,
    Timeout,
    Unavailable,
)
from vms_client.models import ViewCreate


def test_get_is_retried_through_injected_503(admin: Admin, make_client: ClientFactory) -> None:
    rec = Recorder()
    client = make_client(observer=rec)
    client.versions.current()
    admin.fault(error=503, times=2, method=["GET"], path="^/api/v1/tenants/")
    assert client.tenants.find_one(name="default") is not None
    assert rec.count("GET", "tenants", "503") == 2 and rec.count("GET", "tenants", "200") == 1
    assert [r[2] for r in rec.retries] == ["503", "503"]


def test_post_is_not_retried_unless_marked_idempotent(admin: Admin, make_client: ClientFactory) -> None:
    rec = Recorder()
    client = make_client(observer=rec)
    client.versions.current()
    name = uniq("t")
    admin.fault(error=503, times=1, method=["POST"], path="^/api/v1/tenants/")
    with pytest.raises(Unavailable) as err:
        client.tenants.create(name=name)
    assert err.value.status == 503 and err.value.method == "POST"
    assert "Injected fault" in err.value.message
    assert rec.count("POST", "tenants") == 1 and not rec.retries
    assert client.tenants.find_one(name=name) is None
    admin.fault(error=503, times=2, method=["POST"], path="^/api/v1/tenants/")
    t = client.tenants.create(name=name, idempotent=True)  # unique name: a repeat cannot duplicate
    assert rec.count("POST", "tenants", "503") == 3 and t.name == name
    client.tenants.delete(t.id)


def test_retries_are_bounded(admin: Admin, make_client: ClientFactory) -> None:
    rec = Recorder()
    client = make_client(observer=rec, retries=3)
    client.versions.current()
    admin.fault(error=503, method=["GET"], path="^/api/v1/tenants/")
    with pytest.raises(Unavailable):
        client.tenants.list()
    assert rec.count("GET", "tenants", "503") == 4  # first attempt + 3 retries
    admin.clear_faults()
    admin.fault(error=502, method=["GET"], path="^/api/v1/tenants/")
    deadline_client = make_client(observer=rec, retries=50, backoff_base=0.2, backoff_max=0.2,
                                  retry_deadline=1.0)
    start = time.monotonic()
    with pytest.raises(Unavailable):
        deadline_client.tenants.list()
    assert time.monotonic() - start < 15  # the 1 s retry deadline ends it, not 50 retries


def test_read_timeout_retried_for_get_not_for_post(admin: Admin, make_client: ClientFactory) -> None:
    rec = Recorder()
    client = make_client(observer=rec, timeout=0.5)
    client.versions.current()
    admin.fault(latency=2.0, times=1, method=["GET"], path="^/api/v1/tenants/")
    assert client.tenants.find_one(name="default") is not None
    # (a machine stalled past 0.5 s could time out the repeat too: it is retried as well)
    assert rec.count("GET", "tenants", "error") >= 1 and rec.retries[0][2] == "ReadTimeout"
    admin.fault(latency=2.0, times=1, method=["POST"], path="^/api/v1/tenants/")
    with pytest.raises(Timeout) as err:
        client.tenants.create(name=uniq("slow"))
    assert err.value.status is None and rec.count("POST", "tenants") == 1


def test_connection_refused_is_retried_then_unavailable(make_client: ClientFactory) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rec = Recorder()
    client = make_client(endpoint=f"http://127.0.0.1:{port}", observer=rec, retries=2)
    with pytest.raises(Unavailable) as err:
        client.versions.current()
    # the login POST never reached a server, so even it is retried
    assert rec.count("POST", "token", "error") == 3
    assert "refused" in str(err.value).lower() and err.value.status is None


def test_same_name_create_race_gives_one_object(vms: VmsProcess, client: VmsClient) -> None:
    policy = client.viewpolicies.find_one(name="s3-default", tenant_id=1)
    owner = client.users.create(name=uniq("racer"))
    assert policy is not None
    bucket = uniq("race")
    n = 50
    barrier = threading.Barrier(n)
    created: list[int] = []
    conflicts: list[Conflict] = []
    other: list[BaseException] = []

    def racer() -> None:
        try:
            barrier.wait()
            v = client.views.create(ViewCreate.s3_bucket("/" + bucket, bucket, str(owner.name), policy.id))
            created.append(v.id)
        except Conflict as exc:
            conflicts.append(exc)
        except BaseException as exc:  # pragma: no cover - reported below
            other.append(exc)

    threads = [threading.Thread(target=racer) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not other
    assert len(created) == 1 and len(conflicts) == n - 1
    assert all(c.status == 400 and "must be unique" in str(c) for c in conflicts)
    assert [v.id for v in client.views.list(bucket=bucket)] == created
    client.views.delete(created[0])
    client.users.delete(owner.id)


def test_capacity_exceeded(client: VmsClient) -> None:
    sub = client.views.find_one(name="block-default")
    assert sub is not None
    free = client.clusters.capacity().free_bytes
    with pytest.raises(CapacityExceeded) as err:
        client.volumes.create(name="/" + uniq("huge"), view_id=sub.id, size=(free // 512 + 1024) * 512)
    assert err.value.status == 507 and "capacity" in err.value.message.lower()


def test_block_api_falls_back_when_the_version_is_missing(make_client: ClientFactory) -> None:
    client = make_client(block_api_version="v9")
    assert client.volumes.list(name="/none") == []
    assert client.volumes.collection_path() == "/api/v1/volumes/"
    strict = make_client(block_api_version="v9", block_api_fallback=False)
    with pytest.raises(NotFound):
        strict.volumes.list()
    default = make_client()
    default.volumes.list(name="/none")
    assert default.volumes.collection_path() == "/api/v5/volumes/"


def test_prometheus_metrics_are_recorded(make_client: ClientFactory) -> None:
    def sample() -> float:
        return REGISTRY.get_sample_value(
            "vms_client_requests_total", {"method": "GET", "resource": "tenants", "status": "200"}) or 0.0

    before = sample()
    make_client(metrics=True).tenants.list()
    assert sample() == before + 1
    assert (REGISTRY.get_sample_value("vms_client_request_duration_seconds_count",
                                      {"method": "GET", "resource": "tenants"}) or 0) >= 1


def test_secrets_never_reach_logs_reprs_or_errors(admin: Admin, make_client: ClientFactory,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    seen_errors: list[str] = []
    password = "Mgr-Secret-Pass-1234"
    boss = make_client()
    mgr = boss.managers.create(username=uniq("secmgr"), password=password, role="super_admin")
    with caplog.at_level(logging.DEBUG):
        client = make_client(username=mgr.username, password=password)
        client.tenants.list()
        admin.fault(expire=True, times=1, path="^/api/v1/users/")  # a refresh
        user = client.users.create(name=uniq("sec"))
        pair = client.users.create_access_key(user.id)
        admin.expire_tokens()  # a refused refresh and a re-login
        client.users.get(user.id)
        tok = client.apitokens.create(name=uniq("sectok"))
        assert tok.token is not None
        by_token = make_client(api_token=tok.token.get_secret_value())
        by_token.users.get(user.id)
        admin.fault(error=503, times=1, method=["GET"], path="^/api/v1/users/")  # a retry warning
        client.users.get(user.id)
        try:
            make_client(password="Wrong-Secret-Pw-77").users.list()
        except Exception as exc:
            seen_errors += [str(exc), repr(exc)]
        try:
            make_client(api_token="Bogus-Api-Token-88").users.list()
        except Exception as exc:
            seen_errors += [str(exc), repr(exc)]
    auth = client.transport.auth
    assert isinstance(auth, TokenAuth)
    secrets = [password,
               pair.secret_key.get_secret_value(), tok.token.get_secret_value(),
               str(auth._access), str(auth._refresh), "Wrong-Secret-Pw-77", "Bogus-Api-Token-88"]
    assert all(len(s) >= 5 for s in secrets)
    texts = [caplog.text, *seen_errors,
             *(str(r.__dict__) for r in caplog.records),
             repr(client), repr(by_token), repr(client.config), str(client.config), repr(auth),
             repr(by_token.transport.auth), repr(pair), str(pair), repr(tok), str(tok)]
    assert any("vms login" in r.getMessage() for r in caplog.records)
    assert any("retrying" in r.getMessage() for r in caplog.records)
    for secret in secrets:
        for text in texts:
            assert secret not in text
    client.users.delete(user.id)
    boss.managers.delete(mgr.id)
