/**
 * The DHCP server against a real client: busybox udhcpc on one end of a veth pair in a fresh
 * network namespace, the DhcpServer on the other end through an AF_PACKET pipe (packet-pipe.py).
 * Bound, renewed by unicast (after resolving the server's address with ARP), released.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DhcpServer } from '../../src/switch/dhcp-server.ts';
import { formatMac } from '../../src/device/mac.ts';
import { NetNs, privateSubnet, uniqueName } from '../helpers/netns.ts';
import { mustRun, spawnLogged } from '../helpers/proc.ts';
import { SERVER_MAC } from './dhcp-frames.ts';

const PACKET_PIPE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'packet-pipe.py');

/**
 * Writes one line per udhcpc event and configures the interface. `replace`, not flush + add, on
 * renew: a flush drops the neighbour entry of the server, and udhcpc's RELEASE right before its
 * own deconfig would then wait for ARP and be dropped by that flush.
 */
const UDHCPC_SCRIPT = `#!/bin/sh
echo "$1 ip=$ip mask=$mask subnet=$subnet lease=$lease serverid=$serverid broadcast=$broadcast router=$router" >> "$UDHCPC_EVENTS"
case "$1" in
  deconfig) ip addr flush dev "$interface" ;;
  bound|renew) ip addr replace "$ip/$mask" broadcast "$broadcast" dev "$interface" ;;
esac
`;

test.before(() => {
  if (process.getuid?.() !== 0) throw new Error('the udhcpc interop test needs root (network namespaces, AF_PACKET)');
});

async function waitFor<T>(what: string, probe: () => T | undefined, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

test.serial('busybox udhcpc: bound, unicast renew, release', async (t) => {
  const ns = await NetNs.create(t);
  const clientIf = uniqueName('vc');
  const serverIf = uniqueName('vs');
  await mustRun('ip', ['-n', ns.name, 'link', 'add', clientIf, 'type', 'veth', 'peer', 'name', serverIf]);
  await mustRun('ip', ['-n', ns.name, 'link', 'set', serverIf, 'up']);
  await mustRun('ip', ['-n', ns.name, 'link', 'set', clientIf, 'up']);
  const clientMac = JSON.parse(await mustRun('ip', ['-n', ns.name, '-json', 'link', 'show', clientIf]))[0].address as string;

  const subnet = privateSubnet();
  const cidr = subnet.hostCidr.replace(/\.1\/24$/, '.0/24');
  const server = new DhcpServer({ cidr, serverMac: SERVER_MAC, leaseSeconds: 120 });

  const pipe = await spawnLogged('ip', ['netns', 'exec', ns.name, 'python3', PACKET_PIPE, serverIf], { name: 'packet-pipe', stdin: 'pipe', teardown: t });
  let pending = '';
  pipe.onOutput((text) => {
    pending += text;
    const lines = pending.split('\n');
    pending = lines.pop()!;
    for (const line of lines) {
      if (!/^[0-9a-f]+$/.test(line)) continue;
      const frame = Uint8Array.from(Buffer.from(line, 'hex'));
      if (!server.accepts(frame)) continue;
      for (const reply of server.handleFrame(frame)) pipe.write(`${Buffer.from(reply).toString('hex')}\n`);
    }
  });
  await pipe.waitForOutput(/ready/, 10_000);

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vu-udhcpc-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const script = path.join(dir, 'script.sh');
  const events = path.join(dir, 'events');
  fs.writeFileSync(script, UDHCPC_SCRIPT, { mode: 0o755 });
  fs.writeFileSync(events, '');
  const readEvents = () => fs.readFileSync(events, 'utf8').split('\n').filter(Boolean);
  const client = await spawnLogged('ip', ['netns', 'exec', ns.name, 'busybox', 'udhcpc', '-f', '-i', clientIf, '-s', script, '-t', '10', '-T', '1'], {
    name: 'udhcpc',
    env: { ...process.env, UDHCPC_EVENTS: events },
    teardown: t,
  });

  const bound = await waitFor('udhcpc bound', () => readEvents().find((e) => e.startsWith('bound ')));
  const expectedIp = cidr.replace(/\.0\/24$/, '.2');
  t.is(bound, `bound ip=${expectedIp} mask=24 subnet=255.255.255.0 lease=120 serverid=${server.serverIp} broadcast=${cidr.replace(/\.0\/24$/, '.255')} router=`);
  t.deepEqual(
    server.leases().map((l) => [l.mac, l.ip]),
    [[clientMac, expectedIp]],
  );
  t.is(formatMac(SERVER_MAC), '02:00:00:00:00:01');

  // SIGUSR1: renew now. udhcpc unicasts its REQUEST to the server (kernel UDP socket, so the
  // kernel first resolves the server's address by ARP) and gets the ACK unicast back.
  const acksBefore = server.counters().ack;
  await mustRun('kill', ['-USR1', String(client.pid)]);
  const renewed = await waitFor('udhcpc renew', () => readEvents().find((e) => e.startsWith('renew ')));
  t.true(renewed.startsWith(`renew ip=${expectedIp} `));
  t.true(server.counters().ack >= acksBefore + 1, "the renewal was acked (a slow machine may see udhcpc retransmit it)");
  t.true(server.counters().arpReplies >= 1, 'the server address was resolved by ARP');
  const addr = JSON.parse(await mustRun('ip', ['-n', ns.name, '-json', 'addr', 'show', clientIf]))[0].addr_info as { local: string }[];
  t.true(addr.some((a) => a.local === expectedIp));

  // SIGUSR2: release. udhcpc sends RELEASE (unicast) and deconfigures.
  await mustRun('kill', ['-USR2', String(client.pid)]);
  await waitFor('lease released', () => (server.leases().length === 0 ? true : undefined));
  t.is(server.counters().release, 1);
  t.like(server.counters(), { nak: 0, malformed: 0 });
  await client.stop();
  await pipe.stop();
});
