/**
 * A guest that breaks one of its rings is cut off from the switch as a whole, with one log line.
 * In switch mode its RX ring is served by the switch port (on the sending guest's thread) and its
 * TX ring by its own queue pair's worker: each test breaks one of the two rings and checks that
 * the other one stops too, while the other guests keep exchanging frames.
 */
import test, { type ExecutionContext } from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import { TestFrontend } from '../helpers/test-frontend.ts';
import { startInProcessSwitch, waitUntil } from '../helpers/switch-harness.ts';
import { RX, Station, TX } from '../helpers/station.ts';
import { BROADCAST, type Mac } from '../helpers/frames.ts';
import { VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from '../helpers/driver-ring.ts';
import type { PortInfo } from '../../src/switch/control-protocol.ts';

const QUEUE_SIZE = 256;
const MEMORY_BYTES = 4 << 20;
/** How long a cut-off ring is watched for frames that must not come (a negative check needs a window). */
const QUIET_MS = 300;
const BROKE_A_RING = 'guest broke a ring';

const MACS: Record<'A' | 'B' | 'C', Mac> = {
  A: Uint8Array.of(0x02, 0, 0, 0, 0x50, 0x0a),
  B: Uint8Array.of(0x02, 0, 0, 0, 0x50, 0x0b),
  C: Uint8Array.of(0x02, 0, 0, 0, 0x50, 0x0c),
};

interface Rig {
  a: Station;
  b: Station;
  c: Station;
  /** C's switch port name. */
  cPort: string;
  /** C's switch port now. */
  cCounters(): PortInfo;
  faultLines(): string[];
}

/**
 * Three stations on one in-process switch, each known to the MAC table (each sent a broadcast,
 * which the other two received); none has an RX buffer left.
 */
async function rig(t: ExecutionContext): Promise<Rig> {
  const r = await startInProcessSwitch(t);
  const stations: Station[] = [];
  const ports: string[] = [];
  for (const name of ['A', 'B', 'C'] as const) {
    const before = r.portNames();
    const fe = TestFrontend.connect(r.socketPath, { queueSize: QUEUE_SIZE, memoryBytes: MEMORY_BYTES });
    t.teardown(() => fe.close());
    await fe.negotiate();
    stations.push(new Station(name, fe, MACS[name]));
    ports.push(r.portNames().find((p) => !before.includes(p))!);
  }
  for (const s of stations) s.postRxBuffers(2);
  for (const s of stations) await s.send(BROADCAST, 0, 1);
  for (const s of stations) await s.receive(2);
  const [a, b, c] = stations;
  const faultLines = () => r.logLines.filter((line) => line.includes(BROKE_A_RING));
  return { a, b, c, cPort: ports[2], cCounters: () => r.switchMode.ports().find((p) => p.name === ports[2])!, faultLines };
}

test.serial('a guest whose RX ring breaks is cut off: its TX chains are not forwarded either', async (t) => {
  const { a, b, c, cPort, cCounters, faultLines } = await rig(t);
  // C's driver posts a descriptor loop as its next RX buffer; A's next broadcast runs into it.
  const rx = c.fe.rings[RX];
  const buffer = c.fe.alloc(2048);
  rx.writeDesc(100, buffer, 1024, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 101);
  rx.writeDesc(101, buffer + 1024, 1024, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 100);
  rx.publish(100);
  b.postRxBuffers(4);
  await a.send(BROADCAST, 1, 1);
  t.deepEqual(await b.receive(1), [1], 'B got the broadcast');
  await waitUntil(() => faultLines().length > 0, () => 'no fault line');
  t.regex(faultLines()[0], new RegExp(`port=${cPort} reason=.*RX virtqueue`));

  // C sends to B now: its worker stops at this kick, nothing is forwarded or used.
  const before = cCounters();
  const txUsed = c.fe.rings[TX].usedIdx();
  c.post(MACS.B, 500, 3);
  await a.send(MACS.B, 600, 1);
  t.deepEqual(await b.receive(1), [600], 'A and B still exchange frames');
  await sleep(QUIET_MS);
  t.deepEqual(b.takeReceived(), [], "none of C's frames reached B");
  t.is(c.fe.rings[TX].usedIdx(), txUsed, "C's TX chains were not used");
  t.is(cCounters().txFrames, before.txFrames, "C's port forwarded nothing more");
  t.is(faultLines().length, 1, 'one line for the queue pair');
});

test.serial('a guest whose TX ring breaks is cut off: it receives nothing more', async (t) => {
  const { a, b, c, cPort, cCounters, faultLines } = await rig(t);
  // C's driver posts a TX descriptor 1 GiB past the end of its memory.
  const tx = c.fe.rings[TX];
  tx.writeDesc(200, MEMORY_BYTES + (1 << 30), 1514, 0, 0);
  tx.publish(200);
  c.fe.kick(TX);
  await waitUntil(() => faultLines().length > 0, () => 'no fault line');
  t.regex(faultLines()[0], new RegExp(`port=${cPort} reason=.*TX virtqueue`));

  // C has good RX buffers, but its port takes nothing more: a broadcast counts a drop there.
  c.postRxBuffers(4);
  b.postRxBuffers(4);
  const before = cCounters();
  await a.send(BROADCAST, 700, 1);
  t.deepEqual(await b.receive(1), [700], 'B got the broadcast');
  const after = cCounters();
  t.is(after.rxFrames, before.rxFrames, "C's port delivered nothing");
  t.is(after.drops.notReady, (before.drops.notReady ?? 0n) + 1n, 'the frame for C was dropped as not ready');
  t.deepEqual(c.takeReceived(), [], "C's RX ring got nothing");
  t.is(faultLines().length, 1, 'one line for the queue pair');
});

test.serial('frames a guest sent ahead of the chain that broke its TX ring still reach their receivers', async (t) => {
  const { b, c, faultLines } = await rig(t);
  b.postRxBuffers(4);
  // One kick, one batch: two good frames to B, then a descriptor 1 GiB past C's memory.
  c.queue(MACS.B, 800, 2);
  const tx = c.fe.rings[TX];
  tx.writeDesc(200, MEMORY_BYTES + (1 << 30), 1514, 0, 0);
  tx.publish(200);
  c.fe.kick(TX);
  await waitUntil(() => faultLines().length > 0, () => 'no fault line');
  t.deepEqual(await b.receive(2), [800, 801], 'B sees the frames forwarded before the fault');
  t.is(faultLines().length, 1, 'one line for the queue pair');
});
