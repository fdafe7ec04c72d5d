"""The committed CSI stubs match csi.proto, and csi.proto is wire-compatible with CSI v1.12.0."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from csi_block_driver.proto import csi_pb2, generate
from tests.conftest import require_tool

PROTO_DIR = Path(generate.__file__).parent
_SERIALIZED = re.compile(r"AddSerializedFile\((b'.*?')\)", re.DOTALL)
_METHOD = re.compile(r"'(/csi\.v1\.\w+/\w+)'")
_PYI_NAME = re.compile(r"^\s*class (\w+)|^\s*(\w+): ", re.MULTILINE)


def _shape(name: str, text: str) -> object:
    """What a stub file means, independent of the grpcio-tools version that wrote it: the
    serialized file descriptor (_pb2), the RPC method paths (_pb2_grpc), the declared names (.pyi)."""
    if name.endswith("_pb2.py"):
        found = _SERIALIZED.search(text)
        assert found, f"{name}: no serialized descriptor"
        return found.group(1)
    if name.endswith("_grpc.py"):
        return sorted(set(_METHOD.findall(text)))
    return sorted({a or b for a, b in _PYI_NAME.findall(text)})


def test_committed_stubs_match_the_proto(tmp_path: Path) -> None:
    generated = generate.generate(tmp_path)
    for new in generated:
        committed = PROTO_DIR / new.name
        assert committed.exists(), (
            f"{committed} is not committed: run python -m csi_block_driver.proto.generate"
        )
        assert _shape(new.name, new.read_text()) == _shape(new.name, committed.read_text()), (
            f"{committed.name} is stale: run python -m csi_block_driver.proto.generate"
        )


def test_stubs_serve_the_csi_v1_services() -> None:
    services = {
        s.full_name: [m.name for m in s.methods] for s in csi_pb2.DESCRIPTOR.services_by_name.values()
    }
    assert "GetSnapshot" in services["csi.v1.Controller"]
    assert "ControllerModifyVolume" in services["csi.v1.Controller"]
    assert services["csi.v1.Identity"] == ["GetPluginInfo", "GetPluginCapabilities", "Probe"]
    assert "NodeExpandVolume" in services["csi.v1.Node"]


def _fields(fds: descriptor_pb2.FileDescriptorSet, filename: str) -> dict[str, tuple]:
    """Every (message or enum path) → its wire-relevant shape."""
    out: dict[str, tuple] = {}
    file = next(f for f in fds.file if f.name.endswith(filename))

    def walk_msg(prefix: str, msg: descriptor_pb2.DescriptorProto) -> None:
        name = f"{prefix}.{msg.name}"
        out[name] = tuple(
            sorted(
                (f.number, f.name, f.type, f.label, f.type_name.split(".")[-1], f.HasField("oneof_index"))
                for f in msg.field
            )
        )
        for nested in msg.nested_type:
            walk_msg(name, nested)
        for enum in msg.enum_type:
            out[f"{name}.{enum.name}"] = tuple(sorted((v.number, v.name) for v in enum.value))

    for msg in file.message_type:
        walk_msg(file.package, msg)
    for enum in file.enum_type:
        out[f"{file.package}.{enum.name}"] = tuple(sorted((v.number, v.name) for v in enum.value))
    for svc in file.service:
        out[f"service {svc.name}"] = tuple(
            (m.name, m.input_type, m.output_type, m.server_streaming) for m in svc.method
        )
    return out


def test_wire_compatible_with_upstream_csi_v1_12_0(tmp_path: Path) -> None:
    """Compile the upstream spec's csi.proto (Go module cache) and compare every field."""
    go = require_tool("go", "install Go (hack/setup.sh --with-tools)")
    proc = subprocess.run(
        [go, "mod", "download", "-json", "github.com/container-storage-interface/spec@v1.12.0"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    if proc.returncode != 0:
        pytest.fail(f"go mod download failed: {proc.stderr or proc.stdout}")
    upstream_dir = Path(json.loads(proc.stdout)["Dir"])
    from importlib import resources

    from grpc_tools import protoc

    well_known = str(resources.files("grpc_tools") / "_proto")
    sets = {}
    for label, include, proto in (
        ("upstream", upstream_dir, upstream_dir / "csi.proto"),
        ("ours", generate.REPO_ROOT, generate.REPO_ROOT / generate.PROTO_REL),
    ):
        out = tmp_path / f"{label}.pb"
        assert (
            protoc.main(
                [
                    "protoc",
                    f"-I{include}",
                    f"-I{well_known}",
                    "--include_imports",
                    f"--descriptor_set_out={out}",
                    str(proto),
                ]
            )
            == 0
        )
        fds = descriptor_pb2.FileDescriptorSet()
        fds.ParseFromString(out.read_bytes())
        sets[label] = _fields(fds, "csi.proto")
    assert sets["ours"].keys() == sets["upstream"].keys()
    for key in sets["upstream"]:
        assert sets["ours"][key] == sets["upstream"][key], key
