/**
 * No head-of-line blocking, end to end on the switch back-end (SwitchMode in this process: every
 * connection to its socket becomes a new switch port). Hostile front-ends hang on their
 * connections, several of each kind:
 *  - half a message header, then nothing;
 *  - a whole header announcing a payload that never comes;
 *  - a flood of requests with NEED_REPLY (and GET_FEATURES) whose replies are never read, until
 *    the socket buffer toward them is full;
 *  - connected and silent (half-open).
 * While they hang, two well-behaved test front-ends negotiate (every reply's latency is measured
 * and must stay small) and exchange frames with each other through the switch. Then the hostile
 * peers go away: each one's end is logged, and the switch still serves a new front-end.
 */
import test, { type ExecutionContext } from 'ava';
import { createConnection, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { encodeRequest } from '../../src/protocol/encode.ts';
import { FrontendRequest as R } from '../../src/protocol/requests.ts';
import { VhostUserProtocolFeature as P } from '../../src/protocol/protocol-features.ts';
import { featureMask } from '../../src/protocol/feature-bits.ts';
import { TestFrontend } from '../helpers/test-frontend.ts';
import { startInProcessSwitch, waitUntil, type InProcessSwitch } from '../helpers/switch-harness.ts';
import { Station } from '../helpers/station.ts';
import type { Mac } from '../helpers/frames.ts';

const QUEUE_SIZE = 256;
const FRAMES_EACH_WAY = 64;
/** Hostile connections of each kind. */
const EACH_KIND = 3;
/** Requests each flooding peer writes without reading a reply (far more than its socket buffer holds). */
const FLOOD_PAIRS = 10_000;
/** The most a well-behaved front-end may wait for any reply, hostile peers or not. */
const MAX_REPLY_MS = 1000;

const MAC_A: Mac = Uint8Array.of(0x02, 0, 0, 0, 0x40, 0x0a);
const MAC_B: Mac = Uint8Array.of(0x02, 0, 0, 0, 0x40, 0x0b);

type HostileKind = 'half-header' | 'missing-payload' | 'unread-replies' | 'half-open';

interface Hostile {
  kind: HostileKind;
  socket: Socket;
  /** The switch port (and so the connection) it was given. */
  port: string;
  closedByBackEnd: boolean;
}

/** The bytes a hostile peer of `kind` writes right after connecting (nothing more, ever). */
function hostileBytes(kind: HostileKind): Uint8Array {
  switch (kind) {
    case 'half-header':
      return encodeRequest({ request: R.GET_FEATURES }).subarray(0, 6);
    case 'missing-payload':
      // SET_FEATURES announces its 8-byte u64; only the header is sent.
      return encodeRequest({ request: R.SET_FEATURES, features: 0n }).subarray(0, 12);
    case 'unread-replies': {
      // REPLY_ACK on, blindly (the GET_PROTOCOL_FEATURES reply is never read), then request pairs
      // that each get a reply: GET_FEATURES (data) and SET_OWNER with NEED_REPLY (REPLY_ACK).
      const pair = [encodeRequest({ request: R.GET_FEATURES }), encodeRequest({ request: R.SET_OWNER, needReply: true })];
      const parts = [encodeRequest({ request: R.SET_PROTOCOL_FEATURES, features: featureMask(P.REPLY_ACK) })];
      for (let i = 0; i < FLOOD_PAIRS; i++) parts.push(...pair);
      return Buffer.concat(parts);
    }
    case 'half-open':
      return new Uint8Array(0);
  }
}

/**
 * Opens a hostile connection; resolves once the switch has given it a port (so the ports of
 * hostile peers are known and in order), then writes its bytes unless `holdBytes`. The socket
 * never reads.
 */
async function openHostile(r: InProcessSwitch, kind: HostileKind, t: ExecutionContext, holdBytes = false): Promise<Hostile> {
  const portsBefore = r.portNames();
  const socket = createConnection({ path: r.socketPath });
  t.teardown(() => void socket.destroy());
  socket.pause(); // reads nothing; a flood's replies pile up in the kernel's socket buffers
  socket.on('error', () => {}); // the back-end may reset a flooding peer; that is the point
  const hostile: Hostile = { kind, socket, port: '', closedByBackEnd: false };
  socket.on('end', () => (hostile.closedByBackEnd = true));
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  await waitUntil(
    () => r.portNames().some((name) => !portsBefore.includes(name)),
    () => `no switch port for the ${kind} peer`,
  );
  hostile.port = r.portNames().find((name) => !portsBefore.includes(name))!;
  if (!holdBytes) writeHostileBytes(hostile);
  return hostile;
}

function writeHostileBytes(hostile: Hostile): void {
  const bytes = hostileBytes(hostile.kind);
  if (bytes.length > 0) hostile.socket.write(bytes);
}

/** A well-behaved front-end whose every reply's latency is recorded. */
function timedFrontend(r: InProcessSwitch, t: ExecutionContext, latencies: { request: string; ms: number }[]): TestFrontend {
  const fe = TestFrontend.connect(r.socketPath, { queueSize: QUEUE_SIZE, memoryBytes: 4 << 20 });
  t.teardown(() => fe.close());
  const request = fe.request.bind(fe);
  fe.request = async (input, fds) => {
    const started = performance.now();
    const reply = await request(input, fds);
    if (reply) latencies.push({ request: R[input.request], ms: performance.now() - started });
    return reply;
  };
  return fe;
}

const range = (from: number, count: number) => Array.from({ length: count }, (_, i) => from + i);

test.serial('hostile front-ends that stall mid-message, never read replies or stay silent delay no other connection', async (t) => {
  const r = await startInProcessSwitch(t);
  const kinds: HostileKind[] = ['half-header', 'missing-payload', 'unread-replies', 'half-open'];
  const hostiles: Hostile[] = [];
  for (let i = 0; i < EACH_KIND; i++) for (const kind of kinds) hostiles.push(await openHostile(r, kind, t, kind === 'unread-replies'));
  const flooders = hostiles.filter((h) => h.kind === 'unread-replies');

  // Two well-behaved front-ends negotiate while the hostile peers hang; the floods start with
  // them, so the back-end reads and answers them during the negotiation.
  const latencies: { request: string; ms: number }[] = [];
  const feA = timedFrontend(r, t, latencies);
  const feB = timedFrontend(r, t, latencies);
  flooders.forEach(writeHostileBytes);
  const negotiated = await Promise.all([feA.negotiate(), feB.negotiate()]);
  t.true(negotiated.every((features) => features > 0n));
  const slowest = latencies.reduce((max, l) => (l.ms > max.ms ? l : max));
  t.log(`${latencies.length} replies to the well-behaved front-ends, slowest ${slowest.request} in ${slowest.ms.toFixed(1)} ms`);
  // Per front-end: GET_FEATURES, GET_PROTOCOL_FEATURES, SET_OWNER, SET_FEATURES, SET_MEM_TABLE,
  // and six acked requests per ring (SET_PROTOCOL_FEATURES has no reply).
  t.is(latencies.length, 2 * (5 + 6 * 2), 'every negotiation step that replies was measured');
  for (const l of latencies) t.true(l.ms < MAX_REPLY_MS, `${l.request} answered in ${l.ms.toFixed(1)} ms`);

  // Frames both ways through the switch: A→B first floods (B unknown), B→A is learnt unicast.
  const a = new Station('A', feA, MAC_A);
  const b = new Station('B', feB, MAC_B);
  a.postRxBuffers(FRAMES_EACH_WAY);
  b.postRxBuffers(FRAMES_EACH_WAY);
  await a.send(MAC_B, 0, FRAMES_EACH_WAY);
  t.deepEqual(await b.receive(FRAMES_EACH_WAY), range(0, FRAMES_EACH_WAY), 'B got all of A\'s frames, in order');
  await b.send(MAC_A, 1000, FRAMES_EACH_WAY);
  t.deepEqual(await a.receive(FRAMES_EACH_WAY), range(1000, FRAMES_EACH_WAY), 'A got all of B\'s frames, in order');

  // The stalled and silent peers were connected all along: their ports are still on the switch.
  // Each flooder filled its socket buffer, and the back-end cut it off instead of waiting for it.
  const ports = r.portNames();
  for (const h of hostiles.filter((h) => h.kind !== 'unread-replies')) {
    t.true(ports.includes(h.port), `${h.kind} peer on ${h.port} still connected`);
    t.false(h.closedByBackEnd, `${h.kind} peer on ${h.port} was not closed`);
  }
  await waitUntil(
    () => flooders.every((h) => !r.portNames().includes(h.port) && r.connectionLog(h.port).some((line) => line.includes('front-end disconnected'))),
    () => `flooders still connected: ${flooders.filter((h) => r.portNames().includes(h.port)).map((h) => h.port).join(' ')}`,
  );
  for (const h of flooders) {
    t.true(r.connectionLog(h.port).some((line) => /cannot send reply, closing the connection .*EAGAIN/.test(line)), `${h.port}: ${r.connectionLog(h.port).join('')}`);
  }

  // The hostile peers go away: each end is logged (mid-message ones as such), their ports go.
  for (const h of hostiles) h.socket.destroy();
  await waitUntil(
    () => hostiles.every((h) => r.connectionLog(h.port).some((line) => line.includes('front-end disconnected'))),
    () => `not logged as disconnected: ${hostiles.filter((h) => !r.connectionLog(h.port).some((line) => line.includes('front-end disconnected'))).map((h) => `${h.kind}@${h.port}`).join(' ')}`,
  );
  const midMessage: Partial<Record<HostileKind, string>> = { 'half-header': '6 bytes into a 12-byte message', 'missing-payload': '12 bytes into a 20-byte message' };
  for (const h of hostiles) {
    const disconnected = r.connectionLog(h.port).find((line) => line.includes('front-end disconnected'))!;
    const expected = midMessage[h.kind];
    if (expected) t.true(disconnected.includes(`peer closed the connection ${expected}`), `${h.kind}: ${disconnected}`);
  }
  await waitUntil(
    () => r.portNames().length === 2,
    () => `ports: ${r.portNames().join(' ')}`,
  );

  // Still serving: a new front-end negotiates promptly, and A and B still exchange frames.
  const after: { request: string; ms: number }[] = [];
  const feC = timedFrontend(r, t, after);
  await feC.negotiate();
  t.true(after.every((l) => l.ms < MAX_REPLY_MS), JSON.stringify(after));
  t.is(r.portNames().length, 3);
  a.postRxBuffers(1);
  await b.send(MAC_A, 5000, 1);
  t.deepEqual(await a.receive(1), [5000]);
});
