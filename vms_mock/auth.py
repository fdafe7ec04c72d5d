"""Authentication: manager passwords, JWT-style access/refresh tokens, long-lived API tokens.

Tokens are HS256 JWTs signed with a key kept in the database, so they survive a restart just as
a real cluster's do. Access tokens carry the manager id and, for tenant-scoped sessions, the
tenant id. ``tokens_not_before`` (set by the admin "expire tokens" fault) invalidates every
token issued earlier.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

from vms_mock.errors import TokenInvalid

_PBKDF2_ROUNDS = 20_000


def hash_password(password: str) -> str:
    salt = secrets.token_hex(8)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), _PBKDF2_ROUNDS).hex()
    return f"pbkdf2_sha256${_PBKDF2_ROUNDS}${salt}${digest}"


def check_password(password: str, encoded: str) -> bool:
    try:
        _algo, rounds, salt, digest = encoded.split("$")
    except ValueError:
        return False
    got = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), int(rounds)).hex()
    return hmac.compare_digest(got, digest)


def hash_api_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Principal:
    """Who is calling: a manager, optionally scoped to one tenant."""

    manager_id: int
    username: str
    role: str  # "super_admin" | "tenant_admin"
    tenant_id: int | None  # set: sees and changes only this tenant
    tenant_name: str | None
    via: str  # "bearer" | "api-token"

    @property
    def is_super(self) -> bool:
        return self.role == "super_admin" and self.tenant_id is None


class TokenSigner:
    def __init__(self, key: bytes, access_ttl: float, refresh_ttl: float) -> None:
        self._key = key
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self.not_before = 0.0
        # token text -> its claims, once its signature checked out: a client sends the same
        # access token on every call, so the HMAC and decoding run once per token, not per call.
        # (Type, expiry and not_before are checked on every call; the key never changes.)
        self._signed: dict[str, dict[str, Any]] = {}

    def _sign(self, claims: dict[str, Any]) -> str:
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        body = _b64(json.dumps(claims, separators=(",", ":")).encode())
        sig = hmac.new(self._key, f"{header}.{body}".encode(), hashlib.sha256).digest()
        return f"{header}.{body}.{_b64(sig)}"

    def issue(self, manager_id: int, username: str, tenant_id: int | None, kind: str) -> str:
        now = time.time()
        ttl = self.access_ttl if kind == "access" else self.refresh_ttl
        claims = {"token_type": kind, "user_id": manager_id, "username": username,
                  "tenant_id": tenant_id, "iat": now, "exp": now + ttl, "jti": uuid.uuid4().hex}
        return self._sign(claims)

    def verify(self, token: str, kind: str) -> dict[str, Any]:
        """Claims of a valid, unexpired token of ``kind``; else TokenInvalid."""
        claims = self._signed.get(token)
        if claims is None:
            try:
                header, body, sig = token.split(".")
                want = hmac.new(self._key, f"{header}.{body}".encode(), hashlib.sha256).digest()
                if not hmac.compare_digest(want, _unb64(sig)):
                    raise ValueError("bad signature")
                claims = json.loads(_unb64(body))
                if not isinstance(claims, dict):
                    raise ValueError("claims are not an object")
            except (ValueError, TypeError, UnicodeDecodeError, AttributeError):
                raise TokenInvalid() from None
            if len(self._signed) >= 4096:  # bounded: a flood of distinct tokens only costs HMACs
                self._signed.clear()
            self._signed[token] = claims
        claims = dict(claims)
        now = time.time()
        if (claims.get("token_type") != kind or float(claims.get("exp", 0)) <= now
                or float(claims.get("iat", 0)) < self.not_before):
            raise TokenInvalid()
        return claims
