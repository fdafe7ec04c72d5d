"""Every built-in object the charts render, checked against the Kubernetes OpenAPI schema of the
pinned Kubernetes version (the swagger.json shipped in the k8s.io/kubernetes module that
hack/tools builds the control plane from), strictly: an unknown or misspelled field fails here, long
before an API server drops it with a warning."""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.conftest import ROOT, missing
from tests.packaging._helm import render, values_cases

CASES = values_cases()
CASE_IDS = [f"{c}:{(v or 'defaults').rsplit('/', 1)[-1]}" for c, v in CASES]


def _kubernetes_version() -> str:
    for line in (ROOT / "hack" / "tools" / "versions.txt").read_text().splitlines():
        fields = line.split()
        if fields and fields[0] == "kube-apiserver":
            return fields[-1]
    raise AssertionError("kube-apiserver is not pinned in hack/tools/versions.txt")


@functools.cache
def _swagger() -> dict[str, Any]:
    version = _kubernetes_version()
    try:
        modcache = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True,
                                  check=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        modcache = str(Path.home() / "go" / "pkg" / "mod")
    path = Path(modcache) / f"k8s.io/kubernetes@{version}" / "api" / "openapi-spec" / "swagger.json"
    if not path.is_file():
        # Normally there after `make tools`; fetch the module (Go module proxy) if the cache lost it.
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(["go", "mod", "download", f"k8s.io/kubernetes@{version}"], capture_output=True,
                           timeout=600, check=False)
    if not path.is_file():
        missing(f"the OpenAPI spec of Kubernetes {version} ({path})",
                "run `make tools` (hack/tools/build.sh downloads the k8s.io/kubernetes module)")
    return dict(json.loads(path.read_text()))


@functools.cache
def _strict_definitions() -> dict[str, Any]:
    defs = copy.deepcopy(_swagger()["definitions"])
    for d in defs.values():
        if d.get("format") == "int-or-string":
            d.pop("type", None)  # IntOrString: an integer or a string
        if "properties" in d and "additionalProperties" not in d:
            d["additionalProperties"] = False
    return dict(defs)


@functools.cache
def _definition_of() -> dict[tuple[str, str, str], str]:
    out = {}
    for name, d in _swagger()["definitions"].items():
        for gvk in d.get("x-kubernetes-group-version-kind", []):
            out[(gvk["group"], gvk["version"], gvk["kind"])] = name
    return out


def _check(obj: dict[str, Any]) -> bool:
    group, _, version = obj["apiVersion"].rpartition("/")
    name = _definition_of().get((group, version, obj["kind"]))
    if name is None:
        return False  # a custom resource: checked against its pinned CRD elsewhere
    schema = {"$ref": f"#/definitions/{name}", "definitions": _strict_definitions()}
    errors = sorted(jsonschema.Draft4Validator(schema).iter_errors(obj), key=lambda e: list(e.path))
    assert not errors, f"{obj['kind']}/{obj['metadata']['name']}: " + "; ".join(
        f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors[:5])
    return True


@pytest.mark.parametrize(("chart", "values"), CASES, ids=CASE_IDS)
def test_rendered_objects_match_the_kubernetes_openapi_schema(chart: str, values: str | None) -> None:
    objs = render(chart, values)
    checked = sum(_check(o) for o in objs)
    assert checked >= len(objs) - 6, "most objects are built-in kinds"


def test_the_strict_check_catches_a_misspelled_field() -> None:
    objs = render("vms-mock")
    sts = next(o for o in objs if o["kind"] == "StatefulSet")
    sts["spec"]["template"]["spec"]["containers"][0]["volumeMount"] = []
    with pytest.raises(AssertionError, match="volumeMount"):
        _check(sts)
