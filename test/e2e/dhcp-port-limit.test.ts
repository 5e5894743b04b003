/**
 * The switch's DHCP server limits the clients one guest port may hold addresses for
 * (`--dhcp-leases-per-port`), end to end: DHCP frames from test front-ends go through the native
 * switch to the host port, which tells the control plane which port each came in on.
 */
import test from 'ava';
import { startInProcessSwitch, waitUntil } from '../helpers/switch-harness.ts';
import { connectStation } from '../helpers/station.ts';
import { DISCOVER, OFFER, clientFrame, mac, readReply } from '../switch/dhcp-frames.ts';
import { DHCP_CLIENT_PORT } from '../../src/switch/dhcp-server.ts';
import { parseUdpFrame } from '../../src/switch/packet.ts';
import { formatMac } from '../../src/device/mac.ts';

const LIMIT = 2;

/** The chaddr of every DHCP OFFER among `frames`. */
function offeredTo(frames: Uint8Array[]): string[] {
  return frames
    .filter((f) => parseUdpFrame(f)?.udp.dstPort === DHCP_CLIENT_PORT)
    .map(readReply)
    .filter((reply) => reply.type === OFFER)
    .map((reply) => formatMac(reply.message.chaddr.subarray(0, 6)));
}

test('a guest port inventing DHCP clients gets offers for LIMIT of them; another guest still gets one', async (t) => {
  const r = await startInProcessSwitch(t, { dhcp: '10.0.7.0/24', dhcpLeasesPerPort: LIMIT });
  const greedy = await connectStation(t, 'greedy', r.socketPath, mac(1), 16);
  const other = await connectStation(t, 'other', r.socketPath, mac(9), 16);
  for (const n of [1, 2, 3, 4]) greedy.sendFrame(clientFrame({ mac: mac(n), type: DISCOVER }));
  await waitUntil(() => r.switchMode.stats()['dhcp.discover'] === 4, () => `DISCOVERs handled: ${r.switchMode.stats()['dhcp.discover']}`);
  other.sendFrame(clientFrame({ mac: mac(9), type: DISCOVER }));
  const seen: Uint8Array[] = [];
  await waitUntil(() => (seen.push(...other.takeFrames()), offeredTo(seen).length === LIMIT + 1), () => `offers seen: ${offeredTo(seen)}`);
  t.deepEqual(offeredTo(seen).sort(), [mac(1), mac(2), mac(9)].map(formatMac).sort(), 'two of the greedy port’s clients and the other guest got offers');
  t.like(r.switchMode.stats(), { 'dhcp.portLimit': 2, 'dhcp.offer': 3 });
  t.true(r.logLines.some((line) => line.includes('more addresses than it may hold') && line.includes('port=guest1')));
});
