"""Credentials of a VMS client: a long-lived API token, or login tokens renewed on expiry.

Token renewal is single-flight: every request remembers the *generation* of the token it sent.
When it comes back expired, the request calls ``renew(generation)``; the first caller takes the
lock and refreshes (or logs in again when the refresh token is refused), the others block on the
lock and, seeing the generation moved on, reuse the new token without another round-trip.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol

from .errors import Unauthorized, VmsError

log = logging.getLogger("vms_client.auth")

# (method, path, json body, headers) -> parsed JSON; raises VmsError on a non-2xx answer.
PostJson = Callable[[str, dict[str, Any], dict[str, str]], Any]


class Auth(Protocol):
    def header(self) -> tuple[dict[str, str], int]: ...
    def can_renew(self) -> bool: ...
    def renew(self, generation: int) -> None: ...


class ApiTokenAuth:
    """``Authorization: Api-Token <token>``; nothing to renew."""

    def __init__(self, token: str) -> None:
        self._token = token

    def header(self) -> tuple[dict[str, str], int]:
        return {"Authorization": f"Api-Token {self._token}"}, 0

    def can_renew(self) -> bool:
        return False

    def renew(self, generation: int) -> None:  # pragma: no cover - never called
        raise Unauthorized("API token rejected; API tokens cannot be renewed")

    def __repr__(self) -> str:
        return "ApiTokenAuth(token=***)"


class TokenAuth:
    """Username/password login (``token/``), refresh (``token/refresh/``), Bearer header."""

    def __init__(self, username: str, password: str, post_json: PostJson,
                 login_path: str, refresh_path: str) -> None:
        self._username = username
        self._password = password
        self._post_json = post_json
        self._login_path = login_path
        self._refresh_path = refresh_path
        self._lock = threading.Lock()
        self._access: str | None = None
        self._refresh: str | None = None
        self._generation = 0  # 0: never logged in
        self._current: tuple[str, int] | None = None
        self.logins = 0
        self.refreshes = 0

    def header(self) -> tuple[dict[str, str], int]:
        current = self._current  # one tuple read: the token and its generation always match
        if current is None:
            self.renew(0)
            current = self._current
            assert current is not None
        access, generation = current
        return {"Authorization": f"Bearer {access}"}, generation

    def can_renew(self) -> bool:
        return True

    def renew(self, generation: int) -> None:
        """Obtain a fresh access token unless someone already replaced ``generation``."""
        with self._lock:
            if self._generation != generation and self._access is not None:
                return  # another thread renewed while we waited: reuse its token
            if self._refresh is not None:
                try:
                    body = self._post_json(self._refresh_path, {"refresh": self._refresh}, {})
                    access = body.get("access") if isinstance(body, dict) else None
                    if access:
                        self._access = str(access)
                        if isinstance(body, dict) and body.get("refresh"):
                            self._refresh = str(body["refresh"])
                        self._generation += 1
                        self._current = (self._access, self._generation)
                        self.refreshes += 1
                        log.info("vms token refreshed", extra={"vms_user": self._username})
                        return
                except Unauthorized:
                    pass  # refresh token expired too: log in again below
                except VmsError as exc:
                    if exc.status is None or exc.status >= 500:
                        raise
                log.info("vms refresh token refused; logging in again",
                         extra={"vms_user": self._username})
            self._login()

    def _login(self) -> None:
        body = self._post_json(self._login_path,
                               {"username": self._username, "password": self._password}, {})
        if not isinstance(body, dict) or not body.get("access"):
            raise Unauthorized("login answer carried no access token", method="POST",
                               path=self._login_path)
        self._access = str(body["access"])
        refresh = body.get("refresh")
        self._refresh = str(refresh) if refresh else None
        self._generation += 1
        self._current = (self._access, self._generation)
        self.logins += 1
        log.info("vms login", extra={"vms_user": self._username})

    def __repr__(self) -> str:
        return f"TokenAuth(username={self._username!r}, password=***, generation={self._generation})"
