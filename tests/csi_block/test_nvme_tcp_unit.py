"""NVMe/TCP backend against fixture sysfs trees and a recording command runner.

This kernel has no nvme-tcp module, so the backend cannot be exercised against a kernel here:
these tests pin the command lines it builds, how it parses sysfs, its refcounted disconnect and
its refusal to report a disconnect that did not complete.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from csi_block_driver.attach.base import AttachTarget
from csi_block_driver.attach.nvme_tcp import NvmeOptions, NvmeTcpBackend, normalize_id, split_address
from csi_block_driver.errors import FailedPrecondition

NQN = "nqn.2024-08.com.vastdata:t1:sub1"
HOST = "nqn.2014-08.org.nvmexpress:uuid:aaaaaaaa-0000-0000-0000-000000000001"
UUID = "3f1c2a9e-8b7d-4e21-9c3a-5d6e7f8a9b0c"
NGUID = "3f1c2a9e8b7d4e219c3a5d6e7f8a9b0c"


class RecordingRunner:
    """A fake runner (the kernel boundary cannot be reached here): records argv, runs hooks."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.hooks: dict[str, Callable[[list[str]], tuple[int, str]]] = {}

    def run(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        timeout: float = 120.0,
        input_text: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        argv = list(argv)
        self.calls.append(argv)
        key = " ".join(argv[:2])
        rc, err = self.hooks.get(key, lambda a: (0, ""))(argv)
        if check and rc != 0:
            from csi_block_driver.errors import HostCommandError

            raise HostCommandError(argv, rc, err)
        return subprocess.CompletedProcess(argv, rc, "", err)


def make_subsystem(
    sysfs: Path, name: str, nqn: str, ctrls: dict[str, str], namespaces: dict[str, dict[str, str]]
) -> Path:
    sub = sysfs / "class" / "nvme-subsystem" / name
    sub.mkdir(parents=True)
    (sub / "subsysnqn").write_text(nqn + "\n")
    for ctrl, address in ctrls.items():
        (sub / ctrl).mkdir()
        (sub / ctrl / "address").write_text(address + "\n")
        (sub / ctrl / "state").write_text("live\n")
    for ns, ids in namespaces.items():
        (sub / ns).mkdir()
        for key, value in ids.items():
            (sub / ns / key).write_text(value + "\n")
    return sub


def backend(tmp_path: Path, runner: RecordingRunner, **opts: bool) -> NvmeTcpBackend:
    (tmp_path / "sys" / "class" / "nvme-subsystem").mkdir(parents=True, exist_ok=True)
    (tmp_path / "dev").mkdir(exist_ok=True)
    options = NvmeOptions(
        host_nqn=HOST,
        host_id="aaaaaaaa-0000-0000-0000-000000000001",
        ctrl_loss_tmo=-1,
        reconnect_delay=2,
        keep_alive_tmo=7,
        nr_io_queues=4,
        device_timeout=1.0,
        disconnect_timeout=0.5,
        **opts,
    )
    return NvmeTcpBackend(
        runner, options, sysfs=str(tmp_path / "sys"), dev=str(tmp_path / "dev"), sleep=lambda s: None
    )


def target(volume_id: str = "1:x", nqn: str = NQN) -> AttachTarget:
    return AttachTarget(
        volume_id=volume_id,
        uuid=UUID,
        nguid=NGUID,
        subsystem_nqn=nqn,
        addresses=("10.0.0.1:4420", "[fd00::2]:4421"),
    )


def test_connect_command_carries_every_tunable(tmp_path: Path) -> None:
    b = backend(tmp_path, RecordingRunner())
    assert b.connect_argv(NQN, "10.0.0.1:4420") == [
        "nvme",
        "connect",
        "--transport=tcp",
        "--traddr=10.0.0.1",
        "--trsvcid=4420",
        f"--nqn={NQN}",
        f"--hostnqn={HOST}",
        "--hostid=aaaaaaaa-0000-0000-0000-000000000001",
        "--ctrl-loss-tmo=-1",
        "--reconnect-delay=2",
        "--keep-alive-tmo=7",
        "--nr-io-queues=4",
    ]
    assert b.fabrics_options(NQN, "[fd00::2]:4421") == (
        f"transport=tcp,traddr=fd00::2,trsvcid=4421,nqn={NQN},hostnqn={HOST},"
        "hostid=aaaaaaaa-0000-0000-0000-000000000001,ctrl_loss_tmo=-1,reconnect_delay=2,keep_alive_tmo=7,"
        "nr_io_queues=4"
    )
    assert split_address("host") == ("host", "4420")


def test_ids_compare_in_one_form() -> None:
    assert normalize_id("uuid.3F1C2A9E-8B7D-4E21-9C3A-5D6E7F8A9B0C") == NGUID
    assert normalize_id("eui.3f1c2a9e8b7d4e219c3a5d6e7f8a9b0c") == NGUID


def test_finds_namespace_by_nguid_in_sysfs(tmp_path: Path) -> None:
    b = backend(tmp_path, RecordingRunner())
    make_subsystem(
        tmp_path / "sys",
        "nvme-subsys0",
        "nqn.other",
        {"nvme0": "traddr=1.1.1.1,trsvcid=4420"},
        {"nvme0n1": {"nguid": "00000000-0000-0000-0000-000000000000"}},
    )
    make_subsystem(
        tmp_path / "sys",
        "nvme-subsys1",
        NQN,
        {"nvme1": "traddr=10.0.0.1,trsvcid=4420"},
        {
            "nvme1n1": {"uuid": "ffffffff-0000-0000-0000-000000000000"},
            "nvme1n2": {"nguid": "3f1c2a9e-8b7d-4e21-9c3a-5d6e7f8a9b0c", "wwid": "eui." + NGUID},
        },
    )
    assert b.find_device(target()) == str(tmp_path / "dev" / "nvme1n2")
    assert b.live_addresses(NQN) == {"10.0.0.1:4420"}


def test_by_id_link_wins(tmp_path: Path) -> None:
    b = backend(tmp_path, RecordingRunner())
    (tmp_path / "dev" / "nvme7n3").touch()
    (tmp_path / "dev" / "disk" / "by-id").mkdir(parents=True)
    (tmp_path / "dev" / "disk" / "by-id" / f"nvme-uuid.{UUID}").symlink_to("../../nvme7n3")
    assert b.find_device(target()) == str((tmp_path / "dev" / "nvme7n3").resolve())


def test_attach_connects_missing_paths_only_and_tolerates_already_connected(tmp_path: Path) -> None:
    runner = RecordingRunner()
    b = backend(tmp_path, runner)
    make_subsystem(tmp_path / "sys", "nvme-subsys1", NQN, {"nvme1": "traddr=10.0.0.1,trsvcid=4420"}, {})

    def connect(argv: list[str]) -> tuple[int, str]:
        # The namespace appears once the second path connects; nvme-cli says "already connected".
        (tmp_path / "sys" / "class" / "nvme-subsystem" / "nvme-subsys1" / "nvme1n1").mkdir()
        (tmp_path / "sys" / "class" / "nvme-subsystem" / "nvme-subsys1" / "nvme1n1" / "uuid").write_text(UUID)
        return 1, "Failed to write to /dev/nvme-fabrics: Operation already in progress (already connected)"

    runner.hooks["nvme connect"] = connect
    assert b.attach(target()) == str(tmp_path / "dev" / "nvme1n1")
    connects = [c for c in runner.calls if c[:2] == ["nvme", "connect"]]
    assert len(connects) == 1 and "--traddr=fd00::2" in connects[0]


def test_attach_rescans_when_namespace_does_not_appear_then_fails(tmp_path: Path) -> None:
    runner = RecordingRunner()
    b = backend(tmp_path, runner)
    make_subsystem(
        tmp_path / "sys",
        "nvme-subsys1",
        NQN,
        {"nvme1": "traddr=10.0.0.1,trsvcid=4420", "nvme2": "traddr=fd00::2,trsvcid=4421"},
        {},
    )
    with pytest.raises(FailedPrecondition, match="did not appear"):
        b.attach(target())
    rescans = [c for c in runner.calls if c[:2] == ["nvme", "ns-rescan"]]
    assert sorted(c[2] for c in rescans) == [str(tmp_path / "dev" / "nvme1"), str(tmp_path / "dev" / "nvme2")]


def test_disconnect_is_refcounted_flushed_and_polled(tmp_path: Path) -> None:
    runner = RecordingRunner()
    b = backend(tmp_path, runner)
    sub = make_subsystem(
        tmp_path / "sys",
        "nvme-subsys1",
        NQN,
        {"nvme1": "traddr=10.0.0.1,trsvcid=4420"},
        {"nvme1n1": {"uuid": UUID}},
    )
    other = target("2:y")
    b.detach(target(), still_staged=[other])
    assert [c[:2] for c in runner.calls] == [["blockdev", "--flushbufs"]], "shared subsystem: flush only"

    def disconnect(argv: list[str]) -> tuple[int, str]:
        import shutil

        shutil.rmtree(sub / "nvme1")
        return 0, ""

    runner.hooks["nvme disconnect"] = disconnect
    runner.calls.clear()
    b.detach(target(), still_staged=[])
    assert [c[:2] for c in runner.calls] == [["blockdev", "--flushbufs"], ["nvme", "disconnect"]]
    assert runner.calls[1] == ["nvme", "disconnect", f"--nqn={NQN}"]


def test_disconnect_that_does_not_complete_is_an_error(tmp_path: Path) -> None:
    runner = RecordingRunner()
    b = backend(tmp_path, runner)
    make_subsystem(tmp_path / "sys", "nvme-subsys1", NQN, {"nvme1": "traddr=10.0.0.1,trsvcid=4420"}, {})
    with pytest.raises(FailedPrecondition, match="still present"):
        b.detach(target(), still_staged=[])


def test_prerequisites_are_actionable(tmp_path: Path) -> None:
    runner = RecordingRunner()
    runner.hooks["nvme version"] = lambda a: (127, "nvme not found")
    problems = backend(tmp_path, runner).prerequisites()
    assert any("modprobe nvme-tcp" in p for p in problems)
    assert any("nvme-cli" in p for p in problems)


def test_empty_host_nqn_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="host NQN"):
        NvmeTcpBackend(RecordingRunner(), NvmeOptions(host_nqn=""))
