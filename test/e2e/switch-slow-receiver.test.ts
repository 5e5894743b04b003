/**
 * In-process end-to-end on the switch: three test front-ends (A, B, C) are guest ports of one
 * `Segment`, served by the real BackendServer over a real socket. B posts no RX buffers (a slow
 * receiver), C posts plenty. Every figure is a counter (TX used index, RX used entries, the
 * switch's per-port counters) polled with a deadline: a stall shows as a missed deadline.
 *
 *  - A floods N broadcast frames: A's TX ring completes all N, C receives all N in order, B's
 *    port counts N `dropNoBuffer` and receives nothing.
 *  - Learning: an unknown unicast floods (B counts a drop); once C and A have sent, A→C and C→A
 *    unicast reach only their destination, B's counters do not move.
 *  - B posts buffers later and receives the next broadcast: its port was never stuck.
 */
import test, { type ExecutionContext } from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BackendServer } from '../../src/backend/server.ts';
import { createLogger } from '../../src/log.ts';
import { Segment } from '../../src/switch/segment.ts';
import { TestFrontend } from '../helpers/test-frontend.ts';
import { BROADCAST, type Mac } from '../helpers/frames.ts';

const RX = 0;
const TX = 1;
const HDR = 12;
const QUEUE_SIZE = 256;
const FRAMES = 2000;
/** Frames A puts on its TX ring before waiting for their completion (two descriptors each). */
const BATCH = 100;
const RX_BUFFER_BYTES = 2048;
const FRAME_BYTES = 64;
const MAX_FRAME_BYTES = 1514;
/** IEEE 802 "local experimental" EtherType: nothing in the switch interprets it. */
const ETH_P_EXPERIMENTAL = 0x88b5;
const DEADLINE_MS = 5000;

const MAC_A: Mac = Uint8Array.of(0x02, 0, 0, 0, 0, 0x0a);
const MAC_C: Mac = Uint8Array.of(0x02, 0, 0, 0, 0, 0x0c);

/** A frame of `length` bytes carrying `seq` right after the Ethernet header. */
function frame(dst: Mac, src: Mac, seq: number, length = FRAME_BYTES): Uint8Array {
  const bytes = new Uint8Array(length);
  bytes.set(dst, 0);
  bytes.set(src, 6);
  const view = new DataView(bytes.buffer);
  view.setUint16(12, ETH_P_EXPERIMENTAL);
  view.setUint32(14, seq);
  return bytes;
}

/** Polls `condition` until it holds; fails the wait (not a sleep-based assertion) after `ms`. */
async function waitUntil(condition: () => boolean, what: () => string, ms = DEADLINE_MS): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what()}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/**
 * One guest on the switch: TX slots reused batch after batch (a header and a frame buffer each),
 * and one RX buffer of `rxBufferBytes` per descriptor, reposted under the same head once consumed.
 */
class Station {
  private readonly txSlots: { hdr: number; frame: number }[] = [];
  private readonly rxBufferAt: number[] = [];
  private txPosted = 0;
  /** The RX ring's next free descriptor: the driver ring hands them out in order, one per buffer here. */
  private rxNextHead = 0;

  constructor(readonly name: string, readonly fe: TestFrontend, readonly rxBufferBytes: number) {
    for (let i = 0; i < BATCH; i++) this.txSlots.push({ hdr: fe.alloc(HDR), frame: fe.alloc(MAX_FRAME_BYTES) });
    for (let i = 0; i < QUEUE_SIZE; i++) this.rxBufferAt.push(fe.alloc(rxBufferBytes));
  }

  /** Puts `frames` on the TX ring (at most BATCH), kicks once, waits until all of them are used. */
  async send(frames: Uint8Array[]): Promise<void> {
    if (frames.length > BATCH) throw new Error(`at most ${BATCH} frames per batch`);
    frames.forEach((bytes, i) => {
      const slot = this.txSlots[i];
      this.fe.bytes(slot.hdr, HDR).fill(0);
      this.fe.bytes(slot.frame, bytes.length).set(bytes);
      this.fe.rings[TX].addDescChain([{ addr: slot.hdr, len: HDR }, { addr: slot.frame, len: bytes.length }]);
    });
    this.txPosted = (this.txPosted + frames.length) & 0xffff;
    this.fe.kick(TX);
    await waitUntil(() => this.fe.rings[TX].usedIdx() === this.txPosted, () => `${this.name}'s TX used idx ${this.fe.rings[TX].usedIdx()}, posted ${this.txPosted}`);
  }

  /** Makes `count` RX buffers available (each fits one frame). */
  postRxBuffers(count: number): void {
    for (let i = 0; i < count; i++) {
      const head = this.fe.rings[RX].addDescChain([{ addr: this.rxBufferAt[this.rxNextHead], len: this.rxBufferBytes, writable: true }]);
      if (head !== this.rxNextHead) throw new Error(`${this.name}: RX head ${head}, expected ${this.rxNextHead}`);
      this.rxNextHead = (head + 1) % QUEUE_SIZE;
    }
    this.fe.kick(RX);
  }

  /**
   * Frames the switch has written into the RX ring since the last call, without the virtio-net
   * header; a frame merged over several buffers (num_buffers, virtio 1.2 §5.1.6.4) is joined.
   * The switch publishes a frame's buffers together, so a frame is never split across calls.
   */
  takeReceived(): Uint8Array[] {
    const used = this.fe.rings[RX].takeUsed();
    const frames: Uint8Array[] = [];
    for (let i = 0; i < used.length; ) {
      const first = this.rxBufferAt[used[i].id];
      const numBuffers = new DataView(this.fe.memory, first + 10, 2).getUint16(0, true);
      if (numBuffers < 1 || i + numBuffers > used.length) throw new Error(`${this.name}: num_buffers ${numBuffers} with ${used.length - i} used entries left`);
      const parts = used.slice(i, i + numBuffers).map(({ id, len }, k) => this.fe.bytes(this.rxBufferAt[id] + (k === 0 ? HDR : 0), len - (k === 0 ? HDR : 0)));
      const bytes = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
      parts.reduce((at, part) => (bytes.set(part, at), at + part.length), 0);
      frames.push(bytes);
      i += numBuffers;
    }
    return frames;
  }

  /** Waits until at least `count` frames arrived; returns them all. */
  async receive(count: number): Promise<Uint8Array[]> {
    const got: Uint8Array[] = [];
    await waitUntil(
      () => (got.push(...this.takeReceived()), got.length >= count),
      () => `${this.name} received ${got.length} of ${count}`,
    );
    return got;
  }
}

const seqOf = (bytes: Uint8Array) => new DataView(bytes.buffer, bytes.byteOffset).getUint32(14);

interface Rig {
  segment: Segment;
  stations: Record<'A' | 'B' | 'C', Station>;
  /** Live counters of a station's switch port. */
  counters(name: 'A' | 'B' | 'C'): Record<string, bigint>;
}

/** A segment served on a temporary socket, and A, B, C connected in that order (their ports are named so). */
async function rig(t: ExecutionContext, rxBufferBytes = RX_BUFFER_BYTES): Promise<Rig> {
  const dir = mkdtempSync(join(tmpdir(), 'vu-switch-e2e-'));
  const socketPath = join(dir, 'switch.sock');
  const logLines: string[] = [];
  const log = createLogger('switch', 'debug', (line) => logLines.push(line));
  const segment = new Segment({ mtu: 1500, log });
  const names = ['A', 'B', 'C'];
  const server = new BackendServer({ socketPath, client: false, socketMode: 0o600, attach: () => segment.attachGuest(names.shift()!), log });
  server.start();
  const frontends: TestFrontend[] = [];
  t.teardown(() => {
    for (const fe of frontends) fe.close();
    server.stop();
    segment.close();
    rmSync(dir, { recursive: true, force: true });
    if (logLines.some((line) => / error /.test(line))) t.log(logLines.join('').trimEnd());
  });
  const stations = {} as Rig['stations'];
  for (const name of ['A', 'B', 'C'] as const) {
    const fe = TestFrontend.connect(socketPath, { queueSize: QUEUE_SIZE, memoryBytes: 4 << 20 });
    frontends.push(fe);
    await fe.negotiate();
    stations[name] = new Station(name, fe, rxBufferBytes);
  }
  const portOf = (name: string) => segment.switch.ports().find((p) => p.name === name);
  await waitUntil(() => ['A', 'B', 'C'].every((n) => portOf(n)), () => `ports: ${segment.switch.ports().map((p) => p.name).join(' ')}`);
  return { segment, stations, counters: (name) => portOf(name)!.counters };
}

test.serial(`a receiver without RX buffers costs counted drops, never a stall: ${FRAMES} broadcasts`, async (t) => {
  const { stations, counters } = await rig(t);
  const { A, B, C } = stations;
  C.postRxBuffers(QUEUE_SIZE);

  const started = process.hrtime.bigint();
  const received: Uint8Array[] = [];
  for (let sent = 0; sent < FRAMES; sent += BATCH) {
    const batch = Array.from({ length: Math.min(BATCH, FRAMES - sent) }, (_, i) => frame(BROADCAST, MAC_A, sent + i));
    await A.send(batch); // resolves once A's TX used idx covers the batch
    // Forwarding writes into C's ring before A's TX chain is used: the batch is there already.
    const got = C.takeReceived();
    received.push(...got);
    C.postRxBuffers(got.length);
  }
  const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;

  const a = counters('A');
  const b = counters('B');
  const c = counters('C');
  t.log(`${FRAMES} broadcasts in ${elapsedMs.toFixed(0)} ms: A TX used ${A.fe.rings[TX].usedIdx()}, C received ${received.length}, B dropNoBuffer ${b.dropNoBuffer}`);
  t.is(A.fe.rings[TX].usedIdx(), FRAMES, "A's TX ring completed every frame");
  t.is(a.fromPortFrames, BigInt(FRAMES));
  t.is(received.length, FRAMES, 'C received every broadcast');
  t.deepEqual(received.map(seqOf), Array.from({ length: FRAMES }, (_, i) => i), 'in order, none twice');
  t.true(received.every((f) => f.length === FRAME_BYTES));
  t.is(c.toPortFrames, BigInt(FRAMES));
  t.is(c.dropNoBuffer, 0n);
  t.is(b.dropNoBuffer, BigInt(FRAMES), "B's port counted each frame it had no buffer for");
  t.is(b.toPortFrames, 0n);
  t.is(B.fe.rings[RX].usedIdx(), 0);
  t.is(a.toPortFrames, 0n, 'a broadcast does not come back to its sender');

  // B was only slow, not stuck: once it posts buffers it receives the next broadcast.
  B.postRxBuffers(4);
  await A.send([frame(BROADCAST, MAC_A, FRAMES)]);
  t.deepEqual((await B.receive(1)).map(seqOf), [FRAMES]);
  t.deepEqual((await C.receive(1)).map(seqOf), [FRAMES]);
  t.is(counters('B').dropNoBuffer, BigInt(FRAMES));
});

test.serial('learning: once C has sent, A→C unicast reaches only C (B counts nothing)', async (t) => {
  const { segment, stations, counters } = await rig(t);
  const { A, B, C } = stations;
  A.postRxBuffers(16);
  C.postRxBuffers(64);

  // A's first frame teaches the switch A's MAC; C's is unknown, so A→C floods: B counts a drop.
  await A.send([frame(MAC_C, MAC_A, 1)]);
  t.deepEqual((await C.receive(1)).map(seqOf), [1]);
  t.is(counters('B').dropNoBuffer, 1n, 'unknown unicast is flooded');

  // C answers A: A is known, so only A gets it.
  await C.send([frame(MAC_A, MAC_C, 2)]);
  t.deepEqual((await A.receive(1)).map(seqOf), [2]);
  const macs = new Map(segment.switch.macs().map((m) => [m.mac, m.portId]));
  const portId = (name: string) => segment.switch.ports().find((p) => p.name === name)!.id;
  t.is(macs.get('02:00:00:00:00:0a'), portId('A'));
  t.is(macs.get('02:00:00:00:00:0c'), portId('C'));

  const bBefore = counters('B');
  const cBefore = counters('C');
  const burst = Array.from({ length: 50 }, (_, i) => frame(MAC_C, MAC_A, 100 + i));
  await A.send(burst);
  t.deepEqual((await C.receive(50)).map(seqOf), burst.map(seqOf));
  const bAfter = counters('B');
  t.deepEqual(bAfter, bBefore, "B's counters did not move");
  t.is(counters('C').toPortFrames - cBefore.toPortFrames, 50n);
  t.is(counters('A').toPortFrames, 1n, 'A got only the frame C addressed to it');
  t.deepEqual(A.takeReceived(), []);
});

test.serial('a receiver short of buffers takes exactly the frames that fit; a frame it cannot take whole leaves its buffers posted', async (t) => {
  // 512-byte buffers: a 1514-byte frame and its header need three of them (MRG_RXBUF).
  const { stations, counters } = await rig(t, 512);
  const { A, C } = stations;
  C.postRxBuffers(5);
  await A.send([frame(BROADCAST, MAC_A, 0, MAX_FRAME_BYTES)]); // takes 3 buffers
  await A.send([frame(BROADCAST, MAC_A, 1, MAX_FRAME_BYTES)]); // needs 3, 2 are left: dropped
  await A.send([frame(BROADCAST, MAC_A, 2)]); // fits in one of the 2 left
  const got = await C.receive(2);
  t.deepEqual(got.map((f) => [seqOf(f), f.length]), [[0, MAX_FRAME_BYTES], [2, FRAME_BYTES]]);
  t.is(C.fe.rings[RX].usedIdx(), 4, 'three buffers for the large frame, one for the small one');
  t.is(counters('C').dropNoBuffer, 1n);
  t.is(counters('C').toPortFrames, 2n);
  t.is(counters('B').dropNoBuffer, 3n);

  // A batch larger than what C has posted: C takes exactly what its buffers allow.
  C.postRxBuffers(29); // 30 available
  await A.send(Array.from({ length: BATCH }, (_, i) => frame(BROADCAST, MAC_A, 10 + i)));
  const batch = C.takeReceived();
  t.deepEqual(batch.map(seqOf), Array.from({ length: 30 }, (_, i) => 10 + i));
  t.is(counters('C').dropNoBuffer, 1n + BigInt(BATCH - 30));
  t.is(counters('B').dropNoBuffer, 3n + BigInt(BATCH));
});
