/**
 * The userspace switch with real guests: two QEMU guests on one socket get addresses from the
 * built-in DHCP server, ping each other and run iperf3 between them; one powers off and comes
 * back (same MAC, same address) while the other keeps its link; `ctl` sees the ports and MACs.
 * A guest on a port locked to its MAC keeps its traffic when another guest takes its MAC; one
 * locked to its MAC, an IPv4 and an IPv6 address gets the IPv4 address from DHCP and keeps its
 * traffic when another guest claims either address (ARP, IPv4, IPv6 neighbour discovery).
 */
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { guestMac, parseIperf3Json } from '../helpers/guest.ts';
import { addressOf, bootOnSwitch, ctl, ctlPorts, ping, startSwitch } from '../helpers/switch-process.ts';
import { STOPPED_OR_PANICKED } from '../helpers/backend-process.ts';
import { eui64LinkLocal } from '../../src/switch/port-security.ts';
import { parseMac } from '../../src/device/mac.ts';

const mbps = (bps: number) => `${(bps / 1e6).toFixed(1)} Mbit/s`;

test.before(() => {
  if (process.getuid?.() !== 0) throw new Error('the real-QEMU tests need root');
});

test.serial('two QEMU guests on one switch socket: DHCP, ping, iperf3, one reboots, the other keeps its link', async (t) => {
  const sw = await startSwitch(t);
  const macA = guestMac();
  const macB = guestMac();
  const [a, b] = await Promise.all([bootOnSwitch(t, sw, 'switch-guest-a', macA), bootOnSwitch(t, sw, 'switch-guest-b', macB)]);
  const ipA = await addressOf(a);
  const ipB = await addressOf(b);
  t.log(`DHCP: guest A ${macA} → ${ipA}, guest B ${macB} → ${ipB}`);
  t.regex(ipA, /^10\.79\.0\./);
  t.not(ipA, ipB);

  const ab = await ping(a, ipB);
  const ba = await ping(b, ipA);
  t.log(`ping A→B ${ab.received}/${ab.transmitted} avg ${ab.avgMs} ms; B→A ${ba.received}/${ba.transmitted} avg ${ba.avgMs} ms`);
  t.is(ab.received, ab.transmitted);
  t.is(ba.received, ba.transmitted);

  await b.mustRun('iperf3 -s -D -1');
  const portOfB = ((await ctl(sw, 'macs')) as { mac: string; portId: number }[]).find((m) => m.mac === macB)?.portId;
  const toB = async () => {
    const port = ((await ctl(sw, 'ports')) as { id: number; rxFrames: string; rxBytes: string }[]).find((p) => p.id === portOfB);
    return { frames: Number(port?.rxFrames ?? 0), bytes: Number(port?.rxBytes ?? 0) };
  };
  const before = await toB();
  const flow = parseIperf3Json(await a.mustRun(`iperf3 -c ${ipB} -t 3 -J`, 60_000));
  const after = await toB();
  const averageFrame = (after.bytes - before.bytes) / Math.max(1, after.frames - before.frames);
  t.log(`iperf3 A→B through the switch: ${mbps(flow.bitsPerSecond)}, retransmits ${flow.retransmits}; frames to B averaged ${averageFrame.toFixed(0)} bytes`);
  t.true(flow.bitsPerSecond > 10e6);
  // Both guests negotiated TSO: A's 64 KiB GSO frames reach B whole, not cut to the MTU.
  t.true(averageFrame > 1514, `frames to B averaged ${averageFrame.toFixed(0)} bytes: TSO frames were cut`);

  const ports = (await ctl(sw, 'ports')) as { name: string; kind: string; mac?: string }[];
  t.is(ports.filter((p) => p.kind === 'vhost-user').length, 2);
  const macs = (await ctl(sw, 'macs')) as { mac: string }[];
  t.true(macs.some((m) => m.mac === macA) && macs.some((m) => m.mac === macB), JSON.stringify(macs));

  // B powers off and comes back with the same MAC: A's link never goes down, B gets its address back.
  await b.shutdown();
  t.is((await a.mustRun('cat /sys/class/net/eth0/operstate')).trim(), 'up');
  const b2 = await bootOnSwitch(t, sw, 'switch-guest-b-again', macB);
  t.is(await addressOf(b2), ipB, 'same MAC, same lease');
  const again = await ping(a, ipB);
  t.log(`after B rebooted, ping A→B ${again.received}/${again.transmitted}`);
  t.is(again.received, again.transmitted);
  t.is((await a.mustRun('cat /sys/class/net/eth0/operstate')).trim(), 'up');
  await Promise.all([a.shutdown(), b2.shutdown()]);
  t.notRegex(readFileSync(sw.process.logPath, 'utf8'), STOPPED_OR_PANICKED);
});

test.serial('a port locked to its guest\'s MAC (--port …,mac=): another guest that takes that MAC reaches nobody, and the locked guest keeps its traffic', async (t) => {
  const macA = guestMac();
  const macB = guestMac();
  const dir = mkdtempSync(join(tmpdir(), 'vu-locked-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const lockedSocket = join(dir, 'locked.sock');
  const sw = await startSwitch(t, ['--port', `locked=${lockedSocket},mac=${macA}`]);
  const [a, b] = await Promise.all([bootOnSwitch(t, sw, 'switch-locked-a', macA, lockedSocket), bootOnSwitch(t, sw, 'switch-locked-b', macB)]);
  const ipA = await addressOf(a);
  const ipB = await addressOf(b);
  const before = await ping(b, ipA);
  t.is(before.received, before.transmitted, 'the locked guest is served as any other');

  // B takes A's MAC (and a spare address) and pings out: every frame it sends now is dropped.
  await b.mustRun(`ip link set eth0 down && ip link set eth0 address ${macA} && ip link set eth0 up && ip addr add 10.79.0.250/24 dev eth0`);
  const spoofed = await ping(b, ipA);
  t.is(spoofed.received, 0, 'B, sending from A\'s MAC, reaches nobody');
  const portB = (await ctlPorts(sw)).find((p) => p.name !== 'locked' && p.kind === 'vhost-user')!;
  t.true(Number(portB.drops.spoofed ?? 0) > 0, JSON.stringify(portB));
  const portA = (await ctlPorts(sw)).find((p) => p.name === 'locked')!;
  t.log(`B's port after it took A's MAC: drops ${JSON.stringify(portB.drops)}; ctl ports shows A's as ${portA.mac}${portA.macLocked ? ' (locked)' : ''}`);
  t.like(portA, { mac: macA, macLocked: true });
  const macs = (await ctl(sw, 'macs')) as { mac: string; portName: string }[];
  t.is(macs.find((m) => m.mac === macA)?.portName, 'locked', 'the MAC table still points A\'s MAC at A');
  await Promise.all([a.shutdown(), b.shutdown()]);
  t.notRegex(readFileSync(sw.process.logPath, 'utf8'), STOPPED_OR_PANICKED);
});

test.serial('a port locked to its guest\'s MAC, IPv4 and IPv6 addresses (--port …,mac=,ip=,ip=): DHCP gives the guest its IPv4 address; another guest that claims either reaches nobody with it, and the locked guest keeps its traffic', async (t) => {
  const macA = guestMac();
  const macB = guestMac();
  const lockedIp = '10.79.0.77';
  const lockedIp6 = 'fd79::77';
  const dir = mkdtempSync(join(tmpdir(), 'vu-locked-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const lockedSocket = join(dir, 'locked.sock');
  const sw = await startSwitch(t, ['--port', `locked=${lockedSocket},mac=${macA},ip=${lockedIp},ip=${lockedIp6}`]);
  const [a, b] = await Promise.all([bootOnSwitch(t, sw, 'switch-iplock-a', macA, lockedSocket), bootOnSwitch(t, sw, 'switch-iplock-b', macB)]);
  t.is(await addressOf(a), lockedIp, 'the DHCP server gives the locked guest its locked address');
  const ipB = await addressOf(b);
  const before = await ping(b, lockedIp);
  t.is(before.received, before.transmitted, 'the locked guest is served as any other');

  // B claims A's address: gratuitous ARP (RFC 5227 announcements) and a ping from it.
  const spoofedBefore = async () => Number((await ctlPorts(sw)).find((p) => p.name !== 'locked' && p.kind === 'vhost-user')!.drops.spoofed ?? 0);
  const dropsBefore = await spoofedBefore();
  await b.mustRun(`ip addr add ${lockedIp}/32 dev eth0 && arping -U -c 3 -I eth0 ${lockedIp}; ping -c 2 -w 3 -I ${lockedIp} ${lockedIp.replace(/\.77$/, '.1')}; ip addr del ${lockedIp}/32 dev eth0`, 30_000);
  const dropped = (await spoofedBefore()) - dropsBefore;
  t.true(dropped >= 3, `B's claims were dropped on its port (${dropped})`);
  const arpOfA = await b.mustRun(`ping -c 2 -w 5 ${lockedIp} >/dev/null; ip neigh show ${lockedIp}`);
  t.regex(arpOfA, new RegExp(macA), "B still reaches A's address at A's MAC");

  // A cannot take another address either.
  await a.mustRun(`ip addr add 10.79.0.78/24 dev eth0`);
  const fromOther = await a.run(`ping -c 2 -w 3 -I 10.79.0.78 ${ipB}`, 30_000);
  t.regex(fromOther.output, / 0 packets received/, 'A, sending from an address it is not locked to, reaches nobody');
  const portA = (await ctlPorts(sw)).find((p) => p.name === 'locked')!;
  t.true(Number(portA.drops.spoofed ?? 0) > 0, JSON.stringify(portA));
  t.log(`B's claims dropped: ${dropped}; A's port: ${JSON.stringify(portA.drops)}`);

  // A runs a DHCP server of its own: B, asking for an address, hears only the switch's.
  const spoofedOfA = async () => Number((await ctlPorts(sw)).find((p) => p.name === 'locked')!.drops.spoofed ?? 0);
  const rogueConfig = 'start 10.79.0.200\\nend 10.79.0.210\\ninterface eth0\\nlease_file /tmp/udhcpd.leases\\npidfile /tmp/udhcpd.pid\\noption subnet 255.255.255.0\\noption router 10.79.0.77\\n';
  // From its locked address only (.78 is dropped for its address alone), so what drops its
  // offers is that a locked port does not serve.
  await a.mustRun(`ip addr del 10.79.0.78/24 dev eth0 && touch /tmp/udhcpd.leases && printf '${rogueConfig}' > /tmp/udhcpd.conf && udhcpd /tmp/udhcpd.conf && sleep 1 && pidof udhcpd`);
  const serverDropsBefore = await spoofedOfA();
  const renewal = await b.mustRun('udhcpc -i eth0 -n -q -s /bin/true -t 3 -T 2 2>&1', 30_000);
  // udhcpd probes an address with ARP before offering it: its offer comes seconds later.
  let serverDrops = 0;
  for (const deadline = Date.now() + 20_000; serverDrops === 0 && Date.now() < deadline; await sleep(500)) {
    serverDrops = (await spoofedOfA()) - serverDropsBefore;
  }
  t.regex(renewal, /obtained from 10\.79\.0\.1\b/, `B's lease comes from the switch's DHCP server: ${renewal}`);
  t.true(serverDrops >= 1, `A's DHCP offers were dropped on its port (${serverDrops})`);
  t.log(`A's DHCP server messages dropped: ${serverDrops}; B: ${renewal.trim().split('\n').pop()}`);

  // IPv6: A uses its locked address (and its link-local one, derived from its MAC), B its own;
  // both pass duplicate address detection (probes from ::) first.
  const untilNotTentative = 'i=0; while ip -6 addr show dev eth0 | grep -q tentative && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done; ip -6 addr show dev eth0';
  const addressesOfA = await a.mustRun(`ip -6 addr add ${lockedIp6}/64 dev eth0 && ${untilNotTentative}`, 30_000);
  t.notRegex(addressesOfA, /tentative|dadfailed/, addressesOfA);
  await b.mustRun(`ip -6 addr add fd79::2/64 dev eth0 && ${untilNotTentative}`, 30_000);
  const before6 = await b.run(`ping -6 -c 3 -w 10 ${lockedIp6}`, 30_000);
  t.regex(before6.output, / 3 packets received/, `B reaches A over IPv6 (neighbour discovery through the lock): ${before6.output}`);
  // B claims A's IPv6 address: neighbour solicitations and pings from it.
  const drops6Before = await spoofedBefore();
  // (B skips duplicate address detection, which would find A there and keep B off the address.)
  await b.run(`echo 0 > /proc/sys/net/ipv6/conf/eth0/accept_dad; ip -6 addr add ${lockedIp6}/128 dev eth0 && ping -6 -c 2 -w 3 -I ${lockedIp6} fd79::99; ip -6 addr del ${lockedIp6}/128 dev eth0`, 30_000);
  const dropped6 = (await spoofedBefore()) - drops6Before;
  t.true(dropped6 >= 1, `B's IPv6 claims were dropped on its port (${dropped6})`);
  const neighbourOfA = await b.mustRun(`ping -6 -c 2 -w 5 ${lockedIp6} >/dev/null; ip -6 neigh show ${lockedIp6}`);
  t.regex(neighbourOfA, new RegExp(macA), "B still reaches A's IPv6 address at A's MAC");
  await a.mustRun(`echo 0 > /proc/sys/net/ipv6/conf/eth0/accept_dad; ip -6 addr add fd79::78/64 dev eth0`);
  const fromOther6 = await a.run('ping -6 -c 2 -w 3 -I fd79::78 fd79::2', 30_000);
  t.regex(fromOther6.output, / 0 packets received/, 'A, sending from an IPv6 address it is not locked to, reaches nobody');
  t.log(`B's IPv6 claims dropped: ${dropped6}; ctl ports shows A's locked addresses as ${portA.lockedIps?.join(',')}`);
  t.deepEqual(portA.lockedIps, [lockedIp, lockedIp6, eui64LinkLocal(parseMac(macA))]);
  await Promise.all([a.shutdown(), b.shutdown()]);
  t.notRegex(readFileSync(sw.process.logPath, 'utf8'), STOPPED_OR_PANICKED);
});
