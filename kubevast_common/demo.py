"""``kubevast-demo``: the project end to end on the embedded backend, in a couple of minutes.

Starts ``vms-mock`` (the VMS emulator with its S3 endpoint and NVMe/TCP target), the COSI driver
and the block CSI driver as real processes on real sockets, then walks the mission through their
gRPC APIs exactly as the Kubernetes sidecars would: buckets, users and keys appear on the
platform, S3 objects are written with the granted keys, volumes are created, snapshotted, cloned,
expanded, attached to this node and written through a real block device, and the same bytes are
read back over NVMe/TCP. Progress goes to the terminal; every process logs to a file in the work
directory, named at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

GIB = 1 << 30
_TTY = sys.stdout.isatty()


def _c(code: str, text: str) -> str:
    return f"\033[{code}m{text}\033[0m" if _TTY else text


class Progress:
    """Numbered steps with a result line each: what a new user should see, not a wall of logs."""

    def __init__(self) -> None:
        self.n = 0
        self.failures = 0

    def section(self, title: str) -> None:
        print(f"\n{_c('1;36', '== ' + title)}", flush=True)

    def step(self, title: str, fn: Callable[[], T]) -> T:
        self.n += 1
        print(f"  [{self.n:2d}] {title} ... ", end="", flush=True)
        started = time.monotonic()
        try:
            result = fn()
        except Exception as exc:
            self.failures += 1
            print(_c("31", f"FAILED ({time.monotonic() - started:.2f}s)"), flush=True)
            print(f"       {type(exc).__name__}: {exc}", flush=True)
            raise
        detail = result if isinstance(result, str) else ""
        print(f"{_c('32', 'ok')} {_c('2', f'({time.monotonic() - started:.2f}s)')}", flush=True)
        if detail:
            for line in detail.splitlines():
                print(f"       {line}", flush=True)
        return result

    def note(self, text: str) -> None:
        print(f"       {_c('33', text)}", flush=True)


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)


@dataclass
class Demo:
    workdir: Path
    progress: Progress = field(default_factory=Progress)
    procs: list[Proc] = field(default_factory=list)
    cleanups: list[Callable[[], None]] = field(default_factory=list)
    ready: dict[str, Any] = field(default_factory=dict)

    # ----------------------------------------------------------------- processes
    def spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> Proc:
        log = self.workdir / f"{name}.log"
        fh = open(log, "ab")  # noqa: SIM115 - owned by the child from here on
        popen = subprocess.Popen(args, stdout=fh, stderr=fh, env={**os.environ, **(env or {})})
        fh.close()
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def wait_for(self, proc: Proc, check: Callable[[], bool], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.popen.poll() is not None:
                tail = proc.log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}; log tail:\n{tail}")
            if check():
                return
            time.sleep(0.1)
        raise TimeoutError(f"{proc.name} not ready after {timeout:.0f}s (log: {proc.log})")

    def shutdown(self) -> None:
        for fn in reversed(self.cleanups):
            with contextlib.suppress(Exception):
                fn()
        for proc in reversed(self.procs):
            proc.stop()


def _grpc_channel(socket: Path) -> Any:
    import grpc

    channel = grpc.insecure_channel(f"unix://{socket}")
    grpc.channel_ready_future(channel).result(timeout=30)
    return channel


# --------------------------------------------------------------------------- platform
def start_platform(demo: Demo) -> Any:
    from vms_client import VmsClient, VmsConfig

    ready_file = demo.workdir / "vms-ready.json"
    data_dir = demo.workdir / "vms-data"
    args = [sys.executable, "-m", "vms_mock.cli", "--data-dir", str(data_dir), "--api-port", "0",
            "--s3-port", "0", "--nvme-port", "0", "--discovery-port", "0",
            "--ready-file", str(ready_file), "--capacity", "64GiB"]

    def start() -> str:
        proc = demo.spawn("vms-mock", args)
        demo.wait_for(proc, ready_file.exists)
        demo.ready.update(json.loads(ready_file.read_text()))
        r = demo.ready
        nvme = f"{r.get('nvme_host')}:{r.get('nvme_port')}" if r.get("nvme_port") else "off"
        return (f"REST API   {r['api_url']}/api/v1/\nS3         {r.get('s3_url') or 'off'}\n"
                f"NVMe/TCP   {nvme} (discovery port {r.get('discovery_port') or 'off'})\n"
                f"state      {data_dir}")

    demo.progress.step("start the VMS emulator (vms-mock) on loopback", start)
    from pydantic import SecretStr

    client = VmsClient(VmsConfig(endpoint=demo.ready["api_url"], username="admin",
                                 password=SecretStr("admin")))
    demo.cleanups.append(client.close)

    def describe() -> str:
        version = client.versions.current()
        cluster = client.clusters.list()[0]
        subsystems = [v for v in client.views.list() if "BLOCK" in (v.protocols or [])]
        lines = [f"version {version}",
                 f"capacity {(cluster.usable_capacity_bytes or 0) / GIB:.0f} GiB, "
                 f"free {(cluster.free_usable_capacity_bytes or 0) / GIB:.0f} GiB",
                 f"tenants: {', '.join(str(t.name) for t in client.tenants.list())}"]
        lines += [f"BLOCK subsystem {v.name!r}: {v.nqn}" for v in subsystems]
        return "\n".join(lines)

    demo.progress.step("log in through vms_client and read the platform", describe)
    return client


# --------------------------------------------------------------------------- COSI + S3
def cosi_flow(demo: Demo, client: Any) -> None:
    from cosi_driver.proto import cosi_v1alpha1_pb2 as v1
    from cosi_driver.proto import cosi_v1alpha1_pb2_grpc as v1_grpc

    p = demo.progress
    p.section("Object storage: COSI driver -> buckets, users, keys -> S3")
    sock = Path(tempfile.mkdtemp(prefix="kv-cosi-", dir="/tmp")) / "cosi.sock"
    demo.cleanups.append(lambda: shutil.rmtree(sock.parent, ignore_errors=True))
    args = [sys.executable, "-m", "cosi_driver.cli", "--endpoint", f"unix://{sock}",
            "--vms-endpoint", demo.ready["api_url"], "--s3-endpoint", demo.ready.get("s3_url") or "",
            "--key-store", "file", "--key-store-dir", str(demo.workdir / "cosi-keys"),
            "--metrics-address", "127.0.0.1:0"]
    env = {"VMS_USERNAME": "admin", "VMS_PASSWORD": "admin"}

    def start() -> str:
        proc = demo.spawn("cosi-driver", args, env)
        demo.wait_for(proc, sock.exists)
        return f"socket {sock}"

    p.step("start cosi-driver (cosi.v1alpha1 + sigs.k8s.io.cosi.v1alpha2 on one socket)", start)
    channel = _grpc_channel(sock)
    demo.cleanups.append(channel.close)
    ident = v1_grpc.IdentityStub(channel)
    prov = v1_grpc.ProvisionerStub(channel)
    claim_uid = uuid.uuid4()
    bucket_name = f"bucket-{claim_uid}"
    p.step("DriverGetInfo", lambda: f"driver {ident.DriverGetInfo(v1.DriverGetInfoRequest()).name}")

    created: dict[str, Any] = {}

    def create() -> str:
        resp = prov.DriverCreateBucket(v1.DriverCreateBucketRequest(name=bucket_name, parameters={}))
        again = prov.DriverCreateBucket(v1.DriverCreateBucketRequest(name=bucket_name, parameters={}))
        assert again.bucket_id == resp.bucket_id, "a repeated create must return the same bucket"
        created["bucket_id"] = resp.bucket_id
        view = client.views.find_one(bucket=resp.bucket_id)
        return (f"bucket id {resp.bucket_id} (a retry returned the same id)\n"
                f"platform view {view.path!r} protocols {view.protocols}" if view else resp.bucket_id)

    p.step(f"DriverCreateBucket {bucket_name}", create)
    bucket_id = created["bucket_id"]

    def grant() -> str:
        req = v1.DriverGrantBucketAccessRequest(
            bucket_id=bucket_id, name=f"ba-{uuid.uuid4()}", authentication_type=v1.Key, parameters={})
        resp = prov.DriverGrantBucketAccess(req)
        again = prov.DriverGrantBucketAccess(req)
        secrets = dict(resp.credentials["s3"].secrets)
        assert dict(again.credentials["s3"].secrets) == secrets, "a repeated grant must return the same keys"
        created.update(account_id=resp.account_id, secrets=secrets)
        user = client.users.find_one(name=resp.account_id) or next(
            (u for u in client.users.list() if str(u.id) == resp.account_id), None)
        return (f"account {resp.account_id} (own platform user{f' {user.name!r}' if user else ''})\n"
                f"accessKeyID {secrets['accessKeyID']}, accessSecretKey ******** "
                f"(a retry returned the same pair)\n"
                f"endpoint {secrets['endpoint']} region {secrets['region']}")

    p.step("DriverGrantBucketAccess (one user + key pair per BucketAccess)", grant)
    secrets = created["secrets"]
    if not demo.ready.get("s3_url"):
        p.note("S3 endpoint is off: skipping the object round trip")
        return
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    s3 = boto3.client(
        "s3", endpoint_url=secrets["endpoint"], region_name=secrets["region"] or "us-east-1",
        aws_access_key_id=secrets["accessKeyID"], aws_secret_access_key=secrets["accessSecretKey"],
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))

    def objects() -> str:
        body = os.urandom(256 * 1024)
        for i in range(3):
            s3.put_object(Bucket=bucket_id, Key=f"demo/object-{i}.bin", Body=body,
                          ContentType="application/octet-stream")
        big = os.urandom(16 << 20)
        started = time.monotonic()
        s3.put_object(Bucket=bucket_id, Key="demo/big.bin", Body=big)
        put_s = time.monotonic() - started
        listed = s3.list_objects_v2(Bucket=bucket_id, Prefix="demo/")
        got = s3.get_object(Bucket=bucket_id, Key="demo/object-1.bin")["Body"].read()
        assert got == body, "object read back differs"
        started = time.monotonic()
        assert s3.get_object(Bucket=bucket_id, Key="demo/big.bin")["Body"].read() == big, "16 MiB differs"
        get_s = time.monotonic() - started
        keys = [o["Key"] for o in listed.get("Contents", [])]
        return (f"PUT 3 x 256 KiB + 16 MiB ({16 / put_s:.0f} MiB/s), LIST {keys}, GET verified "
                f"({len(got)} bytes; 16 MiB at {16 / get_s:.0f} MiB/s)")

    p.step("boto3 with the granted key: put, list, get", objects)

    def delete_nonempty() -> str:
        import grpc

        try:
            prov.DriverDeleteBucket(v1.DriverDeleteBucketRequest(bucket_id=bucket_id))
        except grpc.RpcError as exc:
            return f"refused, retryable: {exc.code().name}: {exc.details()}"
        raise AssertionError("a bucket holding objects was deleted")

    p.step("DriverDeleteBucket while the bucket still holds objects", delete_nonempty)

    def empty() -> str:
        keys = [{"Key": f"demo/object-{i}.bin"} for i in range(3)] + [{"Key": "demo/big.bin"}]
        resp = s3.delete_objects(Bucket=bucket_id, Delete={"Objects": keys})
        return f"deleted {len(resp.get('Deleted', []))} objects"

    p.step("boto3 DeleteObjects", empty)

    def revoke() -> str:
        prov.DriverRevokeBucketAccess(v1.DriverRevokeBucketAccessRequest(
            bucket_id=bucket_id, account_id=created["account_id"]))
        try:
            s3.list_objects_v2(Bucket=bucket_id)
        except ClientError as exc:
            left = client.users.find_one(name=created["account_id"])
            return (f"the revoked key is refused at once: {exc.response['Error']['Code']}\n"
                    f"platform user {'still there!' if left else 'removed'}")
        raise AssertionError("the revoked key still works")

    p.step("DriverRevokeBucketAccess", revoke)

    def delete() -> str:
        prov.DriverDeleteBucket(v1.DriverDeleteBucketRequest(bucket_id=bucket_id))
        prov.DriverDeleteBucket(v1.DriverDeleteBucketRequest(bucket_id=bucket_id))  # idempotent
        gone = client.views.find_one(bucket=bucket_id) is None
        return f"bucket view {'removed' if gone else 'STILL PRESENT'} (second delete: OK)"

    p.step("DriverDeleteBucket x2 (idempotent)", delete)


# --------------------------------------------------------------------------- block CSI + NVMe
def block_flow(demo: Demo, client: Any) -> None:
    from csi_block_driver.proto import csi_pb2 as csi
    from csi_block_driver.proto import csi_pb2_grpc as csi_grpc

    p = demo.progress
    p.section("Block storage: CSI driver -> volumes, snapshots, clones, attach")
    root = os.geteuid() == 0
    sock = Path(tempfile.mkdtemp(prefix="kv-csi-", dir="/tmp")) / "csi.sock"
    demo.cleanups.append(lambda: shutil.rmtree(sock.parent, ignore_errors=True))
    state = demo.workdir / "csi-node"
    hostnqn = state / "hostnqn"
    args = [sys.executable, "-m", "csi_block_driver.cli", "--mode", "all" if root else "controller",
            "--endpoint", f"unix://{sock}", "--vms-endpoint", demo.ready["api_url"],
            "--metrics-address", "127.0.0.1:0", "--attach-backend", "loop",
            "--loop-backing-dir", str(Path(demo.ready["data_dir"]) / "block"),
            "--state-dir", str(state), "--hostnqn-file", str(hostnqn),
            "--hostid-file", str(state / "hostid"), "--subsystem", "block-default",
            "--vip-pool", "vippool-1"]
    if demo.ready.get("nvme_port"):
        args += ["--nvme-port", str(demo.ready["nvme_port"])]
    env = {"VMS_USERNAME": "admin", "VMS_PASSWORD": "admin"}

    def start() -> str:
        proc = demo.spawn("csi-block-driver", args, env)
        demo.wait_for(proc, sock.exists)
        mode = "controller + node (loop attach backend)" if root else "controller only (not root)"
        return f"socket {sock}, {mode}"

    p.step("start csi-block-driver", start)
    channel = _grpc_channel(sock)
    demo.cleanups.append(channel.close)
    ctrl = csi_grpc.ControllerStub(channel)
    node = csi_grpc.NodeStub(channel) if root else None
    block_cap = csi.VolumeCapability(
        block=csi.VolumeCapability.BlockVolume(),
        access_mode=csi.VolumeCapability.AccessMode(mode=csi.VolumeCapability.AccessMode.SINGLE_NODE_WRITER))
    pvc = f"pvc-{uuid.uuid4()}"
    vols: dict[str, Any] = {}

    def platform_volume(volume_id: str) -> Any:
        return next((v for v in client.volumes.list() if str(v.id) == volume_id
                     or str(getattr(v, "name", "")).endswith(volume_id)), None)

    def create() -> str:
        resp = ctrl.CreateVolume(csi.CreateVolumeRequest(
            name=pvc, capacity_range=csi.CapacityRange(required_bytes=GIB), volume_capabilities=[block_cap]))
        vols["main"] = resp.volume
        ctx = dict(resp.volume.volume_context)
        return (f"volume {resp.volume.volume_id}, {resp.volume.capacity_bytes / GIB:.0f} GiB\n"
                f"context {json.dumps(ctx, sort_keys=True)}")

    p.step(f"CreateVolume {pvc} (1 GiB, volumeMode: Block)", create)
    vol_id = vols["main"].volume_id

    def snapshot() -> str:
        resp = ctrl.CreateSnapshot(csi.CreateSnapshotRequest(source_volume_id=vol_id, name=f"snap-{pvc}"))
        vols["snap"] = resp.snapshot
        return f"snapshot {resp.snapshot.snapshot_id} ready={resp.snapshot.ready_to_use}"

    p.step("CreateSnapshot", snapshot)

    def clone() -> str:
        src = csi.VolumeContentSource(snapshot=csi.VolumeContentSource.SnapshotSource(
            snapshot_id=vols["snap"].snapshot_id))
        resp = ctrl.CreateVolume(csi.CreateVolumeRequest(
            name=f"{pvc}-restore", capacity_range=csi.CapacityRange(required_bytes=GIB),
            volume_capabilities=[block_cap], volume_content_source=src))
        vols["restore"] = resp.volume
        return f"volume {resp.volume.volume_id} restored from the snapshot"

    p.step("CreateVolume from the snapshot (restore)", clone)

    def expand() -> str:
        resp = ctrl.ControllerExpandVolume(csi.ControllerExpandVolumeRequest(
            volume_id=vol_id, capacity_range=csi.CapacityRange(required_bytes=2 * GIB),
            volume_capability=block_cap))
        return (f"capacity {resp.capacity_bytes / GIB:.0f} GiB, "
                f"node expansion required={resp.node_expansion_required}")

    p.step("ControllerExpandVolume to 2 GiB", expand)

    if node is None:
        p.note("not root: attach, NodeStage/NodePublish and the NVMe/TCP read are skipped")
    else:
        node_id = node.NodeGetInfo(csi.NodeGetInfoRequest()).node_id
        published: dict[str, Any] = {}

        def publish() -> str:
            resp = ctrl.ControllerPublishVolume(csi.ControllerPublishVolumeRequest(
                volume_id=vol_id, node_id=node_id, volume_capability=block_cap))
            published.update(resp.publish_context)
            return f"node {node_id}\npublish_context {json.dumps(dict(resp.publish_context), sort_keys=True)}"

        p.step("ControllerPublishVolume to this node (block host + mapping)", publish)
        staging = demo.workdir / "staging"
        target = demo.workdir / "pods" / "demo-pod" / "volumeDevices" / "data"
        staging.mkdir(parents=True, exist_ok=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        pattern = (b"kubevast demo block pattern " + pvc.encode()).ljust(4096, b".")

        def stage_publish() -> str:
            node.NodeStageVolume(csi.NodeStageVolumeRequest(
                volume_id=vol_id, publish_context=published, staging_target_path=str(staging),
                volume_capability=block_cap))
            node.NodePublishVolume(csi.NodePublishVolumeRequest(
                volume_id=vol_id, publish_context=published, staging_target_path=str(staging),
                target_path=str(target), volume_capability=block_cap))
            demo.cleanups.append(lambda: _node_cleanup(node, csi, vol_id, staging, target))
            fd = os.open(target, os.O_RDWR)
            try:
                size = os.lseek(fd, 0, os.SEEK_END)
                os.pwrite(fd, pattern, 0)
                os.fsync(fd)
                back = os.pread(fd, len(pattern), 0)
            finally:
                os.close(fd)
            assert back == pattern
            dev = _mount_source(target)
            return (f"{target}\n  -> block device {dev or '?'} ({size / GIB:.0f} GiB), "
                    f"wrote and read back a 4 KiB pattern")

        p.step("NodeStageVolume + NodePublishVolume (block device on the pod path)", stage_publish)
        if demo.ready.get("nvme_port"):
            p.step("read the same bytes over NVMe/TCP as this node's host NQN",
                   lambda: asyncio.run(_nvme_read(demo, published, hostnqn.read_text().strip(), pattern)))

        def unpublish() -> str:
            _node_cleanup(node, csi, vol_id, staging, target)
            ctrl.ControllerUnpublishVolume(
                csi.ControllerUnpublishVolumeRequest(volume_id=vol_id, node_id=node_id))
            return "device released, mapping removed"

        p.step("NodeUnpublish + NodeUnstage + ControllerUnpublish", unpublish)

    def cleanup() -> str:
        ctrl.DeleteVolume(csi.DeleteVolumeRequest(volume_id=vols["restore"].volume_id))
        ctrl.DeleteSnapshot(csi.DeleteSnapshotRequest(snapshot_id=vols["snap"].snapshot_id))
        ctrl.DeleteVolume(csi.DeleteVolumeRequest(volume_id=vol_id))
        ctrl.DeleteVolume(csi.DeleteVolumeRequest(volume_id=vol_id))  # idempotent
        return f"volumes left on the platform: {len(client.volumes.list())}"

    p.step("DeleteVolume x2 (idempotent) + DeleteSnapshot", cleanup)


def _node_cleanup(node: Any, csi: Any, vol_id: str, staging: Path, target: Path) -> None:
    node.NodeUnpublishVolume(csi.NodeUnpublishVolumeRequest(volume_id=vol_id, target_path=str(target)))
    node.NodeUnstageVolume(csi.NodeUnstageVolumeRequest(volume_id=vol_id, staging_target_path=str(staging)))


def _mount_source(target: Path) -> str | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            fields = line.split()
            if fields[4] == str(target):
                # The bind mount shows the device's devtmpfs path as its root.
                return "/dev" + fields[3] if fields[3].startswith("/") else fields[3]
    return None


async def _nvme_read(demo: Demo, ctx: dict[str, str], hostnqn: str, pattern: bytes) -> str:
    from vms_mock.nvmet.initiator import Initiator

    host = demo.ready["nvme_host"]
    disc = await Initiator.connect(host, int(demo.ready["discovery_port"]),
                                   "nqn.2014-08.org.nvmexpress.discovery", hostnqn)
    try:
        entries = await disc.discovery_entries()
    finally:
        await disc.close()
    subnqns = sorted({str(e.get("subnqn")) for e in entries})
    subnqn = next((v for k, v in ctx.items() if "nqn" in k.lower() and "host" not in k.lower()), subnqns[0])
    ctrl = await Initiator.connect(host, int(demo.ready["nvme_port"]), subnqn, hostnqn)
    try:
        nsids = await _active_namespaces(ctrl)
        comp = await ctrl.read(nsids[0], 0, len(pattern) // 512)
        data = bytes(getattr(comp, "data", b""))
    finally:
        await ctrl.close()
    assert data[: len(pattern)] == pattern, "NVMe/TCP read differs from what the block device wrote"
    return (f"discovery log for {hostnqn}: {subnqns}\n"
            f"connected to {subnqn}, namespace {nsids[0]}: 4 KiB pattern matches")


async def _active_namespaces(ctrl: Any) -> list[int]:
    comp = await ctrl.identify(2)
    raw = bytes(getattr(comp, "data", b""))
    ids = [int.from_bytes(raw[i:i + 4], "little") for i in range(0, len(raw), 4)]
    return [i for i in ids if i] or [1]


# --------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="kubevast-demo",
        description="Walk through kubevast on the embedded backend: vms-mock + the COSI and block CSI "
                    "drivers as real processes, driven through their gRPC APIs.")
    parser.add_argument("--workdir", type=Path, help="directory for state and logs (default: a new temp dir)")
    parser.add_argument("--skip-object", action="store_true", help="skip the COSI/S3 part")
    parser.add_argument("--skip-block", action="store_true", help="skip the block CSI part")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="kubevast-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    demo = Demo(workdir)
    print(_c("1", "kubevast demo") + f" - work directory {workdir}")
    code = 0
    try:
        demo.progress.section("Platform: the embedded VMS emulator")
        client = start_platform(demo)
        if not args.skip_object:
            cosi_flow(demo, client)
        if not args.skip_block:
            block_flow(demo, client)
    except Exception:
        code = 1
    finally:
        demo.shutdown()
    logs = ", ".join(p.log.name for p in demo.procs)
    print(f"\nlogs: {workdir} ({logs})")
    print(_c("1;32", "demo complete") if code == 0 else _c("1;31", "demo FAILED (see above and the logs)"))
    return code


if __name__ == "__main__":
    sys.exit(main())
