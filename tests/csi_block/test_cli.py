"""The csi-block-driver process: --help, stale socket, metrics, graceful SIGTERM, refusals."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import grpc
import pytest

from csi_block_driver.proto import csi_pb2, csi_pb2_grpc
from tests.conftest import require_root

CMD = [sys.executable, "-m", "csi_block_driver.cli"]


def test_help_lists_modes_and_backends() -> None:
    out = subprocess.run([*CMD, "--help"], capture_output=True, text=True, timeout=60, check=True).stdout
    for flag in (
        "--endpoint",
        "--mode",
        "--attach-backend",
        "--loop-backing-dir",
        "--metrics-address",
        "--nvme-ctrl-loss-tmo",
        "--vms-secret-dir",
        "CSI_ENDPOINT",
    ):
        assert flag in out


def test_node_mode_refuses_to_guess_the_backend(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            *CMD,
            "--mode",
            "node",
            "--endpoint",
            f"unix://{tmp_path}/s.sock",
            "--hostnqn-file",
            str(tmp_path / "hostnqn"),
            "--state-dir",
            str(tmp_path / "st"),
            "--metrics-address",
            "",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "CSI_ATTACH_BACKEND"},
    )
    assert proc.returncode != 0 and "--attach-backend" in proc.stderr


def test_node_mode_refuses_an_empty_host_nqn(tmp_path: Path) -> None:
    (tmp_path / "hostnqn").write_text("\n")
    proc = subprocess.run(
        [
            *CMD,
            "--mode",
            "node",
            "--attach-backend",
            "loop",
            "--loop-backing-dir",
            str(tmp_path),
            "--endpoint",
            f"unix://{tmp_path}/s.sock",
            "--hostnqn-file",
            str(tmp_path / "hostnqn"),
            "--state-dir",
            str(tmp_path / "st"),
            "--metrics-address",
            "",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0 and "empty host NQN" in proc.stderr


def test_serves_metrics_removes_stale_socket_and_stops_gracefully(tmp_path: Path) -> None:
    require_root()
    sock = tmp_path / "csi.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(sock))
    stale.close()  # leaves the socket file behind, as a killed plugin would
    (tmp_path / "block").mkdir()
    log = open(tmp_path / "log", "w+")  # noqa: SIM115 - the child writes to it while we read
    proc = subprocess.Popen(
        [
            *CMD,
            "--mode",
            "node",
            "--attach-backend",
            "loop",
            "--loop-backing-dir",
            str(tmp_path / "block"),
            "--endpoint",
            f"unix://{sock}",
            "--hostnqn-file",
            str(tmp_path / "hostnqn"),
            "--state-dir",
            str(tmp_path / "st"),
            "--metrics-address",
            "127.0.0.1:0",
        ],
        stderr=log,
        stdout=log,
    )
    try:
        channel = grpc.insecure_channel(f"unix://{sock}")
        grpc.channel_ready_future(channel).result(timeout=30)
        ident = csi_pb2_grpc.IdentityStub(channel)
        info = ident.GetPluginInfo(csi_pb2.GetPluginInfoRequest())
        assert info.name == "block.csi.vastdata.com" and info.vendor_version
        node = csi_pb2_grpc.NodeStub(channel)
        assert node.NodeGetInfo(csi_pb2.NodeGetInfoRequest()).node_id.startswith(
            "nqn.2014-08.org.nvmexpress:uuid:"
        )
        with pytest.raises(grpc.RpcError):
            node.NodeStageVolume(csi_pb2.NodeStageVolumeRequest())
        log.seek(0)
        lines = [json.loads(line) for line in log.read().splitlines() if line.startswith("{")]
        port = next(int(x["address"].rsplit(":", 1)[1]) for x in lines if x.get("msg") == "metrics listening")
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        assert 'csi_rpc_total{code="OK",method="GetPluginInfo"}' in metrics
        assert 'csi_rpc_errors_total{code="INVALID_ARGUMENT",method="NodeStageVolume"}' in metrics
        assert "csi_rpc_duration_seconds_bucket" in metrics
        channel.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert not sock.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def test_refuses_to_remove_a_non_socket(tmp_path: Path) -> None:
    (tmp_path / "csi.sock").write_text("not a socket")
    proc = subprocess.run(
        [
            *CMD,
            "--mode",
            "node",
            "--attach-backend",
            "loop",
            "--loop-backing-dir",
            str(tmp_path),
            "--endpoint",
            f"unix://{tmp_path}/csi.sock",
            "--hostnqn-file",
            str(tmp_path / "hostnqn"),
            "--state-dir",
            str(tmp_path / "st"),
            "--metrics-address",
            "",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if os.geteuid() != 0:
        assert proc.returncode != 0
        return
    assert proc.returncode != 0 and "not a socket" in proc.stderr
    assert (tmp_path / "csi.sock").read_text() == "not a socket"
