#!/bin/sh
# vu-netup: (re)configures eth0 from the kernel command line: vu.ip=<addr>/<len>, vu.mtu=<n>.
# Run by /init at boot, and by tests again after `rmmod virtio_net; insmod` recreated eth0.

arg() {
  for word in $(cat /proc/cmdline); do
    case "$word" in "$1="*) echo "${word#*=}" ;; esac
  done
}

# The device appears once virtio_net has probed it; give that a few seconds under TCG.
tries=50
while [ ! -e /sys/class/net/eth0 ]; do
  tries=$((tries - 1))
  [ "$tries" -gt 0 ] || { echo "vu-netup: no eth0"; exit 1; }
  sleep 0.1
done

ip=$(arg vu.ip)
mtu=$(arg vu.mtu)
ip addr flush dev eth0
[ -z "$mtu" ] || ip link set eth0 mtu "$mtu"
[ -z "$ip" ] || ip addr add "$ip" dev eth0
ip link set eth0 up
