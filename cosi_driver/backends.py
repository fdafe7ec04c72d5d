"""VMS connections the driver uses: the default one (flags/env for development, a mounted Secret
directory in Kubernetes) and optional named ones for classes that set ``vmsCredentials``.

A credentials directory holds the files of a Kubernetes Secret: ``endpoint``, ``username`` +
``password`` or ``api_token``, optional ``ca.crt`` and ``tenant``. Named sets live in
``<vms-secrets-root>/<name>/`` (one mounted Secret each).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cosi_driver.errors import InvalidArgument

DEFAULT = "default"
_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{0,62}$")


@dataclass(frozen=True)
class VmsSettings:
    endpoint: str
    username: str | None = None
    password: str | None = None
    api_token: str | None = None
    tenant: str | None = None
    ca_bundle: str | None = None
    verify: bool = True

    def __repr__(self) -> str:  # never print credentials
        return f"VmsSettings(endpoint={self.endpoint!r}, username={self.username!r}, tenant={self.tenant!r})"

    def client(self) -> Any:
        from pydantic import SecretStr

        from vms_client import VmsClient, VmsConfig

        return VmsClient(
            VmsConfig(
                endpoint=self.endpoint,
                username=self.username,
                password=SecretStr(self.password) if self.password is not None else None,
                api_token=SecretStr(self.api_token) if self.api_token else None,
                tenant=self.tenant,
                ca_bundle=self.ca_bundle,
                verify=self.verify,
            )
        )


def _read(folder: Path, name: str) -> str | None:
    path = folder / name
    if not path.is_file():
        return None
    return path.read_text().strip() or None


def settings_from_dir(folder: str | Path, verify: bool = True) -> VmsSettings:
    folder = Path(folder)
    endpoint = _read(folder, "endpoint")
    if not endpoint:
        raise ValueError(f"VMS credentials directory {folder} has no 'endpoint' file")
    token = _read(folder, "api_token")
    username, password = _read(folder, "username"), _read(folder, "password")
    if not token and not (username and password):
        raise ValueError(f"VMS credentials directory {folder} needs 'api_token' or 'username' + 'password'")
    ca = folder / "ca.crt"
    return VmsSettings(
        endpoint=endpoint,
        username=username,
        password=password,
        api_token=token,
        tenant=_read(folder, "tenant"),
        ca_bundle=str(ca) if ca.is_file() else None,
        verify=verify,
    )


class BackendRegistry:
    """Name -> VMS client, created on first use (named sets are read from disk then)."""

    def __init__(
        self,
        default: VmsSettings,
        secrets_root: str | Path | None = None,
        factory: Callable[[VmsSettings], Any] | None = None,
    ) -> None:
        self._settings = {DEFAULT: default}
        self._root = Path(secrets_root) if secrets_root else None
        self._factory = factory or (lambda s: s.client())
        self._clients: dict[str, Any] = {}
        self._mu = threading.Lock()

    def default_tenant(self, name: str) -> str | None:
        return self._settings_for(name).tenant

    def _settings_for(self, name: str) -> VmsSettings:
        if name in self._settings:
            return self._settings[name]
        if not _NAME.match(name) or self._root is None:
            raise InvalidArgument(
                f"vmsCredentials={name!r}: no such credentials set"
                + ("" if self._root else " (the driver runs without --vms-secrets-root)")
            )
        folder = self._root / name
        if not folder.is_dir():
            raise InvalidArgument(f"vmsCredentials={name!r}: no directory {folder}")
        try:
            settings = settings_from_dir(folder, verify=self._settings[DEFAULT].verify)
        except ValueError as exc:
            raise InvalidArgument(f"vmsCredentials={name!r}: {exc}") from None
        self._settings[name] = settings
        return settings

    def client(self, name: str = DEFAULT) -> Any:
        with self._mu:
            if name not in self._clients:
                self._clients[name] = self._factory(self._settings_for(name))
            return self._clients[name]
