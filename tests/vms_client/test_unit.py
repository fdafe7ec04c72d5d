"""Pure unit tests of the VMS client: config, URL building, models, backoff, error mapping.

Everything that needs an answer from a server is tested over a real vms-mock process in the
other modules of this package.
"""

from __future__ import annotations

import pickle
import socket
import threading
import time
from typing import Any

import pytest
import requests
from pydantic import ValidationError

from vms_client import VmsClient, VmsConfig
from vms_client.auth import TokenAuth
from vms_client.errors import (
    CapacityExceeded,
    Conflict,
    InUse,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    Timeout,
    Unauthorized,
    Unavailable,
    VmsError,
    error_from_response,
    is_token_expired,
)
from vms_client.models import (
    AccessKeyPair,
    ApiToken,
    BlockHostVolume,
    ManagerCreate,
    QuotaCreate,
    SnapshotCreate,
    User,
    View,
    ViewCreate,
    Volume,
    VTask,
)
from vms_client.resources import (
    encode_filters,
    exact_filter_keys,
    matches_exactly,
    split_next,
    to_payload,
)
from vms_client.retry import (
    RetryBudget,
    backoff_delay,
    is_idempotent,
    never_reached_server,
    parse_retry_after,
    should_retry_exception,
    should_retry_status,
)

PASSWORD = "pw-Sup3rSecret-123"
API_TOKEN = "tok-VerySecretApiToken-456"


def cfg(**kw: Any) -> VmsConfig:
    base: dict[str, Any] = {"endpoint": "https://vms.example:8443", "username": "admin",
                            "password": PASSWORD, "metrics": False}
    base.update(kw)
    return VmsConfig(**base)


# ---------------------------------------------------------------- config

class TestConfig:
    def test_bare_host_means_https_and_api_suffix_is_dropped(self) -> None:
        assert cfg(endpoint="vms.example").endpoint == "https://vms.example"
        assert cfg(endpoint="https://vms.example/api/v1/").endpoint == "https://vms.example"
        assert cfg(endpoint="http://127.0.0.1:8080/api").endpoint == "http://127.0.0.1:8080"

    def test_rejects_other_schemes_and_empty(self) -> None:
        with pytest.raises(ValidationError, match="scheme"):
            cfg(endpoint="ftp://vms")
        with pytest.raises(ValidationError, match="empty"):
            cfg(endpoint="  ")

    def test_needs_a_way_to_authenticate(self) -> None:
        with pytest.raises(ValidationError, match="username and password, or api_token"):
            VmsConfig(endpoint="vms")
        with pytest.raises(ValidationError, match="password is required"):
            VmsConfig(endpoint="vms", username="admin")
        assert VmsConfig.model_validate({"endpoint": "vms", "api_token": API_TOKEN}).uses_api_token
        assert not cfg().uses_api_token

    def test_tls_verify_is_on_by_default_and_takes_a_ca_bundle(self, tmp_path: Any) -> None:
        assert cfg().tls_verify is True
        ca = tmp_path / "ca.crt"
        ca.write_text("-----BEGIN CERTIFICATE-----\n")
        assert cfg(ca_bundle=str(ca)).tls_verify == str(ca)
        assert cfg(verify=False).tls_verify is False
        with pytest.raises(ValidationError, match="ca_bundle"):
            cfg(ca_bundle=str(tmp_path / "missing.crt"))

    def test_verify_false_logs_a_warning(self, caplog: pytest.LogCaptureFixture) -> None:
        with caplog.at_level("WARNING", logger="vms_client"):
            VmsClient(cfg(verify=False)).close()
        assert "verification is OFF" in caplog.text

    def test_unknown_setting_is_refused(self) -> None:
        with pytest.raises(ValidationError, match="retires"):
            cfg(retires=3)

    def test_from_secret_dir(self, tmp_path: Any) -> None:
        (tmp_path / "endpoint").write_text("vms.example:443\n")
        (tmp_path / "api_token").write_text(API_TOKEN + "\n")
        (tmp_path / "tenant").write_text("t1")
        (tmp_path / "ca.crt").write_text("pem")
        c = VmsConfig.from_secret_dir(tmp_path, metrics=False)
        assert c.endpoint == "https://vms.example:443"
        assert c.api_token is not None and c.api_token.get_secret_value() == API_TOKEN
        assert c.tenant == "t1"
        assert c.ca_bundle == str(tmp_path / "ca.crt")

    def test_repr_hides_secrets(self) -> None:
        for c in (cfg(), cfg(api_token=API_TOKEN)):
            text = repr(c) + str(c) + str(c.model_dump())
            assert PASSWORD not in text and API_TOKEN not in text


# ---------------------------------------------------------------- URL building

class TestPaths:
    def test_collections_go_to_v1_and_block_to_v5(self) -> None:
        client = VmsClient(cfg(block_api_fallback=False))
        assert client.views.collection_path() == "/api/v1/views/"
        assert client.views.item_path(7) == "/api/v1/views/7/"
        assert client.volumes.collection_path() == "/api/v5/volumes/"
        assert client.blockhosts.collection_path() == "/api/v5/blockhosts/"
        assert client.blockhostvolumes.collection_path() == "/api/v5/blockhostvolumes/"
        assert client.vtasks.item_path(3) == "/api/v1/vtasks/3/"

    def test_versions_are_configurable(self) -> None:
        client = VmsClient(cfg(api_version="v2", block_api_version="v2"))
        assert client.quotas.collection_path() == "/api/v2/quotas/"
        assert client.volumes.collection_path() == "/api/v2/volumes/"
        # vtasks stay under v1 whatever the main version is (as on real clusters)
        assert client.vtasks.collection_path() == "/api/v1/vtasks/"

    @pytest.mark.parametrize("bad", ["", "1/2", "..", "."])
    def test_ids_cannot_escape_the_collection(self, bad: str) -> None:
        with pytest.raises(ValueError, match="bad views id"):
            VmsClient(cfg()).views.item_path(bad)

    def test_next_link_keeps_path_and_query_only(self) -> None:
        path, params = split_next("http://10.0.0.1:80/api/v1/views/?page=2&page_size=1000&name=a%20b")
        assert path == "/api/v1/views/"
        assert params == {"page": "2", "page_size": "1000", "name": "a b"}


# ---------------------------------------------------------------- filters

class TestFilters:
    def test_encoding(self) -> None:
        assert encode_filters({"name": "x", "tenant_id": 3, "enabled": True, "skip": None,
                               "ids": [1, 2]}) == {"name": "x", "tenant_id": "3", "enabled": "true",
                                                   "ids": "1,2"}

    @pytest.mark.parametrize("key", ["path__contains", "name__startswith", "name__endswith",
                                     "id__in", "name__icontains"])
    def test_find_one_refuses_non_exact_lookups(self, key: str) -> None:
        with pytest.raises(ValueError, match="not an exact match"):
            exact_filter_keys({key: "x"})

    def test_find_one_needs_values(self) -> None:
        with pytest.raises(ValueError, match="at least one"):
            exact_filter_keys({})
        with pytest.raises(ValueError, match="is None"):
            exact_filter_keys({"name": None})
        exact_filter_keys({"volume__id": 1, "name": "a"})

    def test_client_side_recheck(self) -> None:
        obj = {"name": "a", "tenant_id": 1, "volume": {"id": 5}, "enabled": False}
        assert matches_exactly(obj, {"name": "a", "tenant_id": 1, "volume__id": 5, "enabled": False})
        assert not matches_exactly(obj, {"name": "ab"})
        assert not matches_exactly(obj, {"volume__id": 6})
        # a field the object does not show was filtered by the server: trusted
        assert matches_exactly(obj, {"block_host__name": "h"})


# ---------------------------------------------------------------- models

class TestModels:
    def test_read_models_keep_unknown_fields(self) -> None:
        v = View.model_validate({"id": 1, "path": "/a", "protocols": ["NFS"], "sync": "SYNCED"})
        assert v.extra("sync") == "SYNCED" and v.protocols == ["NFS"]

    def test_volume_and_mapping_shapes(self) -> None:
        vol = Volume.model_validate({"id": 9, "name": "/g/v", "size": 1 << 30, "nguid": "ab" * 16,
                                     "uuid": "u", "view_id": 2, "tenant_name": "default"})
        assert vol.size == 1 << 30
        bhv = BlockHostVolume.model_validate({"volume": {"id": 9}, "block_host": {"id": 4}})
        assert (bhv.block_host.id, bhv.volume.id) == (4, 9)

    def test_user_lists_keys_without_secrets(self) -> None:
        u = User.model_validate({"id": 1, "name": "u", "uid": 50001,
                                 "access_keys": [{"key": "AK1", "status": "enabled"}]})
        assert u.access_keys[0].key == "AK1"

    def test_vtask_messages_are_text(self) -> None:
        t = VTask.model_validate({"id": 1, "state": "FAILED", "messages": ["a", {"b": 1}]})
        assert t.done and t.messages == ["a", "{'b': 1}"]

    def test_payload_reveals_secrets_only_when_sent(self) -> None:
        m = ManagerCreate(username="m", password=PASSWORD)  # type: ignore[arg-type]
        assert PASSWORD not in repr(m) and PASSWORD not in str(m)
        assert m.to_json() == {"username": "m", "password": PASSWORD}

    def test_secret_fields_hidden_in_read_model_reprs(self) -> None:
        pair = AccessKeyPair.model_validate({"access_key": "AK", "secret_key": "SK-very-secret"})
        tok = ApiToken.model_validate({"id": 1, "token": API_TOKEN})
        odd = User.model_validate({"id": 1, "secret_key": "SK-very-secret", "password": PASSWORD})
        for obj in (pair, tok, odd):
            text = repr(obj) + str(obj)
            assert "SK-very-secret" not in text and API_TOKEN not in text and PASSWORD not in text
        assert pair.secret_key.get_secret_value() == "SK-very-secret"

    def test_view_helpers(self) -> None:
        assert ViewCreate.block_subsystem("s", "/s").to_json() == {
            "name": "s", "path": "/s", "protocols": ["BLOCK"], "create_dir": True}
        assert ViewCreate.s3_bucket("/b", "b", "owner", 1).to_json()["protocols"] == ["S3"]

    def test_client_side_validation_names_the_field(self) -> None:
        with pytest.raises(InvalidRequest) as err:
            to_payload(QuotaCreate, None, {"name": "q", "path": "/p", "hard_limit": -1},
                       method="POST", path="/api/v1/quotas/")
        assert "hard_limit" in err.value.fields
        with pytest.raises(InvalidRequest, match="path"):
            to_payload(SnapshotCreate, None, {"name": "s", "path": "/no-slash"}, method="POST", path="/x")
        assert to_payload(QuotaCreate, QuotaCreate(name="q", path="/p"), {"hard_limit": 5},
                          method="POST", path="/x") == {"name": "q", "path": "/p", "hard_limit": 5}
        # unknown fields pass through to the server, which names them if it refuses them
        assert to_payload(None, {"a": 1}, {}, method="POST", path="/x") == {"a": 1}


# ---------------------------------------------------------------- errors

class TestErrorMapping:
    def kw(self) -> dict[str, str]:
        return {"method": "POST", "path": "/api/v1/views/"}

    def test_uniqueness_is_conflict(self) -> None:
        e = error_from_response(400, {"name": ["This field must be unique."]}, **self.kw())
        assert isinstance(e, Conflict) and e.fields == {"name": ["This field must be unique."]}
        in_use = error_from_response(409, {"detail": "Volume is mapped"}, **self.kw())
        assert isinstance(in_use, InUse) and isinstance(in_use, Conflict)

    def test_other_400_is_invalid_with_field_map(self) -> None:
        e = error_from_response(400, {"size": ["Ensure this value is greater than 0."]}, **self.kw())
        assert isinstance(e, InvalidRequest) and not isinstance(e, Conflict)
        assert e.fields["size"] and "size" in str(e)
        assert isinstance(error_from_response(422, {"detail": "bad"}, **self.kw()), InvalidRequest)

    @pytest.mark.parametrize(("status", "body", "cls"), [
        (404, {"detail": "Not found."}, NotFound),
        (401, {"detail": "Authentication credentials were not provided."}, Unauthorized),
        (403, {"detail": "Token is invalid or expired"}, Unauthorized),
        (403, {"detail": "You do not have permission"}, PermissionDenied),
        (507, {"detail": "Insufficient capacity: 10 > 5"}, CapacityExceeded),
        (503, {"detail": "busy"}, Unavailable),
        (500, "<html>boom</html>", Unavailable),
        (504, None, Timeout),
        (405, {"detail": "Method not allowed"}, VmsError),
    ])
    def test_status_mapping(self, status: int, body: Any, cls: type[VmsError]) -> None:
        e = error_from_response(status, body, **self.kw(), reason="Reason")
        assert type(e) is cls
        assert e.status == status and e.method == "POST" and e.path == "/api/v1/views/"
        assert str(e).startswith(f"POST /api/v1/views/ -> {status}: ")

    def test_token_expiry_detection(self) -> None:
        assert is_token_expired(401, None)
        assert is_token_expired(403, {"detail": "Token is invalid or expired"})
        assert is_token_expired(403, {"code": "token_not_valid", "detail": "Given token not valid",
                                      "messages": ["Token is invalid or expired"]})
        assert not is_token_expired(403, {"detail": "no permission"})
        assert not is_token_expired(400, {"detail": "Token is invalid or expired"})

    def test_error_text_is_redacted_and_pickles(self) -> None:
        e = error_from_response(400, {"detail": f"bad password={PASSWORD}",
                                      "token": [f"Bearer {API_TOKEN}"]}, **self.kw())
        text = str(e) + repr(e) + str(e.fields)
        assert PASSWORD not in text and API_TOKEN not in text
        again = pickle.loads(pickle.dumps(e))
        assert type(again) is InvalidRequest and again.status == 400 and again.path == e.path


# ---------------------------------------------------------------- retries

class TestRetryRules:
    def test_idempotency(self) -> None:
        for m in ("GET", "HEAD", "PUT", "DELETE", "get"):
            assert is_idempotent(m)
        assert not is_idempotent("POST") and not is_idempotent("PATCH")
        assert is_idempotent("POST", marked=True) and not is_idempotent("GET", marked=False)

    def test_status_rules(self) -> None:
        for s in (500, 502, 503, 504, 429):
            assert should_retry_status(s, "GET")
            assert not should_retry_status(s, "POST")
            assert should_retry_status(s, "POST", marked=True)
        for s in (400, 401, 404, 501, 507):
            assert not should_retry_status(s, "GET")

    def test_full_jitter_bounds(self) -> None:
        hi = lambda a, b: b  # noqa: E731 - the largest draw
        assert [backoff_delay(n, 0.1, 1.0, hi) for n in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
        assert backoff_delay(3, 0.1, 1.0, lambda a, b: a) == 0.0
        assert backoff_delay(1000, 0.1, 2.0, hi) == 2.0
        draws = [backoff_delay(4, 0.1, 10.0) for _ in range(200)]
        assert all(0 <= d <= 1.6 for d in draws) and len(set(draws)) > 100

    def test_budget_counts_attempts_and_time(self) -> None:
        b = RetryBudget(retries=3, base=0.1, cap=1.0, deadline=10.0, started=0.0, rand=lambda a, c: c)
        assert [b.next_delay(0.0) for _ in range(4)] == [0.1, 0.2, 0.4, None]
        b = RetryBudget(retries=10, base=1.0, cap=8.0, deadline=3.0, started=0.0, rand=lambda a, c: c)
        assert b.next_delay(0.0) == 1.0
        assert b.next_delay(1.5) is None  # 2 s wait would end past the 3 s deadline
        b = RetryBudget(retries=5, base=0.1, cap=2.0, deadline=60.0, started=0.0, rand=lambda a, c: a)
        assert b.next_delay(0.0, retry_after=1.0) == 1.0
        assert b.next_delay(0.0, retry_after=100.0) == 2.0  # Retry-After is capped too

    def test_retry_after_parsing(self) -> None:
        assert parse_retry_after("2") == 2.0
        assert parse_retry_after(" 0.5 ") == 0.5
        assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") is None
        assert parse_retry_after(None) is None and parse_retry_after("-1") is None

    def test_refused_connection_never_reached_the_server(self) -> None:
        with socket.socket() as s:  # a port nobody listens on
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with pytest.raises(requests.ConnectionError) as err:
            requests.post(f"http://127.0.0.1:{port}/", timeout=2)
        assert never_reached_server(err.value)
        assert should_retry_exception(err.value, "POST")

    def test_read_timeout_only_retried_when_safe(self) -> None:
        with socket.socket() as srv:  # accepts, never answers
            srv.bind(("127.0.0.1", 0))
            srv.listen(1)
            port = srv.getsockname()[1]
            with pytest.raises(requests.ReadTimeout) as err:
                requests.post(f"http://127.0.0.1:{port}/", timeout=(2, 0.2))
        assert not never_reached_server(err.value)
        assert not should_retry_exception(err.value, "POST")
        assert should_retry_exception(err.value, "GET")
        assert should_retry_exception(err.value, "POST", marked=True)


# ---------------------------------------------------------------- single-flight (unit level)

class TestSingleFlightUnit:
    def test_many_threads_one_login_then_one_refresh(self) -> None:
        calls: list[str] = []
        lock = threading.Lock()

        def post_json(path: str, body: dict[str, Any], headers: dict[str, str]) -> Any:
            time.sleep(0.05)  # long enough for every thread to pile up on the lock
            with lock:
                calls.append(path)
                n = len(calls)
            return {"access": f"a{n}", "refresh": f"r{n}"}

        auth = TokenAuth("admin", PASSWORD, post_json, "/token/", "/token/refresh/")
        gens: list[int] = []
        barrier = threading.Barrier(20)

        def first_use() -> None:
            barrier.wait()
            gens.append(auth.header()[1])

        threads = [threading.Thread(target=first_use) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert calls == ["/token/"] and set(gens) == {1}

        def renew_stale() -> None:
            barrier.wait()
            auth.renew(1)

        threads = [threading.Thread(target=renew_stale) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert calls == ["/token/", "/token/refresh/"]
        assert auth.header() == ({"Authorization": "Bearer a2"}, 2)
        assert PASSWORD not in repr(auth)


class TestVTaskWaitUnit:
    """The polling rules of vtasks.wait with a scripted task (the server path is in test_crud)."""

    def test_times_out_with_backoff_capped_at_one_second(self) -> None:
        from vms_client.resources import VTasksClient

        now = [0.0]
        sleeps: list[float] = []

        class ScriptedTasks(VTasksClient):
            def get(self, obj_id: int | str) -> VTask:
                return VTask(id=int(obj_id), state="RUNNING")

        tasks = ScriptedTasks(VmsClient(cfg()), "vtasks", VTask, api_version="v1")

        def sleep(s: float) -> None:
            sleeps.append(s)
            now[0] += s

        with pytest.raises(Timeout, match="vtask 7 still RUNNING after 5s"):
            tasks.wait(7, timeout=5, clock=lambda: now[0], sleep=sleep)
        assert sleeps[:5] == [0.05, 0.1, 0.2, 0.4, 0.8] and max(sleeps) == 1.0
        assert sum(sleeps) == pytest.approx(5.0)
