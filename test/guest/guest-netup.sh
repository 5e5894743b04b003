#!/bin/sh
# vu-netup: (re)configures eth0 from the kernel command line: vu.ip=<addr>/<len> or vu.ip=dhcp
# (busybox udhcpc, address only), vu.mtu=<n>.
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
ip link set eth0 up
if [ "$ip" = dhcp ]; then
  cat > /tmp/vu-udhcpc <<'SCRIPT'
#!/bin/sh
case "$1" in
  bound|renew) ip addr flush dev "$interface"; ip addr add "$ip/${mask:-24}" dev "$interface" ;;
  deconfig) ip addr flush dev "$interface" ;;
esac
SCRIPT
  chmod +x /tmp/vu-udhcpc
  udhcpc -i eth0 -s /tmp/vu-udhcpc -q -n -t 20 -T 1 >/tmp/udhcpc.log 2>&1 || { echo "vu-netup: DHCP failed"; cat /tmp/udhcpc.log; exit 1; }
elif [ -n "$ip" ]; then
  ip addr add "$ip" dev eth0
fi
