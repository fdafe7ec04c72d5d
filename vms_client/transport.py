"""One HTTP round-trip policy for every VMS call: auth header, timeouts, retries, error mapping.

Callers give a method, a path under the endpoint (``/api/v1/views/``), query parameters and a
JSON body; they get parsed JSON back or a typed ``VmsError``. Nothing here logs a body, a header
or a query value: logs carry method, path, status, attempt and elapsed time only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from .auth import ApiTokenAuth, Auth, TokenAuth
from .config import VmsConfig
from .errors import (
    Timeout,
    TlsError,
    Unavailable,
    VmsError,
    error_from_response,
    is_token_expired,
)
from .metrics import NullObserver, PrometheusObserver, RequestObserver
from .retry import RetryBudget, parse_retry_after, should_retry_exception, should_retry_status

log = logging.getLogger("vms_client")

MAX_RENEWALS_PER_CALL = 2


class Transport:
    def __init__(self, config: VmsConfig, observer: RequestObserver | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self._sleep = sleep
        self.observer: RequestObserver = observer or (
            PrometheusObserver() if config.metrics else NullObserver())
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=config.pool_maxsize, max_retries=0)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.session.verify = config.tls_verify
        # Never pick up credentials from ~/.netrc or proxies from the environment for a
        # management endpoint: what is sent is exactly what the config says.
        self.session.trust_env = False
        self.session.headers.update({"User-Agent": config.user_agent, "Accept": "application/json"})
        if config.tenant:
            self.session.headers["X-Tenant-Name"] = config.tenant
        if config.endpoint.startswith("https://") and not config.verify:
            log.warning("TLS certificate verification is OFF for the VMS endpoint (verify=False)",
                        extra={"vms_endpoint": config.endpoint})
        self.auth: Auth
        if config.uses_api_token:
            assert config.api_token is not None
            self.auth = ApiTokenAuth(config.api_token.get_secret_value())
        else:
            assert config.username and config.password is not None
            base = f"/api/{config.api_version}"
            self.auth = TokenAuth(config.username, config.password.get_secret_value(),
                                  self._post_unauthenticated, f"{base}/token/", f"{base}/token/refresh/")

    def close(self) -> None:
        self.session.close()

    def __repr__(self) -> str:
        return f"Transport(endpoint={self.config.endpoint!r}, auth={self.auth!r})"

    def _post_unauthenticated(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> Any:
        # Login and refresh create nothing a repeat could duplicate: safe to retry.
        return self.request("POST", path, resource="token", json=body, headers=headers,
                            authenticate=False, idempotent=True)

    def request(
        self,
        method: str,
        path: str,
        *,
        resource: str,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        authenticate: bool = True,
    ) -> Any:
        """Send one logical request (with retries and re-authentication) and return its JSON."""
        method = method.upper()
        url = self.config.endpoint + path
        started = time.monotonic()
        budget = RetryBudget(retries=self.config.retries, base=self.config.backoff_base,
                             cap=self.config.backoff_max, deadline=self.config.retry_deadline,
                             started=started)
        renewals = 0
        attempt = 0
        while True:
            attempt += 1
            send_headers = dict(headers or {})
            generation = 0
            if authenticate:
                auth_header, generation = self.auth.header()
                send_headers.update(auth_header)
            t0 = time.monotonic()
            try:
                resp = self._send(method, url, params, json, send_headers)
            except requests.RequestException as exc:
                elapsed = time.monotonic() - t0
                self.observer.request_done(method, resource, "error", elapsed)
                if should_retry_exception(exc, method, idempotent):
                    delay = budget.next_delay(time.monotonic())
                    if delay is not None:
                        self._note_retry(method, path, resource, type(exc).__name__, attempt, delay)
                        self._sleep(delay)
                        continue
                raise _transport_error(exc, method, path, attempt) from exc

            elapsed = time.monotonic() - t0
            status = resp.status_code
            self.observer.request_done(method, resource, str(status), elapsed)
            if log.isEnabledFor(logging.DEBUG):  # skip building the record's fields when off
                log.debug("vms request", extra={"vms_method": method, "vms_path": path,
                                                "vms_status": status, "vms_attempt": attempt,
                                                "vms_elapsed_ms": round(elapsed * 1000, 2)})
            if status < 400:
                return _json_or_none(resp, method, path)

            body = _error_body(resp)
            if (authenticate and self.auth.can_renew() and renewals < MAX_RENEWALS_PER_CALL
                    and is_token_expired(status, body)):
                renewals += 1
                self.observer.token_renewed()
                log.info("vms token expired; renewing",
                         extra={"vms_method": method, "vms_path": path, "vms_status": status})
                self.auth.renew(generation)
                continue
            if should_retry_status(status, method, idempotent):
                delay = budget.next_delay(time.monotonic(),
                                          parse_retry_after(resp.headers.get("Retry-After")))
                if delay is not None:
                    self._note_retry(method, path, resource, str(status), attempt, delay)
                    self._sleep(delay)
                    continue
            raise error_from_response(status, body, method=method, path=path, reason=resp.reason or "")

    def _send(self, method: str, url: str, params: Mapping[str, Any] | None, json: Any,
              headers: Mapping[str, str]) -> requests.Response:
        """``session.request`` without its per-call merging of session-level settings, about a
        sixth of the client's CPU per call. What that merging would add is taken from the session
        as it is now: its headers (the call's own win), cookies, hooks, proxies (``trust_env`` is
        off, so no environment settings) and TLS verification; auth and params are never set on
        the session."""
        session = self.session
        prep = requests.PreparedRequest()
        prep.prepare(method=method, url=url, params=params, json=json,
                     headers={**session.headers, **headers},
                     cookies=session.cookies if len(session.cookies) else None, hooks=session.hooks)
        return session.send(prep, timeout=(self.config.connect_timeout, self.config.timeout),
                            allow_redirects=False, verify=session.verify, proxies=session.proxies,
                            stream=False, cert=session.cert)

    def _note_retry(self, method: str, path: str, resource: str, reason: str, attempt: int,
                    delay: float) -> None:
        self.observer.retried(method, resource, reason)
        log.warning("vms request failed; retrying",
                    extra={"vms_method": method, "vms_path": path, "vms_reason": reason,
                           "vms_attempt": attempt, "vms_delay_s": round(delay, 3)})


def _json_or_none(resp: requests.Response, method: str, path: str) -> Any:
    if not resp.content:
        return None
    try:
        return resp.json()
    except ValueError as exc:
        raise VmsError(f"answer is not JSON (HTTP {resp.status_code})", status=resp.status_code,
                       method=method, path=path) from exc


def _error_body(resp: requests.Response) -> Any:
    if not resp.content:
        return None
    try:
        return resp.json()
    except ValueError:
        return resp.text[:500]


def _transport_error(exc: requests.RequestException, method: str, path: str, attempts: int) -> VmsError:
    path = urlsplit(path).path
    detail = f"{type(exc).__name__} after {attempts} attempt(s): {_reason(exc)}"
    if isinstance(exc, requests.exceptions.SSLError):
        return TlsError(detail, method=method, path=path)
    if isinstance(exc, requests.exceptions.Timeout):
        return Timeout(detail, method=method, path=path)
    return Unavailable(detail, method=method, path=path)


def _reason(exc: BaseException) -> str:
    # The innermost cause is the informative part ("Connection refused", "timed out", cert error);
    # requests' own text repeats the URL with its query string, which we keep out of errors.
    cur: BaseException = exc
    for _ in range(8):
        inner = getattr(cur, "reason", None)
        if isinstance(inner, BaseException):
            cur = inner
            continue
        args = getattr(cur, "args", ())
        if args and isinstance(args[0], BaseException):
            cur = args[0]
            continue
        break
    text = str(cur)
    # urllib3 prefixes "<connection object at 0x...>: " — noise for a reader.
    if ">: " in text:
        text = text.split(">: ", 1)[1]
    return text or type(cur).__name__
