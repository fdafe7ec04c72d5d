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
        vms.InUse("x", status=409): grpc.StatusCode.FAILED_PRECONDITION,
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


def test_backend_names_are_deterministic_hashed_and_never_collide() -> None:
    from csi_block_driver import naming

    a = naming.backend_name("csi", "pvc-" + "a" * 124)
    b = naming.backend_name("csi", "pvc-" + "a" * 123 + "b")
    assert a != b, "names differing only past the readable part must not collide"
    assert a == naming.backend_name("csi", "pvc-" + "a" * 124)
    assert naming.is_backend_name("csi", a) and len(a) < 64
    assert naming.is_backend_name("csi", naming.backend_name("csi", "Ünïcødé ☃ name"))
    assert naming.parse_volume_id(naming.volume_id(7, "3f1c2a9e-8b7d-4e21-9c3a-5d6e7f8a9b0c")) == (
        7,
        "3f1c2a9e-8b7d-4e21-9c3a-5d6e7f8a9b0c",
    )
    assert naming.parse_volume_id("fake-vol-id") is None
    assert naming.parse_snapshot_id("12:" + "0" * 16) == (12, "0" * 16)


def test_parameters_validation() -> None:
    from csi_block_driver import params

    p = params.volume_params(
        {"subsystem": "s", "fsType": "xfs", "csi.storage.k8s.io/pvc/name": "x"},
        {"qosPolicy": "gold"},
        default_subsystem="d",
        default_group="csi",
    )
    assert (p.subsystem, p.fs_type, p.qos_policy, p.volume_group) == ("s", "xfs", "gold", "csi")
    with pytest.raises(InvalidArgument, match="'size', 'zone'"):
        params.volume_params({"zone": "a", "size": "1"}, {}, default_subsystem="d", default_group="csi")
    with pytest.raises(InvalidArgument, match="mutable_parameters"):
        params.volume_params({}, {"XXX_FakeKey": "v"}, default_subsystem="d", default_group="csi")
    with pytest.raises(InvalidArgument, match="volumeGroup"):
        params.volume_params({"volumeGroup": "a/b"}, {}, default_subsystem="d", default_group="csi")


def test_capacity_range_rules() -> None:
    from csi_block_driver.controller import ALIGN, size_for
    from csi_block_driver.errors import OutOfRange

    cr = csi_pb2.CapacityRange
    assert size_for(None, 1 << 30) == 1 << 30
    assert size_for(cr(required_bytes=10 * ALIGN, limit_bytes=10 * ALIGN), 1) == 10 * ALIGN
    assert size_for(cr(required_bytes=1), 1 << 30) == ALIGN
    assert size_for(cr(limit_bytes=8 * ALIGN), 1 << 30) == 8 * ALIGN
    assert size_for(cr(required_bytes=ALIGN + 1, limit_bytes=3 * ALIGN), 1) == 2 * ALIGN
    with pytest.raises(OutOfRange):
        size_for(cr(required_bytes=ALIGN + 1, limit_bytes=ALIGN + 100), 1)
    with pytest.raises(InvalidArgument, match="exceeds limit_bytes"):
        size_for(cr(required_bytes=2 * ALIGN, limit_bytes=ALIGN), 1)
    with pytest.raises(InvalidArgument, match="negative"):
        size_for(cr(required_bytes=-1), 1)


def test_vip_ranges_become_target_addresses() -> None:
    from csi_block_driver.controller import _addresses

    assert _addresses([["10.0.0.1", "10.0.0.3"]], 4420) == ["10.0.0.1:4420", "10.0.0.2:4420", "10.0.0.3:4420"]
    assert _addresses([["fd00::1", "fd00::2"]], 4420) == ["[fd00::1]:4420", "[fd00::2]:4420"]
    assert len(_addresses([["10.0.0.1", "10.0.255.255"]], 1)) == 8


def test_volume_locks_abort_a_second_operation_and_keyed_mutex_queues() -> None:
    import threading
    import time

    from csi_block_driver.locks import KeyedMutex, VolumeLocks

    locks = VolumeLocks()
    with locks.hold("v1"):
        with pytest.raises(Aborted, match="v1"), locks.hold("v1"):
            pass
        with locks.hold("v2"):
            pass
    with locks.hold("v1"):
        pass
    mutex = KeyedMutex()
    inside = []

    def worker() -> None:
        with mutex.hold("name"):
            inside.append(1)
            time.sleep(0.002)  # a broken mutex lets another thread in here
            assert len(inside) == 1, "two holders of one key at once"
            inside.pop()

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert mutex._locks == {}


def test_csi_names_reject_banned_control_characters() -> None:
    from csi_block_driver.controller import _csi_name

    assert _csi_name("pvc-1 with\ttab and ünïcode") == "pvc-1 with\ttab and ünïcode"
    for bad in ("a\x00b", "a\x1bb", "a\x85b"):
        with pytest.raises(InvalidArgument, match="control character"):
            _csi_name(bad)
    with pytest.raises(InvalidArgument, match="name is required"):
        _csi_name("")


def test_vms_secret_dir_configures_the_client(tmp_path: Path) -> None:
    from csi_block_driver.cli import build_parser, vms_config

    (tmp_path / "endpoint").write_text("https://vms.example.com\n")
    (tmp_path / "username").write_text("admin\n")
    (tmp_path / "password").write_text("s3cret\n")
    (tmp_path / "tenant").write_text("t1\n")
    (tmp_path / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    cfg = vms_config(build_parser().parse_args(["--vms-secret-dir", str(tmp_path)]))
    assert cfg.endpoint == "https://vms.example.com" and cfg.username == "admin" and cfg.tenant == "t1"
    assert cfg.password is not None and cfg.password.get_secret_value() == "s3cret"
    assert cfg.ca_bundle == str(tmp_path / "ca.crt") and cfg.verify
    assert "s3cret" not in repr(cfg)
