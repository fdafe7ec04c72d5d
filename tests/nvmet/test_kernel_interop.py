"""The truth: Debian's Linux kernel NVMe/TCP initiator against our target.

Boots ``linux-image-amd64`` in ``qemu-system-x86_64`` (TCG) with an initramfs made by
``hack/qemu/build-initramfs.sh`` (busybox-static, nvme-cli, the nvme-tcp and virtio-net modules).
Everything runs inside a network namespace this test creates: the target listens on that
namespace's 127.0.0.1:4420/8009 and the guest reaches it at 10.0.2.2 through qemu user networking.

The guest runs a script appended to the initramfs as a second cpio archive; it prints
``KVCHECK <name> ok|fail`` lines on the serial console, which this test reads.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import missing, require_root, require_tool

from .kernel_guest import build_guest_image, make_initrd, netns, run_guest, start_target, write_config

pytestmark = [pytest.mark.kernel, pytest.mark.slow, pytest.mark.timeout(900)]

SUBNQN = "nqn.2024-01.com.vastdata:vms-mock:kernel-interop"
HOSTNQN = "nqn.2014-08.org.nvmexpress:uuid:5e3c41a2-7f1b-4d7e-9f60-8c2b1a0d4e11"
HOSTID = "5e3c41a2-7f1b-4d7e-9f60-8c2b1a0d4e11"
STRANGER = "nqn.2014-08.org.nvmexpress:uuid:0badc0de-0000-4000-8000-000000000000"
NS_UUID = "3f2a9c1e-5b7d-4e21-a0c4-6d8e9f102b3c"
NGUID = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
NS2_UUID = "9d6e0b7a-1c2f-4a3b-8e5d-7f60a1b2c3d4"
NS2_SIZE = 8 << 20
SIZE = 64 << 20
PATTERN_OFFSET = 64 << 10  # where the guest writes its 1 MiB pattern
PATTERN_LEN = 1 << 20
DISCARD_OFFSET = 12 << 20  # the guest writes 1 MiB here, then discards it

GUEST_SCRIPT = r"""#!/bin/sh
T=10.0.2.2
check() { if [ "$2" = 0 ]; then echo "KVCHECK $1 ok"; else echo "KVCHECK $1 fail $3"; fi; }
wait_dev() {  # wait until a namespace block device of our subsystem exists, print its name
  i=0
  while [ $i -lt 100 ]; do
    for d in /sys/block/nvme*n*; do
      case "$(basename "$d")" in nvme*c*n*) continue ;; esac  # hidden per-path devices (multipath)
      [ -e "$d/uuid" ] && [ "$(cat "$d/uuid")" = "@UUID@" ] && { basename "$d"; return 0; }
    done
    sleep 0.2; i=$((i+1))
  done
  return 1
}
wait_gone() {
  i=0
  while [ $i -lt 100 ]; do
    ls /sys/block/ | grep -q '^nvme' || return 0
    sleep 0.2; i=$((i+1))
  done
  return 1
}

out=$(timeout 90 nvme discover -t tcp -a $T -s 8009 -q @HOSTNQN@ 2>&1); rc=$?
echo "$out"
check discover-rc $rc
echo "$out" | grep -q "subnqn: *@SUBNQN@"; check discover-lists-subsystem $?
echo "$out" | grep -q "trsvcid: *4420"; check discover-io-port $?

out=$(timeout 90 nvme discover -t tcp -a $T -s 8009 -q @STRANGER@ 2>&1); rc=$?
echo "$out"
echo "$out" | grep -q "Number of Records 0"; check stranger-sees-nothing $? "$rc"

timeout 90 nvme connect -t tcp -a $T -s 4420 -n @SUBNQN@ -q @HOSTNQN@ -I @HOSTID@ \
  --hdr-digest --data-digest -k 5 2>&1
check connect-digests $?
dev=$(wait_dev); check namespace-appears $?
echo "device: $dev"
kv-bylinks
ls -l /dev/disk/by-id/
link=/dev/disk/by-id/nvme-uuid.@UUID@
[ -b "$link" ]; check by-id-uuid-link $?
[ "$(cat /sys/block/$dev/size)" = "@SECTORS@" ]; check size $? "$(cat /sys/block/$dev/size)"
cat /sys/block/$dev/nguid /sys/block/$dev/wwid
tr -d '-' < /sys/block/$dev/nguid | grep -qi "^@NGUID@$"; check nguid $? "$(cat /sys/block/$dev/nguid)"
cat /sys/class/nvme/nvme*/transport /sys/class/nvme/nvme*/queue_count 2>/dev/null

dd if=/dev/urandom of=/tmp/pat bs=4096 count=256 2>/dev/null
md5=$(md5sum < /tmp/pat | cut -d' ' -f1)
echo "KVMD5 $md5"
dd if=/tmp/pat of="$link" bs=4096 count=256 seek=16 oflag=direct 2>&1; check write-odirect $?
dd if=/dev/zero of="$link" bs=512 count=1 seek=@LASTLBA@ oflag=direct 2>&1; check write-last-lba $?
# 1 MiB commands (R2T + H2CData, C2HData with data digests) from two processes at once
dd if=/tmp/pat of="$link" bs=1M count=1 seek=8 oflag=direct 2>/dev/null & p1=$!
dd if=/tmp/pat of="$link" bs=1M count=1 seek=9 oflag=direct 2>/dev/null & p2=$!
wait $p1 && wait $p2; check parallel-1m-writes $?
a=$(dd if="$link" bs=1M count=1 skip=8 iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)
b=$(dd if="$link" bs=1M count=1 skip=9 iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)
[ "$a" = "$md5" ] && [ "$b" = "$md5" ]; check parallel-1m-read-back $? "$a $b"
# discard (Dataset Management deallocate): the range reads back as zeros; the host test checks
# that the backing file has a hole there
dd if=/tmp/pat of="$link" bs=1M count=1 seek=12 oflag=direct 2>/dev/null
blkdiscard -o $((12 << 20)) -l $((1 << 20)) "/dev/$dev" 2>&1; check discard $?
zero=$(dd if=/dev/zero bs=1M count=1 2>/dev/null | md5sum | cut -d' ' -f1)
c=$(dd if="$link" bs=1M count=1 skip=12 iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)
[ "$c" = "$zero" ]; check discard-reads-zeros $? "$c"
dd if=/dev/zero of="$link" bs=512 count=1 seek=@SECTORS@ oflag=direct 2>/dev/null
[ $? != 0 ]; check write-past-end-refused $?
timeout 60 nvme flush "/dev/$dev" 2>&1 || timeout 60 nvme flush "/dev/$dev" -n 1 2>&1; check flush $?

# nvme-cli admin passthrough through the kernel: identify, logs, features
ctrl=/dev/$(ls /sys/class/nvme | head -1)
timeout 60 nvme id-ctrl $ctrl >/dev/null 2>&1 && timeout 60 nvme id-ns "/dev/$dev" >/dev/null 2>&1 \
  && timeout 60 nvme error-log $ctrl -e 1 >/dev/null 2>&1 && timeout 60 nvme get-feature $ctrl -f 7 2>&1 \
  && timeout 60 nvme list-ns $ctrl 2>&1
check nvme-cli-admin $?
smart=$(timeout 60 nvme smart-log $ctrl 2>&1); echo "$smart"
echo "$smart" | grep -Eiq "data.units.written[[:space:]]*: *[1-9]"; check smart-log-counts-writes $?

# Online expansion: the host test grows the volume when it reads this line; the kernel learns
# of it only through the namespace-attribute-changed event and the changed namespace list.
echo "KVRESIZE"
i=0
while [ $i -lt 150 ] && [ "$(cat /sys/block/$dev/size)" != "@SECTORS2@" ]; do sleep 0.2; i=$((i+1)); done
[ "$(cat /sys/block/$dev/size)" = "@SECTORS2@" ]; check resize-seen $? "$(cat /sys/block/$dev/size)"
dd if=/tmp/pat of="$link" bs=512 count=1 seek=@LASTLBA2@ oflag=direct 2>&1; check write-new-last-lba $?
# ...and a second volume was mapped at the same moment: a new namespace appears by itself
dev2=
i=0
while [ $i -lt 150 ] && [ -z "$dev2" ]; do
  for d in /sys/block/nvme*n*; do
    case "$(basename "$d")" in nvme*c*n*) continue ;; esac
    [ -e "$d/uuid" ] && [ "$(cat "$d/uuid")" = "@UUID2@" ] && dev2=$(basename "$d")
  done
  [ -n "$dev2" ] || sleep 0.2
  i=$((i+1))
done
[ -n "$dev2" ]; check second-namespace-appears $? "$(ls /sys/block)"
kv-bylinks
dd if=/tmp/pat of=/dev/disk/by-id/nvme-uuid.@UUID2@ bs=4096 count=256 oflag=direct 2>/dev/null
check second-namespace-write $?
echo "KVUNMAP"  # the host test unmaps the second volume: its device goes away by itself
i=0
while [ $i -lt 150 ] && [ -e "/sys/block/$dev2" ]; do sleep 0.2; i=$((i+1)); done
[ ! -e "/sys/block/$dev2" ]; check unmapped-namespace-removed $?
[ -e "/sys/block/$dev" ]; check first-namespace-stays $?

timeout 60 nvme disconnect -n @SUBNQN@ 2>&1; check disconnect $?
wait_gone; check device-gone $?

timeout 90 nvme connect -t tcp -a $T -s 4420 -n @SUBNQN@ -q @HOSTNQN@ -I @HOSTID@ -k 5 \
  --reconnect-delay 1 --ctrl-loss-tmo 60 2>&1
check reconnect $?
dev=$(wait_dev); check namespace-reappears $?
kv-bylinks
back=$(dd if="$link" bs=4096 count=256 skip=16 iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)
[ "$back" = "$md5" ]; check read-back-after-reconnect $? "$back"

# The target process restarts under a connected host (as vms-mock does on an upgrade): the kernel
# reconnects by itself and I/O continues on the same device.
echo "KVRESTART"
sleep 2
back=
i=0
while [ $i -lt 60 ] && [ "$back" != "$md5" ]; do
  back=$(timeout 20 dd if="$link" bs=4096 count=256 skip=16 iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)
  [ "$back" = "$md5" ] || sleep 1
  i=$((i+1))
done
[ "$back" = "$md5" ]; check io-after-target-restart $? "$(cat /sys/class/nvme/nvme*/state)"
timeout 60 nvme disconnect -n @SUBNQN@ 2>&1; check disconnect-again $?

timeout 90 nvme connect -t tcp -a $T -s 4420 -n @SUBNQN@ -q @STRANGER@ 2>&1; rc=$?
[ $rc != 0 ]; check stranger-connect-refused $? "$rc"
ls /sys/block/ | grep -q '^nvme'; [ $? != 0 ]; check stranger-has-no-device $?
timeout 90 nvme connect -t tcp -a $T -s 4420 -n nqn.2024-01.com.example:no-such-subsystem -q @HOSTNQN@ 2>&1
rc=$?; [ $rc != 0 ]; check unknown-subsystem-refused $? "$rc"
echo "KVDONE"
"""

EXPECTED = [
    "discover-rc", "discover-lists-subsystem", "discover-io-port", "stranger-sees-nothing",
    "connect-digests", "namespace-appears", "by-id-uuid-link", "size", "nguid", "write-odirect",
    "write-last-lba", "parallel-1m-writes", "parallel-1m-read-back", "discard", "discard-reads-zeros",
    "write-past-end-refused", "flush", "nvme-cli-admin", "smart-log-counts-writes", "resize-seen",
    "write-new-last-lba", "second-namespace-appears",
    "second-namespace-write", "unmapped-namespace-removed", "first-namespace-stays",
    "disconnect", "device-gone", "reconnect",
    "namespace-reappears", "read-back-after-reconnect", "io-after-target-restart", "disconnect-again",
    "stranger-connect-refused",
    "stranger-has-no-device", "unknown-subsystem-refused",
]


def _guest_script() -> str:
    subs = {"@UUID@": NS_UUID, "@HOSTNQN@": HOSTNQN, "@HOSTID@": HOSTID, "@STRANGER@": STRANGER,
            "@SUBNQN@": SUBNQN, "@SECTORS@": str(SIZE // 512), "@LASTLBA@": str(SIZE // 512 - 1),
            "@NGUID@": NGUID, "@UUID2@": NS2_UUID, "@SECTORS2@": str(2 * SIZE // 512),
            "@LASTLBA2@": str(2 * SIZE // 512 - 1)}
    text = GUEST_SCRIPT
    for k, v in subs.items():
        text = text.replace(k, v)
    return text


@pytest.fixture
def guest_image() -> Path:
    require_root()
    require_tool("qemu-system-x86_64", "apt-get install qemu-system-x86")
    require_tool("busybox", "apt-get install busybox-static")
    require_tool("depmod", "apt-get install kmod")
    require_tool("nvme", "apt-get install nvme-cli")
    if not shutil.which("cpio"):
        missing("cpio", "apt-get install cpio")
    if not list(Path("/boot").glob("vmlinuz-*")):
        missing("linux-image-amd64", "apt-get install linux-image-amd64")
    try:
        return build_guest_image()
    except RuntimeError as exc:
        pytest.fail(str(exc))


@pytest.fixture
def ns() -> Iterator[str]:
    require_tool("ip", "apt-get install iproute2")
    with netns() as name:
        yield name


def test_linux_kernel_initiator_discovers_connects_and_reads_back(
        guest_image: Path, ns: str, tmp_path: Path) -> None:
    backing = tmp_path / "vol.img"
    with open(backing, "wb") as f:
        f.truncate(SIZE)
    backing2 = tmp_path / "vol2.img"
    config = tmp_path / "target.json"
    write_config(config, SUBNQN, HOSTNQN, backing, SIZE, NGUID, NS_UUID)
    procs = [start_target(ns, config, tmp_path)]

    def on_line(line: str) -> None:
        target = procs[-1]
        if line == "KVRESIZE":  # grow the volume as vms-mock does, then tell the target
            with open(backing, "r+b") as f:
                f.truncate(2 * SIZE)
            with open(backing2, "wb") as f:
                f.truncate(NS2_SIZE)
            write_config(config, SUBNQN, HOSTNQN, backing, 2 * SIZE, NGUID, NS_UUID, [{
                "nsid": 2, "nguid": "b" * 32, "uuid": NS2_UUID, "size": NS2_SIZE,
                "backing_path": str(backing2), "hosts": [HOSTNQN]}])
            target.send_signal(signal.SIGHUP)
        elif line == "KVUNMAP":
            write_config(config, SUBNQN, HOSTNQN, backing, 2 * SIZE, NGUID, NS_UUID)
            target.send_signal(signal.SIGHUP)
        elif line == "KVRESTART":
            target.send_signal(signal.SIGTERM)
            target.wait(15)
            procs.append(start_target(ns, config, tmp_path))

    try:
        initrd = make_initrd(guest_image, _guest_script(), tmp_path / "initrd.img")
        started = time.monotonic()
        console = "\n".join(run_guest(ns, guest_image, initrd, on_line)) + "\n"
        (tmp_path / "console.log").write_text(console)
        print(f"guest ran {time.monotonic() - started:.1f}s; console in {tmp_path / 'console.log'}")
    finally:
        for target in procs:
            if target.poll() is None:
                target.send_signal(signal.SIGTERM)
            try:
                target.wait(10)
            except subprocess.TimeoutExpired:
                target.kill()

    results = dict(re.findall(r"^KVCHECK (\S+) (ok|fail.*)$", console, re.M))
    failed = {k: v for k, v in results.items() if v != "ok"}
    missing_checks = [k for k in EXPECTED if k not in results]
    assert "KVDONE" in console and not failed and not missing_checks, (
        f"failed={failed} missing={missing_checks}\n--- console ---\n{console[-6000:]}"
        f"\n--- target log ---\n{(tmp_path / 'target.log').read_text()[-4000:]}")
    md5 = re.search(r"^KVMD5 ([0-9a-f]{32})", console, re.M)
    assert md5
    with open(backing, "rb") as f:
        f.seek(PATTERN_OFFSET)
        assert hashlib.md5(f.read(PATTERN_LEN)).hexdigest() == md5.group(1)
    assert os.path.getsize(backing) == 2 * SIZE
    with open(backing, "rb") as f:  # the discarded MiB is a hole in the backing file
        try:
            next_data = os.lseek(f.fileno(), DISCARD_OFFSET, os.SEEK_DATA)
        except OSError:  # ENXIO: no data after it at all
            next_data = 2 * SIZE
        assert next_data >= DISCARD_OFFSET + (1 << 20)
    with open(backing2, "rb") as f:  # what the guest wrote to the second namespace
        assert hashlib.md5(f.read(PATTERN_LEN)).hexdigest() == md5.group(1)
