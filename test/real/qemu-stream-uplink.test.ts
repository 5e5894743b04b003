/**
 * A QEMU guest without vhost-user joins the switch through a stream uplink: its NIC is a plain
 * virtio-net on a QEMU netdev speaking QEMU's 4-byte length-prefixed framing, listening —
 * `-netdev socket,listen=127.0.0.1:PORT` (TCP) or `-netdev stream,server=on,addr.type=unix,…`
 * (QEMU 7.2's stream netdev on a UNIX socket) — and `ctl add-uplink stream:tcp:…|stream:unix:…`
 * connects the switch to it while the guest boots. A vhost-user guest sits on the switch socket. Both get addresses from
 * the built-in DHCP server and ping each other both ways. `ctl remove-uplink` cuts the stream guest
 * off (its ping fails, the switch and the other guest carry on); adding the uplink again (QEMU
 * listens again after its peer left) restores it. When the stream guest powers off, frames toward
 * it are counted as drops; when a new QEMU listens on the same address, the uplink connects to it
 * by itself (same port); an uplink can be removed whatever its state.
 */
import test, { type ExecutionContext } from 'ava';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { bootGuest, guestMac, parseIperf3Json, type Guest } from '../helpers/guest.ts';
import { addressOf, bootOnSwitch, ctl, ctlPorts, ping, startSwitch, type CtlPort, type SwitchProcess } from '../helpers/switch-process.ts';
import { STOPPED_OR_PANICKED } from '../helpers/backend-process.ts';

/** How long QEMU may take to open its listening socket after it was spawned. */
const LISTEN_TIMEOUT_MS = 20_000;

test.before(() => {
  if (process.getuid?.() !== 0) throw new Error('the real-QEMU tests need root');
});

/** A TCP port on 127.0.0.1 that was free a moment ago. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** `ctl add-uplink SPEC`, retried while the peer does not listen yet. */
async function addUplinkWhenListening(sw: SwitchProcess, spec: string): Promise<CtlPort> {
  const deadline = Date.now() + LISTEN_TIMEOUT_MS;
  for (;;) {
    try {
      return (await ctl(sw, 'add-uplink', spec)) as CtlPort;
    } catch (error) {
      if (Date.now() > deadline || !/refused|No such file/i.test(String(error))) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

/** Polls `ctl ports` until the port `id` is in `state`. */
async function waitForUplinkState(sw: SwitchProcess, id: number, state: CtlPort['state'], timeoutMs: number): Promise<CtlPort> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const port = (await ctlPorts(sw)).find((p) => p.id === id);
    if (port?.state === state) return port;
    if (Date.now() > deadline) throw new Error(`uplink ${id} not ${state} after ${timeoutMs} ms: ${JSON.stringify(port)}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

interface Variant {
  name: string;
  /** The listening netdev and the uplink spec that reaches it. */
  listen(t: ExecutionContext): Promise<{ netdev: string; spec: string }>;
}

const variants: Variant[] = [
  {
    name: 'TCP, -netdev socket',
    async listen() {
      const port = await freePort();
      return { netdev: `socket,id=n1,listen=127.0.0.1:${port}`, spec: `stream:tcp:127.0.0.1:${port}` };
    },
  },
  {
    name: 'UNIX, -netdev stream',
    async listen(t) {
      const dir = mkdtempSync(join(tmpdir(), 'vu-stream-'));
      t.teardown(() => rmSync(dir, { recursive: true, force: true }));
      const path = join(dir, 'netdev.sock');
      return { netdev: `stream,id=n1,server=on,addr.type=unix,addr.path=${path}`, spec: `stream:unix:${path}` };
    },
  },
];

async function bootOnListeningNetdev(t: ExecutionContext, netdev: string, mac: string): Promise<Guest> {
  return bootGuest({
    name: 'stream-guest',
    netdevArgs: ['-netdev', netdev],
    deviceArgs: `virtio-net-pci,netdev=n1,mac=${mac}`,
    guestIp: 'dhcp',
    teardown: t,
  });
}

for (const variant of variants) test.serial(`a QEMU guest on a stream uplink (${variant.name}) reaches a vhost-user guest; remove-uplink cuts it off, add-uplink restores it`, async (t) => {
  t.timeout(180_000);
  const sw = await startSwitch(t);
  const { netdev, spec } = await variant.listen(t);
  const macStream = guestMac();
  const macVhost = guestMac();

  // The stream guest's DHCP client retries for 20 s: the uplink is connected while it boots.
  const streamGuest = await bootOnListeningNetdev(t, netdev, macStream);
  const uplink = await addUplinkWhenListening(sw, spec);
  t.is(uplink.kind, 'stream');
  const [, vhostGuest] = await Promise.all([streamGuest.ready(), bootOnSwitch(t, sw, 'vhost-guest', macVhost)]);

  const ipStream = await addressOf(streamGuest);
  const ipVhost = await addressOf(vhostGuest);
  t.log(`DHCP: stream guest ${macStream} → ${ipStream}, vhost-user guest ${macVhost} → ${ipVhost}`);
  t.regex(ipStream, /^10\.79\.0\./);
  t.regex(ipVhost, /^10\.79\.0\./);
  t.not(ipStream, ipVhost);

  const there = await ping(streamGuest, ipVhost);
  const back = await ping(vhostGuest, ipStream);
  t.log(`ping stream→vhost ${there.received}/${there.transmitted} avg ${there.avgMs} ms; vhost→stream ${back.received}/${back.transmitted} avg ${back.avgMs} ms`);
  t.is(there.received, there.transmitted);
  t.is(back.received, back.transmitted);
  // TCP from the vhost-user guest (it sends 64 KiB TSO frames) to the stream guest (its netdev
  // takes finished frames only): the switch cuts and checksums them; the receiving kernel checks.
  await streamGuest.mustRun('iperf3 -s -D -1');
  const flow = parseIperf3Json(await vhostGuest.mustRun(`iperf3 -c ${ipStream} -t 2 -J`, 60_000));
  t.log(`iperf3 vhost→stream (TSO frames segmented by the switch): ${(flow.bitsPerSecond / 1e6).toFixed(1)} Mbit/s, retransmits ${flow.retransmits}`);
  t.true(flow.bitsPerSecond > 1e6);
  const macs = (await ctl(sw, 'macs')) as { mac: string; portName: string }[];
  t.is(macs.find((m) => m.mac === macStream)?.portName, spec, 'the stream guest is learned on the uplink');
  const counted = (await ctlPorts(sw)).find((p) => p.id === uplink.id)!;
  t.log(`uplink port ${counted.name}: to the stream guest ${counted.rxFrames} frames, from it ${counted.txFrames}, drops ${JSON.stringify(counted.drops)}`);
  t.true(Number(counted.txFrames) >= there.received && Number(counted.rxFrames) >= back.received);
  t.true(Number(counted.rxBytes) / Number(counted.rxFrames) <= 1514, 'only MTU-sized frames went to the stream guest');
  t.is(counted.state, 'connected');

  // Cut off: nothing crosses any more, the switch and the vhost-user guest carry on.
  t.deepEqual(await ctl(sw, 'remove-uplink', String(uplink.id)), { removed: uplink.id });
  const cut = await streamGuest.run(`ping -c 3 -i 0.2 -w 3 ${ipVhost}`, 30_000);
  t.log(`after remove-uplink, ping stream→vhost: ${cut.output.trim().split('\n').pop()}`);
  t.not(cut.code, 0, 'the stream guest no longer reaches the vhost-user guest');
  t.regex(cut.output, / 0 packets received/);
  const ports = await ctlPorts(sw);
  t.false(ports.some((p) => p.kind === 'stream'), 'the uplink is gone');
  t.true(ports.some((p) => p.kind === 'vhost-user'), 'the vhost-user guest is still a port');
  t.is(sw.process.exitStatus, undefined, 'the switch is running');

  // QEMU's socket netdev listens again once its peer left: the uplink comes back.
  const again = await addUplinkWhenListening(sw, spec);
  const restored = await ping(vhostGuest, ipStream);
  t.log(`after add-uplink again (port ${again.id}), ping vhost→stream ${restored.received}/${restored.transmitted}`);
  t.true(restored.received > 0, 'the stream guest is reachable again');

  // The stream peer goes away (QEMU powers off): frames toward it are counted as drops, the
  // uplink can still be removed, the switch carries on.
  await streamGuest.shutdown();
  const gone = await vhostGuest.run(`ping -c 3 -i 0.2 -w 2 ${ipStream}`, 30_000);
  t.not(gone.code, 0);
  const dead = (await ctlPorts(sw)).find((p) => p.id === again.id);
  t.log(`uplink after its peer left: ${JSON.stringify(dead)}`);
  t.is(dead?.state, 'broken', 'an uplink whose peer left is listed as broken');
  t.true(Number(dead?.drops.notReady ?? 0) + Number(dead?.drops.portError ?? 0) > 0, 'frames toward the gone peer are counted as drops');

  // A new QEMU listens on the same address: the uplink connects to it by itself (it tries again
  // after 1, 2, 4, … s), as the same port.
  if (spec.startsWith('stream:unix:')) rmSync(spec.slice('stream:unix:'.length), { force: true });
  const backAt = Date.now();
  const successor = await bootOnListeningNetdev(t, netdev, macStream);
  await successor.ready();
  const reconnected = await waitForUplinkState(sw, again.id, 'connected', 60_000);
  t.log(`uplink connected again by itself ${((Date.now() - backAt) / 1000).toFixed(1)} s after the new peer started: ${JSON.stringify(reconnected)}`);
  const ipSuccessor = await addressOf(successor);
  const reached = await ping(vhostGuest, ipSuccessor);
  t.log(`ping vhost→new stream guest (${ipSuccessor}): ${reached.received}/${reached.transmitted}`);
  t.true(reached.received > 0, 'the new stream guest is reachable through the same uplink');
  await successor.shutdown();
  t.deepEqual(await ctl(sw, 'remove-uplink', String(again.id)), { removed: again.id });
  t.false((await ctlPorts(sw)).some((p) => p.kind === 'stream'));

  await vhostGuest.shutdown();
  t.notRegex(readFileSync(sw.process.logPath, 'utf8'), STOPPED_OR_PANICKED);
});
