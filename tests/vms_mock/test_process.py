"""The vms-mock process: --help, TLS, --in-memory, a seed file, metrics, clean shutdown."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.vmsproc import VmsProcess
from vms_mock.cli import build_parser


def test_help_documents_flags_and_fault_syntax() -> None:
    out = build_parser().format_help()
    for flag in ("--data-dir", "--in-memory", "--api-port", "--s3-port", "--nvme-port", "--discovery-port",
                 "--tls", "--seed", "--capacity", "--fault", "--enable-admin", "--ready-file",
                 "--log-format", "--token-ttl", "--no-s3", "--no-nvme"):
        assert flag in out
    assert "path=REGEX" in out and "error=STATUS" in out


def test_bad_flags_fail_clearly(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["--capacity", "lots"])
    assert exc.value.code == 2 and "invalid size" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["--fault", "colour=red"])
    assert exc.value.code == 2 and "colour" in capsys.readouterr().err
    assert build_parser().parse_args(["--capacity", "1.5TiB"]).capacity == int(1.5 * 2**40)


def test_console_script_runs() -> None:
    out = subprocess.run([sys.executable, "-m", "vms_mock", "--help"], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert out.startswith("usage: vms-mock")


def test_tls_with_a_generated_ca_and_metrics(tmp_path: Path) -> None:
    vms = VmsProcess(tmp_path / "data", s3=False, nvme=False, tls=True,
                     extra_args=["--metrics-address", "127.0.0.1:0"])
    with vms:
        assert vms.api_url.startswith("https://127.0.0.1:")
        assert vms.ca_file and Path(vms.ca_file).is_file()
        assert Path(vms.ca_file).parent == vms.data_dir / "tls"
        r = requests.get(vms.url("versions/"), headers={"Authorization": f"Bearer {vms.token()}"},
                         verify=vms.ca_file, timeout=10)
        assert r.status_code == 200
        host, port = vms.api_url.removeprefix("https://").split(":")
        ctx = ssl.create_default_context()  # the system store does not know our CA
        with socket.create_connection((host, int(port)), timeout=10) as raw, \
                pytest.raises(ssl.SSLCertVerificationError):
            ctx.wrap_socket(raw, server_hostname="localhost")
        text = requests.get(f"http://127.0.0.1:{vms.info['metrics_port']}/metrics", timeout=10).text
        assert 'vms_mock_requests_total{method="GET",status="200"}' in text


def test_in_memory_mode_and_seed_file(tmp_path: Path) -> None:
    seed = tmp_path / "seed.yaml"
    seed.write_text(
        "tenants: [{name: default}, {name: acme}]\n"
        "managers: [{username: root, password: s3cret, role: super_admin}]\n"
        "viewpolicies: [{name: default, tenant: acme}]\n"
        "views: [{path: /acme/share, tenant: acme, policy: default}]\n")
    vms = VmsProcess(tmp_path / "mem", s3=False, nvme=False, in_memory=True, seed=seed)
    vms.username, vms.password = "root", "s3cret"
    with vms:
        s = vms.session()
        views = s.get(vms.url("views/")).json()
        assert [(v["path"], v["tenant_name"]) for v in views] == [("/acme/share", "acme")]
        assert not (tmp_path / "mem").exists()  # nothing on disk in memory mode
        assert requests.post(vms.url("token/"), json={"username": "admin", "password": "admin"},
                             timeout=10).status_code == 401


def test_bad_seed_file_fails_startup_naming_the_entry(tmp_path: Path) -> None:
    seed = tmp_path / "seed.yaml"
    seed.write_text("tenants: [{name: a}]\nviews: [{path: relative, tenant: a}]\n")
    vms = VmsProcess(tmp_path / "data", s3=False, nvme=False, seed=seed, start_timeout=60)
    try:
        vms.start()
        raise AssertionError("a bad seed must stop the server")
    except RuntimeError as exc:
        assert "views[0]" in str(exc)


def test_shared_fixture_starts_every_service(vms_server: VmsProcess) -> None:
    info = vms_server.info
    keys = ("api_url", "s3_url", "nvme_host", "nvme_port", "discovery_port", "data_dir", "ca_file", "pid")
    assert all(key in info for key in keys)
    assert info["pid"] == vms_server.pid and Path(info["data_dir"]) == vms_server.data_dir.resolve()
    assert vms_server.api("GET", "versions/").status_code == 200
    if info["s3_url"]:
        assert requests.get(info["s3_url"], timeout=10).status_code in (200, 403)
    if info["nvme_port"]:
        with socket.create_connection((info["nvme_host"], info["nvme_port"]), timeout=10):
            pass
