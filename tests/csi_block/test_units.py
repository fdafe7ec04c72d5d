"""Domain unit tests: host identity, error mapping, capability rules, secret redaction."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from csi_block_driver import capability, hostnqn
from csi_block_driver.errors import Aborted, HostCommandError, InvalidArgument, to_status
from csi_block_driver.proto import csi_pb2
from csi_block_driver.server import loggable, socket_path

from .nodekit import block_cap, mount_cap

Mode = csi_pb2.VolumeCapability.AccessMode


def test_hostnqn_generated_once_and_persisted(tmp_path: Path) -> None:
    path = tmp_path / "nvme" / "hostnqn"
    nqn, host_id = hostnqn.load_or_create(str(path))
    assert hostnqn.is_valid_nqn(nqn) and nqn.endswith(host_id)
    assert hostnqn.load_or_create(str(path)) == (nqn, host_id)
    assert (tmp_path / "nvme" / "hostid").read_text().strip() == host_id


@pytest.mark.parametrize("content", ["", "\n", "not-an-nqn", "nqn.bogus"])
def test_hostnqn_refuses_empty_or_malformed(tmp_path: Path, content: str) -> None:
    path = tmp_path / "hostnqn"
    path.write_text(content)
    with pytest.raises(ValueError):
        hostnqn.load_or_create(str(path))


def test_nqn_validation() -> None:
    assert hostnqn.is_valid_nqn("nqn.2014-08.org.nvmexpress:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427")
    assert not hostnqn.is_valid_nqn("fake-node-id-1234")
    assert not hostnqn.is_valid_nqn("nqn.2014-08.org." + "x" * 300)


def test_error_mapping_is_total() -> None:
    from vms_client import errors as vms

    cases = {
        vms.NotFound("x", status=404): grpc.StatusCode.NOT_FOUND,
        vms.Conflict("x", status=400): grpc.StatusCode.ALREADY_EXISTS,
        vms.CapacityExceeded("x", status=507): grpc.StatusCode.RESOURCE_EXHAUSTED,
        vms.Unavailable("x", status=503): grpc.StatusCode.UNAVAILABLE,
        vms.Timeout("x"): grpc.StatusCode.DEADLINE_EXCEEDED,
        vms.InvalidRequest("x", status=400): grpc.StatusCode.INVALID_ARGUMENT,
        Aborted("busy"): grpc.StatusCode.ABORTED,
        InvalidArgument("volume_id is required"): grpc.StatusCode.INVALID_ARGUMENT,
        HostCommandError(["mount"], 32, "boom"): grpc.StatusCode.INTERNAL,
        RuntimeError("?"): grpc.StatusCode.INTERNAL,
    }
    for exc, code in cases.items():
        assert to_status(exc)[0] == code, exc
    assert "RuntimeError" in to_status(RuntimeError("?"))[1]


def test_error_messages_never_carry_secrets() -> None:
    _code, message = to_status(HostCommandError(["x"], 1, "password=hunter2 Bearer abc.def"))
    assert "hunter2" not in message and "abc.def" not in message


def test_request_logs_redact_secrets_and_mount_flags() -> None:
    req = csi_pb2.NodeStageVolumeRequest(
        volume_id="v",
        secrets={"password": "hunter2", "x": "y"},
        volume_capability=csi_pb2.VolumeCapability(
            mount=csi_pb2.VolumeCapability.MountVolume(mount_flags=["key=s3cr3t"])
        ),
    )
    text = str(loggable(req))
    assert "hunter2" not in text and "s3cr3t" not in text and "'volume_id': 'v'" in text


def test_capabilities() -> None:
    assert capability.unsupported_reason(block_cap(Mode.MULTI_NODE_MULTI_WRITER)) is None
    assert "cannot be shared" in (
        capability.unsupported_reason(mount_cap("ext4", Mode.MULTI_NODE_MULTI_WRITER)) or ""
    )
    assert "fs_type" in (capability.unsupported_reason(mount_cap("ntfs")) or "")
    assert "access_type" in (
        capability.unsupported_reason(
            csi_pb2.VolumeCapability(access_mode=Mode(mode=Mode.SINGLE_NODE_WRITER))
        )
        or ""
    )
    assert "access_mode" in (
        capability.unsupported_reason(csi_pb2.VolumeCapability(block=csi_pb2.VolumeCapability.BlockVolume()))
        or ""
    )
    with pytest.raises(InvalidArgument, match="volume_capabilities is required"):
        capability.require_all_supported([])


def test_socket_path() -> None:
    assert socket_path("unix:///csi/csi.sock") == "/csi/csi.sock"
    assert socket_path("unix:/tmp/x.sock") == "/tmp/x.sock"
    with pytest.raises(ValueError):
        socket_path("tcp://127.0.0.1:1")
