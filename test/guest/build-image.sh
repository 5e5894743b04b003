#!/usr/bin/env bash
# Builds the test guest: Debian's cloud kernel plus a busybox-static initramfs whose /init loads the
# virtio-net modules, configures eth0 from the kernel command line and runs a command agent on ttyS0
# (see guest-init.sh, guest-netup.sh and guest-agent.sh next to this script).
#
# Usage: test/guest/build-image.sh [outdir]     (default: <repo>/.test-artifacts/guest)
# Output: <outdir>/vmlinuz, <outdir>/initramfs.cpio.gz, <outdir>/stamp
# Skips the work when the stamp (kernel, busybox and iperf3 versions, hash of the scripts) is unchanged.
# Installs missing host packages with apt-get (needs root) so that it runs on a fresh CI machine.
# VU_GUEST_KERNEL=<version> picks a kernel when several linux-image-*-cloud-amd64 are installed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
outdir="${1:-$repo/.test-artifacts/guest}"

# The modules /init loads; their dependencies are resolved from modules.dep.
wanted_modules=(virtio_pci virtio_net)
apt_packages=(linux-image-cloud-amd64 busybox-static iperf3 cpio kmod qemu-system-x86 iproute2)

log() { echo "build-image: $*" >&2; }
die() { log "error: $*"; exit 1; }

# Newest cloud kernel that has both an image in /boot and its modules installed.
find_kernel() {
  if [[ -n "${VU_GUEST_KERNEL:-}" ]]; then
    echo "$VU_GUEST_KERNEL"
    return
  fi
  local v
  for img in $(ls -1 /boot/vmlinuz-*-cloud-amd64 2>/dev/null | sort -V -r); do
    v="${img#/boot/vmlinuz-}"
    if [[ -f "/lib/modules/$v/modules.dep" ]]; then
      echo "$v"
      return
    fi
  done
}

busybox_is_static() {
  [[ -x /bin/busybox ]] && ! ldd /bin/busybox >/dev/null 2>&1
}

host_ready() {
  [[ -n "$(find_kernel)" ]] && busybox_is_static &&
    command -v iperf3 >/dev/null && command -v cpio >/dev/null &&
    command -v qemu-system-x86_64 >/dev/null && command -v ip >/dev/null
}

install_host_packages() {
  [[ "$(id -u)" == 0 ]] || die "missing packages (${apt_packages[*]}) and not root: install them first"
  log "installing ${apt_packages[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends "${apt_packages[@]}"
}

host_ready || install_host_packages
host_ready || die "host still lacks a cloud kernel with modules, busybox-static, iperf3, cpio, qemu or iproute2"

kver="$(find_kernel)"
moddir="/lib/modules/$kver"
[[ -f "/boot/vmlinuz-$kver" ]] || die "no /boot/vmlinuz-$kver"
[[ -f "$moddir/modules.dep" ]] || die "no $moddir/modules.dep"

tools="$(/bin/busybox 2>&1 | sed -n 1p) / $(iperf3 --version | sed -n 1p)"
stamp="kernel=$kver tools=$tools scripts=$(cat "$here/build-image.sh" "$here/guest-init.sh" "$here/guest-netup.sh" "$here/guest-agent.sh" | sha256sum | cut -d' ' -f1)"
if [[ -f "$outdir/stamp" && -f "$outdir/vmlinuz" && -f "$outdir/initramfs.cpio.gz" &&
      "$(cat "$outdir/stamp")" == "$stamp" ]]; then
  log "up to date ($kver)"
  exit 0
fi

# Module name -> its modules.dep line ("path: dep dep ..."), matching .ko and compressed .ko.*
dep_line() {
  grep -E "(^|/)$1\.ko(\.xz|\.zst|\.gz)?:" "$moddir/modules.dep" | head -n1
}

# Depth-first: dependencies before the module. modules.dep lists a module's dependencies in reverse
# load order (modprobe loads them last to first), so walk them backwards.
declare -a load_order=()
declare -A seen=()
declare -A module_path=()
resolve() {
  local name="$1" line path deps i dep
  [[ -n "${seen[$name]:-}" ]] && return
  seen[$name]=1
  line="$(dep_line "$name")"
  [[ -n "$line" ]] || die "module $name not in $moddir/modules.dep (is CONFIG for it =m?)"
  path="${line%%:*}"
  read -r -a deps <<<"${line#*:}"
  for ((i = ${#deps[@]} - 1; i >= 0; i--)); do
    dep="$(basename "${deps[$i]}")"
    resolve "${dep%%.ko*}"
  done
  module_path[$name]="$path"
  load_order+=("$name")
}
for m in "${wanted_modules[@]}"; do resolve "$m"; done
log "kernel $kver, modules: ${load_order[*]}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
root="$work/root"
mkdir -p "$root"/{bin,sbin,dev,proc,sys,tmp,etc,lib/modules,usr/bin,usr/sbin}

cp /bin/busybox "$root/bin/busybox"
for applet in $(/bin/busybox --list); do
  [[ "$applet" == busybox ]] || ln -sf busybox "$root/bin/$applet"
done

# Modules go in flat and uncompressed (busybox insmod does not decompress): /lib/modules/<name>.ko
for m in "${load_order[@]}"; do
  src="$moddir/${module_path[$m]}"
  dst="$root/lib/modules/$m.ko"
  case "$src" in
    *.ko) cp "$src" "$dst" ;;
    *.ko.xz) xz -dc "$src" >"$dst" ;;
    *.ko.zst) zstd -q -dc "$src" >"$dst" ;;
    *.ko.gz) gzip -dc "$src" >"$dst" ;;
    *) die "unknown module format: $src" ;;
  esac
done
printf '%s\n' "${load_order[@]}" >"$root/etc/vu-modules"

# iperf3 and the shared libraries it needs, at the same paths as on the host.
cp "$(command -v iperf3)" "$root/usr/bin/iperf3"
for lib in $(ldd "$(command -v iperf3)" | grep -oE '/[^ ]+'); do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done

install -m 0755 "$here/guest-init.sh" "$root/init"
install -m 0755 "$here/guest-agent.sh" "$root/bin/vu-agent"
install -m 0755 "$here/guest-netup.sh" "$root/bin/vu-netup"
echo "root:x:0:0:root:/:/bin/sh" >"$root/etc/passwd"
echo "root:x:0:" >"$root/etc/group"

mkdir -p "$outdir"
(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -9 >"$work/initramfs.cpio.gz"
cp "/boot/vmlinuz-$kver" "$work/vmlinuz"
mv "$work/initramfs.cpio.gz" "$outdir/initramfs.cpio.gz"
mv "$work/vmlinuz" "$outdir/vmlinuz"
echo "$stamp" >"$outdir/stamp"
log "wrote $outdir/vmlinuz and $outdir/initramfs.cpio.gz ($(du -h "$outdir/initramfs.cpio.gz" | cut -f1))"
