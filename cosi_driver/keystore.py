"""Where the driver keeps what the platform will never tell it again.

The VMS returns an access key's secret exactly once, at creation. A v1alpha2 sidecar re-grants on
every reconcile and restart and the v1alpha1 sidecar retries Grant until it succeeds, and both
must get the SAME keys back. So the driver records, per access, the key pair it minted (and per
bucket, the class settings later calls need) in a store that survives driver restarts:

* ``kubernetes`` (in-cluster default): one Secret per record in the driver's namespace. Kubernetes
  already guards Secrets (RBAC, optional encryption at rest) and the sidecar writes the very same
  keys into the user's namespace anyway, so this adds no new place a secret can leak from.
* ``file`` (development, tests, out-of-cluster): one file per record, encrypted with Fernet
  (AES-128-CBC + HMAC-SHA256) under a key file readable only by the driver (created 0600 on first
  use), written atomically (temp file + fsync + rename) so a crash never leaves half a record.

Records are small JSON documents; the store never interprets them.
"""

from __future__ import annotations

import base64
import json
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Any, Protocol

from cryptography.fernet import Fernet, InvalidToken

from cosi_driver.errors import KeyStoreError

_RECORD_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{0,200}$")
KINDS = ("access", "bucket", "janitor", "tombstone")


class KeyStore(Protocol):
    def get(self, kind: str, name: str) -> dict[str, Any] | None: ...
    def put(self, kind: str, name: str, record: dict[str, Any]) -> None: ...
    def delete(self, kind: str, name: str) -> None: ...
    def names(self, kind: str) -> list[str]: ...


def _check(kind: str, name: str) -> None:
    if kind not in KINDS or not _RECORD_NAME.match(name):
        raise KeyStoreError(f"bad key store record name {kind}/{name[:80]}")


class FileKeyStore:
    """Encrypted records under ``<root>/<kind>/<name>.rec``."""

    def __init__(self, root: str | Path, key_file: str | Path | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._fernet = Fernet(self._load_key(Path(key_file) if key_file else self.root / "store.key"))
        self._mu = threading.Lock()

    @staticmethod
    def _load_key(path: Path) -> bytes:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass  # another process made it first; read theirs
            else:
                with os.fdopen(fd, "wb") as out:
                    out.write(Fernet.generate_key())
                    out.flush()
                    os.fsync(out.fileno())
        key = path.read_bytes().strip()
        try:
            Fernet(key)
        except ValueError as exc:
            raise KeyStoreError(f"key store key file {path} does not hold a Fernet key") from exc
        return key

    def _path(self, kind: str, name: str) -> Path:
        _check(kind, name)
        return self.root / kind / f"{name}.rec"

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        path = self._path(kind, name)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise KeyStoreError(f"cannot read key store record {kind}/{name}: {exc.strerror}") from exc
        try:
            return dict(json.loads(self._fernet.decrypt(blob)))
        except (InvalidToken, ValueError) as exc:
            raise KeyStoreError(f"key store record {kind}/{name} cannot be decrypted with this key") from exc

    def put(self, kind: str, name: str, record: dict[str, Any]) -> None:
        path = self._path(kind, name)
        blob = self._fernet.encrypt(json.dumps(record, sort_keys=True).encode())
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(blob)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise KeyStoreError(f"cannot write key store record {kind}/{name}: {exc.strerror}") from exc

    def delete(self, kind: str, name: str) -> None:
        try:
            self._path(kind, name).unlink(missing_ok=True)
        except OSError as exc:
            raise KeyStoreError(f"cannot delete key store record {kind}/{name}: {exc.strerror}") from exc

    def names(self, kind: str) -> list[str]:
        folder = self.root / kind
        if not folder.is_dir():
            return []
        return sorted(p.name.removesuffix(".rec") for p in folder.glob("*.rec"))


class KubernetesKeyStore:
    """One Secret per record in the driver's namespace (``cosi-<kind>-<name>``)."""

    LABEL_KIND = "cosi.vastdata.com/record"
    LABEL_MANAGED = "app.kubernetes.io/managed-by"

    def __init__(self, namespace: str, core_v1: Any, managed_by: str = "cosi.vastdata.com") -> None:
        self.namespace = namespace
        self.api = core_v1  # kubernetes.client.CoreV1Api (or anything with the same methods)
        self.managed_by = managed_by

    @staticmethod
    def _secret_name(kind: str, name: str) -> str:
        _check(kind, name)
        return f"cosi-{kind}-{name}"

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        try:
            secret = self.api.read_namespaced_secret(self._secret_name(kind, name), self.namespace)
        except Exception as exc:
            if getattr(exc, "status", None) == 404:
                return None
            raise KeyStoreError(f"cannot read Secret for {kind}/{name}: {_reason(exc)}") from exc
        data = (secret.data or {}).get("record")
        if not data:
            return None
        return dict(json.loads(base64.b64decode(data)))

    def put(self, kind: str, name: str, record: dict[str, Any]) -> None:
        from kubernetes import client

        body = client.V1Secret(
            metadata=client.V1ObjectMeta(
                name=self._secret_name(kind, name),
                namespace=self.namespace,
                labels={self.LABEL_KIND: kind, self.LABEL_MANAGED: self.managed_by},
            ),
            type="Opaque",
            data={"record": base64.b64encode(json.dumps(record, sort_keys=True).encode()).decode()},
        )
        try:
            self.api.create_namespaced_secret(self.namespace, body)
        except Exception as exc:
            if getattr(exc, "status", None) != 409:
                raise KeyStoreError(f"cannot write Secret for {kind}/{name}: {_reason(exc)}") from exc
            try:
                self.api.replace_namespaced_secret(self._secret_name(kind, name), self.namespace, body)
            except Exception as exc2:
                raise KeyStoreError(f"cannot write Secret for {kind}/{name}: {_reason(exc2)}") from exc2

    def delete(self, kind: str, name: str) -> None:
        try:
            self.api.delete_namespaced_secret(self._secret_name(kind, name), self.namespace)
        except Exception as exc:
            if getattr(exc, "status", None) != 404:
                raise KeyStoreError(f"cannot delete Secret for {kind}/{name}: {_reason(exc)}") from exc

    def names(self, kind: str) -> list[str]:
        try:
            listed = self.api.list_namespaced_secret(
                self.namespace,
                label_selector=f"{self.LABEL_KIND}={kind},{self.LABEL_MANAGED}={self.managed_by}",
            )
        except Exception as exc:
            raise KeyStoreError(f"cannot list key store Secrets: {_reason(exc)}") from exc
        prefix = f"cosi-{kind}-"
        return sorted(s.metadata.name.removeprefix(prefix) for s in listed.items)


def _reason(exc: BaseException) -> str:
    # ApiException texts include response bodies; keep only status + reason.
    status = getattr(exc, "status", None)
    reason = getattr(exc, "reason", None) or type(exc).__name__
    return f"{status} {reason}" if status else str(reason)
