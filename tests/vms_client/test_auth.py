"""Authentication through vms_client against real vms-mock processes: token expiry and refresh,
re-login, single-flight renewal under threads, API tokens, tenant scoping and TLS."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.vms_client.conftest import Admin, ClientFactory, Recorder, start_vms, uniq
from tests.vmsproc import VmsProcess
from vms_client import VmsClient, VmsConfig
from vms_client.auth import TokenAuth
from vms_client.errors import NotFound, PermissionDenied, TlsError, Unauthorized


def token_auth(client: VmsClient) -> TokenAuth:
    auth = client.transport.auth
    assert isinstance(auth, TokenAuth)
    return auth


@pytest.fixture(scope="module")
def tls_vms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VmsProcess]:
    """HTTPS with the emulator's generated CA; access tokens live 3 s (refresh tokens 60 s)."""
    proc = start_vms(tmp_path_factory.mktemp("vms-tls"), tls=True, token_ttl=3,
                     extra_args=["--refresh-ttl", "60"])
    yield proc
    proc.stop()


def test_expired_access_token_is_refreshed(tls_vms: VmsProcess, make_client: ClientFactory) -> None:
    rec = Recorder()
    client = make_client(server=tls_vms, observer=rec)
    client.tenants.list()
    auth = token_auth(client)
    assert (auth.logins, auth.refreshes) == (1, 0)
    time.sleep(3.5)
    assert client.tenants.find_one(name="default") is not None
    # one refresh, no second login (a machine stalled past another TTL may need one more refresh)
    assert auth.logins == 1 and auth.refreshes >= 1
    assert rec.renewals == auth.refreshes == rec.count("GET", "tenants", "403")
    assert rec.count("GET", "tenants", "200") == 2


def test_forced_expiry_fault_is_survived(admin: Admin, make_client: ClientFactory) -> None:
    rec = Recorder()
    client = make_client(observer=rec)
    client.versions.current()
    admin.fault(expire=True, times=1, path="^/api/v1/tenants/")
    assert client.tenants.find_one(name="default") is not None
    assert rec.renewals == 1 and token_auth(client).refreshes == 1


def test_refused_refresh_falls_back_to_login(admin: Admin, make_client: ClientFactory) -> None:
    client = make_client()
    client.tenants.list()
    admin.expire_tokens()  # access AND refresh tokens issued so far become invalid
    assert client.tenants.list()
    auth = token_auth(client)
    assert (auth.logins, auth.refreshes) == (2, 0)


def test_single_flight_renewal_under_threads(admin: Admin, make_client: ClientFactory) -> None:
    rec = Recorder()
    client = make_client(observer=rec)
    client.versions.current()
    admin.expire_tokens()
    threads_n = 40
    barrier = threading.Barrier(threads_n)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            barrier.wait()
            client.tenants.list()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    auth = token_auth(client)
    # exactly one renewal for all 40 threads: one refused refresh + one login (plus the first login)
    assert rec.count("POST", "token") == 3
    assert (auth.logins, auth.refreshes) == (2, 0)
    assert rec.count("GET", "tenants", "200") == threads_n


def test_wrong_password_is_unauthorized(make_client: ClientFactory) -> None:
    client = make_client(password="not-the-password-42")
    with pytest.raises(Unauthorized) as err:
        client.tenants.list()
    assert err.value.status == 401 and err.value.path == "/api/v1/token/"
    assert "not-the-password-42" not in str(err.value) + repr(err.value)


def test_api_token_auth(client: VmsClient, make_client: ClientFactory) -> None:
    tok = client.apitokens.create(name=uniq("tok"))
    assert tok.token is not None
    rec = Recorder()
    by_token = make_client(api_token=tok.token.get_secret_value(), observer=rec)
    assert by_token.tenants.find_one(name="default") is not None
    assert rec.count("POST", "token") == 0  # no login round-trip
    bad = make_client(api_token="definitely-not-a-token", observer=rec)
    with pytest.raises(Unauthorized) as err:
        bad.tenants.list()
    assert err.value.status == 401
    assert rec.renewals == 0  # an API token is never "renewed"


def test_tenant_scoping(client: VmsClient, make_client: ClientFactory) -> None:
    tenant_admin = make_client(username="tenant1-admin", password="tenant1-admin", tenant="tenant1")
    q = tenant_admin.quotas.create(name=uniq("tq"), path="/" + uniq("tq"), hard_limit=1 << 20)
    tenant1 = client.tenants.find_one(name="tenant1")
    assert tenant1 is not None and q.tenant_id == tenant1.id
    default_view = client.views.find_one(name="block-default")
    assert default_view is not None
    # the tenant admin sees only its tenant: the default tenant's view does not exist for it
    assert tenant_admin.views.find_one(name="block-default") is None
    with pytest.raises(NotFound):
        tenant_admin.views.get(default_view.id)
    # a super-admin acting in a tenant (X-Tenant-Name) creates there and sees only that tenant
    scoped = make_client(tenant="tenant1")
    q2 = scoped.quotas.create(name=uniq("sq"), path="/" + uniq("sq"), hard_limit=1 << 20)
    assert q2.tenant_id == tenant1.id
    assert {x.tenant_id for x in scoped.quotas.list()} == {tenant1.id}
    # a tenant admin may not act in another tenant
    other = make_client(username="tenant1-admin", password="tenant1-admin")
    assert other.quotas.get(q.id).id == q.id
    with pytest.raises(Unauthorized):
        make_client(username="tenant1-admin", password="tenant1-admin", tenant="default").quotas.list()
    client.quotas.delete(q.id)
    client.quotas.delete(q2.id)


def test_permission_denied_is_not_renewed(make_client: ClientFactory) -> None:
    rec = Recorder()
    tenant_admin = make_client(username="tenant1-admin", password="tenant1-admin", observer=rec)
    # the admin endpoint is for super-admins only: a plain 403, not "token expired"
    with pytest.raises(PermissionDenied) as err:
        tenant_admin.transport.request("GET", "/api/admin/faults/", resource="admin")
    assert err.value.status == 403 and rec.renewals == 0


def test_tls_verified_with_ca_bundle(tls_vms: VmsProcess, make_client: ClientFactory) -> None:
    assert tls_vms.api_url.startswith("https://") and tls_vms.ca_file
    assert Path(tls_vms.ca_file).is_file()
    client = make_client(server=tls_vms)  # ca_bundle = the emulator's CA
    assert client.versions.current()


def test_tls_untrusted_certificate_is_refused(tls_vms: VmsProcess) -> None:
    cfg = VmsConfig.model_validate({"endpoint": tls_vms.api_url, "username": tls_vms.username,
                                    "password": tls_vms.password, "metrics": False, "backoff_base": 0.01})
    start = time.monotonic()
    with VmsClient(cfg) as client, pytest.raises(TlsError) as err:
        client.versions.current()
    assert time.monotonic() - start < 20  # not retried: a bad certificate does not heal
    assert "certificate" in str(err.value).lower()


def test_tls_verification_off_only_when_asked(tls_vms: VmsProcess, make_client: ClientFactory,
                                              caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="vms_client"):
        client = make_client(server=tls_vms, verify=False, ca_bundle=None)
    assert "verification is OFF" in caplog.text
    assert client.versions.current()
