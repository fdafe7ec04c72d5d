#!/usr/bin/env bash
# Prepares the guest for the NVMe/TCP kernel interop test from Debian packages on this machine:
#   linux-image-amd64 (kernel + modules), busybox-static, nvme-cli (+ the libraries ldd lists), kmod (depmod).
# Output (cached; rebuilt when this script, the init or the kernel version change):
#   bin/qemu-nvme/<kver>/vmlinux          uncompressed kernel (PVH boot: about twice as fast under TCG)
#   bin/qemu-nvme/<kver>/vmlinuz          the packaged kernel (fallback when vmlinux cannot be extracted)
#   bin/qemu-nvme/<kver>/initramfs.cpio.gz
# Prints the output directory on its last line.
# Usage: hack/qemu/build-initramfs.sh [--force]
set -euo pipefail
cd "$(dirname "$0")/../.."
here=hack/qemu

kver=${KV_KERNEL_VERSION:-}
if [ -z "$kver" ]; then
  # The version linux-image-amd64 depends on, e.g. "linux-image-6.1.0-56-amd64 (= 6.1.192-2)".
  kver=$(dpkg-query -W -f '${Depends}' linux-image-amd64 2>/dev/null | sed -n 's/^linux-image-\([^ ,]*\).*/\1/p')
fi
[ -n "$kver" ] || { echo "linux-image-amd64 is not installed (apt-get install linux-image-amd64)" >&2; exit 1; }
moddir=/lib/modules/$kver
if [ ! -d "$moddir" ] || [ ! -f "/boot/vmlinuz-$kver" ]; then
  echo "kernel $kver not found under /boot and $moddir" >&2
  exit 1
fi
for tool in busybox nvme depmod; do
  command -v "$tool" >/dev/null || [ -x "/sbin/$tool" ] || { echo "missing $tool" >&2; exit 1; }
done
busybox=/bin/busybox
file "$busybox" 2>/dev/null | grep -q 'statically linked' || ldd "$busybox" 2>&1 | grep -q 'not a dynamic' \
  || { echo "$busybox is not static (apt-get install busybox-static)" >&2; exit 1; }

out=bin/qemu-nvme/$kver
mkdir -p "$out"
# Parallel test runs share the cache: one builds, the others wait and reuse it.
exec 9>"$out/.lock"
flock 9
key=$(cat "$0" "$here/init" | sha256sum | cut -c1-16)-$kver
if [ "${1:-}" != "--force" ] && [ -f "$out/stamp" ] && [ "$(cat "$out/stamp")" = "$key" ]; then
  echo "$out"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,tmp,run,usr/bin,usr/sbin,lib,lib64}

# busybox and its applets
cp "$busybox" "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
done
ln -sf ../bin/busybox "$root/sbin/modprobe"
ln -sf ../bin/busybox "$root/sbin/mdev"
ln -sf ../bin/busybox "$root/sbin/poweroff"

# nvme-cli and every shared library it loads (plus the dynamic loader)
nvme_bin=$(command -v nvme)
cp "$nvme_bin" "$root/usr/sbin/nvme"
ldd "$nvme_bin" | awk '/=> \//{print $3} /^\t\/.*ld-linux/{print $1}' | while read -r lib; do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
# (ldd lists the loader under the path the binary asks for, e.g. /lib64/ld-linux-x86-64.so.2)
[ -n "$(find "$root" -name 'ld-linux*' -print -quit)" ] || { echo "no dynamic loader copied" >&2; exit 1; }

# kernel modules: the NIC (virtio-net) and NVMe/TCP stacks, then depmod over that tree
modules="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover
virtio_net nvme-core nvme-fabrics nvme-tcp t10-pi crc64-rocksoft crc-t10dif crc64 crct10dif_common
crct10dif_generic crc64_rocksoft_generic crc32c_generic crc32c-intel libcrc32c"
for m in $modules; do
  f=$(find "$moddir/kernel" -name "$m.ko*" | head -1)
  if [ -z "$f" ]; then
    grep -q "/$m.ko" "$moddir/modules.builtin" || echo "warning: module $m not found" >&2
    continue
  fi
  mkdir -p "$root$(dirname "$f")"
  cp "$f" "$root$f"
done
cp "$moddir"/modules.builtin* "$moddir/modules.order" "$root$moddir/" 2>/dev/null || true
depmod -b "$root" "$kver"

cp "$here/init" "$root/init"
chmod +x "$root/init"
mkdir -p "$out"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$out/initramfs.cpio.gz.tmp"
mv "$out/initramfs.cpio.gz.tmp" "$out/initramfs.cpio.gz"
cp "/boot/vmlinuz-$kver" "$out/vmlinuz"
if python3 "$here/extract_vmlinux.py" "$out/vmlinuz" "$out/vmlinux.tmp"; then
  mv "$out/vmlinux.tmp" "$out/vmlinux"
else
  rm -f "$out/vmlinux.tmp" "$out/vmlinux"
fi
echo "$key" > "$out/stamp"
echo "$out"
