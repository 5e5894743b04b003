#!/bin/sh
# Installs the Debian packages the build and the tests need, when they are missing.
#   scripts/ensure-system-deps.sh build   — what `npm install` needs (Rust libc crate)
#   scripts/ensure-system-deps.sh test    — plus the real peers: QEMU, DPDK, a guest kernel, busybox, iperf3,
#                                           and systemd-socket-activate (socket activation)
set -e
need_build="librust-libc-dev"
need_test="qemu-system-x86 dpdk-dev librte-mempool-ring23 librte-net-vhost23 librte-net-virtio23 librte-net-tap23 busybox-static iperf3 linux-image-cloud-amd64 iproute2 cpio kmod python3 systemd"
case "${1:-build}" in
  build) wanted="$need_build" ;;
  test) wanted="$need_build $need_test" ;;
  *) echo "usage: $0 build|test" >&2; exit 2 ;;
esac
missing=""
for pkg in $wanted; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "vhost-user-net: missing Debian packages:$missing — install them as root (apt-get install$missing)" >&2
  exit 1
fi
echo "vhost-user-net: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends $missing >/dev/null
