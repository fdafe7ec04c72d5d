"""The committed COSI stubs match the project's protos, and both versions load in one process."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from cosi_driver.proto import generate

ROOT = Path(__file__).resolve().parents[2]


def _compiled_descriptor(proto: str) -> descriptor_pb2.FileDescriptorProto:
    pytest.importorskip("grpc_tools")
    from grpc_tools import protoc

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "set.pb"
        rel = str((generate.PROTO_DIR / proto).relative_to(ROOT))
        assert protoc.main(["protoc", f"-I{ROOT}", f"--descriptor_set_out={out}", rel]) == 0
        fds = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    return _without_json_names(fds.file[0])


def _without_json_names(fd: descriptor_pb2.FileDescriptorProto) -> descriptor_pb2.FileDescriptorProto:
    """protoc's descriptor sets carry derived json_name fields the Python stub drops."""

    def strip(msgs: object) -> None:
        for m in msgs:  # type: ignore[attr-defined]
            for f in m.field:
                f.ClearField("json_name")
            strip(m.nested_type)

    strip(fd.message_type)
    return fd


@pytest.mark.parametrize(
    ("proto", "module"),
    [
        ("cosi_v1alpha1.proto", "cosi_driver.proto.cosi_v1alpha1_pb2"),
        ("cosi_v1alpha2.proto", "cosi_driver.proto.cosi_v1alpha2_pb2"),
    ],
)
def test_committed_stub_matches_proto(proto: str, module: str) -> None:
    # Compare descriptors, not generated text: the text differs between grpcio-tools versions,
    # the schema must not.
    mod = __import__(module, fromlist=["DESCRIPTOR"])
    committed = _without_json_names(
        descriptor_pb2.FileDescriptorProto.FromString(mod.DESCRIPTOR.serialized_pb)
    )
    fresh = _compiled_descriptor(proto)
    assert committed == fresh, f"{module} is stale: run `python -m cosi_driver.proto.generate`"


def test_generated_files_all_present() -> None:
    for name in generate.OUTPUTS:
        assert (generate.PROTO_DIR / name).is_file(), name


def test_both_versions_load_in_one_fresh_process() -> None:
    # The upstream files declare the same extension numbers; ours leave them out, so importing
    # both (what the driver does) must work in a clean interpreter.
    code = (
        "from cosi_driver.proto import cosi_v1alpha1_pb2_grpc, cosi_v1alpha2_pb2_grpc;"
        "from cosi_driver.proto import cosi_v1alpha1_pb2 as a, cosi_v1alpha2_pb2 as b;"
        "print(a.DESCRIPTOR.package, b.DESCRIPTOR.package)"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.split() == ["cosi.v1alpha1", "sigs.k8s.io.cosi.v1alpha2"]


def test_wire_field_numbers_of_the_fields_the_sidecars_use() -> None:
    from cosi_driver.proto import cosi_v1alpha1_pb2 as v1
    from cosi_driver.proto import cosi_v1alpha2_pb2 as v2

    def num(msg: type, field: str) -> int:
        return msg.DESCRIPTOR.fields_by_name[field].number  # type: ignore[attr-defined]

    assert num(v1.DriverGrantBucketAccessRequest, "authentication_type") == 3
    assert num(v1.DriverGrantBucketAccessRequest, "parameters") == 4
    assert num(v1.DriverRevokeBucketAccessRequest, "revoke_access_context") == 3
    assert num(v1.DriverDeleteBucketRequest, "delete_context") == 2
    assert num(v1.DriverCreateBucketResponse, "bucket_info") == 2
    assert num(v2.DriverCreateBucketRequest, "parameters") == 4
    assert num(v2.DriverGrantBucketAccessRequest, "buckets") == 6
    assert num(v2.DriverGrantBucketAccessRequest.AccessedBucket, "access_mode") == 2
    assert num(v2.S3BucketInfo, "addressing_style") == 4
    assert num(v2.AccessMode, "mode") == 1
    assert v1.DESCRIPTOR.services_by_name["Provisioner"].full_name == "cosi.v1alpha1.Provisioner"
    assert v2.DESCRIPTOR.services_by_name["Identity"].full_name == "sigs.k8s.io.cosi.v1alpha2.Identity"
