"""Connection settings of a VMS client (validated once, immutable, safe to print)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator


class VmsConfig(BaseModel):
    """Where the VMS is, who we are, and how hard to try.

    ``endpoint`` is ``https://host[:port]`` (a bare ``host[:port]`` means https). Give either
    ``username`` + ``password`` (token login, refreshed on expiry) or ``api_token``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    endpoint: str
    username: str | None = None
    password: SecretStr | None = None
    api_token: SecretStr | None = None
    tenant: str | None = Field(default=None, description="sent as X-Tenant-Name (tenant-scoped principal)")

    verify: bool = Field(default=True, description="verify the server's TLS certificate")
    ca_bundle: str | None = Field(default=None,
                                  description="PEM file of CAs to trust instead of the system's")

    timeout: float = Field(default=30.0, gt=0, description="read timeout of one request, seconds")
    connect_timeout: float = Field(default=5.0, gt=0, description="TCP/TLS connect timeout, seconds")
    retries: int = Field(default=5, ge=0, le=100, description="retries after the first attempt")
    backoff_base: float = Field(default=0.2, ge=0, description="first backoff ceiling, seconds")
    backoff_max: float = Field(default=10.0, ge=0, description="largest single backoff, seconds")
    retry_deadline: float = Field(default=120.0, gt=0,
                                  description="no new attempt starts later than this after the first")

    page_size: int = Field(default=1000, ge=1, le=100_000)
    api_version: str = Field(default="v1", pattern=r"^v\d+$")
    block_api_version: str = Field(default="v5", pattern=r"^v\d+$")
    block_api_fallback: bool = Field(default=True,
                                     description="use api_version for block calls when the cluster has "
                                                 "no block_api_version")
    pool_maxsize: int = Field(default=32, ge=1, description="HTTP connections kept per host")
    user_agent: str = "kubevast-vms-client/0.1"
    metrics: bool = Field(default=True, description="record Prometheus request metrics")
    auth_mode: Literal["auto", "token", "api_token"] = "auto"

    @field_validator("endpoint")
    @classmethod
    def _normalise_endpoint(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value:
            raise ValueError("endpoint must not be empty")
        if "://" not in value:
            value = f"https://{value}"
        scheme = value.split("://", 1)[0].lower()
        if scheme not in ("http", "https"):
            raise ValueError(f"endpoint scheme must be http or https, not {scheme!r}")
        # A pasted ".../api" or ".../api/v1" base is accepted: the client adds the versioned path.
        for suffix in ("/api/v1", "/api/v5", "/api"):
            if value.endswith(suffix):
                value = value[: -len(suffix)]
                break
        return value

    @field_validator("ca_bundle")
    @classmethod
    def _ca_bundle_exists(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).is_file():
            raise ValueError(f"ca_bundle {value!r} is not a file")
        return value

    @model_validator(mode="after")
    def _one_way_to_authenticate(self) -> VmsConfig:
        has_token = self.api_token is not None and self.api_token.get_secret_value() != ""
        has_login = bool(self.username) and self.password is not None
        if self.auth_mode == "api_token" and not has_token:
            raise ValueError("auth_mode=api_token needs api_token")
        if self.auth_mode == "token" and not has_login:
            raise ValueError("auth_mode=token needs username and password")
        if self.username and self.password is None and not has_token:
            raise ValueError("password is required with username")
        if not has_token and not has_login:
            raise ValueError("give username and password, or api_token")
        return self

    @property
    def uses_api_token(self) -> bool:
        if self.auth_mode != "auto":
            return self.auth_mode == "api_token"
        return self.api_token is not None and self.api_token.get_secret_value() != ""

    @property
    def tls_verify(self) -> bool | str:
        """The value for ``requests``' ``verify``: a CA bundle path, True or False."""
        if not self.verify:
            return False
        return self.ca_bundle or True

    @classmethod
    def from_secret_dir(cls, directory: str | Path, **overrides: object) -> VmsConfig:
        """Read a mounted Kubernetes Secret: files endpoint, username, password | api_token,
        optional ca.crt and tenant (see docs/architecture.md "Driver conventions")."""
        root = Path(directory)

        def read(name: str) -> str | None:
            path = root / name
            if not path.is_file():
                return None
            return path.read_text().strip() or None

        values: dict[str, object] = {
            "endpoint": read("endpoint"),
            "username": read("username"),
            "password": read("password"),
            "api_token": read("api_token"),
            "tenant": read("tenant"),
        }
        if (root / "ca.crt").is_file():
            values["ca_bundle"] = str(root / "ca.crt")
        values = {k: v for k, v in values.items() if v is not None}
        values.update(overrides)
        return cls.model_validate(values)
