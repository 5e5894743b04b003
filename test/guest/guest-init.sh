#!/bin/sh
# /init of the test guest (busybox-static initramfs built by build-image.sh).
# Mounts the pseudo file systems, loads the virtio-net modules listed in /etc/vu-modules, configures
# eth0 from the kernel command line (vu-netup) and hands the serial console to the command agent.
# Kernel command line: vu.ip=<addr>/<len> (eth0 address), vu.mtu=<n>, vu.debug=1 (keep kernel
# messages on the console; by default they are silenced so they do not interleave with the agent).

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp

grep -q 'vu.debug=1' /proc/cmdline || dmesg -n 1

for m in $(cat /etc/vu-modules); do
  insmod "/lib/modules/$m.ko" || echo "vu-init: insmod $m failed"
done

ip link set lo up
vu-netup || echo "vu-init: network setup failed"

vu-agent </dev/ttyS0 >/dev/ttyS0 2>&1
poweroff -f
