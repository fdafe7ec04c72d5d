"""The node's NVMe host identity (host NQN / host ID): the CSI node id of this driver.

Read from ``/etc/nvme/hostnqn`` (and ``hostid``); when absent, generated once and persisted so
the node id never changes across restarts. An empty or malformed NQN is refused: two nodes with
the same (or no) identity would see each other's volumes.
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

NQN_RE = re.compile(r"^nqn\.\d{4}-\d{2}\.[a-z0-9][a-z0-9.-]*(:.+)?$", re.IGNORECASE)
MAX_NQN = 223


def is_valid_nqn(value: str) -> bool:
    """An NVMe Qualified Name (``nqn.yyyy-mm.reverse.domain[:anything]``), at most 223 bytes."""
    return bool(value) and len(value.encode()) <= MAX_NQN and bool(NQN_RE.match(value))


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_or_create(nqn_path: str, hostid_path: str | None = None, generate: bool = True) -> tuple[str, str]:
    """(host NQN, host ID). Generates and persists both when the files do not exist yet."""
    p = Path(nqn_path)
    hid_path = Path(hostid_path) if hostid_path else p.with_name("hostid")
    if p.exists():
        nqn = p.read_text().strip()
    elif generate:
        host_id = str(uuid.uuid4())
        nqn = f"nqn.2014-08.org.nvmexpress:uuid:{host_id}"
        _write_atomic(p, nqn + "\n")
        if not hid_path.exists():
            _write_atomic(hid_path, host_id + "\n")
    else:
        raise ValueError(f"{p} does not exist and generating a host NQN is disabled")
    if not nqn:
        raise ValueError(
            f"{p} is empty: refusing to start with an empty host NQN (write one, or delete "
            "the file to have one generated)"
        )
    if not is_valid_nqn(nqn):
        raise ValueError(f"{p} holds {nqn!r}, which is not a valid NVMe qualified name")
    host_id = hid_path.read_text().strip() if hid_path.exists() else ""
    if not host_id and nqn.startswith("nqn.2014-08.org.nvmexpress:uuid:"):
        host_id = nqn.rsplit(":", 1)[-1]
    return nqn, host_id
