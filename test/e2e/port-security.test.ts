/**
 * Port security end to end on the switch back-end (SwitchMode in this process): a named port
 * locked to a MAC (`--port NAME=PATH,mac=MAC`). Another guest that sends from that MAC neither
 * reaches anyone nor takes the locked guest's traffic; the locked guest cannot send from any
 * other MAC. Both are counted as `spoofed` drops on the sender's port. While the locked guest is
 * away its MAC stays reserved; removing the port frees it. A port also locked to IP addresses
 * (`,ip=ADDR`) sends IPv4, IPv6 and ARP only from them, and nobody else claims them in ARP, IPv4,
 * IPv6 or a neighbour advertisement.
 */
import test from 'ava';
import { join } from 'node:path';
import { startInProcessSwitch, waitUntil } from '../helpers/switch-harness.ts';
import { connectStation } from '../helpers/station.ts';
import { arpRequest, icmpEchoRequest, ipv6Frame, neighbourAdvertisement, type Mac } from '../helpers/frames.ts';
import { withPortSecurity } from '../../src/switch/port-security.ts';

const MAC_LOCKED: Mac = Uint8Array.of(0x52, 0x54, 0, 0, 0x50, 0x01);
const MAC_PEER: Mac = Uint8Array.of(0x52, 0x54, 0, 0, 0x50, 0x02);
const MAC_OTHER: Mac = Uint8Array.of(0x52, 0x54, 0, 0, 0x50, 0x03);
const FRAMES = 8;

test('a port locked to a MAC: nobody else sends from it or takes its traffic, and it sends from no other MAC', async (t) => {
  const r = await startInProcessSwitch(t);
  const lockedPath = join(r.socketPath, '..', 'locked.sock');
  r.switchMode.addPort('locked', lockedPath, 0, { mac: MAC_LOCKED, ips: [] });
  const locked = await connectStation(t, 'locked', lockedPath, MAC_LOCKED, 4 * FRAMES);
  const peer = await connectStation(t, 'peer', r.socketPath, MAC_PEER, 4 * FRAMES);
  const spoofer = await connectStation(t, 'spoofer', r.socketPath, MAC_LOCKED, 4 * FRAMES);
  const drops = (port: string) => r.switchMode.ports().find((p) => p.name === port)?.drops.spoofed ?? 0n;
  const spooferPort = 'guest2'; // the shared socket's second front-end

  await locked.send(MAC_PEER, 0, FRAMES);
  t.is((await peer.receive(FRAMES)).length, FRAMES, 'the locked guest reaches its peer');
  spoofer.takeReceived(); // the same frames, flooded: the peer was not known yet

  // A frame's TX completion comes after its delivery is published: nothing more can arrive.
  await spoofer.send(MAC_PEER, 100, FRAMES);
  t.deepEqual(peer.takeReceived(), [], "frames from the locked guest's MAC sent by another guest go nowhere");
  t.is(drops(spooferPort), BigInt(FRAMES));

  await peer.send(MAC_LOCKED, 200, FRAMES);
  t.is((await locked.receive(FRAMES)).length, FRAMES, "the locked guest's traffic still reaches it");
  t.deepEqual(spoofer.takeReceived(), [], 'and not the guest that sent from its MAC');

  await locked.send(MAC_PEER, 300, FRAMES, MAC_OTHER);
  t.deepEqual(peer.takeReceived(), [], 'the locked guest cannot send from another MAC');
  t.is(drops('locked'), BigInt(FRAMES));

  const listed = r.switchMode.ports().find((p) => p.name === 'locked')!;
  t.like(listed, { mac: '52:54:00:00:50:01', macLocked: true });
});

test("while the locked port's guest is away nobody takes its MAC; removing the port frees it", async (t) => {
  const r = await startInProcessSwitch(t);
  const lockedPath = join(r.socketPath, '..', 'locked.sock');
  r.switchMode.addPort('locked', lockedPath, 0, { mac: MAC_LOCKED, ips: [] });
  const locked = await connectStation(t, 'locked', lockedPath, MAC_LOCKED, 4 * FRAMES);
  locked.fe.close();
  await waitUntil(() => r.switchMode.ports().find((p) => p.name === 'locked')?.state === 'waiting', () => JSON.stringify(r.switchMode.ports().map((p) => [p.name, p.state])));
  t.like(r.switchMode.ports().find((p) => p.name === 'locked'), { mac: '52:54:00:00:50:01', macLocked: true });

  const peer = await connectStation(t, 'peer', r.socketPath, MAC_PEER, 4 * FRAMES);
  const spoofer = await connectStation(t, 'spoofer', r.socketPath, MAC_OTHER, 4 * FRAMES);
  await spoofer.send(MAC_PEER, 0, FRAMES, MAC_LOCKED);
  t.deepEqual(peer.takeReceived(), [], 'the away guest\'s MAC is still nobody else\'s');

  r.switchMode.removePort('locked');
  await spoofer.send(MAC_PEER, 100, FRAMES, MAC_LOCKED);
  t.is((await peer.receive(FRAMES)).length, FRAMES, 'the port is gone, and its MAC is free');
});

test('a port locked to IP addresses sends IPv4, IPv6 and ARP only from them, and nobody else claims them', async (t) => {
  const r = await startInProcessSwitch(t);
  const lockedPath = join(r.socketPath, '..', 'locked.sock');
  r.switchMode.addPort('locked', lockedPath, 0, withPortSecurity(MAC_LOCKED, ['10.0.5.1', 'fd00:5::1']));
  const locked = await connectStation(t, 'locked', lockedPath, MAC_LOCKED, 4 * FRAMES);
  const peer = await connectStation(t, 'peer', r.socketPath, MAC_PEER, 4 * FRAMES);
  const spoofer = await connectStation(t, 'spoofer', r.socketPath, MAC_OTHER, 4 * FRAMES);
  const drops = (port: string) => r.switchMode.ports().find((p) => p.name === port)?.drops.spoofed ?? 0n;
  const crossed = () => peer.takeFrames().map((f) => f.slice(0, 60).toString());
  const udp6 = (mac: Mac, source: string) => ipv6Frame(mac, MAC_PEER, source, 'fd00:5::2', 17, new Uint8Array(8));

  const allowed = [
    arpRequest(MAC_LOCKED, '10.0.5.1', '10.0.5.2'),
    arpRequest(MAC_LOCKED, '0.0.0.0', '10.0.5.1'),
    icmpEchoRequest(MAC_LOCKED, MAC_PEER, '10.0.5.1', '10.0.5.2', 1, 1),
    udp6(MAC_LOCKED, 'fd00:5::1'),
    neighbourAdvertisement(MAC_LOCKED, 'fe80::5054:ff:fe00:5001', 'fd00:5::1'),
  ];
  const refused = [
    arpRequest(MAC_LOCKED, '10.0.5.3', '10.0.5.2'),
    icmpEchoRequest(MAC_LOCKED, MAC_PEER, '10.0.5.3', '10.0.5.2', 1, 2),
    udp6(MAC_LOCKED, 'fd00:5::3'),
    neighbourAdvertisement(MAC_LOCKED, 'fd00:5::1', 'fd00:5::3'),
  ];
  await locked.sendFrames([...allowed, ...refused]);
  t.deepEqual(crossed(), allowed.map((f) => f.slice(0, 60).toString()), 'its own addresses (its link-local one included) and an ARP probe cross; other addresses do not');
  t.is(drops('locked'), BigInt(refused.length));
  spoofer.takeFrames(); // the broadcasts above

  const spooferOwn = arpRequest(MAC_OTHER, '10.0.5.3', '10.0.5.2');
  const claims = [
    arpRequest(MAC_OTHER, '10.0.5.1', '10.0.5.2'),
    icmpEchoRequest(MAC_OTHER, MAC_PEER, '10.0.5.1', '10.0.5.2', 2, 1),
    udp6(MAC_OTHER, 'fd00:5::1'),
    neighbourAdvertisement(MAC_OTHER, 'fd00:5::3', 'fd00:5::1'),
  ];
  await spoofer.sendFrames([...claims, spooferOwn]);
  t.deepEqual(crossed(), [spooferOwn.slice(0, 60).toString()], "another guest's ARP, IPv4, IPv6 and neighbour advertisements claiming a locked address go nowhere");
  t.is(drops('guest2'), BigInt(claims.length));

  t.like(r.switchMode.ports().find((p) => p.name === 'locked'), { mac: '52:54:00:00:50:01', macLocked: true, lockedIps: ['10.0.5.1', 'fd00:5::1', 'fe80::5054:ff:fe00:5001'] });
});
