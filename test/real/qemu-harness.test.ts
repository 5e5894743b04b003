// Proves the real-guest harness with QEMU's built-in tap netdev: a Linux guest on a TAP whose host
// end sits in a fresh network namespace; ping both ways, iperf3 TCP both ways, and a virtio_net
// module reload in the guest. The same steps later run with `-netdev vhost-user` on our back-end.

import test, { type ExecutionContext } from 'ava';
import { bootGuest, guestMac, parseIperf3Json, type Guest } from '../helpers/guest.ts';
import { pingFromGuest, pingFromNamespace } from '../helpers/ping.ts';
import { createTap, NetNs, privateSubnet, type Subnet } from '../helpers/netns.ts';

interface TapGuest {
  guest: Guest;
  ns: NetNs;
  subnet: Subnet;
}

test.before(() => {
  if (process.getuid?.() !== 0) throw new Error('the real-QEMU tests need root (TAP devices, network namespaces)');
});

/** A guest on QEMU's tap netdev; the TAP's host end is moved into a fresh namespace with the host address. */
async function startTapGuest(t: ExecutionContext, name: string): Promise<TapGuest> {
  const subnet = privateSubnet();
  const tap = await createTap(t);
  const guest = await bootGuest({
    name,
    netdevArgs: ['-netdev', `tap,id=n0,ifname=${tap},script=no,downscript=no,vhost=off`],
    deviceArgs: `virtio-net-pci,netdev=n0,mac=${guestMac()}`,
    guestIp: subnet.guestCidr,
    teardown: t,
  });
  const booting = Date.now();
  await guest.ready();
  t.log(`${name}: guest ready after ${Date.now() - booting} ms (log ${guest.logPath})`);
  // QEMU has the TAP open by now; the move keeps its fd working.
  const ns = await NetNs.create(t);
  await ns.moveLink(tap);
  await ns.configure(tap, subnet.hostCidr);
  return { guest, ns, subnet };
}

const mbps = (bitsPerSecond: number) => `${(bitsPerSecond / 1e6).toFixed(1)} Mbit/s`;

test.serial('tap guest: ping both ways and iperf3 TCP both ways', async (t) => {
  const { guest, ns, subnet } = await startTapGuest(t, 'harness-tap-traffic');

  const guestToHost = await pingFromGuest(guest, subnet.hostIp);
  t.log(`ping guest→host: ${guestToHost.received}/${guestToHost.transmitted}, avg ${guestToHost.avgMs} ms`);
  t.is(guestToHost.code, 0);
  t.is(guestToHost.received, guestToHost.transmitted);

  const hostToGuest = await pingFromNamespace(ns, subnet.guestIp);
  t.log(`ping host→guest: ${hostToGuest.received}/${hostToGuest.transmitted}, avg ${hostToGuest.avgMs} ms`);
  t.is(hostToGuest.code, 0);
  t.is(hostToGuest.received, hostToGuest.transmitted);

  const server = await ns.spawn('iperf3', ['-s', '-B', subnet.hostIp, '--forceflush'], 'harness-tap-iperf3-server', t);
  await server.waitForOutput(/Server listening/, 10_000);

  const send = parseIperf3Json(await guest.mustRun(`iperf3 -c ${subnet.hostIp} -t 3 -J`, 60_000));
  t.log(`iperf3 guest→host: ${mbps(send.bitsPerSecond)}, retransmits ${send.retransmits}`);
  const receive = parseIperf3Json(await guest.mustRun(`iperf3 -c ${subnet.hostIp} -t 3 -J -R`, 60_000));
  t.log(`iperf3 host→guest: ${mbps(receive.bitsPerSecond)}, retransmits ${receive.retransmits}`);
  // A floor far below what a working link does under TCG: catches a stalled or collapsed path.
  t.true(send.bitsPerSecond > 10e6, `guest→host ${mbps(send.bitsPerSecond)}`);
  t.true(receive.bitsPerSecond > 10e6, `host→guest ${mbps(receive.bitsPerSecond)}`);

  await guest.shutdown();
});

test.serial('tap guest: virtio_net unload and reload, then ping again', async (t) => {
  const { guest, ns, subnet } = await startTapGuest(t, 'harness-tap-reload');

  const before = await pingFromGuest(guest, subnet.hostIp);
  t.is(before.received, before.transmitted);

  await guest.mustRun('rmmod virtio_net');
  t.is((await guest.run('test -e /sys/class/net/eth0')).code, 1, 'eth0 is gone with the driver');
  await guest.mustRun('insmod /lib/modules/virtio_net.ko && vu-netup');

  const guestToHost = await pingFromGuest(guest, subnet.hostIp);
  t.log(`after reload, ping guest→host: ${guestToHost.received}/${guestToHost.transmitted}, avg ${guestToHost.avgMs} ms`);
  t.is(guestToHost.received, guestToHost.transmitted);
  const hostToGuest = await pingFromNamespace(ns, subnet.guestIp);
  t.log(`after reload, ping host→guest: ${hostToGuest.received}/${hostToGuest.transmitted}, avg ${hostToGuest.avgMs} ms`);
  t.is(hostToGuest.received, hostToGuest.transmitted);

  await guest.shutdown();
});
